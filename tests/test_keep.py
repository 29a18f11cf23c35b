"""`lvs-harness up` / `--keep-lab`: a kept lab outlives its command and is driven through its keeper."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lvs_harness.labs import LabConfig, start_lab
from lvs_harness.runs import Run

pytestmark = pytest.mark.lab


def cli(*args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "lvs_harness.cli", *args], input=input, capture_output=True, text=True, timeout=300
    )


def test_kept_lab_outlives_its_starter_and_goes_down_on_request(lab_config):
    lab = start_lab(LabConfig(backend=lab_config.backend, keep=True, progress=lambda m: None), provision=False)
    run_id = lab.run_id
    lab.close()  # kept: still up, held by its keeper
    run = Run.load(run_id)
    assert run.owner_alive()
    status = cli("status")
    assert run_id in status.stdout and "server1      real" in status.stdout
    echo = cli("exec", "--run", run_id, "client", "--", "cat", input="through stdin\n")
    assert echo.returncode == 0 and echo.stdout == "through stdin\n"
    failing = cli("exec", "--run", run_id, "client", "--", "sh", "-c", "exit 7")
    assert failing.returncode == 7
    # argv arrives intact, as with docker exec: no word is split or unquoted on the way
    argv = cli("exec", "--run", run_id, "client", "--", "printf", "[%s]", "a  b", "%{http_code}\\n", "$HOME")
    assert argv.stdout == "[a  b][%{http_code}\\n][$HOME]", argv.stdout
    unknown = cli("exec", "--run", run_id, "nohost", "--", "true")
    assert unknown.returncode == 2 and "no host named 'nohost'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    down = cli("down", "--run", run_id)
    assert down.returncode == 0, down.stderr
    assert not run.dir.exists()


def test_cli_errors_are_one_sentence():
    out = cli("exec", "--run", "ffffff", "client", "--", "true")
    assert out.returncode == 2 and out.stderr.startswith("lvs-harness: error: no lab with run id ffffff")
    out = cli("up", "--vagrantfile", "/nonexistent/Vagrantfile")
    assert out.returncode == 2 and "cannot read /nonexistent/Vagrantfile" in out.stderr
    assert "Traceback" not in out.stderr
