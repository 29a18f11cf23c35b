"""libvirt for the vagrant lab, inside a network namespace of its own.

libvirt's networks are bridges with private-range addresses and a dnsmasq each; Vagrant and
ssh talk to the VMs over them. None of that may appear in the machine's main network
namespace, so lvs-harness runs ``virtlogd`` and ``libvirtd`` (without systemd) inside the
namespace ``lvsh-vagrant``, and every vagrant and ssh command through ``ip netns exec``.
libvirtd also gets a private mount namespace whose ``/dev/kvm`` is group ``kvm``, mode 0660
(what udev would make it): with the node root-only, libvirt re-probes qemu on every call
(16–52 s per vagrant step measured); the machine's own ``/dev/kvm`` is not touched. VMs use
software emulation (KVM does not run stock kernels on this machine kind).

The daemons are shared by the vagrant runs on this machine (each run has its own machines,
working directory and name prefix) and recorded by pid in ``/run/lvs-harness/libvirt/``;
``lvs-harness clean --libvirt`` stops exactly those.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path
from collections.abc import Callable

from ..errors import LabError
from ..runs import is_alive, state_root

NETNS = "lvsh-vagrant"
MGMT_NETWORK = "lvsh-mgmt"
MGMT_XML = f"""<network>
  <name>{MGMT_NETWORK}</name>
  <bridge name='lvshmgmt0' stp='off'/>
  <dns enable='no'/>
  <ip address='192.168.121.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.121.10' end='192.168.121.250'/></dhcp>
  </ip>
</network>
"""
POOL_XML = """<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>"""
SOCKET = Path("/run/libvirt/libvirt-sock")
REQUIRED = (
    ("vagrant", "vagrant"),
    ("libvirtd", "libvirt-daemon-system"),
    ("virtlogd", "libvirt-daemon-system"),
    ("virsh", "libvirt-clients"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("dnsmasq", "dnsmasq-base"),
)


def state_dir() -> Path:
    return state_root() / "libvirt"


def missing_tools() -> list[str]:
    missing = [pkg for tool, pkg in REQUIRED if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()]
    if not any(Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-libvirt-*")):
        missing.append("vagrant-libvirt")
    return sorted(set(missing))


def in_netns(argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *argv]


def _run(argv, check=True, timeout=120, input=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}")
    return proc


def virsh(*args, check=True, input=None) -> subprocess.CompletedProcess:
    return _run(in_netns(["virsh", "-q", "-c", "qemu:///system", *args]), check=check, input=input)


def _pid(name: str) -> int | None:
    try:
        pid = int((state_dir() / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if is_alive(pid) else None


def _foreign_libvirtd() -> list[int]:
    ours = {_pid("libvirtd")}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            # (a libvirtd that just exited stays in /proc as a zombie for a moment: not a running one)
            if (
                Path(f"/proc/{pid}/comm").read_text().strip() == "libvirtd"
                and int(pid) not in ours
                and is_alive(int(pid))
            ):
                found.append(int(pid))
        except OSError:
            pass
    return found


TB_CACHE_MB = 128
QEMU_WRAPPER = """#!/bin/sh
# lvs-harness: qemu with a {tb} MB TCG translation cache (qemu's default takes ~1.6 GB per small VM here)
prev=
for a do
  shift
  if [ "$prev" = -accel ] && [ "$a" = tcg ]; then a=tcg,tb-size={tb}; fi
  set -- "$@" "$a"
  prev=$a
done
exec {qemu} "$@"
"""


def emulator() -> Path:
    """The qemu libvirt runs the lab's VMs with (a wrapper capping the translation cache), written once."""
    qemu = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
    path = state_dir() / "qemu-system-x86_64"
    text = QEMU_WRAPPER.format(qemu=qemu, tb=TB_CACHE_MB)
    if not path.exists() or path.read_text() != text:  # an unchanged file keeps libvirt's capability cache
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return path


DAEMON = (
    "mount --make-rprivate / && d=$(mktemp -d) && mount -t tmpfs -o size=1m,mode=755 tmpfs \"$d\" && "
    "mknod -m 660 \"$d/kvm\" c 10 232 && chgrp kvm \"$d/kvm\" && "
    "{ [ ! -e /dev/kvm ] || mount --bind \"$d/kvm\" /dev/kvm; } && "
    "exec \"$@\""
)


@contextlib.contextmanager
def lock():
    """Held while a run prepares libvirt and the box: runs starting together would each start libvirtd
    (the second fails on its pid file) and add the box at once."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / "prepare.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure(progress: Callable[[str], None]) -> None:
    """The namespace, virtlogd, libvirtd, the management network and the default pool, started once."""
    missing = missing_tools()
    if missing:
        raise LabError(
            f"the vagrant lab needs these Debian packages: {' '.join(missing)} "
            "(sudo apt-get install vagrant vagrant-libvirt libvirt-daemon-system qemu-system-x86 "
            "qemu-utils dnsmasq-base)."
        )
    if os.geteuid() != 0:
        raise LabError(
            "the vagrant lab runs libvirt in a network namespace of its own, which needs root; run it with sudo."
        )
    state_dir().mkdir(parents=True, exist_ok=True)
    if not Path(f"/run/netns/{NETNS}").exists():
        _run(["ip", "netns", "add", NETNS])
    _run(["ip", "-n", NETNS, "link", "set", "lo", "up"])
    foreign = _foreign_libvirtd()
    if foreign:
        raise LabError(
            f"a libvirtd that lvs-harness did not start is running (pid {foreign[0]}); its networks "
            "would live in this machine's main network namespace. Stop it (e.g. `systemctl stop "
            "libvirtd`) and retry."
        )
    for name, extra in (("virtlogd", []), ("libvirtd", [])):
        if _pid(name) is None:
            progress(f"starting {name} in network namespace {NETNS}")
            pidfile = state_dir() / f"{name}.pid"
            pidfile.unlink(missing_ok=True)
            _run(
                in_netns(["unshare", "--mount", "--", "sh", "-c", DAEMON, name, name, "-d", "-p", str(pidfile), *extra])
            )
            _wait(lambda: _pid(name) is not None, 30, f"{name} to start")
    _wait(lambda: SOCKET.exists() and virsh("version", check=False).returncode == 0, 60, "libvirtd to answer")
    if virsh("net-info", MGMT_NETWORK, check=False).returncode != 0:
        xml = state_dir() / "mgmt.xml"
        xml.write_text(MGMT_XML)
        virsh("net-define", str(xml))
    if "Active:         yes" not in virsh("net-info", MGMT_NETWORK).stdout:
        virsh("net-start", MGMT_NETWORK)
    if virsh("pool-info", "default", check=False).returncode != 0:
        Path("/var/lib/libvirt/images").mkdir(parents=True, exist_ok=True)
        xml = state_dir() / "pool.xml"
        xml.write_text(POOL_XML)
        virsh("pool-define", str(xml))
        virsh("pool-autostart", "default", check=False)
    if "running" not in virsh("pool-info", "default").stdout:
        virsh("pool-start", "default")


def stop() -> list[str]:
    """Stop the daemons lvs-harness started (by their recorded pids) and remove the namespace."""
    stopped = []
    if _pid("libvirtd") and SOCKET.exists():
        # libvirt leaves a network's dnsmasq and bridge running when it stops: end them first
        for net in virsh("net-list", "--name", check=False).stdout.split():
            virsh("net-destroy", net, check=False)
            stopped.append(f"network {net}")
    for pidfile in Path("/run/libvirt/network").glob(f"{MGMT_NETWORK}*.pid"):  # left by an earlier stop
        try:
            pid = int(pidfile.read_text().split()[0])
            if is_alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq":
                os.kill(pid, 15)
                stopped.append(f"dnsmasq ({pid})")
        except (OSError, ValueError, IndexError):
            pass
    for name in ("libvirtd", "virtlogd"):
        pid = _pid(name)
        if pid:
            os.kill(pid, 15)
            _wait(lambda: not is_alive(pid), 30, f"{name} to stop", fail=False)
            stopped.append(f"{name} ({pid})")
    if Path(f"/run/netns/{NETNS}").exists():
        _run(["ip", "netns", "del", NETNS], check=False)
    return stopped


def _wait(cond, seconds: float, what: str, fail: bool = True) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            if fail:
                raise LabError(f"timed out after {seconds:g} s waiting for {what}")
            return
        time.sleep(0.2)
