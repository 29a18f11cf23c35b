"""Nothing is left behind: after Ctrl-C, and after SIGKILL followed by `lvs-harness clean`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lvs_harness.runs import pids_with_marker, state_root

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

CHILD = """
import sys, time
from lvs_harness.labs import LabConfig, start_lab
with start_lab(LabConfig(backend=sys.argv[1], progress=lambda m: None), provision=False) as lab:
    lab.hosts["server1"].start("nginx")
    print("UP", lab.run_id, flush=True)
    time.sleep(600)
"""


def leftovers(run_id: str) -> dict:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {
        "processes": pids_with_marker(run_id),
        "namespaces": [line.split()[0] for line in netns.splitlines() if f"lvsh-{run_id}" in line],
        "state": (state_root() / run_id).exists(),
        "shm": Path(f"/dev/shm/lvs-harness-{run_id}").exists(),
    }


NOTHING = {"processes": [], "namespaces": [], "state": False, "shm": False}


def start_child(backend: str):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, backend], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("UP "), f"the lab did not come up: {line!r}"
    return proc, line.split()[1]


@pytest.mark.parametrize("backend", ["uml", "netns"])
def test_sigkill_then_clean_removes_everything(backend):
    proc, run_id = start_child(backend)
    before = leftovers(run_id)
    assert before["state"] and (before["processes"] or before["namespaces"])
    proc.kill()
    proc.wait()
    left = leftovers(run_id)
    assert left["state"], "a SIGKILLed run cannot clean up after itself"
    out = subprocess.run([sys.executable, "-m", "lvs_harness.cli", "clean"], capture_output=True, text=True)
    assert out.returncode == 0 and run_id in out.stdout, out.stderr
    assert leftovers(run_id) == NOTHING


@pytest.mark.parametrize("backend", ["uml", "netns"])
def test_ctrl_c_tears_the_lab_down(backend):
    proc, run_id = start_child(backend)
    proc.send_signal(signal.SIGINT)  # KeyboardInterrupt leaves the `with` block, which closes the lab
    proc.wait(30)
    assert leftovers(run_id) == NOTHING
