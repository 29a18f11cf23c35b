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

The rooms: :mod:`lvs_harness.attempt` runs one submission once (one pytest process → a typed
entry); this module is the batch (the pool, the CPU gate, retries, stop, resume);
:mod:`lvs_harness.books` writes the gradebook, the index and the LMS imports;
:mod:`lvs_harness.shards` splits and merges batches.

Example::

    entries = Grader(Path("reports"), RunSpec.of("my-lab"), jobs=2).grade([Path("alice.md"), Path("bob/")])
    entries[0]["score"], entries[0]["outcome"]          # 24, 'graded'
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import exports, lms, similarity
from .attempt import Processes, Relay, RunSpec, attempt_summary, job_timeout, retry_reason, run_attempt
from .books import Entry, write_books
from .shards import inputs_of, shard_of

__all__ = ["DEFAULT_JOBS", "DEFAULT_RETRIES", "CpuGate", "Grader", "RunSpec", "job_timeout", "verdict_differences"]

DEFAULT_JOBS = 10  # labs at most at once (bench/grade.py measures the choice: -j 4-10 on 2 cores)
IDLE_TO_START = 0.3  # the share of the machine's CPU idle over a second before one more lab starts
DEFAULT_RETRIES = 1  # fresh-lab attempts after a run that ended in error
GATE_MAX_WAIT = 120.0  # seconds one start may be held back by the CPU gate


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
    """The batch: each submission graded by :func:`~lvs_harness.attempt.run_attempt` under ``spec``,
    up to ``jobs`` at once while the CPU has room (:class:`CpuGate`), again in a fresh lab while a run
    ends in error (``retries``); the books rewritten as each one finishes; every run stopped on an
    interrupt.

    Example::

        grader = Grader(Path("reports"), RunSpec.of("my-lab", backend="uml"), jobs=4)
        entries = grader.grade([Path("alice.md"), Path("bob/")], resume=True)
    """

    def __init__(
        self,
        out: Path,
        spec: RunSpec,
        *,
        jobs: int = DEFAULT_JOBS,
        retries: int = DEFAULT_RETRIES,
        formats: tuple[str, ...] = (),
        roster: lms.Roster | None = None,
        progress: Callable[[str], None] | None = None,
    ):
        self.out = Path(out).resolve()  # the runs work in folders of their own
        self.spec = spec
        self.jobs, self.retries = max(1, jobs), max(0, retries)
        self.formats, self.roster = tuple(formats), roster
        self._say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
        self._print_lock = threading.Lock()
        self.processes = Processes(self.progress)
        self.relay = Relay(spec.backend, self.progress)
        self.gate = CpuGate()
        self.imports = lms.Summary()
        self.similar: list[dict] | None = None  # the cohort's similar pairs, once all are graded
        self.entries: dict[str, Entry] = {}

    @property
    def checks(self) -> list[dict]:
        return self.spec.checks

    @property
    def timeout(self) -> float:
        return self.spec.timeout

    def progress(self, message: str) -> None:
        with self._print_lock:  # lines from the runs' threads do not interleave
            self._say(message)

    # one submission ------------------------------------------------------------------
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
                work, entry = run_attempt(
                    self.spec,
                    path,
                    name,
                    self.out,
                    self.processes,
                    earlier=earlier,
                    on_line=lambda line: self.relay(label, line),
                    admit=lambda: self.gate.admit(running=lambda: len(self.processes), stopping=self._stopping),
                )
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
            entry["inputs"] = inputs_of(path, self.spec.pack.name)
            entry["fingerprint"] = fingerprint_of(path, self.spec.pack)
            for old in keep.glob("report-attempt-*.html"):
                os.replace(old, work / old.name)
            for fmt in self.formats:
                exports.write(fmt, entry, self.checks, work, self.spec.pack.name)
            _install(work, self.out / name)
        finally:
            shutil.rmtree(keep, ignore_errors=True)
        return entry

    def _stopping(self) -> bool:
        return self.processes.stopping

    # the batch -------------------------------------------------------------------------
    def grade(self, paths: list[Path], *, shard: tuple[int, int] | None = None, resume: bool = False) -> list[Entry]:
        """Grade ``paths`` (only shard ``k`` of ``n`` when ``shard=(k, n)``; with ``resume``, not
        those whose report in ``out`` is complete for the same inputs); their entries in order."""
        pairs = list(zip(paths, job_names(paths)))
        if shard:
            k, n = shard
            pairs = [(p, name) for p, name in pairs if shard_of(name, n) == k]
            self.progress(f"shard {k}/{n}: {len(pairs)} of {len(paths)} submissions")
        names = [name for _, name in pairs]
        if resume:
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
                self._write_books([self.entries[n] for n in names if n in self.entries], shard)
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
        self._write_books(entries, shard)
        return entries

    def _start_and_grade(self, path: Path, name: str, label: str) -> Entry:
        if self._stopping():
            raise KeyboardInterrupt
        self.progress(f"{label}: started")
        return self.grade_one(path, name, label)

    def stop(self) -> None:
        """Stop every running grading process (each tears its own lab down)."""
        self.processes.stop()

    def _resumed(self, pairs: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
        """The submissions still to grade: those whose report in ``out`` is complete for the same
        inputs (content, pack, harness version) are kept as they are, and said so."""
        try:
            old = json.loads((self.out / "gradebook.json").read_text())
        except (OSError, ValueError):
            old = {}
        pack = self.spec.pack.name
        before = {e["submission"]: e for e in old.get("submissions", [])} if old.get("pack") == pack else {}
        todo, kept = [], []
        for path, name in pairs:
            e = before.get(name)
            if (
                e
                and e.get("inputs") == inputs_of(path, pack)
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
    def _write_books(self, entries: list[Entry], shard: tuple[int, int] | None) -> None:
        self.imports = write_books(
            self.out,
            self.spec.pack,
            self.checks,
            entries,
            shard=f"{shard[0]}/{shard[1]}" if shard else None,
            roster=self.roster,
            similar=self.similar,
        )


def _install(work: Path, final: Path) -> None:
    """Replace ``final`` with the finished ``work`` folder (the older report stays until then)."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(work, final)
    shutil.rmtree(old, ignore_errors=True)


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
