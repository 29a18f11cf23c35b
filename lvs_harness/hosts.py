"""A handle per lab host with the same API on every backend.

A lab backend supplies one function that runs a shell command in a named host; this
module builds everything else on it: ``check``, a testinfra ``Host``, fault injection,
files, services and logs.

Example::

    b1 = lab.hosts["lb1"]
    b1.check("ip -br addr show eth1")
    b1.testinfra.interface("eth1").addresses      # ['10.77.0.11', ...]
    b1.link_down("eth1"); ...; b1.link_up("eth1")
    b1.restart("keepalived"); print(b1.log("keepalived"))
"""

from __future__ import annotations

import functools
import shlex
from typing import Protocol
from collections.abc import Callable

import testinfra.host
from testinfra.backend.base import BaseBackend

from .commands import CommandResult
from .errors import CommandFailed, CommandTimeout
from .topology import HostSpec

LOG_FILES = {
    "keepalived": "/var/log/keepalived.log",
    "nginx": "/var/log/nginx/error.log",
}


class Execute(Protocol):
    def __call__(self, host: str, command: str, *, timeout: float, input: bytes | None) -> CommandResult: ...


class Followed(Protocol):
    """A command started by :meth:`Host.follow`."""

    @property
    def running(self) -> bool: ...

    def stop(self) -> CommandResult:
        """End the command (its process group) if it still runs; its result (stdout: what was not handed over)."""


class Follow(Protocol):
    def __call__(
        self, host: str, command: str, on_output: Callable[[str], None], *, timeout: float
    ) -> Followed | None: ...


class Host:
    """One lab host: a network + UTS + mount namespace in the embedded labs, a VM under Vagrant."""

    def __init__(self, spec: HostSpec, execute: Execute, follow: Follow | None = None):
        self.spec = spec
        self._execute = execute
        self._follow = follow
        self.observers: list[Callable[[str, CommandResult], None]] = []  # told of every command run
        self.watches: list = []  # live watchers of its address events (probes.ownership.OwnershipMonitor)

    def __repr__(self) -> str:
        return f"<Host {self.name} ({self.role})>"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def role(self) -> str:
        return self.spec.role

    def run(self, command: str, *, timeout: float = 60, input: bytes | str | None = None) -> CommandResult:
        """Run ``command`` with /bin/sh as root in this host and return its result (never raises on rc;
        raises :class:`CommandTimeout` when it had to be killed at ``timeout``).

        Example::

            r = host.run("ipvsadm -Ln")
            print(r.rc, r.stdout, f"{r.duration:.3f}s")
        """
        if isinstance(input, str):
            input = input.encode()
        result = self._execute(self.name, command, timeout=timeout, input=input)
        for observe in self.observers:
            observe(self.name, result)
        if result.timed_out:
            raise CommandTimeout(self.name, result, timeout)
        return result

    def check(self, command: str, *, timeout: float = 60, input: bytes | str | None = None) -> CommandResult:
        """Like :meth:`run`, but raise :class:`CommandFailed` with the output when it exits non-zero.

        Example::

            host.check("sysctl -w net.ipv4.conf.all.arp_ignore=1")
        """
        result = self.run(command, timeout=timeout, input=input)
        if not result.ok:
            raise CommandFailed(self.name, result)
        return result

    def follow(self, command: str, on_output: Callable[[str], None], *, timeout: float = 3600) -> Followed | None:
        """Start ``command`` in this host and hand its stdout to ``on_output`` piece by piece as it is
        written (on another thread: keep the callback short), until it ends, ``timeout`` passes or
        ``stop()`` is called. None where the lab's backend cannot stream output (then have the
        command write a file and read that).

        Example::

            lines = []
            watch = host.follow("exec ip -o monitor address", lines.append)
            if watch is not None:
                host.check("ip addr add 192.0.2.9/32 dev lo"); ...; watch.stop()
        """
        if self._follow is None:
            return None
        return self._follow(self.name, command, on_output, timeout=timeout)

    @functools.cached_property
    def testinfra(self) -> testinfra.host.Host:
        """A testinfra Host over the same channel: ``host.testinfra.sysctl("net.ipv4.ip_forward")``."""
        return testinfra.host.Host(_TestinfraBackend(self))

    # faults -----------------------------------------------------------------
    def link_down(self, interface: str = "eth1") -> None:
        """Take a link down, as ``ip link set eth1 down`` on the VM would."""
        self.check(f"ip link set dev {shlex.quote(interface)} down")

    def link_up(self, interface: str = "eth1") -> None:
        """Bring a link back up."""
        self.check(f"ip link set dev {shlex.quote(interface)} up")

    def start(self, service: str) -> None:
        """``systemctl start SERVICE`` (nginx and keepalived are managed in the embedded labs)."""
        self.check(f"systemctl start {shlex.quote(service)}")

    def stop(self, service: str) -> None:
        """``systemctl stop SERVICE``; returns once the daemon has exited."""
        self.check(f"systemctl stop {shlex.quote(service)}")

    def restart(self, service: str) -> None:
        self.check(f"systemctl restart {shlex.quote(service)}")

    def is_active(self, service: str) -> bool:
        return self.run(f"systemctl is-active --quiet {shlex.quote(service)}").ok

    # files and logs ---------------------------------------------------------
    def read_file(self, path: str) -> str:
        return self.check(f"cat -- {shlex.quote(path)}").stdout

    def write_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Write a file in this host (parent directories are created), e.g. a keepalived.conf."""
        q = shlex.quote(path)
        self.check(f"mkdir -p -- \"$(dirname -- {q})\" && cat > {q} && chmod {mode:o} {q}", input=content)

    def log(self, service: str) -> str:
        """The daemon's log in this host ('' if it never started). keepalived's lines carry timestamps."""
        path = LOG_FILES.get(service, f"/var/log/{service}.log")
        unit = shlex.quote(service)
        # the embedded labs keep a file per daemon; a VM under systemd has the journal
        return self.run(
            f"cat -- {shlex.quote(path)} 2>/dev/null || journalctl -u {unit} -o short-iso-precise "
            "--no-pager 2>/dev/null"
        ).stdout


class _TestinfraBackend(BaseBackend):
    NAME = "lvs-harness"

    def __init__(self, host: Host):
        super().__init__(host.name)
        self._lab_host = host
        self._encoding = "utf-8"

    def run(self, command: str, *args: str, **kwargs) -> testinfra.backend.base.CommandResult:
        cmd = self.get_command(command, *args)
        r = self._lab_host.run(cmd)
        return self.result(r.rc, self.encode(cmd), r.stdout.encode(), r.stderr.encode())


def host_map(specs, execute: Execute, follow: Follow | None = None) -> dict[str, Host]:
    """Host handles for every host of a topology, by name."""
    return {spec.name: Host(spec, execute, follow) for spec in specs}
