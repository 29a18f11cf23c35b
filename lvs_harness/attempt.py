"""One grading attempt: one pytest process running a pack's suite on one submission in its own lab,
read back into a typed gradebook entry (:class:`~lvs_harness.books.Entry`).

:class:`RunSpec` says how every submission of a batch is run (the pack, the lab backend, its timing,
the audience, the time budget); :func:`run_attempt` runs one submission once under that spec and
returns its folder and entry; :func:`entry_of` reads a finished run's ``results.json`` into the
entry, whatever the run left behind (a crash, a stopped run, a refused submission).

Example::

    spec = RunSpec.of("my-lab", backend="uml")
    work, entry = run_attempt(spec, Path("alice.md"), "alice", Path("reports"), Processes())
    entry["outcome"], entry["score"]         # 'graded', 24
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .books import Entry
from .checks import is_not_run, not_run
from .labs.base import default_timing, provision_budget
from .packs import Pack, load_pack
from .report import read_event

# A submission's run may take: its lab's bring-up (measured on the reference lab, here: uml 12 s,
# vagrant 385 s, bench/RESULTS.md) and the pack's checks (Pack.check_seconds), each SLOWER times over for a
# machine slower than ours, plus the provisioning budget the submission's own provisioners may use
# up. A run past it is stopped (harness-failed, retried once).
UP_SECONDS = {"uml": 12.0, "netns": 5.0, "vagrant": 400.0}
VM_CHECKS = 1.4  # the checks on VMs ÷ on the embedded lab, faithful timing (bench/RESULTS.md: 237.7 s ÷ 171 s)
SLOWER = 4
TAIL_LINES = 15  # the run's last output lines kept to say why a run ended without results


def job_timeout(pack, backend: str, timing: str | None) -> float:
    """Seconds a submission's grading run may take before it is stopped (see above).

    Example::

        job_timeout(pack, "uml", None)      # 4 × (12 + pack.check_seconds[0]) + 300
    """
    fast, faithful = pack.check_seconds
    checks = faithful if (timing or default_timing(backend)) == "faithful" else fast
    if backend == "vagrant":
        checks *= VM_CHECKS
    return round(SLOWER * (UP_SECONDS.get(backend, UP_SECONDS["vagrant"]) + checks) + provision_budget())


def suite_checks(pack) -> list[dict]:
    """The pack's checks in order: id, title, points, hint, hidden (from their ``check`` markers)."""
    return [c.as_dict() for c in pack.checks()]


@dataclass(frozen=True)
class RunSpec:
    """How each submission of a batch is graded: the pack's suite on ``backend`` with ``timing``,
    written for ``audience``, within ``timeout`` seconds a run.

    Example::

        spec = RunSpec.of("my-lab", backend="uml", audience="student", without_hidden=True)
        spec.timeout          # seconds a run may take (job_timeout)
        spec.checks[0]["id"]  # 'config_valid': the checks graded, hidden ones left out
    """

    pack: Pack
    backend: str = "auto"
    timing: str | None = None  # None: the backend's default (labs.base.default_timing)
    provider: str = "libvirt"  # vagrant's provider
    allow_scripts: bool = False
    audience: str = "staff"
    without_hidden: bool = False
    timeout: float = 0.0  # seconds a run may take; 0: job_timeout's budget
    checks: list[dict] = field(init=False, compare=False)  # the checks graded, in order

    def __post_init__(self):
        if not self.timeout:
            object.__setattr__(self, "timeout", job_timeout(self.pack, self.backend, self.timing))
        checks = [c for c in suite_checks(self.pack) if not (self.without_hidden and c["hidden"])]
        object.__setattr__(self, "checks", checks)

    @classmethod
    def of(cls, pack: str | None = None, *, timeout: float | None = None, **how) -> RunSpec:
        """The spec for the pack named ``pack`` (None: the default pack)."""
        return cls(load_pack(pack), timeout=timeout or 0.0, **how)

    def argv(self, path: Path, name: str, work: Path, basetemp: Path, earlier: Path | None = None) -> list[str]:
        """The pytest command line grading ``path`` as ``name``, its outputs into ``work``."""
        argv = [sys.executable, "-m", "pytest", "--pyargs", self.pack.suite, "--pack", self.pack.name, "-v"]
        argv += ["-p", "no:cacheprovider", "--basetemp", str(basetemp)]
        argv += ["--submission", str(path.resolve()), "--student", name, "--lab", self.backend]
        argv += [f"--html={work / 'report.html'}", "--self-contained-html"]
        argv += [f"--results-json={work / 'results.json'}", "--events"]
        optional = {
            f"--timing={self.timing}": bool(self.timing),
            f"--provider={self.provider}": self.backend == "vagrant",
            "--allow-scripts": self.allow_scripts,
            f"--earlier-attempts={earlier}": earlier is not None,
            f"--audience={self.audience}": self.audience != "staff",
            "--without-hidden": self.without_hidden,
        }
        return argv + [arg for arg, wanted in optional.items() if wanted]


def run_env(environ=os.environ) -> dict[str, str]:
    """The environment of a grading run: ours, with ``PYTHONPATH``'s entries made absolute — a run
    works in a folder of its own, and a pack found through ``PYTHONPATH=.`` must be found there too.

    Example::

        run_env({"PYTHONPATH": "packs:/opt/x"})["PYTHONPATH"]     # '/home/me/course/packs:/opt/x'
    """
    env = dict(environ)
    if env.get("PYTHONPATH"):
        # (an empty entry is the current folder, as Python reads it)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p or ".").resolve()) for p in env["PYTHONPATH"].split(os.pathsep))
    return env


class Processes:
    """The grading runs under way, by name: a batch stops them all (``stop``); each run is stopped
    alone when it outlives its time budget (``expire``).

    Example::

        running = Processes()
        proc = running.start("alice", ["python", "-m", "pytest", ...], cwd=work)
        running.stop()            # SIGTERM to each run (each tears its own lab down)
    """

    def __init__(self, say: Callable[[str], None] = lambda message: None):
        self._say = say
        self._procs: dict[str, subprocess.Popen] = {}
        self._expired: set[str] = set()
        self._lock = threading.Lock()
        self.stopping = False

    def __len__(self) -> int:
        return len(self._procs)

    def start(self, name: str, argv: list[str], cwd: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            errors="replace",
            cwd=cwd,
            env=run_env(),
        )
        with self._lock:
            self._procs[name] = proc
        return proc

    def finish(self, name: str) -> bool:
        """Forget ``name``'s run; True when it was stopped for outliving its budget."""
        with self._lock:
            self._procs.pop(name, None)
            expired = name in self._expired
            self._expired.discard(name)
        return expired

    def expire(self, name: str, proc: subprocess.Popen, seconds: float) -> None:
        self._say(f"{name}: still running after {seconds:g} s; stopping it")
        with self._lock:
            self._expired.add(name)
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()

    def stop(self) -> None:
        """Stop every running grading process (each tears its own lab down)."""
        self.stopping = True
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_attempt(
    spec: RunSpec,
    path: Path,
    name: str,
    out: Path,
    processes: Processes,
    *,
    earlier: Path | None = None,
    on_line: Callable[[str], None] = lambda line: None,
    admit: Callable[[], None] = lambda: None,
) -> tuple[Path, Entry]:
    """Grade ``path`` once, in its own lab: (its folder under ``out``, its entry). ``admit`` holds the
    start back (the batch's CPU gate); each output line goes to ``on_line``; a run past
    ``spec.timeout`` is stopped and is the harness's fault (harness-failed)."""
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    basetemp = Path(tempfile.mkdtemp(prefix="lvsh-grade-"))
    tail: list[str] = []
    try:
        admit()
        if processes.stopping:
            raise KeyboardInterrupt
        t0 = time.monotonic()
        with open(work / "pytest.log", "w") as log:
            proc = processes.start(name, spec.argv(path, name, work, basetemp / "t", earlier), cwd=work)
            timer = threading.Timer(spec.timeout, processes.expire, (name, proc, spec.timeout))
            timer.start()
            try:
                for line in proc.stdout:
                    log.write(line)
                    tail = (tail + [line.rstrip()])[-TAIL_LINES:]
                    on_line(line)
                rc = proc.wait()
            finally:
                timer.cancel()
                expired = processes.finish(name)
        if expired:  # whatever the stopped run still wrote, it is not a grade
            tail = [f"stopped after {spec.timeout:g} s (the grading run took too long)"]
        return work, entry_of(spec.checks, path, name, work, None if expired else rc, tail, time.monotonic() - t0)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)


def entry_of(
    checks: list[dict], path: Path, name: str, work: Path, rc: int | None, tail: list[str], seconds: float
) -> Entry:
    """The entry of a finished run from its ``results.json`` in ``work``: every check of ``checks``
    (one the run did not reach is in error, saying why), the score and the outcome. ``rc`` None: the
    run was stopped; ``tail``: its last output lines.

    Example::

        entry_of(spec.checks, Path("bob.md"), "bob", work, 1, [], 63.0)["outcome"]     # 'graded'
    """
    try:
        results = json.loads((work / "results.json").read_text())
    except (OSError, ValueError):
        results = None
    crashed = results is None or rc not in (0, 1)
    ended = "was stopped" if rc is None else f"ended without results (exit status {rc})"
    why = f"the grading run {ended}: {' / '.join(tail[-3:]) or 'no output'}"
    missing = why if crashed else not_run("the run ended before it")
    by_id = {c["id"]: c for c in (results or {}).get("checks", [])}
    entry: Entry = {
        "submission": name,
        "path": str(path),
        "report": f"{name}/report.html",
        "duration": round(seconds, 1),
        "exit_status": rc,
        "checks": [by_id.get(c["id"]) or _not_judged(c, missing) for c in checks],
    }
    entry["score"] = sum(c["score"] for c in entry["checks"])
    entry["max_score"] = sum(c["max_score"] for c in entry["checks"])
    for key in ("backend", "timing", "run_id", "lab_seconds"):
        entry[key] = (results or {}).get(key)
    submission = (results or {}).get("submission") or {}
    entry["parts"], entry["functions"] = submission.get("parts", []), submission.get("functions", [])
    if crashed:
        entry["outcome"], entry["reason"] = "harness-failed", why
    elif not entry["backend"]:
        entry["outcome"] = results.get("not_graded") or "lab-failed"
        entry["reason"] = entry["checks"][0]["reason"]
    elif results.get("lab_crashed"):
        entry["outcome"], entry["reason"] = "lab-crashed", results["lab_crashed"]
    else:
        entry["outcome"], entry["reason"] = "graded", ""
    return entry


def _not_judged(check: dict, reason: str) -> dict:
    return {
        "id": check["id"],
        "title": check["title"],
        "status": "error",
        "score": 0,
        "max_score": check["points"],
        "reason": reason,
        "measured": {},
    }


def retry_reason(entry: Entry) -> str | None:
    """Why a run's verdict is not the student's to keep (a check in error, the lab or the grading
    run broke), or None. A refused submission or one that crashed its own lab is not retried.

    Example::

        retry_reason({"outcome": "lab-failed", "reason": "the guest did not boot", ...})
        # 'lab-failed: the guest did not boot'
    """
    if entry["outcome"] in ("lab-failed", "harness-failed"):
        return f"{entry['outcome']}: {entry['reason'][:200]}"
    errors = [c for c in entry["checks"] if c["status"] == "error"]
    if entry["outcome"] == "graded" and errors:
        return f"{len(errors)} check(s) in error, first {errors[0]['id']}: {errors[0]['reason'][:160]}"
    return None


def attempt_summary(entry: Entry, n: int) -> dict:
    """What the books keep of attempt ``n``: its outcome, score, time and checks in error."""
    return {
        "attempt": n,
        "run_id": entry.get("run_id"),
        "outcome": entry["outcome"],
        "score": entry["score"],
        "max_score": entry["max_score"],
        "duration": entry["duration"],
        "errors": [{"id": c["id"], "reason": c["reason"]} for c in entry["checks"] if c["status"] == "error"],
    }


class Relay:
    """Says what a grading run's events tell (``report.emit``): its lab up, a check not passed, the
    lab crashed; before the lab is up on vagrant, the minutes of ``vagrant up`` as they pass.

    Example::

        relay = Relay("uml", print)
        relay("[1/3] alice", 'lvs-harness-event {"event": "lab_up", "run_id": "r1"}')   # prints "… lab r1 is up"
    """

    def __init__(self, backend: str, say: Callable[[str], None]):
        self.backend, self._say = backend, say
        self._up: set[str] = set()  # labels of the runs whose lab came up

    def __call__(self, label: str, line: str) -> None:
        event = read_event(line.rstrip())
        early_vagrant = self.backend == "vagrant" and label not in self._up
        if event is None:
            if early_vagrant and "Machine booted and ready" in line:
                self._say(f"{label}: {line.strip().removeprefix('==> ')}")  # vagrant's own output
            return
        kind = event["event"]
        if kind == "lab_up":
            self._up.add(label)
            timings = ", ".join(f"{k} {v:.1f} s" for k, v in event.get("timings", {}).items())
            self._say(f"{label}: lab {event.get('run_id')} is up" + (f" ({timings})" if timings else ""))
        elif kind == "progress" and early_vagrant:
            self._say(f"{label}: {event.get('message', '')}")
        elif kind == "lab_crashed":
            self._say(f"{label}: the lab crashed {event.get('reason', '')[:160]}")
        elif kind == "check" and event.get("status") != "passed" and label in self._up:
            # (before the lab is up every check errors for one reason, reported when the run ends)
            reason = event.get("reason", "")
            if not is_not_run(reason):
                self._say(
                    f"{label}: {event.get('id')} {event.get('status')}" + (f" — {reason[:160]}" if reason else "")
                )
