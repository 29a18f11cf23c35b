"""The netns lab on this machine's own kernel (root only).

This kernel may lack IPVS; then the IPVS checks skip and say so, and everything else —
namespaces, addresses, nginx, VRRP failover — is still tested for real. The example
submission is used because its keepalived configs hold only VRRP (keepalived exits
entirely when a virtual_server block meets a kernel without IPVS).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from lvs_harness.errors import LabError
from lvs_harness.labs import LabConfig, start_lab
from lvs_harness.runs import is_alive, pids_with_marker
from support import example_parts, wait_until

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the netns lab needs root")]
VIP = "172.28.128.200"


def main_ns_links():
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.count("\n")


def netns_names():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def netns_lab(tmp_path_factory, lab_config):
    parts = example_parts()
    folder = tmp_path_factory.mktemp("example-netns")
    (folder / "Vagrantfile").write_text(parts["Vagrantfile"])
    links_before = main_ns_links()
    config = LabConfig(backend="netns", vagrantfile=folder, allow_scripts=True, progress=lab_config.progress)
    with start_lab(config) as lab:
        lab.links_before = links_before
        for name in ("balancer1", "balancer2"):
            lab.hosts[name].write_file("/etc/keepalived/keepalived.conf", parts[name])
            lab.hosts[name].restart("keepalived")
        yield lab


def holders(lab):
    return [n for n in ("balancer1", "balancer2") if VIP in lab.hosts[n].run("ip -o -4 addr show dev eth1").stdout]


def test_hosts_are_namespaces_named_by_run_id_and_nothing_lands_in_the_main_namespace(netns_lab):
    names = netns_names()
    for host in netns_lab.topology.names:
        assert f"lvsh-{netns_lab.run_id}-{host}" in names
    assert main_ns_links() == netns_lab.links_before
    assert netns_lab.hosts["server2"].check("hostname").stdout.strip() == "server2"
    assert "172.28.128.40/24" in netns_lab.hosts["server2"].check("ip -o -4 addr show dev eth1").stdout


def test_nginx_answers_on_each_real(netns_lab):
    client = netns_lab.hosts["client"]
    for name, ip in (("server1", "172.28.128.30"), ("server2", "172.28.128.40")):
        assert client.check(f"curl -s -m 3 http://{ip}/").stdout == f"{name}\n"


def test_vrrp_failover_and_failback(netns_lab):
    wait_until(lambda: holders(netns_lab) == ["balancer1"], timeout=15, what="VIP on balancer1")
    b1 = netns_lab.hosts["balancer1"]
    b1.link_down("eth1")
    try:
        _, seconds = wait_until(
            lambda: holders(netns_lab) == ["balancer2"], timeout=10, interval=0.1, what="VIP on balancer2"
        )
        assert seconds < 10
    finally:
        b1.link_up("eth1")
    wait_until(lambda: holders(netns_lab) == ["balancer1"], timeout=15, what="VIP back on balancer1")


def test_ipvs_table(netns_lab):
    if not netns_lab.ipvs:
        pytest.skip("this machine's kernel has no IPVS (CONFIG_IP_VS unset): the IPVS checks run on --lab uml")
    assert "172.28.128.30:80" in netns_lab.hosts["balancer1"].check("ipvsadm -Ln").stdout


def test_untrusted_provisioners_are_refused_without_allow_scripts(tmp_path):
    (tmp_path / "Vagrantfile").write_text(example_parts()["Vagrantfile"])
    with pytest.raises(LabError, match="as root on this machine; use --lab uml .* or pass --allow-scripts"):
        start_lab(LabConfig(backend="netns", vagrantfile=tmp_path, progress=lambda m: None))


def test_closing_a_netns_lab_leaves_nothing(lab_config):
    with start_lab(LabConfig(backend="netns", progress=lab_config.progress), provision=False) as lab:
        lab.hosts["server1"].start("nginx")
        run_id = lab.run_id
        assert f"lvsh-{run_id}-server1" in netns_names()
        nginx = subprocess.run(
            ["ip", "netns", "pids", f"lvsh-{run_id}-server1"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert nginx, "nginx runs inside server1's namespace"
    assert f"lvsh-{run_id}" not in netns_names()
    assert [p for p in nginx if is_alive(int(p))] == []
    assert pids_with_marker(run_id) == []
    assert not lab.run.dir.exists()
