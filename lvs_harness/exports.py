"""Grades in the formats other tools read: Gradescope's results.json, GitHub Classroom's
autograding result and JUnit XML — all made from a gradebook entry (what ``lvs-harness grade``
records per submission) and the pack's checks. The LMS imports are ``lms.py``'s.

Example::

    book = json.loads(Path("reports/gradebook.json").read_text())
    entry, checks = book["submissions"][0], book["checks"]
    gradescope(entry, checks)["tests"][0]["name"]      # 'config_valid: keepalived accepts …'
    classroom(entry, checks)["configvalid"]["status"]   # 'pass' | 'fail' | 'error' (a runner per check)
    junit(entry, checks, pack="my-lab")                   # '<?xml …><testsuites …>'
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from .checks import advice

if TYPE_CHECKING:
    from .books import Entry

FORMATS = ("gradescope", "classroom", "junit")
FILES = {"gradescope": "results.gradescope.json", "classroom": "classroom.json", "junit": "junit.xml"}
CLASSROOM_ENV = "classroom.env"  # beside classroom.json: its runners for $GITHUB_ENV (see classroom_env)
OUTPUT_CHARS = 4000


def _by_id(entry: Entry) -> dict:
    return {c["id"]: c for c in entry["checks"]}


def check_text(result: dict, check: dict, *, markdown: bool = True) -> str:
    """What a student is shown for one check: its status and what it saw; when it did not pass, why
    (the diagnosis's cause, if one was found) and what to do (its fix, else the pack's hint); and a
    short evidence summary."""
    said = (
        advice(result, check.get("hint", ""))
        if result["status"] != "passed"
        else {"seen": result.get("reason") or "", "why": "", "do": ""}
    )
    lines = [
        f"**{result['status']}**" + (f" — {said['seen']}" if said["seen"] else "")
        if markdown
        else result["status"] + (f" — {said['seen']}" if said["seen"] else "")
    ]
    for label, text in (("Why", said["why"]), ("Fix" if said["why"] else "Hint", said["do"])):
        if text:
            lines.append(f"**{label}:** {text}" if markdown else f"{label}: {text}")
    evidence = (result.get("evidence") or "").strip()
    if evidence and result["status"] != "passed":
        lines.append(f"```\n{evidence[-OUTPUT_CHARS:]}\n```" if markdown else evidence[-OUTPUT_CHARS:])
    return "\n\n".join(lines)


def summary_text(entry: Entry) -> str:
    head = f"{entry['score']}/{entry['max_score']} points"
    if entry["outcome"] != "graded":
        head += f" — {entry['outcome']}: {entry['reason']}"
    return head


def gradescope(entry: Entry, checks: list[dict]) -> dict:
    """Gradescope's results.json (its autograder specification): the total, the run's summary, and
    one test per check — name, number, score, max_score, status, the reason, hint and evidence as
    markdown, the check id as a tag, ``after_published`` for checks the pack hides, the measured
    values as extra_data."""
    results = _by_id(entry)
    tests = []
    for n, check in enumerate(checks, 1):
        r = results.get(check["id"]) or {"status": "error", "score": 0, "reason": "not run", "measured": {}}
        tests.append(
            {
                "name": f"{check['id']}: {check['title']}",
                "number": str(n),
                "score": r["score"],
                "max_score": check["points"],
                "status": "passed" if r["status"] == "passed" else "failed",
                "output": check_text(r, check),
                "output_format": "md",
                "tags": [check["id"]],
                "visibility": "after_published" if check.get("hidden") else "visible",
                "extra_data": {"status": r["status"], "measured": r.get("measured", {})},
            }
        )
    return {
        "score": entry["score"],
        "execution_time": round(entry.get("duration") or 0),
        "output": summary_text(entry),
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"outcome": entry["outcome"], "run_id": entry.get("run_id"), "backend": entry.get("backend")},
    }


def gradescope_nothing(expected: str) -> dict:
    """results.json for a Gradescope submission with nothing to grade: 0 points, and what was expected."""
    return {
        "score": 0,
        "output": f"Nothing could be graded: {expected}",
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    }


def runner_id(check_id: str) -> str:
    """A Classroom runner id for a check: letters and digits only (the reporter's own check of its
    ``runners`` input), e.g. 'configvalid'."""
    return "".join(ch for ch in check_id if ch.isalnum()).lower() or "check"


def classroom(entry: Entry, checks: list[dict]) -> dict[str, dict]:
    """GitHub Classroom's autograding results, one runner per check ({runner id: result}): the
    grading reporter scores a runner as (tests passed ÷ tests) × its max_score, whatever each
    test's own score, so a runner of one check with that check's points makes the total it prints
    the total it records and the gradebook's. A check that did not pass carries its reason and the
    pack's hint in ``test_code`` (what the reporter prints under a failed test) and ``message``
    (what it prints for an error). Each result: version, status (pass/fail/error), max_score, tests."""
    results = _by_id(entry)
    theirs = entry["outcome"] in ("nothing-to-run", "submission-fault")  # the student's outcome, not an error
    out = {}
    for check in checks:
        r = results.get(check["id"]) or {"status": "error", "score": 0, "reason": "not run", "duration": 0}
        status = {"passed": "pass", "failed": "fail"}.get(r["status"], "fail" if theirs else "error")
        if not r.get("reason") and entry["outcome"] != "graded":  # not run: the run's own reason says why
            r = {**r, "reason": entry["reason"]}
        text = check_text(r, check, markdown=False)
        test = {
            "name": f"{check['id']}: {check['title']}",
            "status": status,
            "score": r["score"],
            "max_score": check["points"],
            "message": text,
            "test_code": "" if status == "pass" else text,
            "filename": "",
            "line_no": 0,
            "execution_time": f"{r.get('duration') or 0:.1f}s",
        }
        out[runner_id(check["id"])] = {"version": 1, "status": status, "max_score": check["points"], "tests": [test]}
    return out


def classroom_env(results: dict[str, dict]) -> str:
    """The runners' results as ``<RUNNER>_RESULTS=<base64>`` lines for ``$GITHUB_ENV`` (what the
    reporter reads), and a last line ``LVS_HARNESS_RUNNERS=<id>,<id>,…`` for its ``runners`` input."""
    lines = [
        f"{rid.upper()}_RESULTS={base64.b64encode(json.dumps(res).encode()).decode()}" for rid, res in results.items()
    ]
    return "\n".join([*lines, "LVS_HARNESS_RUNNERS=" + ",".join(results)]) + "\n"


def junit(entry: Entry, checks: list[dict], pack: str = "") -> str:
    """JUnit XML for one graded submission, valid against the strict schema (Jenkins' xunit plugin):
    a testsuite named after it, a testcase per check (classname the pack, name the check id) with
    failure/error; the run's score, max_score and outcome and each check's title, points and score
    as the testsuite's properties (``<check id>.points`` …: the schema allows properties there only),
    and each check's points and score in its testcase's system-out."""
    results = _by_id(entry)
    suites = ET.Element("testsuites")
    counts = {
        s: sum((results.get(c["id"]) or {}).get("status", "error") == s for c in checks) for s in ("failed", "error")
    }
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=entry["submission"],
        tests=str(len(checks)),
        failures=str(counts["failed"]),
        errors=str(counts["error"]),
        skipped="0",
        time=f"{entry.get('duration') or 0:.1f}",
    )
    props = ET.SubElement(suite, "properties")
    for key in ("score", "max_score", "outcome"):
        ET.SubElement(props, "property", name=key, value=str(entry[key]))
    rows = [
        (check, results.get(check["id"]) or {"status": "error", "score": 0, "reason": "not run", "duration": 0})
        for check in checks
    ]
    for check, r in rows:
        for key, value in (("title", check["title"]), ("points", check["points"]), ("score", r["score"])):
            ET.SubElement(props, "property", name=f"{check['id']}.{key}", value=str(value))
    for check, r in rows:
        case = ET.SubElement(
            suite, "testcase", classname=pack or "lvs-harness", name=check["id"], time=f"{r.get('duration') or 0:.2f}"
        )
        if r["status"] in ("failed", "error"):
            tag = "failure" if r["status"] == "failed" else "error"
            element = ET.SubElement(case, tag, message=(r.get("reason") or r["status"])[:500], type=tag)
            element.text = check_text(r, check, markdown=False)
        ET.SubElement(
            case, "system-out"
        ).text = f"check {check['id']}: {check['title']}\nscore {r['score']} of {check['points']} points"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write(fmt: str, entry: Entry, checks: list[dict], folder, pack: str = "") -> str:
    """Write ``entry`` in format ``fmt`` into ``folder``; return the file's name."""
    name = FILES[fmt]
    if fmt == "junit":
        text = junit(entry, checks, pack)
    elif fmt == "classroom":
        runners = classroom(entry, checks)
        text = json.dumps(runners, indent=1, default=str)
        (folder / CLASSROOM_ENV).write_text(classroom_env(runners))
    else:
        text = json.dumps(gradescope(entry, checks), indent=1, default=str)
    (folder / name).write_text(text)
    return name
