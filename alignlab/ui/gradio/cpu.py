"""How the app shares the CPU between its web server (chat) and its training worker process.

Two processes that each run torch on every core oversubscribe the CPU, and torch's worker threads
then wait on each other: on a shared 2-core machine, chat ran about 5x slower and a training step
about 2x slower with 2 threads than with 1. So the server (chat) takes half the cores and the
worker the rest, unless ``OMP_NUM_THREADS`` is set, which then applies to the worker.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_split() -> tuple[int, int]:
    """(server threads, worker threads)."""
    cores = available_cores()
    server = max(1, cores // 2)
    return server, max(1, cores - server)


def limit_server_threads() -> int:
    """Set this (server) process's torch threads to its share; returns it."""
    import torch

    server, _ = thread_split()
    torch.set_num_threads(server)
    return server


def worker_environment() -> dict[str, str]:
    """Environment additions for a training worker: its thread share (a user's OMP_NUM_THREADS wins)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return {}
    return {"OMP_NUM_THREADS": str(thread_split()[1])}
