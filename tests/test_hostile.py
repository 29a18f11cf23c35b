"""One lab host cannot take the embedded lab down: what a hostile or careless submission's code does
as root in one host (kill everything, fork without end, eat memory, flood its output, power off)
stays in that host, and what ends the whole lab is booked to the submission. A lab of its own:
these tests break the hosts they run in."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lvs_harness import vagrantfile
from lvs_harness.errors import Refused, SubmissionFault, VagrantfileError
from lvs_harness.labs import LabConfig
from lvs_harness.labs.namespaces import HOST_LIMITS
from lvs_harness.labs.uml import GUEST_CGROUPS, UmlLab, available
from lvs_harness.probes import vrrp
from lvs_harness.runs import Run

pytestmark = pytest.mark.lab

KEEP = 1 << 20  # bytes the host agent keeps at each end of an output


@pytest.fixture(scope="module")
def lab():
    ok, why = available()
    if not ok:
        pytest.skip(why)
    with UmlLab.start(LabConfig(backend="uml", progress=lambda m: None), provision=False) as lab:
        yield lab


def guest_sh(lab, script: str) -> str:
    return lab.guest.exec(["sh", "-c", script], None, 30).stdout


REALS = ("server1", "server2")  # the hosts running nginx from the start


def nginx_pids(lab) -> dict[str, str]:
    """Each real's nginx master, as its own PID namespace numbers it (from its pid file)."""
    return {name: lab.hosts[name].run("cat /run/nginx.pid").stdout.strip() for name in REALS}


def test_each_host_sees_only_its_own_processes(lab):
    out = lab.hosts["server1"].run("ps -e -o pid=,comm=").stdout.split("\n")
    assert out[0].split() == ["1", "lvsh-init"]
    assert sum("nginx" in line for line in out) == 2  # its own master and worker; not the others'


def test_heartbeats_show_when_the_machine_stops_the_lab(lab):
    """Each director's heartbeat (OwnershipMonitor) comes on time in a lab left alone, and as late as the
    machine stopped the guest (SIGSTOP to UML for 2 s: what a starved machine does to it, only longer)."""
    directors = [lab.hosts[n] for n in ("balancer1", "balancer2")]
    with vrrp.OwnershipMonitor(directors, "172.28.128.200") as mon:
        time.sleep(2)
        quiet = mon.lateness()
        os.kill(lab.guest.proc.pid, signal.SIGSTOP)
        time.sleep(2)
        os.kill(lab.guest.proc.pid, signal.SIGCONT)
        time.sleep(1)
    assert set(quiet) == {"balancer1", "balancer2"} and all(late < 0.5 for late, _ in quiet.values()), quiet
    stopped = mon.lateness()
    assert all(1.8 <= late <= 3.0 for late, _ in stopped.values()), stopped
    assert all(len(beats) >= 20 for beats in mon.beats.values())


def test_kill_everything_in_one_host_reaches_that_host_only(lab):
    before = nginx_pids(lab)
    r = lab.hosts["server1"].run("kill -9 -1; pkill -9 nginx; echo survived")
    assert r.stdout == "survived\n"  # its PID 1 is not reached by signals from inside
    after = nginx_pids(lab)
    assert after["server2"] == before["server2"] and lab.hosts["server2"].is_active("nginx")
    assert not lab.hosts["server1"].is_active("nginx")
    assert all(lab.hosts[n].run("hostname").stdout == f"{n}\n" for n in lab.hosts)
    lab.hosts["server1"].check("systemctl start nginx")


def test_an_output_is_kept_to_its_head_and_tail_with_what_was_dropped(lab):
    size = 5 * KEEP + 12345
    r = lab.hosts["client"].run(
        f"head -c {size} /dev/zero | tr '\\0' m; printf END; head -c {size} /dev/zero | tr '\\0' e >&2", timeout=120
    )
    for text, fill, end in ((r.stdout, "m", "END"), (r.stderr, "e", "e")):
        head, note, tail = text.split("\n", 2)
        assert head == fill * KEEP and tail.endswith(end) and len(tail) == KEEP
        dropped = size + len(end if end == "END" else "") - 2 * KEEP
        assert note == f"[lvs-harness: {dropped} bytes of this output dropped here; the first and last {KEEP} kept]"
    assert lab.hosts["client"].run("echo next").stdout == "next\n"


def test_sysrq_and_reboot_end_no_more_than_their_host(lab):
    assert lab.hosts["balancer1"].run("echo o > /proc/sysrq-trigger; echo still here").stdout == "still here\n"
    # reboot(2) in a PID namespace ends that namespace (on a VM it would end that VM)
    lab.hosts["balancer2"].run("perl -e 'syscall(169, 0xfee1dead, 672274793, 0x4321FEDC, 0)'")
    r = lab.hosts["balancer2"].run("echo after")
    assert r.rc == 126 and "lab host balancer2 has shut down" in r.stderr
    assert [lab.hosts[n].run("hostname").stdout for n in ("balancer1", "client")] == ["balancer1\n", "client\n"]


def test_memory_eaten_in_one_host_is_killed_there(lab):
    r = lab.hosts["server2"].run("perl -e '$x = \"x\" x (200 << 20); print length $x'", timeout=120)
    assert r.rc == 137  # the OOM killer of its own cgroup
    assert "oom_kill 1" in guest_sh(lab, f"cat {GUEST_CGROUPS}/lvsh-{lab.run_id}-server2/memory.events")
    assert lab.hosts["server1"].is_active("nginx") and lab.hosts["client"].run("true").ok


def test_a_full_disk_is_its_hosts_own(lab):
    r = lab.hosts["client"].run(
        "dd if=/dev/zero of=/root/fill bs=1M count=500; dd if=/dev/zero of=/tmp/fill bs=1M "
        "count=500; df -m /root /tmp | tail -2",
        timeout=120,
    )
    assert r.stderr.count("No space left on device") == 2, r.stderr[-500:]
    assert lab.hosts["server1"].run("dd if=/dev/zero of=/root/ok bs=1M count=8 && rm /root/ok").ok
    assert lab.hosts["client"].run("curl -s -m 5 http://172.28.128.30/").stdout == "server1\n"


def test_a_fork_bomb_stays_in_its_host(lab):
    """(Last: it leaves its host full of processes.) The others keep answering with an equal share of the CPU."""
    host, other = lab.hosts["server2"], lab.hosts["client"]
    idle = min(_timed(other) for _ in range(3))
    host.run("f() { f | f & }; f; sleep 3", timeout=60)
    deadline = time.monotonic() + 20  # the bomb grows at the pace of a machine that may be busy
    while True:
        count = int(guest_sh(lab, f"cat {GUEST_CGROUPS}/lvsh-{lab.run_id}-server2/pids.current"))
        if count > 100 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert 100 < count <= int(HOST_LIMITS["pids.max"])
    busy = min(_timed(other) for _ in range(3))
    assert busy < 20 * idle, (idle, busy)  # measured ~3x: five hosts share the CPU equally
    assert other.run("curl -s -m 5 http://172.28.128.30/").stdout == "server1\n"


def _timed(host) -> float:
    t0 = time.monotonic()
    host.check("true")
    return time.monotonic() - t0


def machines(n: int, extra: str = "") -> str:
    return (
        "Vagrant.configure('2') do |config|\n"
        + "".join(
            f"  config.vm.define 'web{i}' do |m|\n    m.vm.network 'private_network', ip: '10.9.{i // 200}.{10 + i % 200}'\n"
            f"    m.vm.provision 'shell', inline: 'echo {i}; ipvsadm -A -t 10.9.0.1:80 -s rr'\n  end\n"
            for i in range(n)
        )
        + extra
        + "end\n"
    )


def test_large_vagrantfiles_evaluate_in_the_guest(lab):
    """Regression: the evaluator ran without the guest's GLIBC_TUNABLES (cleared by `env -i`), and Ruby
    segfaulted on a 40-machine Vagrantfile (its output corrupted on smaller ones)."""
    recorded = vagrantfile.evaluate(machines(64), "Vagrantfile", lab._sandbox_run)
    assert len(recorded["configs"][0]["defines"]) == 64
    noisy = machines(2, "1_000_000.times { print 'x' * 300 }\n")  # 300 MB printed: dropped
    assert len(vagrantfile.evaluate(noisy, "Vagrantfile", lab._sandbox_run)["configs"][0]["defines"]) == 2


def test_a_vagrantfile_that_never_ends_says_so(lab, monkeypatch):
    monkeypatch.setattr(vagrantfile, "TIMEOUT", 3)
    with pytest.raises(VagrantfileError, match="did not finish evaluating within 3 s"):
        vagrantfile.evaluate(machines(30, "loop { }\n"), "Vagrantfile", lab._sandbox_run)


def test_more_machines_than_the_lab_holds_is_refused_naming_the_limit(tmp_path):
    (tmp_path / "Vagrantfile").write_text(machines(UmlLab.MAX_HOSTS + 1))
    with pytest.raises(
        Refused, match=f"defines {UmlLab.MAX_HOSTS + 1} machines; the uml lab holds at most {UmlLab.MAX_HOSTS}"
    ):
        UmlLab.start(
            LabConfig(
                backend="uml", vagrantfile=tmp_path / "Vagrantfile", roles={"real": ["web*"]}, progress=lambda m: None
            )
        )


def test_a_provisioner_that_powers_the_lab_off_is_the_submissions_fault(tmp_path):
    """What only root code in the lab does (here: past the host's guard) ends the lab as the student's
    outcome, graded once; a lab killed by this machine (a signal to UML) would stay the machine's."""
    (tmp_path / "Vagrantfile").write_text(
        "Vagrant.configure('2') do |config|\n  config.vm.define 'web1' do |m|\n"
        "    m.vm.network 'private_network', ip: '10.9.0.10'\n"
        "    m.vm.provision 'shell', name: 'off', inline: 'umount /proc/sysrq-trigger; echo o > /proc/sysrq-trigger'\n"
        "  end\nend\n"
    )
    before = {r.id for r in Run.all()}
    with pytest.raises(SubmissionFault) as err:
        UmlLab.start(
            LabConfig(
                backend="uml", vagrantfile=tmp_path / "Vagrantfile", roles={"real": ["web*"]}, progress=lambda m: None
            )
        )
    text = str(err.value)
    assert text.startswith("the lab powered off (its console: reboot: Power down) while web1's provisioner off ("), text
    assert text.endswith("must not power off, reboot or crash the machine."), text
    assert {r.id for r in Run.all()} == before
