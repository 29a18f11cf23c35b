"""``lvs-harness grade``: each submission in its own lab, up to N at once; reports and a gradebook.

Every submission is graded by its own pytest process running the pack's suite with
``--submission``, so each gets its own lab (its own UML guest, or its own namespace set)
and a crash in one cannot touch the others. Out of ``OUT/`` come:

- ``OUT/<submission>/report.html`` (pytest-html, self-contained), ``results.json`` and
  ``pytest.log`` (the run's whole output);
- ``OUT/gradebook.csv`` (one row per submission and check), ``OUT/gradebook.json`` and
  ``OUT/index.html`` (the score table, linking the reports), rewritten as each submission
  finishes.

Each submission's outcome: *graded*; *nothing-to-run* (a write-up whose configs are not written as
text, e.g. only in images: 0 points, a verdict); *submission-fault* (the submission's own code held
or broke its lab's bring-up, e.g. a provisioner still running at the provisioning budget: the reason
names it; graded once, never retried as the machine's fault); *refused* (unreadable, a Vagrantfile that does not
evaluate, or scripts the netns lab will not run — the reason says which); *lab-failed* (its lab
could not be started); *lab-crashed* (its lab stopped during the checks: graded up to there);
*harness-failed* (the grading run itself broke: no results; the exit status is then 1).

Example::

    books = Grader(Path("reports"), jobs=2, pack="my-lab").grade([Path("alice.md"), Path("bob/")])
    books[0]["score"], books[0]["outcome"]          # 24, 'graded'
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import exports, lms, similarity
from .books import Entry, write_books
from .checks import is_not_run, not_run
from .labs.base import default_timing, provision_budget
from .packs import load_pack
from .report import read_event
from .shards import inputs_of, shard_of

DEFAULT_JOBS = 10  # labs at most at once (bench/grade.py measures the choice: -j 4-10 on 2 cores)
IDLE_TO_START = 0.3  # the share of the machine's CPU idle over a second before one more lab starts
DEFAULT_RETRIES = 1  # fresh-lab attempts after a run that ended in error
GATE_MAX_WAIT = 120.0  # seconds one start may be held back by the CPU gate
# A submission's run may take: its lab's bring-up (measured on the reference lab, here: uml 12 s,
# vagrant 385 s, bench/RESULTS.md) and the pack's checks (Pack.check_seconds), each SLOWER times over for a
# machine slower than ours, plus the provisioning budget the submission's own provisioners may use
# up. A run past it is stopped (harness-failed, retried once).
UP_SECONDS = {"uml": 12.0, "netns": 5.0, "vagrant": 400.0}
VM_CHECKS = 1.4  # the checks on VMs ÷ on the embedded lab, faithful timing (bench/RESULTS.md: 237.7 s ÷ 171 s)
SLOWER = 4


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


def job_names(paths: list[Path]) -> list[str]:
    """A report folder name per submission: its file or folder name, made unique (-2, -3 …)."""
    names, seen = [], {}
    for path in paths:
        base = re.sub(r"[^\w.-]+", "-", (path.stem if path.is_file() else path.name) or "submission").strip("-.")
        base = base or "submission"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def cpu_times(stat: str) -> tuple[int, int]:
    """(idle, total) jiffies from the first line of /proc/stat (idle counts iowait; guest time is
    already in user).

    Example::

        cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\n")     # (850, 1000)
    """
    fields = [int(f) for f in stat.split("\n", 1)[0].split()[1:]]
    busy_and_idle = fields[:8]  # user nice system idle iowait irq softirq steal
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(busy_and_idle)


class CpuGate:
    """Lets one more lab start only while the machine has CPU to spare: at least ``idle_needed`` of
    it idle over the last ``window`` seconds, or no lab running. -j is then an upper bound that a
    slower machine does not reach: a lab starved of CPU could make its keepalived miss adverts (a
    split brain that is the machine's, not the student's). One start at a time, so bring-ups (the
    heaviest part of a run) are staggered.

    Example::

        gate = CpuGate()
        gate.admit(running=lambda: 3)     # returns once the CPU was ≥ 30 % idle over a second
    """

    def __init__(
        self,
        idle_needed: float = IDLE_TO_START,
        window: float = 1.0,
        read: Callable[[], str] = lambda: Path("/proc/stat").read_text(),
        max_wait: float = GATE_MAX_WAIT,
    ):
        self.idle_needed, self.window, self._read = idle_needed, window, read
        self.max_wait = max_wait  # the longest one start is held back: other programs' CPU use
        # must not stall a batch whose own labs sit idle
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds starts were held back, in all
        self.forced = 0  # starts let through after max_wait with the CPU still busy

    def summary(self) -> str:
        """One line for grade's summary: how long starts were held back."""
        return f"CPU gate: starts held back {self.waited:.0f} s in all" + (
            f"; {self.forced} let through after {self.max_wait:.0f} s with the CPU still busy" if self.forced else ""
        )

    def idle_fraction(self) -> float | None:
        """The share of CPU time idle over the next ``window`` seconds (None: unreadable)."""
        try:
            idle0, total0 = cpu_times(self._read())
            time.sleep(self.window)
            idle1, total1 = cpu_times(self._read())
        except (OSError, ValueError, IndexError):
            return None
        return (idle1 - idle0) / (total1 - total0) if total1 > total0 else None

    def admit(self, running: Callable[[], int], stopping: Callable[[], bool] = lambda: False) -> None:
        t0 = time.monotonic()
        with self._lock:
            while running() > 0 and not stopping():
                if time.monotonic() - t0 >= self.max_wait:
                    self.forced += 1
                    break
                idle = self.idle_fraction()
                if idle is None or idle >= self.idle_needed:
                    break
            self.waited += time.monotonic() - t0


class Grader:
    def __init__(
        self,
        out: Path,
        *,
        backend: str = "auto",
        timing: str | None = None,
        allow_scripts: bool = False,
        jobs: int = DEFAULT_JOBS,
        progress=None,
        timeout: float | None = None,
        provider: str = "libvirt",
        retries: int = DEFAULT_RETRIES,
        pack: str | None = None,
        formats: tuple[str, ...] = (),
        shard: tuple[int, int] | None = None,
        resume: bool = False,
        audience: str = "staff",
        without_hidden: bool = False,
        roster: lms.Roster | None = None,
    ):
        self.out = Path(out).resolve()  # the jobs run in folders of their own
        self.backend, self.timing, self.allow_scripts = backend, timing, allow_scripts
        self.provider = provider
        self._say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
        self.pack = load_pack(pack)
        self.jobs, self.retries = max(1, jobs), max(0, retries)
        self.timeout = timeout or job_timeout(self.pack, backend, timing)
        self.checks = [c for c in suite_checks(self.pack) if not (without_hidden and c["hidden"])]
        self.formats, self.shard, self.resume = tuple(formats), shard, resume
        self.audience, self.without_hidden = audience, without_hidden
        self.roster, self.imports = roster, lms.Summary()
        self.similar: list[dict] | None = None  # the cohort's similar pairs, once all are graded
        self.entries: dict[str, dict] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._print_lock = threading.Lock()
        self._stopping = False
        self._up: set[str] = set()  # labels of the jobs whose lab came up
        self.gate = CpuGate()
        self._expired: set[str] = set()  # jobs stopped for running past the timeout

    def progress(self, message: str) -> None:
        with self._print_lock:  # lines from the jobs' threads do not interleave
            self._say(message)

    # one submission ------------------------------------------------------------------
    def _argv(self, path: Path, name: str, work: Path, basetemp: Path, earlier: Path | None = None) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            self.pack.suite,
            "--pack",
            self.pack.name,
            "-v",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(basetemp),
            "--submission",
            str(path.resolve()),
            "--student",
            name,
            "--lab",
            self.backend,
            f"--html={work / 'report.html'}",
            "--self-contained-html",
            f"--results-json={work / 'results.json'}",
            "--events",
        ]
        if self.timing:
            argv.append(f"--timing={self.timing}")
        if self.backend == "vagrant":
            argv.append(f"--provider={self.provider}")
        if self.allow_scripts:
            argv.append("--allow-scripts")
        if earlier is not None:
            argv.append(f"--earlier-attempts={earlier}")
        if self.audience != "staff":
            argv.append(f"--audience={self.audience}")
        if self.without_hidden:
            argv.append("--without-hidden")
        return argv

    def grade_one(self, path: Path, name: str, label: str) -> Entry:
        """Grade one submission; again in a fresh lab (up to ``retries`` times) while its run ends
        in error — a fault of the lab or the harness, never of the student's work. Every attempt
        is in the entry's ``attempts`` and the final report; earlier reports are kept beside it."""
        keep = Path(tempfile.mkdtemp(prefix=f".{name}.attempts.", dir=self.out))
        attempts: list[dict] = []
        try:
            for n in range(1, self.retries + 2):
                earlier = keep / "earlier.json" if attempts else None
                if earlier:
                    earlier.write_text(json.dumps(attempts))
                work, entry = self._attempt(path, name, label, earlier)
                attempts.append(attempt_summary(entry, n))
                why = retry_reason(entry)
                if why is None or n > self.retries:
                    break
                if (work / "report.html").exists():
                    os.replace(work / "report.html", keep / f"report-attempt-{n}.html")
                    attempts[-1]["report"] = f"report-attempt-{n}.html"
                shutil.rmtree(work, ignore_errors=True)
                self.progress(f"{label}: attempt {n} ended in error ({why}); grading it again in a fresh lab")
            entry["attempts"] = attempts
            entry["inputs"] = inputs_of(path, self.pack.name)
            entry["fingerprint"] = fingerprint_of(path, self.pack)
            for old in keep.glob("report-attempt-*.html"):
                os.replace(old, work / old.name)
            for fmt in self.formats:
                exports.write(fmt, entry, self.checks, work, self.pack.name)
            self._install(work, self.out / name)
        finally:
            shutil.rmtree(keep, ignore_errors=True)
        return entry

    def _attempt(self, path: Path, name: str, label: str, earlier: Path | None) -> tuple[Path, dict]:
        """One grading run in its own lab: (its folder, its entry)."""
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.out))
        basetemp = Path(tempfile.mkdtemp(prefix="lvsh-grade-"))
        rc, tail = None, []
        try:
            self.gate.admit(running=lambda: len(self._procs), stopping=lambda: self._stopping)
            if self._stopping:
                raise KeyboardInterrupt
            t0 = time.monotonic()
            with open(work / "pytest.log", "w") as log:
                proc = subprocess.Popen(
                    self._argv(path, name, work, basetemp / "t", earlier),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    bufsize=1,
                    errors="replace",
                    cwd=work,
                )
                with self._lock:
                    self._procs[name] = proc
                timer = threading.Timer(self.timeout, self._expire, (name, proc))
                timer.start()
                try:
                    for line in proc.stdout:
                        log.write(line)
                        tail = (tail + [line.rstrip()])[-15:]
                        self._relay(label, line)
                    rc = proc.wait()
                finally:
                    timer.cancel()
                    with self._lock:
                        self._procs.pop(name, None)
                        expired = name in self._expired
                        self._expired.discard(name)
            if expired:  # whatever the stopped run still wrote, it is not a grade
                tail = [f"stopped after {self.timeout:g} s (the grading run took too long)"]
            return work, self._entry(path, name, work, None if expired else rc, tail, time.monotonic() - t0)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(basetemp, ignore_errors=True)

    def _expire(self, name: str, proc: subprocess.Popen) -> None:
        self.progress(f"{name}: still running after {self.timeout:g} s; stopping it")
        with self._lock:
            self._expired.add(name)
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()

    def _relay(self, label: str, line: str) -> None:
        """Say what a grading run's events tell (report.emit): its lab up, a check not passed, the
        lab crashed; before the lab is up on vagrant, the minutes of `vagrant up` as they pass."""
        event = read_event(line.rstrip())
        if event is None:
            if self.backend == "vagrant" and label not in self._up and "Machine booted and ready" in line:
                self.progress(f"{label}: {line.strip().removeprefix('==> ')}")  # vagrant's own output
            return
        kind = event["event"]
        if kind == "lab_up":
            self._up.add(label)
            timings = ", ".join(f"{k} {v:.1f} s" for k, v in event.get("timings", {}).items())
            self.progress(f"{label}: lab {event.get('run_id')} is up" + (f" ({timings})" if timings else ""))
        elif kind == "progress" and self.backend == "vagrant" and label not in self._up:
            self.progress(f"{label}: {event.get('message', '')}")
        elif kind == "lab_crashed":
            self.progress(f"{label}: the lab crashed {event.get('reason', '')[:160]}")
        elif (
            kind == "check"
            and event.get("status") != "passed"
            and label in self._up
            and not is_not_run(event.get("reason", ""))
        ):
            # (before the lab is up every check errors for one reason, reported when the run ends)
            reason = event.get("reason", "")
            self.progress(
                f"{label}: {event.get('id')} {event.get('status')}" + (f" — {reason[:160]}" if reason else "")
            )

    def _entry(self, path: Path, name: str, work: Path, rc: int | None, tail: list[str], seconds: float) -> Entry:
        try:
            results = json.loads((work / "results.json").read_text())
        except (OSError, ValueError):
            results = None
        entry = {
            "submission": name,
            "path": str(path),
            "report": f"{name}/report.html",
            "duration": round(seconds, 1),
            "exit_status": rc,
        }
        by_id = {c["id"]: c for c in (results or {}).get("checks", [])}
        crashed = results is None or rc not in (0, 1)
        ended = "was stopped" if rc is None else f"ended without results (exit status {rc})"
        why = f"the grading run {ended}: {' / '.join(tail[-3:]) or 'no output'}"
        missing = why if crashed else not_run("the run ended before it")
        entry["checks"] = [
            by_id.get(c["id"])
            or {
                "id": c["id"],
                "title": c["title"],
                "status": "error",
                "score": 0,
                "max_score": c["points"],
                "reason": missing,
                "measured": {},
            }
            for c in self.checks
        ]
        entry["score"] = sum(c["score"] for c in entry["checks"])
        entry["max_score"] = sum(c["max_score"] for c in entry["checks"])
        for key in ("backend", "timing", "run_id", "lab_seconds"):
            entry[key] = (results or {}).get(key)
        entry["parts"] = ((results or {}).get("submission") or {}).get("parts", [])
        entry["functions"] = ((results or {}).get("submission") or {}).get("functions", [])
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

    def _install(self, work: Path, final: Path) -> None:
        """Replace ``final`` with the finished ``work`` folder (the older report stays until then)."""
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(work, final)
        shutil.rmtree(old, ignore_errors=True)

    # the batch -------------------------------------------------------------------------
    def grade(self, paths: list[Path]) -> list[Entry]:
        pairs = list(zip(paths, job_names(paths)))
        if self.shard:
            k, n = self.shard
            pairs = [(p, name) for p, name in pairs if shard_of(name, n) == k]
            self.progress(f"shard {k}/{n}: {len(pairs)} of {len(paths)} submissions")
        names = [name for _, name in pairs]
        if self.resume:
            pairs = self._resumed(pairs)
        total = len(pairs)
        self.progress(
            f"grading {total} submission{'s' * (total != 1)}, up to {min(self.jobs, total) or 1} at a "
            f"time (while the CPU has room), into {self.out}/"
        )
        done = 0
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs)
        futures = {
            pool.submit(self._start_and_grade, p, name, f"[{i + 1}/{total}] {name}"): name
            for i, (p, name) in enumerate(pairs)
        }
        try:
            for fut in concurrent.futures.as_completed(futures):
                entry = fut.result()
                done += 1
                self.entries[entry["submission"]] = entry
                self.write_books([self.entries[n] for n in names if n in self.entries])
                what = f"{entry['score']}/{entry['max_score']}" + (
                    f", {entry['outcome']}: {entry['reason']}" if entry["outcome"] != "graded" else ""
                )
                self.progress(
                    f"{entry['submission']}: {what} in {entry['duration']:.0f} s "
                    f"({done}/{total} done) → {self.out / entry['report']}"
                )
        except BaseException:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        entries = [self.entries[n] for n in names]
        self.similar = similarity.pairs(entries) if len(entries) > 1 else None
        self.write_books(entries)
        return entries

    def _start_and_grade(self, path: Path, name: str, label: str) -> Entry:
        if self._stopping:
            raise KeyboardInterrupt
        self.progress(f"{label}: started")
        return self.grade_one(path, name, label)

    def stop(self) -> None:
        """Stop every running grading process (each tears its own lab down)."""
        self._stopping = True
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

    def _resumed(self, pairs: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
        """The submissions still to grade: those whose report in ``out`` is complete for the same
        inputs (content, pack, harness version) are kept as they are, and said so."""
        try:
            old = json.loads((self.out / "gradebook.json").read_text())
        except (OSError, ValueError):
            old = {}
        before = {e["submission"]: e for e in old.get("submissions", [])} if old.get("pack") == self.pack.name else {}
        todo, kept = [], []
        for path, name in pairs:
            e = before.get(name)
            if (
                e
                and e.get("inputs") == inputs_of(path, self.pack.name)
                and e["outcome"] != "harness-failed"
                and (self.out / e["report"]).is_file()
            ):
                self.entries[name] = e
                kept.append(name)
            else:
                todo.append((path, name))
        self.progress(
            f"--resume: skipped {len(kept)} submission(s) already graded with the same inputs"
            + (f" ({', '.join(kept[:10])}{' …' if len(kept) > 10 else ''})" if kept else "")
        )
        return todo

    # books -----------------------------------------------------------------------------
    def write_books(self, entries: list[Entry]) -> None:
        self.imports = write_books(
            self.out,
            self.pack,
            self.checks,
            entries,
            shard=f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            roster=self.roster,
            similar=self.similar,
        )


def fingerprint_of(path: Path, pack) -> list[str]:
    """What ``path`` runs, normalized for comparing it with the cohort (``similarity.fingerprint``);
    empty when it cannot be read (its outcome already says why)."""
    from .submission import load_submission

    try:
        return similarity.fingerprint(load_submission(path, pack))
    except Exception:  # noqa: BLE001 — a comparison never fails a grade
        return []


def verdict_differences(entry: Entry, failed: dict[str, str]) -> list[str]:
    """How a graded ``entry`` differs from the expected verdicts: ``failed`` maps each check that
    must fail to a phrase its reason must contain; every other check must pass. Empty: as expected.

    Example::

        verdict_differences(entry, {"failback": "nopreempt"})
        # ['failover: failed (…), expected passed']
    """
    diffs = []
    for check in entry["checks"]:
        want = failed.get(check["id"])
        status = "failed" if want is not None else "passed"
        if check["status"] != status:
            diffs.append(f"{check['id']}: {check['status']} ({check['reason'][:300]}), expected {status}")
        elif want is not None and want not in check["reason"]:
            diffs.append(
                f"{check['id']}: failed for another reason ({check['reason'][:300]}), expected one with {want!r}"
            )
    return diffs


def listed_differences(entry: Entry, expected: dict) -> list[str]:
    """How a graded ``entry`` differs from verdicts listed only where they are clear (a careful
    grader's reading of a real answer): ``expected["pass"]`` / ``["fail"]`` list check ids that must
    pass / fail, ``expected["all_pass"]`` means every check; checks not listed are not compared.

    Example::

        listed_differences(entry, {"pass": ["config_valid"], "fail": ["failback"]})   # [] when as listed
    """
    by_id = {c["id"]: c for c in entry["checks"]}
    want = {c: "passed" for c in (by_id if expected.get("all_pass") else expected.get("pass", []))}
    want |= {c: "failed" for c in expected.get("fail", [])}
    return [
        f"{c}: {by_id[c]['status']} ({by_id[c]['reason'][:300]}), expected {status}"
        for c, status in want.items()
        if by_id[c]["status"] != status
    ]


def retry_reason(entry: Entry) -> str | None:
    """Why a run's verdict is not the student's to keep (a check in error, the lab or the grading
    run broke), or None. A refused submission or one that crashed its own lab is not retried."""
    if entry["outcome"] in ("lab-failed", "harness-failed"):
        return f"{entry['outcome']}: {entry['reason'][:200]}"
    errors = [c for c in entry["checks"] if c["status"] == "error"]
    if entry["outcome"] == "graded" and errors:
        return f"{len(errors)} check(s) in error, first {errors[0]['id']}: {errors[0]['reason'][:160]}"
    return None


def attempt_summary(entry: Entry, n: int) -> dict:
    return {
        "attempt": n,
        "run_id": entry.get("run_id"),
        "outcome": entry["outcome"],
        "score": entry["score"],
        "max_score": entry["max_score"],
        "duration": entry["duration"],
        "errors": [{"id": c["id"], "reason": c["reason"]} for c in entry["checks"] if c["status"] == "error"],
    }
