#!/usr/bin/env python3
"""Verdict stability: grade the self-test corpus and the real answers K times and count, per
submission and check, the rounds whose verdict differed from the one tests/data/submissions/expected.toml
(every check) or ../shared/real-hw38/expected.toml (the checks it lists) gives.

Usage: bench/verdicts.py [--rounds 3] [-j 4] [--lab uml]
Target (this machine): 0 flips in 3 rounds at -j 4. It grades with the code of the lvs-harness it
imports (an editable install: this checkout) — leave that code unchanged while it runs, or run it
from another checkout with PYTHONPATH=that/checkout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

from lvs_harness.grading import listed_differences, verdict_differences

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "submissions"
REAL = ROOT.parent / "shared" / "real-hw38"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-j", "--jobs", type=int, default=4)
    parser.add_argument("--lab", default="uml")
    args = parser.parse_args()
    expected = tomllib.loads((CORPUS / "expected.toml").read_text())
    real = tomllib.loads((REAL / "expected.toml").read_text()) if (REAL / "expected.toml").is_file() else {}
    subs = sorted(CORPUS.glob("*.md")) + [REAL / name for name in sorted(real)]
    flips: Counter = Counter()
    walls = []
    with tempfile.TemporaryDirectory(prefix="lvsh-verdicts-") as tmp:
        for n in range(1, args.rounds + 1):
            out = Path(tmp) / f"round-{n}"
            t0 = time.monotonic()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "lvs_harness.cli",
                    "grade",
                    *map(str, subs),
                    "-j",
                    str(args.jobs),
                    "--lab",
                    args.lab,
                    "--out",
                    str(out),
                ],
                capture_output=True,
                text=True,
            )
            walls.append(time.monotonic() - t0)
            book = json.loads((out / "gradebook.json").read_text())
            retried = 0
            for entry in book["submissions"]:
                retried += len(entry.get("attempts", [])) > 1
                name = entry["submission"]
                diffs = (
                    verdict_differences(entry, expected[name]["failed"])
                    if name in expected
                    else listed_differences(entry, real[f"{name}.md"])
                )
                for diff in diffs:
                    flips[(entry["submission"], diff.split(":")[0])] += 1
                    print(f"round {n}: {entry['submission']}: {diff}")
            print(
                f"round {n}: {len(subs)} submissions graded in {walls[-1]:.0f} s (exit {proc.returncode}), "
                f"{retried} graded again after an error",
                flush=True,
            )
    print(
        f"\n{len(subs)} submissions × 13 checks × {args.rounds} rounds at -j {args.jobs} (--lab {args.lab}): "
        f"{sum(flips.values())} verdict(s) differed from the expected"
    )
    for (sub, check), count in sorted(flips.items()):
        print(f"  {sub:32} {check:20} {count}/{args.rounds}")
    print(f"wall per round: {', '.join(f'{w:.0f} s' for w in walls)}")


if __name__ == "__main__":
    main()
