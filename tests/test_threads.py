"""A run takes the cores other work leaves free: OpenMP threads that share a core wait for each other."""

import os
import subprocess
import sys

import pytest

from alignlab import threads

SPIN = "import time\nend = time.time() + 30\nwhile time.time() < end:\n    pass\n"  # one core, busy


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_another_busy_process_counts_about_one_core_and_the_run_takes_one_thread_fewer(monkeypatch):
    import torch

    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        busy = threads.busy_elsewhere(0.5)
        assert busy is not None and busy >= 0.7  # at least most of the spinner's core
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        default = torch.get_num_threads()
        said = threads.apply()
        expected = threads.free_threads(os.cpu_count(), busy, threads._DEFAULT[0])
        assert torch.get_num_threads() in (expected, expected - 1, expected + 1)  # sampled again: noise of ±1 core
        if torch.get_num_threads() < threads._DEFAULT[0]:
            assert said and "set OMP_NUM_THREADS to choose" in said
    finally:
        spinner.kill()
        torch.set_num_threads(threads._DEFAULT[0] if threads._DEFAULT else default)


def test_omp_num_threads_set_by_the_user_wins(monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    count = torch.get_num_threads()
    assert threads.apply() is None and torch.get_num_threads() == count
