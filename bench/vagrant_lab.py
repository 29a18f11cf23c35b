#!/usr/bin/env python3
"""Benchmark the vagrant lab next to the embedded one, in one run: box/image, lab up, first
command, command round trip, the whole hw3.8 suite.

Each lab is brought up once by pytest: a small measuring test runs first on the session's lab
(first command, 20 round trips), then the hw3.8 suite on the same lab.

Usage: sudo .venv/bin/python bench/vagrant_lab.py [--labs uml vagrant] [--cold-box]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MEASURE = textwrap.dedent('''
    import json, os, statistics, time
    import pytest

    def vm_rss_mib(run_id):
        """RSS of each qemu of this run (the vagrant lab's VMs), MiB."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if f"guest=lvsh-{run_id}_".encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                    status = open(f"/proc/{pid}/status").read().split("VmRSS:")[1]
                    found.append(int(status.split()[0]) // 1024)
            except (OSError, IndexError):
                pass
        return found

    @pytest.fixture(scope="session")
    def rss_after_suite(lab):
        yield
        with open(os.environ["BENCH_OUT"] + ".rss", "w") as fh:    # before the lab's teardown
            json.dump(vm_rss_mib(lab.run_id), fh)

    def test_measure(lab, rss_after_suite):
        host = lab.hosts[lab.topology.directors[0].name]
        t0 = time.monotonic()
        host.check("true")
        first = time.monotonic() - t0
        rtts = [host.run("true").duration for _ in range(20)]
        with open(os.environ["BENCH_OUT"], "w") as fh:
            json.dump({"timings": lab.timings, "first": first, "rtt": statistics.median(rtts)}, fh)
''')


def run_lab(backend: str, work: Path) -> dict:
    (work / "test_measure.py").write_text(MEASURE)
    out, results = work / f"{backend}-measure.json", work / f"{backend}-results.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(work / "test_measure.py"),
            "--pyargs",
            "lvs_harness.packs.hw38",
            f"--lab={backend}",
            f"--results-json={results}",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_OUT": str(out)},
    )
    total = time.monotonic() - t0
    if not out.exists() or not results.exists():
        print(proc.stdout[-3000:], proc.stderr[-2000:])
        raise SystemExit(f"the {backend} run failed")
    m, r = json.loads(out.read_text()), json.loads(results.read_text())
    rss_file = Path(f"{out}.rss")
    rss = json.loads(rss_file.read_text()) if rss_file.exists() else []
    return {
        "rss": rss,
        "backend": backend,
        "timings": m["timings"],
        "lab_s": r.get("lab_seconds"),
        "first_s": m["first"],
        "rtt_ms": m["rtt"] * 1000,
        "suite_s": sum(c["duration"] for c in r["checks"]),
        "total_s": total,
        "score": f"{r['score']}/{r['max_score']}",
        "timing": r.get("timing"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", nargs="+", default=["uml", "vagrant"])
    parser.add_argument("--cold-box", action="store_true", help="rebuild the box (and the image) first")
    args = parser.parse_args()
    from lvs_harness.labs.base import stderr_progress
    from lvs_harness.labs.box import ensure_box
    from lvs_harness.labs.image import ensure_image

    t0 = time.monotonic()
    ensure_box(stderr_progress, force=args.cold_box)
    box_s = time.monotonic() - t0
    t0 = time.monotonic()
    ensure_image(stderr_progress, force=args.cold_box)
    image_s = time.monotonic() - t0
    rows = []
    with tempfile.TemporaryDirectory(prefix="lvsh-bench-vagrant-") as tmp:
        for backend in args.labs:
            print(f"measuring the {backend} lab …", flush=True)
            rows.append(run_lab(backend, Path(tmp)))
    print(f"\n{'':34}" + "".join(f"{r['backend']:>14}" for r in rows))
    print(
        f"{'box (vagrant) / image (uml)':34}"
        + "".join(f"{(box_s if r['backend'] == 'vagrant' else image_s):>12.1f} s" for r in rows)
        + ("   (cold)" if args.cold_box else "   (cached)")
    )
    print(f"{'lab up (5 machines)':34}" + "".join(f"{r['lab_s']:>12.1f} s" for r in rows))
    print(f"{'  of which':34}" + "   ".join(", ".join(f"{k} {v:.0f}" for k, v in r["timings"].items()) for r in rows))
    print(f"{'first command after up':34}" + "".join(f"{r['first_s'] * 1000:>11.0f} ms" for r in rows))
    print(f"{'command round trip (median of 20)':34}" + "".join(f"{r['rtt_ms']:>11.0f} ms" for r in rows))
    print(
        f"{'hw3.8 suite (checks only)':34}"
        + "".join(f"{r['suite_s']:>12.1f} s" for r in rows)
        + "   timing: "
        + ", ".join(f"{r['backend']} {r['timing']}" for r in rows)
    )
    print(f"{'whole run (up, suite, teardown)':34}" + "".join(f"{r['total_s']:>12.1f} s" for r in rows))
    print(f"{'score':34}" + "".join(f"{r['score']:>14}" for r in rows))
    for r in rows:
        if r["rss"]:
            print(
                f"{'qemu RSS after the suite':34}{r['backend']}: {sum(r['rss'])} MiB for {len(r['rss'])} VMs "
                f"({min(r['rss'])}–{max(r['rss'])} MiB each)"
            )


if __name__ == "__main__":
    main()
