"""The books of a graded batch, written atomically as each submission finishes: ``gradebook.json``
(every entry, the checks, the LMS imports' summary, similar work), ``gradebook.csv`` (one row per
submission and check), the LMS imports (:mod:`lvs_harness.lms`) and ``index.html`` (the score
table linking each report, what the imports leave out, similar work).

Example::

    prepare_out(out)
    write_books(out, load_pack("my-lab"), checks, entries)      # -> lms.Summary
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from html import escape
from pathlib import Path
from typing import TypedDict

from . import lms, similarity
from .errors import HarnessError

OUTCOMES = ("graded", "nothing-to-run", "submission-fault", "refused", "lab-failed", "lab-crashed", "harness-failed")


class CheckResult(TypedDict, total=False):
    """One check of a graded submission, as results.json and the gradebook keep it."""

    id: str
    title: str
    status: str  # passed, failed or error
    score: int
    max_score: int
    reason: str  # sentences for people; a diagnosis first where one was found
    measured: dict  # the check's measured values (``measure``), e.g. diagnosis, diagnosis_fix
    duration: float
    evidence: str


class Entry(TypedDict, total=False):
    """One graded submission in the books, shared by the grader, the exports, the LMS imports and
    the command line."""

    submission: str  # its report name
    path: str
    report: str  # OUT-relative path of its report.html
    outcome: str  # one of OUTCOMES
    reason: str  # why, when the outcome is not "graded"
    score: int
    max_score: int
    checks: list[CheckResult]
    duration: float
    exit_status: int | None
    backend: str | None
    timing: str | None
    run_id: str | None
    lab_seconds: float | None
    parts: list[dict]  # which parts of the lab are the student's (the report's "built from")
    functions: list[dict]
    attempts: list[dict]  # each attempt's summary, when it was retried
    inputs: dict  # what the grade depends on (shards.inputs_of): --resume and merge compare it
    fingerprint: list[str]  # what it runs, normalized (similarity)


MARKER = ".lvs-harness-reports"


CSV_FIELDS = (
    "submission",
    "outcome",
    "score",
    "max_score",
    "check_id",
    "title",
    "status",
    "check_score",
    "check_max_score",
    "reason",
    "measured",
    "attempts",
)


def prepare_out(out: Path) -> None:
    """Make ``out`` ours: refuse a non-empty folder lvs-harness did not create."""
    if out.exists() and not out.is_dir():
        raise HarnessError(f"{out} is a file; pass --out a folder for the reports.")
    if out.is_dir() and any(p.name != ".keep" for p in out.iterdir()) and not (out / MARKER).exists():
        raise HarnessError(
            f"{out} already holds files that lvs-harness did not write; pass --out an empty or "
            "new folder (nothing in it was changed)."
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("reports written by lvs-harness grade\n")


def write_books(
    out: Path,
    pack,
    checks: list[dict],
    entries: list[Entry],
    shard: str | None = None,
    roster: lms.Roster | None = None,
    similar: list[dict] | None = None,
) -> lms.Summary:
    """The gradebook (JSON and CSV), the LMS imports (``lms.import_files``) and the index — with the
    pairs of ``similar`` work (``similarity.pairs``; None: not compared yet) —, written atomically;
    returns what the imports leave out."""
    files, summary = lms.import_files(entries, checks, pack.title, roster)
    _atomic_write(
        out / "gradebook.json",
        json.dumps(
            {
                "pack": pack.name,
                "suite": pack.suite,
                "harness": harness_version(),
                "shard": shard,
                "checks": checks,
                "submissions": entries,
                "imports": summary.as_dict(),
                "similar": similar,
            },
            indent=1,
            default=str,
        ),
    )
    _atomic_write(out / "gradebook.csv", gradebook_csv(entries))
    for name, text in files.items():
        _atomic_write(out / name, text)
    _atomic_write(out / "index.html", index_html(entries, checks, pack.title, summary.lines(), similar))
    return summary


def harness_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lvs-harness")
    except metadata.PackageNotFoundError:
        return "unknown"


def gradebook_csv(entries: list[Entry]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS)
    writer.writeheader()
    for e in entries:
        for c in e["checks"]:
            writer.writerow(
                {
                    "submission": e["submission"],
                    "outcome": e["outcome"],
                    "score": e["score"],
                    "max_score": e["max_score"],
                    "check_id": c["id"],
                    "title": c["title"],
                    "status": c["status"],
                    "check_score": c["score"],
                    "check_max_score": c["max_score"],
                    "reason": c["reason"],
                    "measured": json.dumps(c["measured"], default=str),
                    "attempts": attempts_text(e.get("attempts", [])),
                }
            )
    return buf.getvalue()


def attempts_text(attempts: list[dict]) -> str:
    """'1: graded 20/24, error in failover; 2: graded 24/24' (one line per submission)."""
    return "; ".join(
        f"{a['attempt']}: {a['outcome']} {a['score']}/{a['max_score']}"
        + (f", error in {', '.join(e['id'] for e in a['errors'])}" if a["errors"] else "")
        for a in attempts
    )


SYMBOLS = {"passed": ("✓", "#2ca02c"), "failed": ("✗", "#d62728"), "error": ("!", "#7f7f7f")}


def similar_html(similar: list[dict] | None) -> str:
    """The index's section on work that looks copied: each pair, its similarity and the lines it
    shares (rarest first). It changes no score."""
    if similar is None:
        return ""
    if not similar:
        return "<h2>Similar work</h2><p>No two submissions run configs alike enough to look copied.</p>"
    items = "".join(
        f"<details><summary><b>{escape(p['a'])}</b> and <b>{escape(p['b'])}</b>: {p['score']:.0%} alike, "
        f"{p['count']} shared lines</summary><pre>{escape(chr(10).join(p['shared']))}</pre></details>"
        for p in similar
    )
    return (
        "<h2>Similar work</h2><p>Pairs whose keepalived configs, Vagrantfiles and setup commands are alike "
        f"beyond chance (≥ {similarity.THRESHOLD:.0%}: addresses, names, comments and order do not hide a copy; "
        "the reference's lines and lines most of the cohort shares weigh little). A lead for a grader to read "
        f"both, not a verdict: scores are not changed.</p>{items}"
    )


def index_html(
    entries: list[Entry],
    checks: list[dict],
    title: str = "lvs-harness",
    notes: list[str] = (),
    similar: list[dict] | None = None,
) -> str:
    head = "".join(
        f"<th class='check' title='{escape(c['title'])}'><span>{escape(c['id'])} ({c['points']})</span></th>"
        for c in checks
    )
    rows, in_error = [], []
    for e in entries:
        by_id = {c["id"]: c for c in e["checks"]}
        errors = [c for c in e["checks"] if c["status"] == "error"]
        if errors and e["outcome"] != "refused":
            in_error.append(e["submission"])
        cells = "".join(
            f"<td style='color:{SYMBOLS[by_id[c['id']]['status']][1]};text-align:center' "
            f"title='{escape(by_id[c['id']]['status'] + ': ' + by_id[c['id']]['reason'])}'>"
            f"{SYMBOLS[by_id[c['id']]['status']][0]}</td>"
            for c in checks
        )
        link = (
            f"<a href='{escape(e['report'])}'>{escape(e['submission'])}</a>"
            if e["outcome"] != "harness-failed"
            else f"{escape(e['submission'])} (<a href='{escape(e['submission'])}/pytest.log'>log</a>)"
        )
        flag = (
            f" <b class='flag' title='{len(errors)} check(s) could not be judged'>⚠ {len(errors)} in error</b>"
            if errors and e["outcome"] != "refused"
            else ""
        )
        tries = e.get("attempts", [])
        rows.append(
            f"<tr><td>{link}</td><td>{escape(e['outcome'])}{flag}</td><td><b>{e['score']}</b>/{e['max_score']}</td>"
            f"{cells}<td>{escape(e.get('backend') or '—')}</td><td>{e['duration']:.0f} s</td>"
            f"<td title='{escape(attempts_text(tries))}'>{len(tries) or 1}</td>"
            f"<td class='reason'>{escape(e['reason'])}</td></tr>"
        )
    banner = (
        f"<p class='errors'><b>⚠ {len(in_error)} submission(s) have checks that could not be judged</b> "
        f"(the lab or the harness failed, not the student's work; their points are not given): "
        f"{escape(', '.join(in_error))}. Grade them again.</p>"
        if in_error
        else ""
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} gradebook</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 6px}th{background:#f4f4f4}th.check span{writing-mode:vertical-rl;transform:rotate(180deg);"
        "white-space:nowrap}td.reason{max-width:40em;font-size:90%}.flag,.errors{color:#b35900}</style></head><body>"
        f"<h1>{escape(title)} gradebook</h1><p>{len(entries)} submission(s), written {time.strftime('%Y-%m-%d %H:%M:%S')}. "
        "✓ passed, ✗ failed, ! could not be judged (hover for the reason). "
        f"<a href='gradebook.csv'>CSV</a> · <a href='gradebook.json'>JSON</a> · LMS imports: "
        "<a href='grades.csv'>Canvas</a>, <a href='grades-moodle.csv'>Moodle</a>, "
        f"<a href='grades-checks.csv'>points per check</a></p>{banner}"
        + (f"<ul class='imports'>{''.join(f'<li>{escape(n)}</li>' for n in notes)}</ul>" if notes else "")
        + f"<table><tr><th>Submission</th><th>Outcome</th><th>Score</th>{head}<th>Lab</th><th>Time</th>"
        f"<th>Attempts</th><th>Reason</th></tr>{''.join(rows)}</table>{similar_html(similar)}</body></html>\n"
    )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
