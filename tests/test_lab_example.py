"""The real example submission (read from shared/ at test time) brings up a working lab.

Its Vagrantfile configures addresses in provisioners (auto_config: false), adds the IPVS
rules with ipvsadm, and its keepalived.conf files only hold the VIP; the configs are
applied the way the student did: written to /etc/keepalived and keepalived restarted.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from lvs_harness.labs import start_lab
from support import example_parts, wait_until

pytestmark = pytest.mark.lab
VIP = "172.28.128.200"


@pytest.fixture(scope="module")
def example_lab(lab_config, tmp_path_factory):
    parts = example_parts()
    folder = tmp_path_factory.mktemp("example")
    (folder / "Vagrantfile").write_text(parts["Vagrantfile"])
    config = dataclasses.replace(lab_config, vagrantfile=folder / "Vagrantfile", allow_scripts=True)
    with start_lab(config) as lab:
        for name in ("balancer1", "balancer2"):
            director = lab.hosts[name]
            director.write_file("/etc/keepalived/keepalived.conf", parts[name])
            director.restart("keepalived")
        yield lab


def holders(lab):
    return [n for n in ("balancer1", "balancer2") if VIP in lab.hosts[n].run("ip -o -4 addr show dev eth1").stdout]


def requests_by_real(lab, n=50):
    out = (
        lab.hosts["client"]
        .check(
            f"for i in $(seq {n}); do r=$(curl -s -m 3 -w ' %{{http_code}}' http://{VIP}/); echo $r; done", timeout=120
        )
        .stdout
    )
    answers = [line.split() for line in out.splitlines()]
    assert {a[-1] for a in answers} == {"200"}, answers
    return {name: sum(1 for a in answers if a[0] == name) for name in ("server1", "server2")}


def test_provisioners_configured_the_addresses(example_lab):
    # apt cannot reach a mirror in the lab: those provisioner steps fail harmlessly, the rest runs
    assert all(p.result.ok for p in example_lab.provisioning)
    addrs = {n: example_lab.hosts[n].check("ip -o -4 addr show dev eth1").stdout for n in ("server1", "balancer2")}
    assert "172.28.128.30/24" in addrs["server1"] and "172.28.128.20/24" in addrs["balancer2"]
    assert VIP in example_lab.hosts["server2"].check("ip -o -4 addr show dev lo").stdout
    assert example_lab.hosts["client"].check("ip -o -4 addr show dev eth2").stdout.count("172.28.128.50/24") == 1
    assert example_lab.hosts["server1"].check("hostname").stdout.strip() == "server1"


def test_vip_on_balancer1_and_traffic_balanced(example_lab):
    if not example_lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    wait_until(lambda: holders(example_lab) == ["balancer1"], timeout=15, what="VIP on balancer1")
    table = example_lab.hosts["balancer1"].check("ipvsadm -Ln").stdout
    assert re.findall(r"->\s+(\S+)\s+(\w+)\s+1\s", table) == [
        ("172.28.128.30:80", "Route"),
        ("172.28.128.40:80", "Route"),
    ]
    assert requests_by_real(example_lab) == {"server1": 25, "server2": 25}


def test_failover_to_balanser2_keeps_traffic_flowing(example_lab):
    if not example_lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    b1 = example_lab.hosts["balancer1"]
    wait_until(lambda: holders(example_lab) == ["balancer1"], timeout=15, what="VIP on balancer1")
    b1.link_down("eth1")
    try:
        wait_until(lambda: holders(example_lab) == ["balancer2"], timeout=10, interval=0.1, what="VIP on balancer2")
        assert requests_by_real(example_lab, 20) == {"server1": 10, "server2": 10}
    finally:
        b1.link_up("eth1")
    wait_until(lambda: holders(example_lab) == ["balancer1"], timeout=15, what="VIP back on balancer1")
    assert "with higher priority 100, ours 50" in example_lab.hosts["balancer2"].log("keepalived")
