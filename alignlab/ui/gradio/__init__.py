"""The alignlab Gradio app (extra ``app``): ``alignlab app`` or ``python apps/app.py``.

Serves on 127.0.0.1 by default; ``share`` (a public gradio.live link) is off unless asked for;
``auth`` is ``"user:password"``. Training runs in worker processes, chat in the server.
"""

from __future__ import annotations

import atexit
from pathlib import Path

from alignlab.errors import AlignLabError
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.cpu import limit_server_threads
from alignlab.ui.gradio.style import CSS, THEME
from alignlab.ui.gradio.uploads import MAX_BYTES


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """``"user:password"`` -> ``("user", "password")``; AlignLabError for anything else."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise AlignLabError("auth: got a value without 'user:password' form, expected user:password")
    return user, password


def serve(demo, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False, auth: str | None = None,
          block: bool = True):
    """Launch a built app; with ``block=False`` return at once (the server keeps running in threads)."""
    limit_server_threads()
    atexit.register(demo.services.jobs.close)
    return demo.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, share=share, auth=parse_auth(auth), max_file_size=MAX_BYTES,
        theme=THEME, css=CSS, ssr_mode=False, footer_links=["api", "gradio"], prevent_thread_lock=not block,
        show_error=True, quiet=not block)


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth: str | None = None,
           runs_dir: str | Path = "runs", trust_remote_code: bool = False, data_dir: str | Path | None = None) -> None:
    """Build the app and serve it until interrupted (what ``alignlab app`` calls)."""
    serve(create_app(runs_dir, data_dir, trust_remote_code), host, port, share, auth)


__all__ = ["create_app", "launch", "parse_auth", "serve"]
