#!/usr/bin/env python3
"""Benchmark `lvs-harness grade`: K copies of the example submission with -j 1 and -j N.

Prints, per setting: wall time, submissions per minute, peak memory (PSS of the whole grading
process tree, UML guests included, and the machine's peak use above its baseline), and the
scores (every copy should score the same: a verdict that changes under load is a bug).

Usage: bench/grade.py [--k 20] [--k1 3] [--jobs 4] [--submission PATH] [--lab uml] [--against REV]
With --against REV, the same K copies are then graded by commit REV (checked out into a temporary
folder, run from there) at --against-jobs, and the throughput ratio this ÷ REV is printed.
Targets (2 cores): 20 submissions in ≤ 5 minutes; throughput ≥ 2 × the commit before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LVS_HARNESS_SHARED", REPO.parent / "shared"))
DEFAULT_SUBMISSION = SHARED / "hw3.8" / "example-submission.md"


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_pss, self.baseline = pid, 0, mem_available_kib()
        self.lowest = self.baseline
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            self.peak_pss = max(self.peak_pss, sum(pss_kib(p) for p in tree(self.pid)))
            self.lowest = min(self.lowest, mem_available_kib())


def grade(source: Path, k: int, jobs: int, lab: str, code: Path = REPO) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lvsh-bench-grade-"))
    try:
        copies = []
        for i in range(k):
            dest = work / f"copy-{i + 1:02d}{source.suffix}"
            (shutil.copytree if source.is_dir() else shutil.copy)(source, dest)
            copies.append(dest)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lvs_harness.cli",
                "grade",
                *map(str, copies),
                "-j",
                str(jobs),
                "--lab",
                lab,
                "--out",
                str(work / "reports"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=code,
            env={**os.environ, "PYTHONPATH": str(code), "LVS_HARNESS_SHARED": str(SHARED)},
        )
        sampler = Sampler(proc.pid)
        sampler.start()
        _, err = proc.communicate()
        seconds = time.monotonic() - t0
        sampler.done.set()
        sampler.join()
        book = json.loads((work / "reports" / "gradebook.json").read_text())["submissions"]
        return {
            "code": "this" if code == REPO else code.name,
            "k": k,
            "jobs": jobs,
            "seconds": seconds,
            "per_minute": k / seconds * 60,
            "rc": proc.returncode,
            "peak_pss_mib": sampler.peak_pss / 1024,
            "peak_used_mib": (sampler.baseline - sampler.lowest) / 1024,
            "scores": Counter(f"{e['score']}/{e['max_score']} {e['outcome']}" for e in book),
            "failed": Counter(c["id"] for e in book for c in e["checks"] if c["status"] != "passed"),
            "reasons": [
                f"{e['submission']} {c['id']}: {c['reason'][:300]}"
                for e in book
                for c in e["checks"]
                if c["status"] != "passed"
            ][:10],
            "stderr": err[-1500:] if proc.returncode else "",
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=20, help="copies graded with -j N (default 20)")
    parser.add_argument("--k1", type=int, default=3, help="copies graded with -j 1 (default 3)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[4], help="N (several: one run each)")
    parser.add_argument(
        "--submission",
        type=Path,
        default=DEFAULT_SUBMISSION if DEFAULT_SUBMISSION.is_file() else REPO / "examples" / "hw38-writeup.md",
    )
    parser.add_argument("--lab", default="uml")
    parser.add_argument("--against", metavar="REV", help="also grade with this commit (e.g. the one before a change)")
    parser.add_argument("--against-jobs", type=int, default=4)
    args = parser.parse_args()
    print(f"grading copies of {args.submission} on --lab {args.lab}, {os.cpu_count()} CPUs", flush=True)
    runs = [grade(args.submission, args.k1, 1, args.lab)] if args.k1 else []
    if runs:
        print(f"  -j 1 done in {runs[-1]['seconds']:.0f} s", flush=True)
    for jobs in args.jobs:
        runs.append(grade(args.submission, args.k, jobs, args.lab))
        print(f"  -j {jobs} done in {runs[-1]['seconds']:.0f} s", flush=True)
    if args.against:
        old = Path(tempfile.mkdtemp(prefix="lvsh-bench-old-")) / args.against[:12]
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.against],
            check=True,
            capture_output=True,
        )
        try:
            runs.append(grade(args.submission, args.k, args.against_jobs, args.lab, code=old))
            print(f"  {args.against} -j {args.against_jobs} done in {runs[-1]['seconds']:.0f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], capture_output=True)
            shutil.rmtree(old.parent, ignore_errors=True)
    print(
        f"\n{'code':>12} {'K':>3} {'-j':>3} {'wall':>8} {'subs/min':>9} {'20 subs':>9} {'peak PSS':>10} {'peak used':>10}  scores"
    )
    for r in runs:
        print(
            f"{r['code']:>12} {r['k']:>3} {r['jobs']:>3} {r['seconds']:>7.0f}s {r['per_minute']:>9.2f} {20 / r['per_minute']:>7.1f}min "
            f"{r['peak_pss_mib']:>8.0f}MiB {r['peak_used_mib']:>8.0f}MiB  {dict(r['scores'])}"
            + (f"  not passed: {dict(r['failed'])}" if r["failed"] else "")
            + (f"  exit {r['rc']}" if r["rc"] else "")
        )
        for reason in r["reasons"]:
            print(f"      {reason}")
        if r["stderr"]:
            print(r["stderr"])
    if args.against:
        this = max((r for r in runs if r["code"] == "this" and r["k"] == args.k), key=lambda r: r["per_minute"])
        print(
            f"\nthroughput: this commit at -j {this['jobs']} {this['per_minute']:.2f}/min ÷ {args.against} at "
            f"-j {args.against_jobs} {runs[-1]['per_minute']:.2f}/min = {this['per_minute'] / runs[-1]['per_minute']:.2f}"
            " (target ≥ 2)"
        )


if __name__ == "__main__":
    main()
