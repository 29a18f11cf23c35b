"""Per-check results of a graded run: a JSON file for the gradebook and the pytest-html report.

For every test carrying a ``check`` marker this records id, title, status (passed, failed
or error), score, max_score, the reason, the measured values and the commands it ran on
the lab hosts. ``--results-json PATH`` writes them with the run's summary (student,
backend, timing, durations); with pytest-html (``--html``) each check's row gets a Points
and a Reason column, its evidence (expandable) and charts, and the report opens with the
summary and the scenario's charts.

Statuses: *passed*; *failed* — the lab did not do what the check requires (an assertion,
or a check it needs failed); *error* — the check could not be judged (the lab did not
start, the submission was refused or unreadable, the lab cannot run the check, or a
command broke).
"""

from __future__ import annotations

import json
import os
import re
import time
from html import escape
from pathlib import Path

import pytest
from _pytest import junitxml

from .checks import Check, advice, is_not_run
from .commands import CommandResult
from .errors import HarnessError, LabGone

RECORDER = pytest.StashKey["Recorder"]()
EVENT = "lvs-harness-event "  # a line of the run's output that is one JSON event (see emit)
REASON_CHARS = 600
OUTPUT_CHARS = 2000
MAX_COMMANDS = 150


class Recorder:
    """Collects, per check, its outcome and the commands it ran; and the run's summary."""

    def __init__(self, html: bool = False, audience: str = "staff"):
        self.html = html  # add evidence and charts to pytest-html's rows
        self.audience = audience  # student: reason, hint, evidence; no traceback
        self.pack = None  # the course pack (its title and charts), if any
        self.hints: dict[str, str] = {}  # check id -> hint (read as each check runs)
        self.info: dict = {"started": time.time()}
        self.checks: dict[str, dict] = {}  # nodeid -> record
        self.aliases: dict[str, str] = {}  # a path in messages -> what to call it (a write-up's block)
        self._commands: list[tuple[str, CommandResult]] | None = None
        self.config = None  # pytest's config (set by the plugin)

    # the lab's hosts tell us each command they run
    def command(self, host: str, result: CommandResult) -> None:
        if self._commands is not None:
            self._commands.append((host, result))

    def watch(self, hosts) -> None:
        for host in hosts:
            if self.command not in host.observers:
                host.observers.append(self.command)

    # pytest hooks -------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        self._commands = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        check = Check.of(item)
        if check is None:
            return
        self.hints[check.id] = check.hint
        record = self.checks.setdefault(
            item.nodeid,
            {
                "id": check.id,
                "title": check.title,
                "status": "passed",
                "score": 0,
                "max_score": check.points,
                "reason": "",
                "measured": {},
                "duration": 0.0,
            },
        )
        record["duration"] = round(record["duration"] + report.duration, 2)
        decided = call.when == "call" or report.failed or report.skipped
        if decided and record["status"] == "passed" and not record["reason"]:
            record["status"], record["reason"] = _verdict(report, call)
            if record["status"] != "passed":
                record["evidence"] = evidence_summary(call, self._commands or [])
        if call.excinfo and isinstance(call.excinfo.value, LabGone) and "lab_crashed" not in self.info:
            self.info["lab_crashed"] = f"during check {record['id']}: {call.excinfo.value}"
            emit(item.config, "lab_crashed", reason=self.info["lab_crashed"])
        if call.when == "teardown":
            record["measured"] = {k: v for k, v in item.user_properties if not k.startswith("check_")}
            record["score"] = record["max_score"] if record["status"] == "passed" else 0
            report.user_properties.append(("check_score", record["score"]))  # pytest --junitxml shows it
            self._commands = None
            emit(
                item.config,
                "check",
                id=record["id"],
                status=record["status"],
                reason=record["reason"].splitlines()[0] if record["reason"] else "",
            )
            return
        if decided and (call.when == "call" or report.outcome != "passed"):
            record["measured"] = {k: v for k, v in item.user_properties if not k.startswith("check_")}
            report.lvsh_check = record
            if self.html:
                from pytest_html import extras

                pictures = "".join(f"<div>{svg}</div>" for svg in self.charts(record["measured"]))
                evidence = _evidence_html(call, self._commands or [])
                report.extras = [
                    *getattr(report, "extras", []),
                    extras.html(f"<div class='lvsh-evidence'>{pictures}{evidence}</div>"),
                ]

    def charts(self, measured: dict) -> list[str]:
        """The pack's charts for a check's measured values (none without a pack)."""
        return self.pack.chart(measured) if self.pack else []

    @property
    def title(self) -> str:
        return self.pack.title if self.pack else "lvs-harness"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        """With ``--junitxml``: a check's id, title, points and score go to the testsuite's properties
        (``<check id>.points`` …), and no testcase carries properties of its own — the JUnit schema of
        strict readers (Jenkins' xunit plugin) allows them on the testsuite only. Measured values are
        in ``--results-json``."""
        xml = self.config.stash.get(junitxml.xml_key, None) if self.config is not None else None
        if xml is None or not report.user_properties:
            return
        props = dict(report.user_properties)
        if report.when == "teardown" and "check_id" in props:
            for key in ("title", "points", "score"):
                if f"check_{key}" in props:
                    xml.add_global_property(f"{props['check_id']}.{key}", str(props[f"check_{key}"]))
        report.user_properties = []

    def pytest_sessionfinish(self, session):
        path = session.config.getoption("--results-json")
        if path:
            _write_json(Path(path), self.results())

    # results --------------------------------------------------------------------------
    def results(self) -> dict:
        checks = list(self.checks.values())
        return {
            **self.info,
            "pack": self.pack.name if self.pack else None,
            "title": self.title,
            "audience": self.audience,
            "finished": time.time(),
            "duration": round(time.time() - self.info["started"], 1),
            "score": sum(c["score"] for c in checks),
            "max_score": sum(c["max_score"] for c in checks),
            "checks": checks,
        }


def emit(config, event: str, **fields) -> None:
    """Write one structured event line (``lvs-harness-event {"event": …}``) to the run's output,
    for ``lvs-harness grade`` (which asks for them with --events) to read; nothing otherwise.

    Events: ``progress`` (message), ``lab_up`` (run_id, backend, timings), ``check`` (id, status,
    reason), ``lab_crashed`` (reason)."""
    if not config.getoption("--events", False):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    line = EVENT + json.dumps({"event": event, **fields}, default=str)
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(line)
    else:
        reporter.ensure_newline()
        reporter.write_line(line)


def read_event(line: str) -> dict | None:
    """The event a line of a run's output carries, or None."""
    if not line.startswith(EVENT):
        return None
    try:
        event = json.loads(line[len(EVENT) :])
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


EVIDENCE_MARK = re.compile(r"\n[ \t]*--- evidence ---")  # pytest indents an assert's message lines
PYTEST_EXPLANATION = re.compile(r"^(?:assert |AssertionError\b)", re.M)


def for_people(text: str) -> str:
    """A failed assertion's reason without pytest's rewriting of it (``assert …``, ``where …``,
    the diff and the reprs it explains with): the check's own sentence. The staff report keeps
    pytest's whole text in its log. An assertion with no sentence of its own keeps the first line.

    Example::

        for_people("no intended master: the highest priority is shared\nassert None is not None\n + where …")
        # 'no intended master: the highest priority is shared'
    """
    m = PYTEST_EXPLANATION.search(text)
    if m is None:
        return text
    own = text[: m.start()].strip()
    return own or text.splitlines()[0].strip()


def _verdict(report, call) -> tuple[str, str]:
    if report.passed and call.when == "call":
        return "passed", ""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return "error", "could not be checked: " + reason.removeprefix("Skipped: ")
    exc = call.excinfo.value if call.excinfo else None
    text = str(exc) if exc is not None else str(report.longrepr)
    text = EVIDENCE_MARK.split(text)[0].strip()
    if isinstance(exc, AssertionError):
        text = for_people(text)
    if len(text) > REASON_CHARS:
        text = text[:REASON_CHARS] + " …"
    if call.when == "call" and isinstance(exc, (AssertionError, pytest.fail.Exception)):
        return "failed", text
    if call.when == "setup" and isinstance(exc, pytest.fail.Exception):
        # blocked by a failed check it needs: failed; else the lab or the submission, in the fixture's words
        return ("failed" if is_not_run(text) else "error"), text
    if exc is None or isinstance(exc, HarnessError):  # the lab's own sentence
        return "error", text
    return "error", f"{type(exc).__name__}: {text}"


def evidence_summary(call, commands: list[tuple[str, CommandResult]], limit: int = 1500) -> str:
    """A short text of what was seen: the failed assertion's last observation, else the last
    commands run on the lab hosts and their output (for the student's view and other formats)."""
    exc = call.excinfo.value if call.excinfo else None
    if getattr(exc, "evidence", ""):
        return exc.evidence.strip()[-limit:]
    parts = []
    for host, r in commands[-3:]:
        out = (r.stdout + (("\n" + r.stderr) if r.stderr.strip() else "")).strip()
        parts.append(f"[{host}]$ {r.command}   # exit {r.rc}" + (f"\n{out[-400:]}" if out else ""))
    return "\n".join(parts)[-limit:]


def _evidence_html(call, commands: list[tuple[str, CommandResult]]) -> str:
    exc = call.excinfo.value if call.excinfo else None
    parts = []
    if getattr(exc, "evidence", ""):
        parts.append(f"<p><b>Evidence at the deadline</b></p><pre>{escape(exc.evidence[-OUTPUT_CHARS * 2 :])}</pre>")
    lines, previous, repeats = [], None, 0
    for host, r in commands[:MAX_COMMANDS]:
        key = (host, r.command, r.rc, r.stdout, r.stderr)
        if key == previous:
            repeats += 1
            continue
        if repeats:
            lines.append(f"   (the same again, {repeats} more time{'s' * (repeats > 1)})")
        previous, repeats = key, 0
        out = (r.stdout + (("\n[stderr] " + r.stderr) if r.stderr.strip() else "")).rstrip()
        if len(out) > OUTPUT_CHARS:
            out = out[:OUTPUT_CHARS] + f"\n… ({len(out) - OUTPUT_CHARS} more characters)"
        lines.append(f"[{host}]$ {r.command}   # exit {r.rc}, {r.duration:.2f} s" + (f"\n{out}" if out else ""))
    if repeats:
        lines.append(f"   (the same again, {repeats} more time{'s' * (repeats > 1)})")
    if len(commands) > MAX_COMMANDS:
        lines.append(f"… and {len(commands) - MAX_COMMANDS} more commands")
    if lines:
        parts.append(
            f"<details><summary>Commands run on the lab hosts ({len(commands)})</summary>"
            f"<pre>{escape(chr(10).join(lines))}</pre></details>"
        )
    return "".join(parts)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


STATUS_COLOURS = {"passed": "#2ca02c", "failed": "#d62728", "error": "#7f7f7f"}


def summary_html(results: dict, charts_for=lambda measured: []) -> str:
    """The report's opening: who, score, how it was run, what was the student's, the charts."""
    rows = [
        ("Student", results.get("student") or "—"),
        ("Score", f"{results['score']} / {results['max_score']}"),
        (
            "Lab backend",
            " ".join(
                filter(
                    None,
                    [results.get("backend") or "not started", results.get("provider") and f"({results['provider']})"],
                )
            ),
        ),
        ("Timing mode", results.get("timing") or "—"),
        ("Lab run id", results.get("run_id") or "—"),
        ("Lab start", f"{results['lab_seconds']:.1f} s" if results.get("lab_seconds") else "—"),
        ("Whole run", f"{results['duration']:.1f} s"),
    ]
    for a in results.get("earlier_attempts", []):
        errors = "; ".join(f"{e['id']}: {e['reason'][:200]}" for e in a["errors"])
        rows.append(
            (
                f"Attempt {a['attempt']}",
                f"{a['outcome']}, {a['score']}/{a['max_score']} (run {a['run_id'] or '—'})"
                + (f" — in error: {errors}" if errors else "")
                + (f" — {a['report']}" if a.get("report") else "")
                + " — graded again in a fresh lab",
            )
        )
    table = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
        for k, v in rows
    )
    out = [
        f"<h2>{escape(results.get('title') or 'lab checks')} grading</h2><table class='lvsh-summary'>{table}</table>"
    ]
    parts = results.get("submission", {}).get("parts", [])
    if parts:
        items = "".join(
            f"<li><b>{escape(p['part'])}</b>: {'student' if p['student'] else 'reference'} — "
            f"{escape(p['source'])}" + "".join(f"<br><i>{escape(n)}</i>" for n in p.get("notes", ())) + "</li>"
            for p in parts
        )
        out.append(f"<p>What the lab was built from:</p><ul>{items}</ul>")
    functions = results.get("submission", {}).get("functions", [])
    if functions:
        items = "".join(
            f"<li><b>{escape(f['function'])}</b>: {'student' if f['student'] else 'reference'} — "
            f"{escape(f['how'])}</li>"
            for f in functions
        )
        out.append(f"<p>What each function of the lab came from:</p><ul class='lvsh-functions'>{items}</ul>")
    notes = results.get("submission", {}).get("notes", [])
    if notes:
        out.append("<p>Notes on the submission:</p><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    checks = "".join(
        f"<tr><td>{escape(c['id'] or '')}</td><td style='color:{STATUS_COLOURS[c['status']]}'>"
        f"<b>{c['status']}</b></td><td>{c['score']}/{c['max_score']}</td><td>{escape(c['reason'])}</td></tr>"
        for c in results["checks"]
    )
    out.append(
        "<table class='lvsh-checks' border='1' cellpadding='4' style='border-collapse:collapse'>"
        "<tr><th>Check</th><th>Status</th><th>Points</th><th>Reason</th></tr>" + checks + "</table>"
    )
    pictures = [svg for c in results["checks"] for svg in charts_for(c["measured"])]
    if pictures:
        out.append("<h3>Charts</h3>" + "".join(f"<div>{svg}</div>" for svg in pictures))
    return "".join(out)


class HtmlHooks:
    """pytest-html hooks (registered only when pytest-html is active)."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def pytest_html_report_title(self, report):
        student = self.recorder.info.get("student")
        title = self.recorder.title
        report.title = f"{title} — {student}" if student else f"{title} lab checks"

    def pytest_html_results_summary(self, prefix, summary, postfix, session):
        prefix.append(summary_html(self.recorder.results(), self.recorder.charts))

    def pytest_html_results_table_header(self, cells):
        cells.insert(2, "<th>Points</th>")
        cells.insert(3, "<th>Reason</th>")

    def pytest_html_results_table_html(self, report, data):
        """For students: the check's reason, hint and evidence instead of pytest's log (which
        carries tracebacks and the suite's source)."""
        record = getattr(report, "lvsh_check", None)
        if self.recorder.audience != "student":
            return
        data.clear()
        if record and record["status"] != "passed":
            said = advice(record, self.recorder.hints.get(record["id"], ""))
            parts = (
                [("Why", said["why"]), ("Fix", said["do"]), ("Seen", said["seen"])]
                if said["why"]
                else [("", said["seen"]), ("Hint", said["do"])]
            )
            data.append(
                "<br><br>".join(
                    f"<b>{label}:</b> {escape(text)}" if label else escape(text) for label, text in parts if text
                )
                or escape(record["status"])
            )
        elif record:
            data.append(escape(record["reason"] or record["status"]))

    def pytest_html_results_table_row(self, report, cells):
        record = getattr(report, "lvsh_check", None)
        if self.recorder.audience == "student" and record and len(cells) > 1:
            cells[1] = f'<td class="col-testId">{escape(record["id"])}: {escape(record["title"])}</td>'
        points = f"{record['max_score'] if record['status'] == 'passed' else 0}/{record['max_score']}" if record else ""
        reason = record["reason"] if record else ""
        cells.insert(2, f"<td>{points}</td>")
        cells.insert(3, f"<td>{escape(reason)}</td>")
