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
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import jinja2

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


# gradebook.csv: one row per submission and check; each column, read from the entry (e) and the check (c)
CSV_COLUMNS: dict[str, Callable[[Entry, CheckResult], object]] = {
    "submission": lambda e, c: e["submission"],
    "outcome": lambda e, c: e["outcome"],
    "score": lambda e, c: e["score"],
    "max_score": lambda e, c: e["max_score"],
    "check_id": lambda e, c: c["id"],
    "title": lambda e, c: c["title"],
    "status": lambda e, c: c["status"],
    "check_score": lambda e, c: c["score"],
    "check_max_score": lambda e, c: c["max_score"],
    "reason": lambda e, c: c["reason"],
    "measured": lambda e, c: json.dumps(c["measured"], default=str),
    "attempts": lambda e, c: attempts_text(e.get("attempts", [])),
}
CSV_FIELDS = tuple(CSV_COLUMNS)


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
    """The gradebook as CSV, one row per submission and check (columns: ``CSV_COLUMNS``)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_FIELDS)
    writer.writerows([column(e, c) for column in CSV_COLUMNS.values()] for e in entries for c in e["checks"])
    return buf.getvalue()


def attempts_text(attempts: list[dict]) -> str:
    """'1: graded 20/24, error in failover; 2: graded 24/24' (one line per submission)."""
    return "; ".join(
        f"{a['attempt']}: {a['outcome']} {a['score']}/{a['max_score']}"
        + (f", error in {', '.join(e['id'] for e in a['errors'])}" if a["errors"] else "")
        for a in attempts
    )


SYMBOLS = {"passed": "✓", "failed": "✗", "error": "!"}
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("lvs_harness", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def index_html(
    entries: list[Entry],
    checks: list[dict],
    title: str = "lvs-harness",
    notes: list[str] = (),
    similar: list[dict] | None = None,
) -> str:
    """The score table (``templates/index.html``): a row per entry linking its report, a mark per
    check with its reason on hover, what the LMS imports leave out (``notes``) and the pairs of
    ``similar`` work (None: not compared; it changes no score).

    Example::

        index_html(entries, checks, "My lab")      # '<!doctype html>…<h1>My lab gradebook</h1>…'
    """
    rows = []
    for e in entries:
        by_id = {c["id"]: c for c in e["checks"]}
        errors = 0 if e["outcome"] == "refused" else sum(c["status"] == "error" for c in e["checks"])
        tries = e.get("attempts", [])
        cells = [by_id[c["id"]] for c in checks]
        rows.append(
            {"entry": e, "errors": errors, "cells": cells, "tries": len(tries), "attempts": attempts_text(tries)}
        )
    return TEMPLATES.get_template("index.html").render(
        title=title,
        entries=entries,
        checks=checks,
        rows=rows,
        in_error=[r["entry"]["submission"] for r in rows if r["errors"]],
        notes=list(notes),
        similar=similar,
        threshold=similarity.THRESHOLD,
        symbols=SYMBOLS,
        written=time.strftime("%Y-%m-%d %H:%M:%S"),
    )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
