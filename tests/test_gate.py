"""The grader's CPU gate: -j is an upper bound, and a lab starts only while the machine has CPU to spare."""

from __future__ import annotations

import threading
import time

from lvs_harness.grading import CpuGate, cpu_times

# the first line of /proc/stat on the development machine (2 cores), 2026-12-01
STAT = "cpu  2184827 701 1841535 3583290 3580 0 8140 34331 0 0\ncpu0 1092413 350 920767 1791645 1790 0 4070 17165 0 0\n"


def test_cpu_times_reads_idle_and_total_jiffies():
    assert cpu_times(STAT) == (3583290 + 3580, 2184827 + 701 + 1841535 + 3583290 + 3580 + 0 + 8140 + 34331)
    assert cpu_times("cpu  10 0 10 80\n") == (80, 100)  # an old kernel's four fields


def ticking(idle_share: list[float]):
    """A /proc/stat that advances 100 jiffies per read, ``idle_share[0]`` of them idle."""
    state = {"idle": 0, "total": 0}

    def read():
        state["idle"] += int(100 * idle_share[0])
        state["total"] += 100
        return f"cpu  {state['total'] - state['idle']} 0 0 {state['idle']} 0 0 0 0 0 0\n"

    return read


def test_a_busy_machine_holds_the_next_lab_back_until_it_has_room():
    share = [0.1]
    gate = CpuGate(idle_needed=0.3, window=0.01, read=ticking(share))
    admitted = threading.Event()
    t = threading.Thread(target=lambda: (gate.admit(running=lambda: 2), admitted.set()))
    t.start()
    assert not admitted.wait(0.3)  # 10 % idle: held back
    share[0] = 0.5
    assert admitted.wait(2)  # 50 % idle: it starts
    t.join()
    assert gate.waited >= 0.3


def test_nothing_running_or_stopping_or_unreadable_never_waits():
    busy = [0.0]
    t0 = time.monotonic()
    CpuGate(window=0.01, read=ticking(busy)).admit(running=lambda: 0)
    CpuGate(window=0.01, read=ticking(busy)).admit(running=lambda: 3, stopping=lambda: True)

    def unreadable():
        raise OSError("no /proc")

    CpuGate(window=0.01, read=unreadable).admit(running=lambda: 3)
    assert time.monotonic() - t0 < 0.5


def test_a_machine_kept_busy_by_others_holds_a_start_back_at_most_max_wait():
    gate = CpuGate(idle_needed=0.3, window=0.01, read=ticking([0.0]), max_wait=0.3)
    t0 = time.monotonic()
    gate.admit(running=lambda: 1)  # the machine never idles, one idle lab of ours runs
    assert 0.3 <= time.monotonic() - t0 < 1.0 and gate.forced == 1
    assert gate.summary() == "CPU gate: starts held back 0 s in all; 1 let through after 0 s with the CPU still busy"


def test_a_runs_time_budget_follows_from_its_pack_and_lab(monkeypatch):
    """Bring-up and the pack's measured checks, 4× for a slow machine, plus the provisioning budget."""
    from lvs_harness.grading import job_timeout
    from lvs_harness.packs import load_pack

    monkeypatch.setenv("LVS_HARNESS_PROVISION_BUDGET", "100")
    hw38 = load_pack("hw38")
    assert job_timeout(hw38, "uml", None) == 4 * (12 + hw38.check_seconds[0]) + 100
    assert job_timeout(hw38, "uml", "faithful") == 4 * (12 + hw38.check_seconds[1]) + 100
    assert job_timeout(hw38, "vagrant", None) == round(4 * (400 + 1.4 * hw38.check_seconds[1]) + 100)
