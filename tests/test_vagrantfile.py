"""Vagrantfiles → topologies, evaluated with a real Ruby in the netns lab's sandbox (needs root + ruby)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from lvs_harness import vagrantfile
from lvs_harness.errors import VagrantfileError
from lvs_harness.labs import reference_vagrantfile
from lvs_harness.packs import load_pack
from lvs_harness.labs.local import sandbox_run
from lvs_harness.topology import CLIENT, DIRECTOR, REAL, role_for
from support import example_parts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the Vagrantfile sandbox needs root")


def load(path: Path, **kw):
    return vagrantfile.load_topology(path, sandbox_run, **kw)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Vagrantfile"
    path.write_text(text)
    return path


def test_reference_vagrantfile_is_the_top_level_one():
    top = Path(__file__).resolve().parents[1] / "Vagrantfile"
    assert top.resolve() == reference_vagrantfile().resolve()


def test_reference_topology():
    topo = load(reference_vagrantfile())
    assert topo.names == ["balancer1", "balancer2", "server1", "server2", "client"]
    assert [h.name for h in topo.directors] == ["balancer1", "balancer2"]
    assert [h.name for h in topo.reals] == ["server1", "server2"]
    assert [h.name for h in topo.clients] == ["client"]
    addresses = {h.name: h.address for h in topo.hosts}
    assert addresses == {
        "balancer1": "172.28.128.10",
        "balancer2": "172.28.128.20",
        "server1": "172.28.128.30",
        "server2": "172.28.128.40",
        "client": "172.28.128.50",
    }
    for h in topo.hosts:
        assert [(i.name, i.ip.split("/")[1], i.segment) for i in h.interfaces] == [("eth1", "24", "hw38")]
        assert h.hostname == h.name
    b1 = topo.host("balancer1").provisioners[0].script
    assert "state MASTER" in b1 and "priority 150" in b1 and "lb_kind DR" in b1 and "lb_algo rr" in b1
    assert "state BACKUP" in topo.host("balancer2").provisioners[0].script
    s1 = topo.host("server1").provisioners
    assert [p.name for p in s1] == ["real", "vip-on-lo"]
    assert "172.28.128.200/32 dev lo" in s1[1].script and "arp_ignore = 1" in s1[0].script


def test_example_submission_topology(tmp_path):
    """The student's Vagrantfile: loops over hashes, string concatenation, addresses set by provisioners."""
    topo = load(write(tmp_path, example_parts()["Vagrantfile"]))
    assert sorted(topo.names) == ["balancer1", "balancer2", "client", "server1", "server2"]
    assert {h.name: h.role for h in topo.hosts} == {
        "server1": REAL,
        "server2": REAL,
        "balancer1": DIRECTOR,
        "balancer2": DIRECTOR,
        "client": CLIENT,
    }
    s1 = topo.host("server1")
    # the top-level private_network (auto_config: false) gives every machine an unconfigured eth1
    assert [(i.name, i.ip, i.auto_config, i.segment) for i in s1.interfaces] == [("eth1", None, False, "intnet")]
    assert s1.address is None
    assert s1.provisioners[0].args == ("server1", "172.28.128.30/24")
    assert "ip addr add $2 dev eth1" in s1.provisioners[0].script
    assert "arp_ignore=1" in s1.provisioners[0].script
    assert "ipvsadm -A -t 172.28.128.200:80 -s rr" in topo.host("balancer2").provisioners[0].script
    # the client also has its own network: eth2 with the address, on the same intnet
    client = topo.host("client")
    assert [(i.name, i.ip, i.auto_config) for i in client.interfaces] == [
        ("eth1", None, False),
        ("eth2", "172.28.128.50/24", True),
    ]
    assert client.hostname == "client" and client.address == "172.28.128.50"
    assert topo.segments == ["intnet"]


def test_roles_are_configurable_and_tolerant():
    assert role_for("balanser2", load_pack("hw38").roles) == DIRECTOR  # the pack's patterns
    assert role_for("balanser2") == "other" and role_for("director2") == DIRECTOR  # the generic ones
    assert role_for("Server1") == REAL
    assert role_for("db1") == "other"
    roles = {DIRECTOR: ("lvs-*",), REAL: ("web-*",), CLIENT: ("probe",)}
    assert [role_for(n, roles) for n in ("lvs-a", "web-b", "probe", "balancer1")] == [DIRECTOR, REAL, CLIENT, "other"]


def test_path_provisioner_with_args(tmp_path):
    (tmp_path / "setup.sh").write_text("echo hello $1\n")
    path = write(
        tmp_path,
        'Vagrant.configure("2") do |c|\n'
        '  c.vm.define "client" do |m|\n'
        '    m.vm.network "private_network", ip: "10.1.2.3", netmask: "255.255.0.0"\n'
        '    m.vm.provision "shell", path: "setup.sh", args: "world"\n'
        '    m.vm.provision :shell, inline: "true", run: "never"\n'
        '  end\nend\n',
    )
    topo = load(path)
    host = topo.host("client")
    assert host.interfaces[0].ip == "10.1.2.3/16"
    assert [(p.script, p.args) for p in host.provisioners] == [("echo hello $1\n", "world")]
    assert "setup.sh" in host.provisioners[0].origin


@pytest.mark.parametrize(
    "text, message",
    [
        ('Vagrant.configure("2") do |c|\n  c.vm.define "a" do |m|\n    foo(\n  end\nend\n', "line 4: SyntaxError"),
        (
            'Vagrant.configure("2") do |c|\n  c.vm.define "a" do |m|\n    raise "boom"\n  end\nend\n',
            "line 3: RuntimeError: boom",
        ),
        ('puts "hello"\n', "never calls Vagrant.configure"),
        ('Vagrant.configure("2") do |c|\n  c.vm.box = "x"\nend\n', "names no machines"),
        (
            'Vagrant.configure("2") do |c|\n  c.vm.define "a" do |m|\n    m.vm.provision "ansible", playbook: "p.yml"\n'
            '  end\nend\n',
            "'ansible' provisioner; lvs-harness runs shell provisioners only",
        ),
        (
            'Vagrant.configure("2") do |c|\n  c.vm.define "a" do |m|\n    m.vm.provision "shell", path: "../../etc/passwd"\n'
            '  end\nend\n',
            "points outside the Vagrantfile's folder",
        ),
        (
            'Vagrant.configure("2") do |c|\n  c.vm.define "a" do |m|\n    m.vm.provision "shell", path: "missing.sh"\n'
            '  end\nend\n',
            "cannot read provisioner script 'missing.sh'",
        ),
        (
            'Vagrant.configure("2") do |c|\n  c.vm.define "a" do |m|\n    m.vm.provision "shell"\n  end\nend\n',
            "neither `inline:` nor `path:`",
        ),
    ],
)
def test_bad_vagrantfiles_give_one_clear_sentence(tmp_path, text, message):
    with pytest.raises(VagrantfileError) as err:
        load(write(tmp_path, text))
    assert message in str(err.value)
    assert str(tmp_path) in str(err.value)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)


def test_binary_huge_and_missing_files(tmp_path):
    binary = tmp_path / "bin" / "Vagrantfile"
    binary.parent.mkdir()
    binary.write_bytes(b"\x7fELF\0\0\x01")
    with pytest.raises(VagrantfileError, match="is a binary file"):
        load(binary)
    huge = tmp_path / "huge" / "Vagrantfile"
    huge.parent.mkdir()
    huge.write_text("#" * (vagrantfile.MAX_BYTES + 1))
    with pytest.raises(VagrantfileError, match="over the 1000000-byte limit"):
        load(huge)
    with pytest.raises(VagrantfileError, match="cannot read .*/nowhere/Vagrantfile: No such file"):
        load(tmp_path / "nowhere" / "Vagrantfile")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "Vagrantfile").write_text('Vagrant.configure("2") do |c|\n c.vm.define "client"\nend\n')
    assert load(tmp_path / "dir").names == ["client"]  # a folder means its Vagrantfile


def test_endless_vagrantfile_times_out(tmp_path, monkeypatch):
    monkeypatch.setattr(vagrantfile, "TIMEOUT", 2)
    with pytest.raises(VagrantfileError, match="did not finish evaluating within 2 s"):
        load(write(tmp_path, "loop do\nend\n"))


def test_vagrantfile_cannot_touch_the_grading_host(tmp_path):
    marker = Path("/tmp") / f"lvs-harness-pwned-{secrets.token_hex(4)}"
    path = write(
        tmp_path,
        f'File.write("{marker}", "x") rescue nil\n'
        f'File.write("{tmp_path}/pwned", "x") rescue nil\n'
        'system("touch /root/pwned")\n'
        'Vagrant.configure("2") do |c|\n  c.vm.define "client"\nend\n',
    )
    assert load(path).names == ["client"]
    assert not marker.exists() and not (tmp_path / "pwned").exists() and not Path("/root/pwned").exists()


def test_repeated_defines_merge_like_vagrant(tmp_path):
    path = write(
        tmp_path,
        'Vagrant.configure("2") do |c|\n'
        '  c.vm.define "server2" do |m|\n'
        '    m.vm.network "private_network", ip: "172.28.128.40"\n'
        '    m.vm.provision "shell", inline: "echo first"\n  end\nend\n'
        'Vagrant.configure("2") do |c|\n'
        '  c.vm.provision "shell", inline: "echo everywhere"\n'
        '  c.vm.define "server2" do |m|\n'
        '    m.vm.provision "shell", inline: "echo second"\n  end\nend\n',
    )
    host = load(path).host("server2")
    assert [p.script for p in host.provisioners] == ["echo everywhere", "echo first", "echo second"]
    assert host.address == "172.28.128.40"
