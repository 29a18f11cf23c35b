#!/usr/bin/env python3
"""Benchmark the embedded (uml) lab: image build, boot, bring-up, VIP, traffic, round trip, memory.

Usage: bench/lab_up.py [--runs N] [--skip-cold]
Prints one line per figure (median over the runs where a figure is measured per run).
Targets (as ratios measured in the same run): start → VIP up and 50 requests answered
≤ 2 × (guest boot + the master's first election, its master-down interval); a command in a lab
host ≤ 1.5 × a bare exec in the guest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

from lvs_harness.assertions import vrrp_instance
from lvs_harness.labs import LabConfig, start_lab
from lvs_harness.probes.client import http_requests
from lvs_harness.labs import image as image_mod
from lvs_harness.runs import pids_with_marker

VIP = "172.28.128.200"


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class MemorySampler(threading.Thread):
    """Peak proportional set size of one run's processes (UML and helpers), sampled every 0.2 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.run_id = None
        self.peak = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            if self.run_id:
                self.peak = max(self.peak, pss_kib(pids_with_marker(self.run_id)))


def one_run(rt_samples: int) -> dict:
    sampler = MemorySampler()
    sampler.start()
    t0 = time.monotonic()
    config = LabConfig(backend="uml", progress=lambda m: None)
    with start_lab(config) as lab:
        sampler.run_id = lab.run_id
        up = time.monotonic() - t0
        b1, client = lab.hosts["balancer1"], lab.hosts["client"]
        while VIP not in b1.run("ip -o -4 addr show dev eth1").stdout:
            time.sleep(0.1)
        vip = time.monotonic() - t0
        while b1.run("ipvsadm -Ln").stdout.count("Route") < 2:
            time.sleep(0.1)
        out = [a.word for a in http_requests(client, f"http://{VIP}/", count=50)]
        assert len(out) == 50 and set(out) == {"server1", "server2"}, out
        answered = time.monotonic() - t0
        election = vrrp_instance(b1, VIP).master_down_interval
        rt_host = sorted(client.run("true").duration for _ in range(rt_samples))
        rt_guest = sorted(lab.guest.exec(["true"], None, 10).duration for _ in range(rt_samples))
        sampler.stop.set()
        figures = {
            "boot (s)": lab.timings["boot"],
            "evaluate Vagrantfile (s)": lab.timings["evaluate"],
            "hosts + daemons + provisioning (s)": sum(
                lab.timings[k] for k in ("namespaces", "daemons", "provision", "keepalived")
            ),
            "lab up (s)": up,
            "start → VIP on balancer1 (s)": vip,
            "start → VIP up and 50 requests answered (s)": answered,
            "  its floor: boot + first election (s)": lab.timings["boot"] + election,
            "  ratio (target ≤ 2)": answered / (lab.timings["boot"] + election),
            "round trip, command in a lab host (ms, median)": statistics.median(rt_host) * 1000,
            "round trip, command in the guest (ms, median)": statistics.median(rt_guest) * 1000,
            "  ratio host ÷ guest (target ≤ 1.5)": statistics.median(rt_host) / statistics.median(rt_guest),
        }
    sampler.stop.set()
    sampler.join()
    figures["peak host memory of the guest (MiB PSS)"] = sampler.peak / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true", help="do not time a cold image build (~40 s)")
    parser.add_argument("--samples", type=int, default=50, help="commands timed per round-trip figure")
    args = parser.parse_args()
    print(f"lvs-harness lab benchmark, {os.cpu_count()} cores, uml lab, reference Vagrantfile")
    if not args.skip_cold:
        with tempfile.TemporaryDirectory(prefix="lvsh-bench-cache-") as cache:
            old = os.environ.get("LVS_HARNESS_CACHE")
            os.environ["LVS_HARNESS_CACHE"] = cache
            t0 = time.monotonic()
            image_mod.ensure_image(lambda m: None)
            print(f"{'image build, cold (s)':50} {time.monotonic() - t0:7.1f}")
            if old is None:
                del os.environ["LVS_HARNESS_CACHE"]
            else:
                os.environ["LVS_HARNESS_CACHE"] = old
    image_mod.ensure_image(print)
    t0 = time.monotonic()
    image_mod.ensure_image(lambda m: None)
    print(f"{'image, cached (s)':50} {time.monotonic() - t0:7.2f}")
    runs = [one_run(args.samples) for _ in range(args.runs)]
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key:50} {statistics.median(values):7.2f}   (runs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
