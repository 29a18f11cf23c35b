#!/usr/bin/env python3
"""Benchmark the hw3.8 suite on the embedded lab: wall time per check and end to end.

Usage: bench/suite_hw38.py [--timing fast|faithful] [--lab uml]
Target on the development machine (cached image, fast timing): ≤ 60 s end to end.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import pytest


class Timer:
    def __init__(self):
        self.per_test = defaultdict(float)
        self.outcome = {}

    def pytest_runtest_logreport(self, report):
        name = report.nodeid.split("::")[-1].removeprefix("test_")
        self.per_test[name] += report.duration
        if report.when == "call" or report.failed:
            self.outcome[name] = report.outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", choices=("fast", "faithful"), default="fast")
    parser.add_argument("--lab", default="uml")
    args = parser.parse_args()
    timer = Timer()
    t0 = time.monotonic()
    rc = pytest.main(["-q", "-p", "no:cacheprovider", f"--lab={args.lab}", f"--timing={args.timing}",
                      "--pyargs", "lvs_harness.suites.hw38"], plugins=[timer])
    total = time.monotonic() - t0
    print(f"\nhw3.8 suite, --lab {args.lab}, --timing {args.timing} (lab start-up counts in the first check)")
    for name, seconds in timer.per_test.items():
        print(f"  {name:22} {seconds:6.1f} s  {timer.outcome.get(name, '?')}")
    print(f"  {'end to end':22} {total:6.1f} s  (pytest exit {int(rc)})")


if __name__ == "__main__":
    main()
