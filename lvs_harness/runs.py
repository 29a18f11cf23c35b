"""Run ids and the record of everything a run creates, so cleanup removes exactly that.

Every run gets a short random id. Its state directory ``<state root>/<id>/`` holds
``run.json``: the backend, the owning process (pid and start time, so a reused pid is
not mistaken for it) and each resource as it is created (namespace prefix, process
group, temp dirs). Processes a run starts carry ``LVS_HARNESS_RUN=<id>`` in their
environment; cleanup only ever signals processes that carry the run's own id.

Example::

    run = Run.create("uml")
    run.add("dir", path="/dev/shm/lvs-harness-" + run.id)
    ...
    for stale in Run.all():
        if not stale.owner_alive():
            print("left behind:", stale.id)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

MARKER = "LVS_HARNESS_RUN"


def state_root() -> Path:
    """Where run records live: ``$LVS_HARNESS_STATE``, else /run/lvs-harness (root) or a per-user dir."""
    if os.environ.get("LVS_HARNESS_STATE"):
        return Path(os.environ["LVS_HARNESS_STATE"])
    if os.geteuid() == 0:
        return Path("/run/lvs-harness")
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/lvs-harness-{os.getuid()}"
    return Path(base) / "lvs-harness"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pids_with_marker(run_id: str) -> list[int]:
    """Processes whose environment carries this run's id (and no other's)."""
    needle = f"{MARKER}={run_id}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if (b"\0" + env).find(b"\0" + needle) >= 0:
            found.append(int(entry.name))
    return found


def kill_marked(run_id: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process that carries this run's id; return their pids once gone."""
    pids = pids_with_marker(run_id)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_alive(p) for p in pids):
        time.sleep(0.05)
    return pids


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class Run:
    """One run's record on disk."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def backend(self) -> str:
        return self.data["backend"]

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def resources(self) -> list[dict]:
        return self.data["resources"]

    @classmethod
    def create(cls, backend: str, keep: bool = False) -> Run:
        root = state_root()
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        while True:
            run_id = secrets.token_hex(3)
            try:
                (root / run_id).mkdir()
                break
            except FileExistsError:
                continue
        run = cls(
            root / run_id / "run.json",
            {
                "id": run_id,
                "backend": backend,
                "created": time.time(),
                "keep": keep,
                "owner": {"pid": os.getpid(), "start": _start_time(os.getpid())},
                "resources": [],
            },
        )
        os.chmod(run.dir, 0o755)
        run.save()
        return run

    @classmethod
    def load(cls, run_id: str) -> Run:
        path = state_root() / run_id / "run.json"
        return cls(path, json.loads(path.read_text()))

    @classmethod
    def all(cls) -> list[Run]:
        root = state_root()
        runs = []
        if root.is_dir():
            for child in sorted(root.iterdir()):
                try:
                    runs.append(cls.load(child.name))
                except (OSError, ValueError):
                    continue
        return runs

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def add(self, kind: str, **data) -> None:
        """Record a resource before (or right as) it is created."""
        self.resources.append({"kind": kind, **data})
        self.save()

    def set(self, **data) -> None:
        self.data.update(data)
        self.save()

    def owner_alive(self) -> bool:
        owner = self.data.get("owner") or {}
        pid = owner.get("pid")
        return bool(pid) and is_alive(pid) and _start_time(pid) == owner.get("start")


def stop_owner(run: Run, timeout: float = 30.0) -> None:
    """SIGTERM the process that owns ``run`` (verified by pid and start time), SIGKILL it if it lingers."""
    owner = run.data.get("owner") or {}
    pid = owner.get("pid")
    if not run.owner_alive() or pid == os.getpid():
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.owner_alive():
        time.sleep(0.1)
    if run.owner_alive():
        os.kill(pid, signal.SIGKILL)
