"""Labs held by a keeper process (``lvs-harness up``, ``pytest --keep-lab``), driven over its socket.

A UML lab lives only as long as the process holding its command channel, so a lab that
must outlive the command that made it is started inside a keeper (see
:mod:`lvs_harness.keeper`); :func:`spawn` starts one and :class:`RemoteLab` gives the same
``topology``/``hosts`` API as an in-process lab.

Example::

    run_id = spawn(LabConfig(backend="uml"))
    with RemoteLab(Run.load(run_id), keep=True) as lab:
        lab.hosts["client"].check("curl -s 10.77.0.100")
"""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..commands import CommandResult
from ..errors import HarnessError, LabError
from ..hosts import host_map
from ..runs import Run
from ..topology import Topology
from .base import LabBase, LabConfig, ProvisionResult

SOCKET = "keeper.sock"


def read_message(sock: socket.socket) -> bytes:
    """One newline-terminated JSON message (or what came before the peer closed)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def request(run: Run, message: dict, timeout: float = 660) -> dict:
    """Send one request to the keeper of ``run`` and return its reply."""
    path = run.dir / SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            raise HarnessError(
                f"lab {run.id} is not answering (no keeper at {path}); "
                f"remove it with `lvs-harness clean --run {run.id}`."
            ) from None
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = read_message(sock)
    reply = json.loads(data or b'{"error": "the keeper closed the connection"}')
    if "error" in reply:
        raise HarnessError(reply["error"])
    return reply


def spawn(config: LabConfig, provision: bool = True) -> str:
    """Start a keeper holding a lab for ``config``; relay its progress; return the run id once up."""
    raw = {
        "backend": config.backend,
        "provider": config.provider,
        "vagrantfile": str(config.vagrantfile) if config.vagrantfile else None,
        "allow_scripts": config.allow_scripts,
        "roles": config.roles,
        "files": config.files,
        "commands": config.commands,
        "generated": config.generated,
        "pack": config.pack,
        "daemons": config.daemons,
        "services": [dataclasses.asdict(s) for s in config.services],
        "provision": provision,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "lvs_harness.keeper", json.dumps(raw)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith("READY "):
            return line.split()[1]
        if line.startswith("ERROR "):
            raise HarnessError(line[6:])
        config.progress(line.removeprefix("lvs-harness: "))
    raise LabError(f"the lab keeper exited ({proc.wait()}) before the lab was up")


class RemoteLab(LabBase):
    """A lab held by a keeper, with the same topology and hosts API as an in-process lab."""

    def __init__(self, run: Run, keep: bool, progress=lambda m: None):
        status = request(run, {"op": "status"}, timeout=60)
        self.NAME = status["backend"]
        super().__init__(
            LabConfig(backend=self.NAME, vagrantfile=Path(status["vagrantfile"]), keep=keep, progress=progress), run
        )
        self.keep = keep
        self.ipvs = status["ipvs"]
        self.one_clock = status.get("one_clock", False)
        self.timings = status.get("timings", {})
        self.topology = Topology.from_dict(status["topology"])
        self.hosts = host_map(self.topology.hosts, self._execute)
        self.provisioning = [
            ProvisionResult(p["host"], p["origin"], CommandResult(**p["result"])) for p in status["provisioning"]
        ]

    def _execute(self, host: str, command: str, *, timeout: float, input: bytes | None) -> CommandResult:
        if self._closed:
            raise self._closed_error(host, command)
        t0 = time.monotonic()
        reply = request(
            self.run,
            {
                "op": "exec",
                "host": host,
                "command": command,
                "timeout": timeout,
                "input": base64.b64encode(input or b"").decode(),
            },
            timeout=timeout + 60,
        )
        return CommandResult(
            command, reply["rc"], reply["stdout"], reply["stderr"], time.monotonic() - t0, reply.get("timed_out", False)
        )

    def _teardown(self) -> None:
        if self.keep:
            self.config.progress(
                f"lab {self.run_id} kept: `lvs-harness exec HOST -- CMD`, `lvs-harness status`, "
                f"`lvs-harness down --run {self.run_id}`"
            )
            return
        stop(self.run)


def stop(run: Run, timeout: float = 60) -> None:
    """Ask the keeper of ``run`` to tear its lab down and wait until it has."""
    request(run, {"op": "down"}, timeout=timeout)
    deadline = time.monotonic() + timeout
    while run.owner_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
