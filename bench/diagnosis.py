#!/usr/bin/env python3
"""What the diagnosis of failed checks costs: from a graded batch's gradebook.json, the time each
diagnosis took (the measured ``diagnosis_s``), per check, and the checks that looked although they
passed (none may: a passing run pays nothing).

Usage: bench/diagnosis.py REPORTS/gradebook.json [...]
  e.g. lvs-harness grade tests/data/submissions/*.md -j 4 --lab uml --out /tmp/d && bench/diagnosis.py /tmp/d/gradebook.json
Target: at most ~2 s per failed check (a VRRP diagnosis captures one advert interval, 1 s by default,
+0.3 s); 0 looks on passing checks.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("books", nargs="+", type=Path)
    args = parser.parse_args()
    costs: dict[str, list[float]] = defaultdict(list)
    found = looked = failed = 0
    on_passing = []
    for book in args.books:
        for entry in json.loads(book.read_text())["submissions"]:
            for c in entry["checks"]:
                m = c.get("measured") or {}
                if c["status"] == "failed" and not c["reason"].startswith("not run"):
                    failed += 1
                if "diagnosis_s" not in m:
                    continue
                if c["status"] == "passed":
                    on_passing.append(f"{entry['submission']}:{c['id']}")
                looked += 1
                found += "diagnosis" in m
                costs[c["id"]].append(float(m["diagnosis_s"]))
    print(
        f"{failed} failed checks (not counting 'not run'), {looked} looked, {found} with a diagnosis; "
        f"looks on passing checks: {len(on_passing)} {on_passing[:5]}"
    )
    print(f"{'check':<22}{'n':>4}{'median s':>10}{'max s':>8}")
    for check, xs in sorted(costs.items()):
        print(f"{check:<22}{len(xs):>4}{statistics.median(xs):>10.2f}{max(xs):>8.2f}")
    every = [x for xs in costs.values() for x in xs]
    if every:
        print(f"{'all':<22}{len(every):>4}{statistics.median(every):>10.2f}{max(every):>8.2f}")


if __name__ == "__main__":
    main()
