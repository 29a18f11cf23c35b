"""The process that holds a lab brought up with ``lvs-harness up`` (or ``pytest --keep-lab``).

It starts the lab (so it owns the run: if it is killed, the next start or ``clean``
removes what it left), then answers one JSON request per connection on a Unix socket in
the run's state directory: ``exec``, ``status``, ``down``. Started through
:func:`lvs_harness.labs.remote.spawn` as ``python -m lvs_harness.keeper CONFIG_JSON``; it
prints progress, then ``READY <run id>`` or ``ERROR <message>``, and from then on logs to
``keeper.log`` beside the socket.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import socket
import sys
from pathlib import Path

from .errors import HarnessError
from .labs import LabConfig, remote, start_lab
from .topology import VirtualService


def _handle(lab, message: dict) -> dict:
    op = message.get("op")
    if op == "exec":
        host = lab.hosts.get(message.get("host"))
        if host is None:
            return {
                "error": f"no host named {message.get('host')!r} in lab {lab.run_id}; hosts are: {', '.join(lab.hosts)}"
            }
        r = host.run(
            message["command"],
            timeout=float(message.get("timeout", 600)),
            input=base64.b64decode(message.get("input", "")) or None,
        )
        return {"rc": r.rc, "stdout": r.stdout, "stderr": r.stderr, "duration": r.duration, "timed_out": r.timed_out}
    if op == "status":
        hosts = []
        for spec in lab.topology.hosts:
            out = lab.hosts[spec.name].run("ip -o -4 addr show scope global", timeout=10).stdout
            addrs = [f"{f[1]} {f[3]}" for f in (line.split() for line in out.splitlines()) if len(f) > 3]
            hosts.append({"name": spec.name, "role": spec.role, "addresses": addrs})
        return {
            "run_id": lab.run_id,
            "backend": lab.NAME,
            "hosts": hosts,
            "ipvs": lab.ipvs,
            "one_clock": lab.one_clock,
            "timings": lab.timings,
            "vagrantfile": str(lab.config.vagrantfile_path),
            "topology": dataclasses.asdict(lab.topology),
            "provisioning": [
                {"host": p.host, "origin": p.origin, "result": dataclasses.asdict(p.result)} for p in lab.provisioning
            ],
        }
    if op == "down":
        return {"ok": True}
    return {"error": f"unknown request {op!r}"}


def serve(config: LabConfig, provision: bool = True) -> None:
    try:
        lab = start_lab(config, provision=provision)
    except HarnessError as err:
        print(f"ERROR {err}", flush=True)
        return
    with lab:
        path = lab.run.dir / remote.SOCKET
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(8)
        print(f"READY {lab.run_id}", flush=True)
        log = os.open(lab.run.dir / "keeper.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        while True:
            conn, _ = server.accept()
            with conn:
                try:
                    message = json.loads(remote.read_message(conn))
                    reply = _handle(lab, message)
                except (ValueError, KeyError, HarnessError) as err:
                    message, reply = {}, {"error": str(err)}
                conn.sendall(json.dumps(reply).encode() + b"\n")
            if message.get("op") == "down":
                break


def _stop(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal that ran `up` must not stop it
    raw = json.loads(sys.argv[1])
    config = LabConfig(
        backend=raw["backend"],
        provider=raw.get("provider", "libvirt"),
        vagrantfile=Path(raw["vagrantfile"]) if raw["vagrantfile"] else None,
        allow_scripts=raw["allow_scripts"],
        roles=raw["roles"],
        pack=raw.get("pack"),
        services=tuple(VirtualService.from_dict(s) for s in raw.get("services", ())),
        daemons=raw.get("daemons"),
        files=raw.get("files"),
        commands=raw.get("commands"),
        generated=raw.get("generated", False),
        progress=lambda m: print(f"lvs-harness: {m}", flush=True),
    )
    try:
        serve(config, provision=raw.get("provision", True))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
