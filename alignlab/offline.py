"""Offline by default, inside alignlab's own loading calls only.

The lab never waits on the Hugging Face Hub unless the ``ALIGNLAB_ALLOW_DOWNLOAD`` environment variable is
set. It says so call by call, never for the whole process: importing alignlab leaves ``HF_HUB_OFFLINE`` and
the libraries' offline switches as the user set them. Model loading passes ``local_files_only``
(:func:`local_files_only`); ``datasets.load_dataset``, which has no such argument, runs inside
:func:`hub_offline`, which turns the switches on for the block and puts back what was there after.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import huggingface_hub.constants  # noqa: F401 - imported before any block switches it (see hub_offline)

ALLOW_DOWNLOAD = "ALIGNLAB_ALLOW_DOWNLOAD"  # set (to anything) to let alignlab download from the Hub
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")  # read by libraries that look at the environment

_lock = threading.Lock()
_depth = 0  # blocks under way (threads and nesting): the first one in switches, the last one out restores
_saved: dict = {}


def downloads_allowed() -> bool:
    """True when the user allowed downloads (``ALIGNLAB_ALLOW_DOWNLOAD`` is set)."""
    return bool(os.environ.get(ALLOW_DOWNLOAD))


def local_files_only() -> bool:
    """The ``local_files_only`` argument for a loading call: True unless downloads are allowed."""
    return not downloads_allowed()


def _switches() -> list[tuple[object, str]]:
    """The module-level offline flags of the Hub libraries already imported (they read the environment once,
    when imported, and check these flags before each request)."""
    found = []
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        found.append((hub, "HF_HUB_OFFLINE"))
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        found += [(datasets_config, name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
                  if hasattr(datasets_config, name)]
    return found


@contextmanager
def hub_offline() -> Iterator[None]:
    """Within the block, the Hugging Face libraries answer from the local cache only (unless downloads are
    allowed); afterwards the environment and the libraries' flags are what they were. Safe to nest and to
    enter from several threads: the state is restored when the last block ends.

    Import the library before the block (``import datasets``, then ``with hub_offline(): ...``): a library
    imported inside it would keep the offline setting it read while importing.

    >>> import os
    >>> before = os.environ.get("HF_HUB_OFFLINE")
    >>> with hub_offline():
    ...     print(os.environ["HF_HUB_OFFLINE"] if not downloads_allowed() else "1")
    1
    >>> os.environ.get("HF_HUB_OFFLINE") == before
    True
    """
    global _depth
    if downloads_allowed():
        yield
        return
    with _lock:
        if _depth == 0:
            _saved.clear()
            _saved["environ"] = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
            _saved["switches"] = [(module, name, getattr(module, name)) for module, name in _switches()]
            os.environ.update(dict.fromkeys(OFFLINE_VARIABLES, "1"))
            for module, name, _ in _saved["switches"]:
                setattr(module, name, True)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for name, value in _saved["environ"].items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                for module, name, value in _saved["switches"]:
                    setattr(module, name, value)
