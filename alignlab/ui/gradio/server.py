"""Serving the Gradio app: :func:`launch` checks the settings, builds the app
(:func:`alignlab.ui.gradio.app.create_app`) and serves it until interrupted (:func:`serve`); what ``alignlab app``
and ``python apps/app.py`` call.

Serves on 127.0.0.1 by default; ``share`` (a public gradio.live link) is off unless asked for;
``auth`` is ``"user:password"`` or a list of them, one account per user (each stops, cancels, deletes and
resumes only their own jobs and runs; ``instructor`` may name the account that may change anyone's). Training
runs in worker processes, chat in the server. Served beyond this machine without auth, :func:`launch` warns
(:func:`exposure_warning`).

``workshop`` turns on workshop mode (:mod:`alignlab.ui.gradio.components.class_tab`): participants name their
pages, runs carry the name, a Class tab ranks everyone's runs within the KL budget the ``instructor`` sets.
``max_jobs`` trains that many jobs at once where a GPU holds them (:func:`alignlab.job_slots.job_slots`).
"""

from __future__ import annotations

import atexit
import errno
import ipaddress
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from alignlab.config import check_owner
from alignlab.errors import AlignLabError
from alignlab.job_slots import JOB_GIB, free_gpu_bytes, job_slots
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.cpu import limit_server_threads
from alignlab.ui.gradio.shutdown import serve_until_signalled
from alignlab.ui.gradio.style import CSS, THEME
from alignlab.ui.gradio.uploads import MAX_BYTES
from alignlab.ui.gradio.workshop import Workshop, new_key

SHARE_HINT = "* To create a public link, run `alignlab app --share` (with --auth USER:PASSWORD)."


def parse_auth(auth: str | Sequence[str] | None) -> list[tuple[str, str]] | None:
    """``"user:password"`` (or a list of them) -> ``[("user", "password"), ...]``; AlignLabError for anything else.

    >>> parse_auth(["ada:lovelace", "bob:babbage"])
    [('ada', 'lovelace'), ('bob', 'babbage')]
    """
    if not auth:
        return None
    accounts: dict[str, str] = {}
    for account in [auth] if isinstance(auth, str) else auth:
        user, sep, password = account.partition(":")
        if not sep or not user or not password:
            raise AlignLabError("auth: got a value without 'user:password' form, expected user:password")
        if user in accounts:
            raise AlignLabError(f"auth: user {user!r} is given twice, expected one password per user")
        accounts[user] = password
    return list(accounts.items())


def exposure_warning(host: str, share: bool, auth: str | Sequence[str] | None) -> str | None:
    """One line to print when the app is reachable from other machines without a password, else None.

    >>> exposure_warning("127.0.0.1", False, None) is None
    True
    """
    if auth:
        return None
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if local and not share:
        return None
    where = "through a public gradio.live link (--share)" if share else f"from other machines (--host {host})"
    return (f"warning: the app is open to anyone {where} with no password: they can train on this machine, "
            "chat and delete runs; add --auth user:password")


def serve(demo, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
          auth: str | Sequence[str] | None = None, block: bool = True):
    """Launch a built app; with ``block=False`` return at once (the server keeps running in threads).

    Gradio's own start-up lines are left out (its hint names ``share=True`` in ``launch()``, which an
    ``alignlab app`` user never writes): with ``block`` it says where the app runs and how to share it, and serves
    until SIGTERM, SIGINT or SIGHUP, which stops the training job as Stop does and waits for it to save
    (:func:`alignlab.ui.gradio.shutdown.serve_until_signalled`)."""
    limit_server_threads()
    atexit.register(demo.services.jobs.close)
    result = demo.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, share=share, auth=parse_auth(auth), max_file_size=MAX_BYTES,
        theme=THEME, css=CSS, ssr_mode=False, footer_links=["api", "gradio"], prevent_thread_lock=True,
        show_error=True, quiet=True)
    if block:
        print(f"* Running on local URL:  {demo.local_url}", flush=True)
        if not share:  # with share, Gradio prints the public URL itself
            print(SHARE_HINT, flush=True)
        serve_until_signalled(demo)
    return result


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth: str | Sequence[str] | None = None,
           runs_dir: str | Path | None = None, trust_remote_code: bool = False, data_dir: str | Path | None = None,
           workshop: bool = False, instructor: str | None = None, kl_budget: float | None = None, max_jobs: int = 1,
           job_gib: float = JOB_GIB) -> None:
    """Build the app and serve it until interrupted (what ``alignlab app`` calls); warns first when it is
    served beyond this machine without auth. Workshop settings and ``max_jobs`` are checked before anything is
    built (:func:`workshop_settings`, :func:`alignlab.job_slots.job_slots`). With ``auth`` and without ``workshop``,
    ``instructor`` names the admin account: it may stop, cancel, delete and resume anyone's jobs and runs."""
    accounts = parse_auth(auth)  # a malformed account is refused before anything is built
    room = workshop_settings(workshop, instructor, kl_budget, accounts)
    if room is not None and room.key:
        print(instructor_note(room), file=sys.stderr, flush=True)
    slots, note = job_slots(max_jobs, free_gpu_bytes() if max_jobs != 1 else None, job_gib)
    if note:
        print(note, file=sys.stderr, flush=True)
    check_port(host, port)  # a port in use: one line now, not a traceback after the app is built
    warning = exposure_warning(host, share, auth)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    demo = create_app(runs_dir, data_dir, trust_remote_code, room, slots, None if room else instructor)
    try:
        serve(demo, host, port, share, auth)
    except OSError as error:  # taken between the check and the start
        raise AlignLabError(f"port: cannot serve on {host}:{port} ({' '.join(str(error).split())})") from None


def workshop_settings(workshop: bool, instructor: str | None, kl_budget: float | None,
                      accounts: list[tuple[str, str]] | None) -> Workshop | None:
    """The workshop state for ``alignlab app --workshop`` (None without it); AlignLabError for ``--kl-budget``
    without ``--workshop``, ``--instructor`` without ``--workshop`` or ``--auth`` (with accounts alone it names the
    admin account), a bad budget, or an instructor who is not one of the ``--auth`` accounts. With accounts the
    instructor proves who they are by signing in; without, by a fresh instructor key
    (:func:`alignlab.ui.gradio.workshop.new_key`) that :func:`launch` prints in the terminal."""
    users = [user for user, _ in accounts or []]
    if not workshop and (kl_budget is not None or (instructor and not users)):
        raise AlignLabError("workshop: --instructor and --kl-budget belong to workshop mode, expected --workshop too "
                            "(with --auth accounts alone, --instructor names the admin account)")
    instructor = check_owner(instructor, "instructor") or None
    if users and instructor and instructor not in users:
        raise AlignLabError(f"instructor: got {instructor!r}, expected one of the --auth accounts ({', '.join(users)})")
    return Workshop(instructor, kl_budget, key=None if accounts or not instructor else new_key()) if workshop else None


def instructor_note(room: Workshop) -> str:
    """What the terminal says at start in workshop mode without accounts: the key that makes a page the
    instructor's."""
    return (f"* Workshop instructor key: {room.key}  (to act as {room.instructor!r}, type that name and this key "
            "at the top of the page; without the key no page can take the name)")


def check_port(host: str, port: int) -> None:
    """AlignLabError in one line unless the app can listen on ``host``:``port`` now (a port in use, a port
    out of range, an address this machine does not have)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise AlignLabError(f"port: got {port!r}, expected an integer from 1 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as error:
        raise AlignLabError(f"host: cannot serve on {host!r} ({error})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a closing socket is fine
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AlignLabError(f"port: {port} on {host} is in use (another app or server?); choose a free one "
                                    "with --port") from None
            raise AlignLabError(f"host: cannot serve on {host}:{port} ({error.strerror or error})") from None
