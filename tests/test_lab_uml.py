"""What only the embedded (uml) lab promises: containment, an untouched image, an intact channel."""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
from pathlib import Path

import pytest

from lvs_harness.labs.confine import landlock_abi

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def guest(lab):
    if lab.NAME != "uml" or not hasattr(lab, "guest"):
        pytest.skip(
            f"these checks need the uml lab in this process (this run: {lab.NAME}, "
            f"{'kept by a keeper' if not hasattr(lab, 'guest') else 'in process'})"
        )
    return lab.guest


def test_guest_runs_unprivileged_on_the_host(guest):
    if os.geteuid() != 0:
        pytest.skip("only a root grader can drop the guest to nobody")
    uid = Path(f"/proc/{guest.proc.pid}/status").read_text().split("Uid:")[1].split()[0]
    assert uid == str(pwd.getpwnam("nobody").pw_uid)


def test_root_in_the_guest_cannot_reach_host_files_through_hostfs(guest):
    """hostfs=DIR alone lets `-o /../../..` escape (seen on this machine); Landlock stops it."""
    if not landlock_abi():
        pytest.skip("this kernel has no Landlock; the guest relies on running as nobody only")
    target = Path("/tmp") / f"lvs-harness-escape-{secrets.token_hex(4)}"
    up = "/.." * 12
    script = (
        "mkdir -p /mnt/h /mnt/t /mnt/e; mount -t hostfs none /mnt/h; touch /mnt/h/escape; ls -A /mnt/h; "
        f"mount -t hostfs none /mnt/t -o {up}/tmp && touch /mnt/t/{target.name}; "
        f"mount -t hostfs none /mnt/e -o {up}/etc && cat /mnt/e/hostname /mnt/e/os-release; true"
    )
    r = guest.exec(["sh", "-c", script], None, 30)
    assert r.stdout.strip() == "", f"the guest read host files: {r.stdout[:300]!r}"
    assert "Permission denied" in r.stderr
    assert not target.exists()
    assert not any(guest.run.dir.joinpath("hostfs").iterdir())


def test_cached_image_is_never_written(guest):
    image = Path(guest.image)
    assert oct(image.stat().st_mode & 0o777) == "0o444"
    before = image.stat().st_mtime_ns
    guest.exec(["sh", "-c", "echo changed > /etc/lvs-harness-cow-probe && sync"], None, 30)
    assert image.stat().st_mtime_ns == before


def test_large_outputs_cross_the_channel_intact(guest):
    """Regression: without the glibc tunables, qemu-ga replies lost 16-byte runs (ymm upper halves)."""
    for size in (5000, 70000, 400000):
        r = guest.exec(
            ["sh", "-c", f"head -c {size} /dev/urandom | base64 -w 76 | tee /run/probe | sha256sum"], None, 60
        )
        data = guest.exec(["cat", "/run/probe"], None, 60).stdout
        assert hashlib.sha256(data.encode()).hexdigest() == r.stdout.split()[0]
    big_input = secrets.token_hex(50000).encode()
    r = guest.exec(["sha256sum"], big_input, 60)
    assert r.stdout.split()[0] == hashlib.sha256(big_input).hexdigest()


def test_starts_from_a_directory_nobody_can_enter(lab_config, tmp_path):
    """Regression: UML inherited a 0700 cwd and its COW setup failed with EINVAL."""
    import subprocess
    import sys

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    code = (
        "from lvs_harness.labs import LabConfig, start_lab\n"
        "with start_lab(LabConfig(backend='uml', progress=lambda m: None), provision=False) as lab:\n"
        "    print(lab.hosts['client'].check('hostname').stdout)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=private, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "client", r.stderr[-2000:]


@pytest.fixture(scope="module")
def channel_lab(lab):
    if lab.NAME != "uml" or getattr(lab, "channel", None) is None:
        pytest.skip(f"these checks need the uml lab's command channel in this process (this run: {lab.NAME})")
    return lab


def test_host_commands_go_through_the_channel(channel_lab):
    """Each lab host's commands run in that host (its hostname, /root, the run's environment) through the
    host agent, not qemu-ga."""
    lab = channel_lab
    r = lab.hosts["client"].run('hostname; pwd; echo "$LVS_HARNESS_RUN"; cat; echo err >&2; exit 3', input=b"in\n")
    assert (r.rc, r.stdout, r.stderr) == (3, f"client\n/root\n{lab.run_id}\nin\n", "err\n")
    agent = lab.guest.exec(["cat", f"/proc/{lab.channel.agent_pid}/cmdline"], None, 10).stdout
    assert agent.split("\0")[0] == "/usr/local/lib/lvs-harness/host-agent"


def test_channel_carries_large_inputs_and_outputs_and_then_more_commands(channel_lab):
    """Regression: a request over the guest tty's 4 KB buffer stalled UML's serial line for good."""
    host = channel_lab.hosts["server1"]
    for size in (5000, 200000, 1000000):
        data = secrets.token_bytes(size)
        assert host.run("sha256sum", input=data).stdout.split()[0] == hashlib.sha256(data).hexdigest()
        out = host.run(f"head -c {size} /dev/urandom | base64 -w 0 | tee /tmp/big | sha256sum; cat /tmp/big").stdout
        digest, body = out.split("\n", 1)
        assert hashlib.sha256(body.encode()).hexdigest() == digest.split()[0]
        assert host.run("echo next").stdout == "next\n"


def test_channel_timeout_kills_the_command_and_its_children(channel_lab):
    from lvs_harness.errors import CommandTimeout

    host = channel_lab.hosts["server2"]
    tag = secrets.token_hex(4)
    n = 10 + secrets.randbelow(90)  # sleep's argument: digits only
    with pytest.raises(CommandTimeout) as err:
        host.run(f"sleep 31{n} & sleep 30{n}; echo never", timeout=1)
    assert err.value.result.rc == 124 and err.value.result.duration < 5
    assert host.run(f"pgrep -f 'sleep 3[01]{n}'").stdout == ""
    # a daemon that leaves the command's session stays, as under systemd; a background child holding the
    # output is waited for only briefly
    assert (
        host.run(
            f"setsid -f sh -c 'echo $$ > /tmp/{tag}.pid; exec sleep 5' >/dev/null 2>&1; sleep 0.2; echo started"
        ).stdout
        == "started\n"
    )
    assert host.run(f"kill $(cat /tmp/{tag}.pid)").ok  # it was still running
    assert host.run("sleep 3 & echo bg", timeout=10).duration < 2.5


def test_channel_runs_commands_side_by_side(channel_lab):
    import threading

    hosts = channel_lab.hosts
    results = {}

    def one(i):
        results[i] = hosts["client" if i % 2 else "balancer2"].run(f"sleep 0.5; echo {i}; hostname").stdout.split()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == {i: [str(i), "client" if i % 2 else "balancer2"] for i in range(8)}


def test_unknown_host_is_one_clear_error(channel_lab):
    r = channel_lab._host_run("nosuch", "true", None, 5)
    assert r.rc == 126 and "no lab host nosuch" in r.stderr


def test_without_the_channel_commands_go_through_the_guest_agent(tmp_path):
    """An image without the agent (here: it is looked for elsewhere) costs speed, not the lab: it says so."""
    import subprocess
    import sys

    code = (
        "import lvs_harness.labs.image as image\n"
        "image.AGENT = '/usr/local/lib/lvs-harness/no-such-agent'\n"
        "from lvs_harness.labs import LabConfig, start_lab\n"
        "with start_lab(LabConfig(backend='uml', progress=print), provision=False) as lab:\n"
        "    print('channel', lab.channel)\n"
        "    print(lab.hosts['client'].check('hostname').stdout)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "exited at its start (status 127" in r.stdout and "go through the guest agent instead" in r.stdout, r.stdout
    assert [line for line in r.stdout.splitlines() if line][-2:] == ["channel None", "client"], (
        r.stdout[-2000:] + r.stderr[-2000:]
    )


def test_plain_commands_run_as_sh_would_run_them(channel_lab):
    """The agent execs a plain "program arg …" line itself, without sh: the same output, rc and
    errors as through sh, PATH searched in the host (its own /usr/local/sbin/systemctl shim)."""
    host = channel_lab.hosts["balancer1"]
    for plain, through_sh in [
        ("ip -o link show dev lo", "ip -o link show dev lo;"),
        ("systemctl is-active keepalived", "systemctl is-active keepalived;"),
        ("hostname", "hostname;"),
        ("ls /nonexistent", "ls /nonexistent;"),
        ("nosuchprogram-lvsh arg", "nosuchprogram-lvsh arg;"),
    ]:
        a, b = host.run(plain), host.run(through_sh)
        assert (a.rc, a.stdout) == (b.rc, b.stdout), plain
        assert bool(a.stderr) == bool(b.stderr), plain
    assert host.run("nosuchprogram-lvsh").rc == 127
    # shell words are left to sh: builtins, assignments, expansions
    assert host.run("cd /tmp").ok and host.run("X=1 env").stdout.count("X=1") == 1
    assert host.run("echo $LVS_HARNESS_RUN").stdout == f"{channel_lab.run_id}\n"


def test_follow_hands_output_over_as_it_is_written_and_stop_ends_the_group(channel_lab):
    """A streamed command's output arrives while it runs; stop() ends it with its children; one that
    ends by itself reports its rc."""
    import threading
    import time

    host = channel_lab.hosts["client"]
    n = 10 + secrets.randbelow(90)
    pieces, first = [], threading.Event()

    def got(text):
        pieces.append((time.monotonic(), text))
        first.set()

    t0 = time.monotonic()
    watch = host.follow(f"echo one; sleep 32{n} & sleep 33{n}", got, timeout=60)
    assert watch is not None and first.wait(5) and "".join(p for _, p in pieces) == "one\n"
    assert watch.running and pieces[0][0] - t0 < 2
    assert host.run(f"pgrep -f 'sleep 3[23]{n}'").stdout.split()  # both still run
    result = watch.stop()
    assert not watch.running and result.rc == 137
    assert host.run(f"pgrep -f 'sleep 3[23]{n}'").stdout == ""
    done = host.follow("echo out; echo err >&2; exit 4", lambda text: None, timeout=10)
    deadline = time.monotonic() + 5
    while done.running and time.monotonic() < deadline:
        time.sleep(0.05)
    result = done.stop()
    assert (result.rc, result.stdout, result.stderr) == (4, "", "err\n")


def test_vip_assertions_wait_on_the_kernel_events_not_a_poll(channel_lab):
    """With a live OwnershipMonitor, a failover is observed at its address events (a handful of
    looks) instead of every 0.1 s, and the verdict is the same; without one, they poll."""
    from lvs_harness.assertions import assert_failover_within, assert_vip_on
    from lvs_harness.probes import vrrp

    hosts = channel_lab.hosts
    b1, b2 = hosts["balancer1"], hosts["balancer2"]
    vip = channel_lab.topology.service.vip
    looks = []

    def count(host, result):
        if result.command == "ip -o -4 addr show":
            looks.append(host)

    assert_vip_on(b1, vip, deadline=15)
    for d in (b1, b2):
        d.observers.append(count)
    try:
        with vrrp.OwnershipMonitor([b1, b2], vip) as mon:
            assert vrrp.watching([b1, b2]) is mon and mon.live
            b1.link_down("eth1")
            try:
                moved = assert_failover_within(b1, b2, vip)
            finally:
                b1.link_up("eth1")
            evented = len(looks)
            back = assert_vip_on(b1, vip, deadline=15)
        assert vrrp.watching([b1, b2]) is None
        assert 2.5 < moved.seconds < 5 and back.seconds < 8
        assert evented <= 8, f"{evented} looks during a {moved.seconds:.1f} s failover"
        looks.clear()
        b1.link_down("eth1")
        try:
            polled = assert_failover_within(b1, b2, vip)
        finally:
            b1.link_up("eth1")
        assert 2.5 < polled.seconds < 5 and len(looks) >= 20 > 2 * evented, (len(looks), evented)
        assert_vip_on(b1, vip, deadline=15)
    finally:
        for d in (b1, b2):
            d.observers.remove(count)
