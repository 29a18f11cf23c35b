"""The reference lab, for real: keepalived VRRP + IPVS DR on the lab chosen by --lab (uml here).

Tests run in file order on one session lab; the failover test comes last and restores the link.
"""

from __future__ import annotations

import re

import pytest

from support import wait_until

pytestmark = pytest.mark.lab
VIP = "172.28.128.200"


def vip_holders(directors):
    return [d.name for d in directors if VIP in d.run("ip -o -4 addr show dev eth1").stdout]


def ipvs_reals(director):
    out = director.check("ipvsadm -Ln -t 172.28.128.200:80").stdout
    return re.findall(r"->\s+(\d+\.\d+\.\d+\.\d+):80\s+(\w+)", out)


def test_provisioners_all_succeeded(lab):
    assert lab.provisioning, "the reference Vagrantfile has provisioners"
    failed = [(p.host, p.origin, p.result.rc, p.result.stderr[-500:]) for p in lab.provisioning if not p.result.ok]
    assert failed == []


def test_a_command_past_its_timeout_is_a_harness_error_and_leaves_nothing(hosts):
    """A command killed at its timeout is CommandTimeout (graded as an error, never as a lab that
    misbehaved), and what it started is gone."""
    from lvs_harness.errors import CommandTimeout, LabError

    client = hosts["client"]
    with pytest.raises(CommandTimeout) as caught:
        client.run("sleep 30 & sleep 31; true", timeout=1)
    assert isinstance(caught.value, LabError) and "did not finish within 1 s" in str(caught.value)
    assert "sleep 3" not in client.check("ps -eo args").stdout


def test_each_host_is_its_own_machine(hosts):
    assert {name: h.check("hostname").stdout.strip() for name, h in hosts.items()} == {n: n for n in hosts}
    hosts["server1"].write_file("/etc/lvs-harness-probe", "only on server1\n")
    assert hosts["server1"].read_file("/etc/lvs-harness-probe") == "only on server1\n"
    assert not hosts["server2"].run("test -e /etc/lvs-harness-probe").ok
    hosts["server1"].check("rm /etc/lvs-harness-probe")
    # daemons see their own /run: one keepalived per director, nginx only on the reals
    assert all(hosts[d].is_active("keepalived") for d in ("balancer1", "balancer2"))
    assert [n for n, h in hosts.items() if h.is_active("nginx")] == ["server1", "server2"]


def test_vip_ends_up_on_balancer1(directors):
    holders, seconds = wait_until(
        lambda: vip_holders(directors) == ["balancer1"] and ["balancer1"], timeout=15, what="VIP on balancer1 only"
    )
    assert holders == ["balancer1"]
    log = directors[0].log("keepalived")
    assert "Entering MASTER STATE" in log
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} .*Entering BACKUP STATE", log, re.M)
    # the session lab may have failed over in earlier tests: what matters is balancer2's state now
    b2_states = re.findall(r"Entering (\w+) STATE", directors[1].log("keepalived"))
    assert b2_states and b2_states[-1] == "BACKUP", b2_states


def test_ipvs_routes_to_both_reals_on_balancer1(lab, directors):
    if not lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    reals, _ = wait_until(
        lambda: sorted(ipvs_reals(directors[0])) if len(ipvs_reals(directors[0])) == 2 else None,
        timeout=15,
        what="both reals in balancer1's IPVS table (health checks pass)",
    )
    assert reals == [("172.28.128.30", "Route"), ("172.28.128.40", "Route")]
    assert "TCP  172.28.128.200:80 rr" in directors[0].check("ipvsadm -Ln").stdout


def test_50_requests_to_the_vip_are_answered_by_both_reals(lab, client, directors):
    if not lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    wait_until(lambda: len(ipvs_reals(directors[0])) == 2, timeout=15, what="both reals in the IPVS table")
    # one line per request: "<page> <status>"; each real's page is its name
    out = client.check(
        f"for i in $(seq 50); do r=$(curl -s -m 3 -w ' %{{http_code}}' http://{VIP}/); echo $r; done", timeout=120
    ).stdout
    answers = [line.split() for line in out.splitlines()]
    assert len(answers) == 50 and {code for _, code in answers} == {"200"}
    by_real = {name: sum(1 for n, _ in answers if n == name) for name in ("server1", "server2")}
    assert by_real == {"server1": 25, "server2": 25}


def test_testinfra_host_works_on_lab_hosts(hosts):
    b1 = hosts["balancer1"].testinfra
    assert "172.28.128.10" in b1.interface("eth1").addresses
    s1 = hosts["server1"].testinfra
    assert s1.sysctl("net.ipv4.conf.all.arp_ignore") == 1
    assert s1.sysctl("net.ipv4.conf.all.arp_announce") == 2
    assert s1.file("/var/www/html/index.html").content_string == "server1\n"
    assert VIP in s1.interface("lo").addresses


def test_link_down_on_balancer1_moves_the_vip_to_balancer2(directors):
    b1, b2 = directors
    wait_until(lambda: vip_holders(directors) == ["balancer1"], timeout=15, what="VIP on balancer1 before failover")
    b1.link_down("eth1")
    try:
        _, moved = wait_until(
            lambda: vip_holders(directors) == ["balancer2"],
            timeout=10,
            interval=0.1,
            what="VIP on balancer2 after eth1 down on balancer1",
        )
        assert moved < 10
        assert "Entering FAULT STATE" in b1.log("keepalived")
        assert "Entering MASTER STATE" in b2.log("keepalived")
    finally:
        b1.link_up("eth1")
    wait_until(lambda: vip_holders(directors) == ["balancer1"], timeout=15, what="VIP back on balancer1 (preempt)")
