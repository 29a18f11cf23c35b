"""Grades in the formats other tools read: Gradescope's results.json, GitHub Classroom's
autograding result, JUnit XML, and an LMS grade-import CSV — all made from a gradebook entry
(what ``lvs-harness grade`` records per submission) and the pack's checks.

Example::

    book = json.loads(Path("reports/gradebook.json").read_text())
    entry, checks = book["submissions"][0], book["checks"]
    gradescope(entry, checks)["tests"][0]["name"]      # 'config_valid: keepalived accepts …'
    classroom(entry, checks)["status"]                  # 'pass' | 'fail' | 'error'
    junit(entry, checks, pack="my-lab")                   # '<?xml …><testsuites …>'
    lms_csv(book["submissions"], checks, "my-lab")       # 'Student,ID,SIS User ID,SIS Login ID,Section,…'
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

FORMATS = ("gradescope", "classroom", "junit")
FILES = {"gradescope": "results.gradescope.json", "classroom": "classroom.json", "junit": "junit.xml"}
OUTPUT_CHARS = 4000


def _by_id(entry: dict) -> dict:
    return {c["id"]: c for c in entry["checks"]}


def check_text(result: dict, check: dict, *, markdown: bool = True) -> str:
    """What a student is shown for one check: its status and reason, the hint (when it did not
    pass), and a short evidence summary."""
    lines = [f"**{result['status']}**" + (f" — {result['reason']}" if result.get("reason") else "")
             if markdown else result["status"] + (f" — {result['reason']}" if result.get("reason") else "")]
    if result["status"] != "passed" and check.get("hint"):
        lines.append(("**Hint:** " if markdown else "Hint: ") + check["hint"])
    evidence = (result.get("evidence") or "").strip()
    if evidence and result["status"] != "passed":
        lines.append(f"```\n{evidence[-OUTPUT_CHARS:]}\n```" if markdown else evidence[-OUTPUT_CHARS:])
    return "\n\n".join(lines)


def summary_text(entry: dict) -> str:
    head = f"{entry['score']}/{entry['max_score']} points"
    if entry["outcome"] != "graded":
        head += f" — {entry['outcome']}: {entry['reason']}"
    return head


def gradescope(entry: dict, checks: list[dict]) -> dict:
    """Gradescope's results.json (its autograder specification): the total, the run's summary, and
    one test per check — name, number, score, max_score, status, the reason, hint and evidence as
    markdown, the check id as a tag, ``after_published`` for checks the pack hides, the measured
    values as extra_data."""
    results = _by_id(entry)
    tests = []
    for n, check in enumerate(checks, 1):
        r = results.get(check["id"]) or {"status": "error", "score": 0, "reason": "not run", "measured": {}}
        tests.append({
            "name": f"{check['id']}: {check['title']}", "number": str(n),
            "score": r["score"], "max_score": check["points"],
            "status": "passed" if r["status"] == "passed" else "failed",
            "output": check_text(r, check), "output_format": "md", "tags": [check["id"]],
            "visibility": "after_published" if check.get("hidden") else "visible",
            "extra_data": {"status": r["status"], "measured": r.get("measured", {})},
        })
    return {"score": entry["score"], "execution_time": round(entry.get("duration") or 0),
            "output": summary_text(entry), "output_format": "md", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"outcome": entry["outcome"], "run_id": entry.get("run_id"), "backend": entry.get("backend")}}


def gradescope_nothing(expected: str) -> dict:
    """results.json for a Gradescope submission with nothing to grade: 0 points, and what was expected."""
    return {"score": 0, "output": f"Nothing could be graded: {expected}", "output_format": "md",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def classroom(entry: dict, checks: list[dict]) -> dict:
    """The autograding result GitHub Classroom's grading reporter reads (base64 in
    ``<RUNNER>_RESULTS``): version, status (pass/fail/error), max_score and one test per check
    with name, status, score, max_score and message."""
    results = _by_id(entry)
    tests = []
    for check in checks:
        r = results.get(check["id"]) or {"status": "error", "score": 0, "reason": "not run", "duration": 0}
        status = {"passed": "pass", "failed": "fail"}.get(r["status"], "error")
        tests.append({"name": f"{check['id']}: {check['title']}", "status": status, "score": r["score"],
                      "max_score": check["points"], "message": check_text(r, check, markdown=False),
                      "test_code": check["id"], "filename": "", "line_no": 0,
                      "execution_time": f"{r.get('duration') or 0:.1f}s"})
    if entry["outcome"] in ("nothing-to-run", "submission-fault"):     # the student's outcome, not an error
        status = "fail"
    elif entry["outcome"] not in ("graded", "lab-crashed") or any(t["status"] == "error" for t in tests):
        status = "error"
    else:
        status = "pass" if all(t["status"] == "pass" for t in tests) else "fail"
    return {"version": 1, "status": status, "max_score": sum(c["points"] for c in checks), "tests": tests}


def junit(entry: dict, checks: list[dict], pack: str = "") -> str:
    """JUnit XML for one graded submission: a testsuite named after it, a testcase per check
    (classname the pack, name the check id) with failure/error and the check's id, points and
    score as properties."""
    results = _by_id(entry)
    suites = ET.Element("testsuites")
    counts = {s: sum((results.get(c["id"]) or {}).get("status", "error") == s for c in checks)
              for s in ("failed", "error")}
    suite = ET.SubElement(suites, "testsuite", name=entry["submission"], tests=str(len(checks)),
                          failures=str(counts["failed"]), errors=str(counts["error"]), skipped="0",
                          time=f"{entry.get('duration') or 0:.1f}")
    props = ET.SubElement(suite, "properties")
    for key in ("score", "max_score", "outcome"):
        ET.SubElement(props, "property", name=key, value=str(entry[key]))
    for check in checks:
        r = results.get(check["id"]) or {"status": "error", "score": 0, "reason": "not run", "duration": 0}
        case = ET.SubElement(suite, "testcase", classname=pack or "lvs-harness", name=check["id"],
                             time=f"{r.get('duration') or 0:.2f}")
        cprops = ET.SubElement(case, "properties")
        for key, value in (("check_id", check["id"]), ("title", check["title"]), ("points", check["points"]),
                           ("score", r["score"])):
            ET.SubElement(cprops, "property", name=key, value=str(value))
        if r["status"] in ("failed", "error"):
            tag = "failure" if r["status"] == "failed" else "error"
            element = ET.SubElement(case, tag, message=(r.get("reason") or r["status"])[:500])
            element.text = check_text(r, check, markdown=False)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write(fmt: str, entry: dict, checks: list[dict], folder, pack: str = "") -> str:
    """Write ``entry`` in format ``fmt`` into ``folder``; return the file's name."""
    name = FILES[fmt]
    if fmt == "junit":
        text = junit(entry, checks, pack)
    else:
        text = json.dumps((gradescope if fmt == "gradescope" else classroom)(entry, checks), indent=1, default=str)
    (folder / name).write_text(text)
    return name


LMS_LEAD = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")   # Canvas's gradebook columns


def lms_csv(entries: list[dict], checks: list[dict], title: str = "lab") -> str:
    """One row per student for an LMS grade import: Canvas's leading columns (Student, ID, SIS
    User ID, SIS Login ID, Section — the submission's name as Student and SIS Login ID), then the
    total, its maximum and one column per check (its points). Canvas matches rows on SIS Login ID;
    Moodle's CSV import maps any column to a user field (choose SIS Login ID → username) and each
    grade column to a grade item (leave Max and Outcome unmapped)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*LMS_LEAD, f"{title} total", "Max", *(f"{title}: {c['id']}" for c in checks), "Outcome"])
    for e in entries:
        by_id = _by_id(e)
        writer.writerow([e["submission"], "", "", e["submission"], "", e["score"], e["max_score"],
                         *((by_id.get(c["id"]) or {}).get("score", 0) for c in checks), e["outcome"]])
    return buf.getvalue()
