"""How fast is a sweep of the ``max_subjobs`` cap's size checked, and one over it refused?

Times, in this process, the checks a submit runs before anything is stored (``parse_spec`` of a
job with a sweep at the cap, then ``corral.admit.check_submit``), and the refusal of a sweep
10 times over the cap (two parameters of 1,000 and 500 values: 500,000 points, never made). The
issue's target: well under a second for the first, and the second as fast.

    python bench/validate_sweep.py [--points 50000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from corral import admit, load_settings
from corral.errors import InvalidSpec
from corral.spec import parse_spec

TARGET = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["CORRAL_HOME"] = home
        settings = load_settings(overrides={"max_subjobs": args.points})
        at_cap = {
            "command": ["echo", "{n}"],
            "splitter": {
                "kind": "sweep",
                "parameters": {"n": [str(i) for i in range(args.points)]},
            },
        }
        over = {
            "command": ["echo"],
            "splitter": {
                "kind": "sweep",
                "parameters": {
                    "a": [str(i) for i in range(1000)],
                    "b": [str(i) for i in range(500)],
                },
            },
        }
        timings: dict[str, list[float]] = {"at the cap": [], "over the cap": []}
        for _ in range(args.runs):
            started = time.perf_counter()
            admit.check_submit(settings, parse_spec(at_cap))
            timings["at the cap"].append(time.perf_counter() - started)
            started = time.perf_counter()
            try:
                admit.check_submit(settings, parse_spec(over))
            except InvalidSpec:
                pass
            else:
                raise SystemExit("a sweep over the cap was accepted")
            timings["over the cap"].append(time.perf_counter() - started)
    worst = 0.0
    for what, values in timings.items():
        median = statistics.median(values)
        worst = max(worst, median)
        print(f"{what}: median {median * 1000:.0f} ms, best {min(values) * 1000:.0f} ms")
    print(f"target: under {TARGET:g} s: {'ok' if worst < TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
