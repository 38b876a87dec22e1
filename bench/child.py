"""Run one benchmark case in this process and print its result as one ``BENCH_RESULT`` JSON line.

    python -m bench.child dpo_bare '{"model": "tiny-random", "steps": 3}'
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> int:
    from bench import cases

    name, kwargs = sys.argv[1], json.loads(sys.argv[2])
    started = time.time()
    result = getattr(cases, name)(**kwargs)
    result["case_wall_s"] = round(time.time() - started, 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
