"""The embedded lab: one User-Mode Linux guest (a real 6.1 kernel with IPVS) holding the hosts.

The guest boots from the cached image through a copy-on-write file, has no network
device at all, and is driven over qemu-guest-agent on a serial line (see
:mod:`.guest_agent`). Inside it every lab host is a set of namespaces (see
:mod:`.namespaces`). The UML process runs as ``nobody`` (when started as root) under a
Landlock ruleset (see :mod:`.confine`), with ``hostfs=`` rooted in an empty read-only
directory, so code from a submission that runs as root in the guest cannot reach the
grading host's files.

Example::

    with UmlLab.start(LabConfig()) as lab:
        print(lab.hosts["lb1"].check("ipvsadm -Ln").stdout)
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..commands import TIMEOUT_RC, CommandResult, timeout_note
from ..errors import HarnessError, LabError
from ..runs import MARKER, Run, kill_marked
from ..vagrantfile import SANDBOX_ENV
from .base import LabConfig, NamespacedLab
from .confine import hide_xstate, landlock, landlock_abi
from .channel import HostChannel, agent_argv
from .guest_agent import GuestAgent
from .image import AGENT, UML_KERNEL, ensure_image, uml_kernel

GUEST_MEM = "256M"
BOOT_TIMEOUT = 60
CHANNEL_TIMEOUT = 20
GUEST_STATE = "/run/lvsh"
GUEST_CGROUPS = "/sys/fs/cgroup/lvsh"  # made by the guest's init (data/guest-init)
# UML runs with XSTATE hidden (see hide_xstate), so only the FXSR part of the FPU state
# (x87 + xmm) survives a guest process being interrupted. glibc would pick AVX/AVX-512
# string and memcpy variants on this CPU and lose ymm/zmm upper halves (seen: 16-byte
# runs of zeros in qemu-ga replies; nginx failing to find its own variables), so every
# guest process runs with those variants disabled. Passed on the kernel command line,
# which hands unknown KEY=VALUE words to init's environment.
GUEST_GLIBC_TUNABLES = (
    "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX2,-AVX,-AVX_Fast_Unaligned_Load"
)


class Guest:
    """One booted UML guest and its agent."""

    def __init__(self, run: Run, image: Path, mem: str = GUEST_MEM, progress=lambda m: None):
        self.run = run
        self.progress = progress
        self.image = image
        self.mem = mem
        self.proc: subprocess.Popen | None = None
        self.agent: GuestAgent | None = None
        self.channel_sock: socket.socket | None = None
        self.console = run.dir / "console.log"

    def boot(self) -> float:
        kernel, _ = uml_kernel()
        run = self.run
        uid = gid = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
        work = run.dir / "uml"
        shm = Path("/dev/shm") / f"lvs-harness-{run.id}"
        hostfs = run.dir / "hostfs"
        run.add("dir", path=str(shm))
        for d in (work, shm):
            d.mkdir(mode=0o700)
            if uid is not None:
                os.chown(d, uid, gid)
        hostfs.mkdir(mode=0o555)
        if kernel != UML_KERNEL:  # a shipped kernel (LVS_HARNESS_UML_KERNEL), maybe where nobody cannot read it
            shutil.copy(kernel, work / "linux.uml")
            os.chmod(work / "linux.uml", 0o755)
            kernel = str(work / "linux.uml")
        if not landlock_abi():
            self.progress(
                "warning: this kernel has no Landlock, so code run as root in the guest can read "
                "world-readable host files through hostfs (UML's hostfs= does not stop '..')"
            )
        here, there = socket.socketpair()
        self.channel_sock, channel_end = socket.socketpair()  # the host agent's line (see .channel)
        argv = [
            kernel,
            f"mem={self.mem}",
            f"ubd0={work}/cow,{self.image}",
            "root=/dev/ubda",
            "rw",
            "init=/sbin/lvsh-init",
            "con=null",
            "con0=null,fd:1",
            "ssl=null",
            f"ssl1=fd:{there.fileno()}",
            f"ssl2=fd:{channel_end.fileno()}",
            f"umid=lvsh-{run.id}",
            f"uml_dir={work}",
            f"hostfs={hostfs}",
            f"GLIBC_TUNABLES={GUEST_GLIBC_TUNABLES}",
        ]
        env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(shm), "HOME": str(work), MARKER: run.id}
        t0 = time.monotonic()
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=[there.fileno(), channel_end.fileno()],
                start_new_session=True,
                user=uid,
                group=gid,
                cwd=work,  # UML's COW code chdirs around; a cwd nobody cannot enter made it fail (EINVAL)
                extra_groups=[] if uid is not None else None,
                preexec_fn=lambda: self._confine(kernel, [str(work), str(shm)], hostfs),
            )
        there.close()
        channel_end.close()
        run.add("process_group", pgid=self.proc.pid)
        self.agent = GuestAgent(here)
        try:
            self.agent.wait_ready(BOOT_TIMEOUT, alive=lambda: self.proc.poll() is None)
        except LabError as err:
            raise LabError(f"{err}; last console lines:\n{self.console_tail()}") from None
        return time.monotonic() - t0

    def _confine(self, kernel: str, writable: list[str], hostfs: Path) -> None:
        """In the child: the XSTATE workaround, then Landlock (if the kernel has it)."""
        hide_xstate()
        if landlock_abi():
            libs = [d for d in ("/usr/lib", "/usr/lib64", "/lib", "/lib64") if os.path.isdir(d)]
            # UML reads /proc/cpuinfo for CPU features, tests SIGIO on a pty and opens /dev/null
            # for its null channels; nothing else of the host is needed
            read = [kernel, str(self.image), str(hostfs), "/etc/ld.so.cache", "/proc/cpuinfo", *libs]
            landlock(
                read=[p for p in read if os.path.exists(p)], write=[*writable, "/dev/null", "/dev/ptmx", "/dev/pts"]
            )

    def console_tail(self, lines: int = 15) -> str:
        try:
            text = self.console.read_text(errors="replace").splitlines()
        except OSError:
            return "(no console log)"
        return "\n".join([line for line in text if not line.startswith(" [<")][-lines:])

    def exec(self, argv: list, input: bytes | None, timeout: float, env: dict | None = None) -> CommandResult:
        t0 = time.monotonic()
        rc, out, err, timed_out = self.agent.exec([str(a) for a in argv], input=input, timeout=timeout, env=env)
        return CommandResult(
            command=" ".join(map(str, argv)),
            rc=rc,
            stdout=out,
            stderr=err,
            duration=time.monotonic() - t0,
            timed_out=timed_out,
        )

    def ended_by_itself(self) -> str | None:
        """How the guest ended by its own doing — powered off (exit 0), panicked (UML aborts), or
        rebooted (UML runs on, its agents gone) — or None: still serving, or killed by a signal of
        this machine (e.g. its OOM killer), which is not the guest's doing."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            # running on without its agents: a reboot says so on the console; else it is not the guest's doing
            return "restarted (a reboot inside it)" if "Restarting system" in self.console_tail(40) else None
        tail = self.console_tail(40)
        if rc == 0:
            return "powered off (its console: " + (tail.splitlines() or ["nothing"])[-1].strip()[:120] + ")"
        if rc == -signal.SIGABRT or "Kernel panic" in tail:
            return "crashed: its kernel panicked (see the run's console.log)"
        return None

    def stop(self) -> None:
        """Power the guest off (UML then reaps its own helper processes), else kill its process group."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.agent.start(["/bin/sh", "-c", "echo o > /proc/sysrq-trigger"])
                self.proc.wait(5)
            except (LabError, OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass  # cleanup() then kills whatever still carries the run id


class UmlLab(NamespacedLab):
    NAME = "uml"
    GUEST_ENV = {"GLIBC_TUNABLES": GUEST_GLIBC_TUNABLES}
    # measured: 64 hosts, nginx in each, up in 52 s using 181 of the guest's 229 MB (5 hosts: 36 MB)
    MAX_HOSTS = 64

    def __init__(self, config: LabConfig, run: Run):
        super().__init__(config, run, ns_state=f"{GUEST_STATE}/ns", init=[AGENT, "--init"], cgroups=GUEST_CGROUPS)
        self.guest = Guest(run, ensure_image(config.progress), progress=config.progress)
        self.channel: HostChannel | None = None

    @classmethod
    def _preflight(cls, config: LabConfig, provision: bool) -> None:
        ensure_image(config.progress)

    def _boot(self) -> None:
        with self._timed("boot", "booting the UML guest"):
            self.guest.boot()
            self._start_channel()

    def _start_channel(self) -> None:
        """The host agent (see :mod:`.channel`): every lab host's commands go through it; where it
        cannot start (an image without it: LVS_HARNESS_IMAGE from an older build), they go through
        qemu-ga and nsenter, the hosts go without PID namespaces of their own, and it says so."""
        guest = self.guest
        channel = HostChannel(guest.channel_sock)
        try:
            guest.agent.start(agent_argv(self.ns.prefix, self.ns.state, cgroups=GUEST_CGROUPS), env=self.ns.env)
            channel.wait_ready(CHANNEL_TIMEOUT, alive=lambda: guest.proc.poll() is None)
        except LabError as err:
            channel.close()
            self.ns.init = None  # the agent is also each host's init: without it, hosts share one PID namespace
            self.config.progress(
                f"warning: {err}; lab commands go through the guest agent instead (slower), "
                "and the lab hosts share one PID namespace"
            )
            return
        self.channel = channel

    def _host_run(self, host: str, command: str, input: bytes | None, timeout: float) -> CommandResult:
        if self.channel is None:
            return super()._host_run(host, command, input, timeout)
        t0 = time.monotonic()
        return _channel_result(command, self.channel.run(host, command, input, timeout), timeout, t0)

    def _host_follow(self, host: str, command: str, on_output, timeout: float):
        if self.channel is None:
            return None
        return _Followed(self.channel.stream(host, command, on_output, timeout), command, timeout)

    def _root_run(self, argv, input, timeout, env=None) -> CommandResult:
        return self.guest.exec(argv, input, timeout, env)

    def _sandbox_run(self, argv, input) -> CommandResult:
        # inside the guest, as nobody, with no network namespace of any lab host
        return self.guest.exec(
            [
                "unshare",
                "--net",
                "--ipc",
                "--",
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                *argv,
            ],
            input,
            60,
            env={**SANDBOX_ENV, **self.GUEST_ENV},
        )

    def _ended_by_itself(self) -> str | None:
        return self.guest.ended_by_itself()

    def _teardown(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.guest.stop()
        cleanup(self.run)


class _Followed:
    """A streamed command (see :meth:`Host.follow`) as a :class:`CommandResult` when stopped."""

    def __init__(self, stream, command: str, timeout: float):
        self._stream, self._command, self._timeout = stream, command, timeout
        self._t0 = time.monotonic()

    @property
    def running(self) -> bool:
        return self._stream.running

    def stop(self) -> CommandResult:
        return _channel_result(self._command, self._stream.stop(), self._timeout, self._t0)


def _channel_result(command: str, reply: tuple[int, str, str, bool], timeout: float, t0: float) -> CommandResult:
    """The channel's (rc, stdout, stderr, timed out) as a CommandResult (a timeout: rc 124 and its note)."""
    rc, out, err, timed_out = reply
    if timed_out:
        rc, err = TIMEOUT_RC, err + timeout_note(timeout)
    return CommandResult(
        command=command, rc=rc, stdout=out, stderr=err, duration=time.monotonic() - t0, timed_out=timed_out
    )


def cleanup(run: Run) -> None:
    """Remove what a uml run made: its guest's processes (by run id), temp dirs, state dir."""
    kill_marked(run.id)
    for res in run.resources:
        if res["kind"] == "dir":
            shutil.rmtree(res["path"], ignore_errors=True)
    shutil.rmtree(run.dir, ignore_errors=True)


def available() -> tuple[bool, str]:
    try:
        uml_kernel()
    except HarnessError as err:
        return False, str(err)
    return True, "User-Mode Linux guest with its own IPVS-capable kernel"
