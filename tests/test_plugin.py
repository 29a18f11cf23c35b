"""The pytest plugin stays out of test suites that use no lab: installed in the same environment
(the ``pytest11`` entry point loads it into every pytest run), it changes neither their signal
handling nor their plugins until a run asks for a lab (an option of ours, a check, or a lab fixture)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PLAIN = '''
import signal


def test_signals_and_plugins_are_the_suites_own(request):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    names = {name for name, _ in request.config.pluginmanager.list_name_plugin()}
    assert not {n for n in names if n and n.startswith("lvs-harness-")}, names
'''

LAB = '''
import signal


def test_a_lab_fixture_makes_it_a_lab_run(request, lab_config):
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    assert request.config.pluginmanager.get_plugin("lvs-harness-recorder") is not None
    assert lab_config.backend == "auto"
'''


def run_pytest(tmp_path, name: str, text: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / f"test_{name}.py").write_text(textwrap.dedent(text))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_plain_suite_keeps_its_signals_and_plugins(tmp_path):
    proc = run_pytest(tmp_path, "plain", PLAIN)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (
        "lvs-harness"
        in subprocess.run(
            [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, timeout=120
        ).stdout
    )  # the plugin was loaded all the same


def test_a_suite_using_a_lab_fixture_or_a_lab_option_is_a_lab_run(tmp_path):
    proc = run_pytest(tmp_path, "lab", LAB)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # an option of ours alone makes it one too: the plain suite then sees our handler
    (tmp_path / "plain").mkdir()
    proc = run_pytest(tmp_path / "plain", "plain", PLAIN, "--lab", "uml")
    assert proc.returncode == 1 and "SIG_DFL" in proc.stdout, proc.stdout[-3000:]
