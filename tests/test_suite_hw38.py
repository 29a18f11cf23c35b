"""The shipped hw3.8 suite, run as a lab author would: the suite file beside a conftest that
overrides ``lab_config``. It passes on the reference and on the example submission, and
broken variants fail exactly the checks they should."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lvs_harness.suites.hw38.test_hw38 as suite
from lvs_harness.labs import reference_vagrantfile
from support import EXAMPLE, example_parts

pytestmark = pytest.mark.lab
ALL = ["config_valid", "directors_separate", "vip_on_master", "vip_by_keepalived", "real_dr_ready", "ipvs_service",
       "traffic_via_vip", "vip_arp_to_director", "rr_balanced", "inactconn_drains", "failover", "failback",
       "no_split_brain"]

CONFTEST = textwrap.dedent('''
    import dataclasses, json, os
    from pathlib import Path
    import pytest

    SPEC = json.loads(Path(os.environ["HW38_SPEC"]).read_text())
    RESULTS = {}

    @pytest.fixture(scope="session")
    def lab_config(lab_config):
        if not SPEC.get("vagrantfile"):
            return lab_config          # the command line says what to test (e.g. --submission)
        return dataclasses.replace(lab_config, vagrantfile=Path(SPEC["vagrantfile"]), files=SPEC.get("files"),
                                   allow_scripts=True)

    def pytest_runtest_logreport(report):
        props = dict(report.user_properties)
        if props.get("check_id") and (report.when == "call" or report.failed):
            RESULTS[props["check_id"]] = {"outcome": report.outcome, "points": props.get("check_points"),
                                          "reason": str(report.longrepr)[-400:] if report.failed else ""}

    def pytest_sessionfinish(session):
        Path(os.environ["HW38_OUT"]).write_text(json.dumps(RESULTS))
''')

VRRP_ONLY_BACKUP = textwrap.dedent('''
    vrrp_instance VI_1 {
        state BACKUP
        interface eth1
        virtual_router_id 38
        priority 100
        advert_int 1
        virtual_ipaddress {
            172.28.128.200/32 dev eth1
        }
    }
''')


def run_suite(tmp_path: Path, vagrantfile: str | None, files: dict | None = None, lab: str = "uml",
              args: tuple = ()) -> dict:
    shutil.copy(suite.__file__, tmp_path / "test_hw38.py")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    spec = tmp_path / "spec.json"
    if vagrantfile is not None:
        (tmp_path / "Vagrantfile").write_text(vagrantfile)
    spec.write_text(json.dumps({"vagrantfile": str(tmp_path / "Vagrantfile") if vagrantfile else None,
                                "files": files}))
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--lab={lab}",
                           *args, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HW38_SPEC": str(spec), "HW38_OUT": str(out)})
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert list(results) == ALL, f"checks ran out of order or went missing: {list(results)}"
    return results


def failed(results: dict) -> set[str]:
    return {k for k, v in results.items() if v["outcome"] == "failed"}


def test_reference_passes_every_check(tmp_path):
    results = run_suite(tmp_path, reference_vagrantfile().read_text())
    assert failed(results) == set(), {k: v["reason"] for k, v in results.items() if v["reason"]}
    assert sum(v["points"] for v in results.values()) == 24


def test_example_submission_passes_every_check(tmp_path):
    """The real write-up, graded as course staff would: --submission write-up.md."""
    example_parts()   # skips when the write-up is not there
    results = run_suite(tmp_path, None, args=(f"--submission={EXAMPLE}",))
    assert failed(results) == set(), {k: v["reason"] for k, v in results.items() if v["reason"]}


def test_missing_ipvs_rules_on_the_backup(tmp_path):
    """balancer2's keepalived holds only the VIP: no virtual_server, so no IPVS table there."""
    results = run_suite(tmp_path, reference_vagrantfile().read_text(),
                        {"balancer2": {"/etc/keepalived/keepalived.conf": VRRP_ONLY_BACKUP}})
    assert failed(results) == {"ipvs_service", "failover"}, {k: v["reason"] for k, v in results.items()}
    assert "balancer2" in results["ipvs_service"]["reason"]


def test_split_brain(tmp_path):
    """Both directors MASTER with different virtual_router_ids: each is alone in its VRRP group."""
    reference_b2 = _reference_config("balancer2")
    conf = reference_b2.split("virtual_server")[0].replace("state BACKUP", "state MASTER").replace(
        "virtual_router_id 38", "virtual_router_id 39") + "virtual_server" + reference_b2.split("virtual_server")[1]
    assert "state MASTER" in conf and "virtual_router_id 39" in conf
    results = run_suite(tmp_path, reference_vagrantfile().read_text(),
                        {"balancer2": {"/etc/keepalived/keepalived.conf": conf}})
    got = failed(results)
    assert {"vip_on_master", "no_split_brain"} <= got, {k: v["reason"] for k, v in results.items()}
    # which director the client's traffic reaches depends on whose ARP reply it kept: the checks
    # measured on the intended master may fail too, the configuration and real checks may not
    assert got <= {"vip_on_master", "vip_by_keepalived", "vip_arp_to_director", "rr_balanced", "inactconn_drains",
                   "failover", "failback", "no_split_brain"}, {k: v["reason"] for k, v in results.items() if k in got}
    assert {"config_valid", "directors_separate", "real_dr_ready", "ipvs_service"}.isdisjoint(got)


def test_no_arp_suppression_on_a_real(tmp_path):
    """server2 answers ARP for the VIP: the check of the real and of the client's ARP fail; what the
    traffic checks see depends on which ARP reply the client keeps."""
    variant = reference_vagrantfile().read_text() + textwrap.dedent('''
        Vagrant.configure("2") do |config|
          config.vm.define "server2" do |m|
            m.vm.provision "shell", inline: "sysctl -w net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.all.arp_announce=0"
          end
        end
    ''')
    results = run_suite(tmp_path, variant)
    got = failed(results)
    assert {"real_dr_ready", "vip_arp_to_director"} <= got, {k: v["reason"] for k, v in results.items()}
    assert got <= {"real_dr_ready", "vip_arp_to_director", "traffic_via_vip", "rr_balanced", "inactconn_drains"}, \
        {k: v["reason"] for k, v in results.items() if k in got}


def _reference_config(director: str) -> str:
    from lvs_harness.labs.netns import sandbox_run
    from lvs_harness.vagrantfile import load_topology
    script = load_topology(reference_vagrantfile(), sandbox_run).host(director).provisioners[0].script
    return script.split("<<'CONF'\n")[1].split("CONF\n")[0]


def test_config_that_does_not_parse(tmp_path):
    """The example's config pasted with its shell prompt still on top (as in the write-up):
    config_valid fails with keepalived's own message, the checks that need keepalived fail with
    the reason, the others still run, and the run finishes normally."""
    parts = example_parts()
    pasted = "root@balancer1:/home/vagrant# cat /etc/keepalived/keepalived.conf \n" + parts["balancer1"]
    files = {"balancer1": {"/etc/keepalived/keepalived.conf": pasted},
             "balancer2": {"/etc/keepalived/keepalived.conf": parts["balancer2"]}}
    results = run_suite(tmp_path, parts["Vagrantfile"], files)
    # keepalived reads '#' as the start of a comment, so the prompt's user@host:dir is the keyword
    assert "(/etc/keepalived/keepalived.conf: Line 1) Unknown keyword 'root@balancer1:/home/vagrant'" in \
        results["config_valid"]["reason"], results["config_valid"]
    blocked = {k for k, v in results.items() if "not run: needs a valid keepalived config" in v["reason"]}
    assert blocked == set(ALL) - {"config_valid", "directors_separate", "real_dr_ready"}
    assert failed(results) == blocked | {"config_valid"}
