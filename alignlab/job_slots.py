"""How many training jobs the app may run at once (``alignlab app --max-jobs N``).

The rule: one job at a time unless the machine has a CUDA GPU. On a CPU, jobs at once only share the same
cores, so each runs slower and none ends sooner; ``N > 1`` is refused there. With a GPU, jobs run at once as
far as its free memory holds them: at most ``free memory // per-job memory`` (at least one), where a job is
taken to need :data:`JOB_GIB` GiB, a margin meant for the default 135M model with LoRA, its reference and the
probe's generation (not measured here: a bigger model or batch needs ``--job-gib`` raised). Asking for more
runs that many, and says so.
"""

from __future__ import annotations

from alignlab.errors import AlignLabError

JOB_GIB = 4.0
GIB = 1 << 30


def job_slots(requested: int, free_bytes: int | None, job_gib: float = JOB_GIB) -> tuple[int, str | None]:
    """``(jobs at once, a note when fewer than requested)`` for ``requested`` jobs, given the GPU's free memory
    in bytes (``free_bytes``; None without a CUDA GPU); AlignLabError when ``requested`` is not a positive
    integer, or is above 1 without a GPU.

    >>> job_slots(1, None)
    (1, None)
    >>> job_slots(4, 10 * GIB)
    (2, 'max_jobs: 4 jobs at once need 16 GiB at 4 GiB each and the GPU has 10.0 GiB free: running 2 at once')
    """
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise AlignLabError(f"max_jobs: got {requested!r}, expected a whole number ≥ 1")
    if not job_gib > 0:
        raise AlignLabError(f"job_gib: got {job_gib!r}, expected a number of GiB > 0")
    if requested == 1:
        return 1, None
    if free_bytes is None:
        raise AlignLabError(f"max_jobs: got {requested}, but this machine has no CUDA GPU: jobs at once would share "
                            "the same CPU cores and none would end sooner; expected 1 (the default)")
    fits = max(1, int(free_bytes // (job_gib * GIB)))
    if requested <= fits:
        return requested, None
    return fits, (f"max_jobs: {requested} jobs at once need {requested * job_gib:g} GiB at {job_gib:g} GiB each and "
                  f"the GPU has {free_bytes / GIB:.1f} GiB free: running {fits} at once")


def free_gpu_bytes() -> int | None:
    """Free memory of the first CUDA GPU in bytes, or None when there is none (torch imported here, lazily)."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info()
    return int(free)
