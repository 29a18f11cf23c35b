#!/usr/bin/env python3
"""Benchmark the hw3.8 suite on the embedded lab: each check's wall time against the protocol
time it must wait (its floor, from the running lab's own keepalived.conf and IPVS timeouts),
the harness overhead (the difference), and the ratio suite ÷ floor; the same for bring-up.

Usage: bench/suite_hw38.py [--timing fast|faithful] [--lab uml]
Targets: checks ÷ floor ≤ 1.5 (fast timing); host command round trip ≤ 1.5 × the
guest's bare exec; 50 requests ≤ 2 s + 50 × curl's time_total.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import pytest

STATS_LAG = 2.0  # s: ipvsadm --stats counters are folded in by the kernel's 2 s estimator


class Timer:
    """Collects each check's setup + call + teardown time, its outcome and its measured values,
    and the per-operation figures of the lab before it goes down."""

    def __init__(self):
        self.per_test = defaultdict(float)
        self.outcome, self.measured = {}, {}
        self.figures: dict = {}
        self.lab_down = 0.0

    def pytest_runtest_logreport(self, report):
        name = report.nodeid.split("::")[-1].removeprefix("test_")
        self.per_test[name] += report.duration
        if report.when == "teardown" and self.figures:
            self.lab_down = report.duration - self.figures["seconds"]
        if report.when == "call" or report.failed:
            self.outcome[name] = report.outcome
        if report.when == "teardown":
            self.measured[name] = {k: v for k, v in report.user_properties if not k.startswith("check_")}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item, nextitem):
        if nextitem is None and "hw" in item.funcargs:  # the last check: the lab is still up
            self.figures = lab_figures(item.funcargs["hw"])
        yield


def floors(hw, measured: dict, timing_tcpfin: float) -> dict[str, tuple[float, str]]:
    """The protocol time each check must wait, from the lab's configuration: {check: (s, why)}."""
    master, backup = hw.master, hw.backup_for(hw.master)
    mb, ib = hw.insts[master.name], hw.insts[backup.name]
    down_b, down_m = ib.master_down_interval, mb.master_down_interval
    skew_b = (256 - ib.priority) / 256 * ib.advert_int
    watched = measured.get("vip_on_master", {}).get("watched_s", 0.0)
    return {
        "vip_on_master": (watched, f"watched {watched:g} s: until a deaf backup would have taken the VIP"),
        "vip_by_keepalived": (skew_b, f"backup's skew {skew_b:.2f} s after the master's priority-0 advert"),
        # keepalived starts every instance in BACKUP, and a higher-priority backup preempts only when
        # its own master-down timer runs out (RFC 3768 6.4.2: a lower-priority advert does not reset
        # it): the VIP comes back a master-down interval after keepalived starts or the link returns
        "traffic_via_vip": (
            down_m,
            f"the master preempts after its master-down interval ({down_m:.2f} s) once keepalived is back",
        ),
        "rr_balanced": (STATS_LAG, f"IPVS stats estimator ({STATS_LAG:g} s)"),
        "inactconn_drains": (timing_tcpfin, f"tcpfin {timing_tcpfin:g} s"),
        "failover": (
            down_b + ib.advert_int + STATS_LAG,
            f"backup's master-down {down_b:.2f} s + an advert of probing + stats {STATS_LAG:g} s",
        ),
        "failback": (
            down_m + down_b + down_m + 1.0,
            f"preemption {down_m:.2f} s (baseline), own failover {down_b:.2f} s, preemption "
            f"{down_m:.2f} s, 1 s of probing",
        ),
    }


def lab_figures(hw) -> dict:
    """Per-operation costs, measured on the suite's own lab right after its last check."""
    from lvs_harness.probes import ipvs
    from lvs_harness.probes.client import http_requests
    from lvs_harness.packs.hw38.test_hw38 import REQUESTS

    t_figures = time.monotonic()
    lab, client = hw.lab, hw.lab.hosts["client"]
    out = {"hw": hw, "tcpfin": ipvs.read_timeouts(hw.master).tcpfin, "timings": dict(getattr(lab, "timings", {}))}
    out["host_rt"] = statistics.median(client.run("true").duration for _ in range(30))
    guest = getattr(lab, "guest", None)
    out["bare"] = statistics.median(guest.exec(["true"], None, 10).duration for _ in range(30)) if guest else None
    t = time.monotonic()
    answers = http_requests(client, hw.url, count=REQUESTS)
    out["burst"], out["latency"], out["requests"] = time.monotonic() - t, sum(a.latency for a in answers), REQUESTS
    out["seconds"] = time.monotonic() - t_figures  # spent in the last check's teardown: not the check's
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", choices=("fast", "faithful"), default="fast")
    parser.add_argument("--lab", default="uml")
    args = parser.parse_args()
    timer = Timer()
    t0 = time.monotonic()
    rc = pytest.main(
        [
            "-q",
            "-p",
            "no:cacheprovider",
            f"--lab={args.lab}",
            f"--timing={args.timing}",
            "--pyargs",
            "lvs_harness.packs.hw38",
        ],
        plugins=[timer],
    )
    total = time.monotonic() - t0
    f = timer.figures
    hw, up = f["hw"], f["timings"]
    table = floors(hw, timer.measured, f["tcpfin"])
    first, last = next(iter(timer.per_test)), list(timer.per_test)[-1]
    print(
        f"\nhw3.8 suite, --lab {args.lab}, --timing {args.timing}; floor = the protocol time a check must "
        "wait, from the lab's configuration"
    )
    print(f"  {'check':22} {'wall':>7} {'floor':>7} {'overhead':>9}  outcome  floor is")
    wall_sum = floor_sum = 0.0
    for name, seconds in timer.per_test.items():
        if name == first:
            seconds -= sum(up.values())  # the lab's start-up is in the first check's setup
        if name == last:
            seconds -= f["seconds"] + timer.lab_down  # these figures and the lab's teardown
        floor, why = table.get(name, (0.0, "—"))
        wall_sum += seconds
        floor_sum += floor
        print(
            f"  {name:22} {seconds:6.1f}s {floor:6.1f}s {seconds - floor:8.1f}s  "
            f"{timer.outcome.get(name, '?'):7}  {why}"
        )
    print(
        f"  {'all checks':22} {wall_sum:6.1f}s {floor_sum:6.1f}s {wall_sum - floor_sum:8.1f}s  "
        f"ratio checks ÷ floor = {wall_sum / floor_sum:.2f} (target ≤ 1.5)"
    )
    elect = hw.insts[hw.master.name].master_down_interval
    print(
        f"\n  lab bring-up {sum(up.values()):.1f} s: {', '.join(f'{k} {v:.1f} s' for k, v in up.items())}; "
        f"its floor: the first election ≥ {elect:.2f} s (master-down interval) after keepalived starts"
    )
    print(
        f"  host command round trip {f['host_rt'] * 1000:.0f} ms"
        + (
            f", guest's bare exec {f['bare'] * 1000:.0f} ms: ratio {f['host_rt'] / f['bare']:.2f} (target ≤ 1.5)"
            if f["bare"]
            else ""
        )
    )
    print(
        f"  {f['requests']} requests through the VIP {f['burst']:.2f} s; 2 s + their latency "
        f"{2 + f['latency']:.2f} s ({'within' if f['burst'] <= 2 + f['latency'] else 'over'} target)"
    )
    fo, fb = timer.measured.get("failover", {}), timer.measured.get("failback", {})
    print(
        f"  failover {fo.get('failover_s')} s, failback {fb.get('failback_s')} s (from {fo.get('failover_from')}); "
        f"client outage {fo.get('client_outage_s')} s at {fo.get('probe_rate_per_s')} probes/s"
    )
    print(
        f"\n  end to end {total:.1f} s (pytest exit {int(rc)}; of it {f['seconds']:.1f} s these figures, "
        f"{timer.lab_down:.1f} s the lab's teardown)"
    )


if __name__ == "__main__":
    main()
