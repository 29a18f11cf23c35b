"""The vagrant lab for real: the reference Vagrantfile as five VMs under Vagrant + libvirt (software
emulation, all in the lvsh-vagrant network namespace), the hw3.8 suite unchanged on it; and its
bad input, each one clear sentence with nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lvs_harness.errors import LabError, Refused, VagrantfileError
from lvs_harness.labs import LabConfig, libvirt_ns, start_lab
from lvs_harness.runs import Run

pytestmark = pytest.mark.lab
CHECKS = ["config_valid", "directors_separate", "vip_on_master", "vip_by_keepalived", "real_dr_ready", "ipvs_service",
          "traffic_via_vip", "vip_arp_to_director", "rr_balanced", "inactconn_drains", "failover", "failback",
          "no_split_brain"]


@pytest.fixture(scope="module", autouse=True)
def libvirt_daemons():
    """Stop the libvirt daemons afterwards if these tests started them (a grader's stay up)."""
    running = libvirt_ns._pid("libvirtd") is not None
    yield
    if not running:
        libvirt_ns.stop()


def leftovers(run_ids: set[str]) -> list[str]:
    """Domains and networks of these runs still defined in libvirt."""
    if not libvirt_ns.SOCKET.exists():
        return []
    names = (libvirt_ns.virsh("list", "--all", "--name", check=False).stdout.split()
             + libvirt_ns.virsh("net-list", "--all", "--name", check=False).stdout.split())
    return [n for n in names if any(n.startswith(f"lvsh-{r}") for r in run_ids)]


def test_hw38_suite_passes_on_the_reference_lab_as_vms(tmp_path):
    before = {r.id for r in Run.all()}
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--pyargs",
                           "lvs_harness.suites.hw38", "--lab", "vagrant", "--timing", "fast",
                           f"--results-json={out}"],       # fast: CI's budget (faithful adds the 120 s drain)
                          cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["backend"] == "vagrant" and results["timing"] == "fast"
    assert [c["id"] for c in results["checks"]] == CHECKS
    assert {c["id"]: (c["status"], c["reason"][:300]) for c in results["checks"] if c["status"] != "passed"} == {}
    drained = next(c for c in results["checks"] if c["id"] == "inactconn_drains")["measured"]
    assert drained["drained_after_s"] < 15
    new = {r.id for r in Run.all()} - before
    assert new == set(), f"runs left behind: {new}"
    assert leftovers({results["run_id"]}) == []


def test_a_vagrantfile_that_does_not_evaluate_is_one_sentence_and_nothing_starts(tmp_path):
    vf = tmp_path / "Vagrantfile"
    vf.write_text('Vagrant.configure("2") do |config|\n  config.vm.define "b1" do |m|\nend\n')
    before = {r.id for r in Run.all()}
    with pytest.raises((VagrantfileError, LabError)) as err:
        start_lab(LabConfig(backend="vagrant", vagrantfile=vf, allow_scripts=True))
    assert "syntax error" in str(err.value) and "\n" not in str(err.value).split(" — ")[0]
    assert {r.id for r in Run.all()} == before


def test_a_students_vagrantfile_is_refused_without_allow_scripts(tmp_path):
    vf = tmp_path / "Vagrantfile"
    vf.write_text(Path(__file__).resolve().parents[1].joinpath("Vagrantfile").read_text())
    with pytest.raises(Refused, match="--allow-scripts"):
        start_lab(LabConfig(backend="vagrant", vagrantfile=vf))


def test_no_vagrant_binary_is_one_sentence_with_the_fix(monkeypatch):
    monkeypatch.setattr(libvirt_ns, "REQUIRED", (("vagrant-that-is-not-there", "vagrant"),))
    with pytest.raises(LabError, match=r"needs vagrant.*sudo apt-get install vagrant"):
        start_lab(LabConfig(backend="vagrant"))
