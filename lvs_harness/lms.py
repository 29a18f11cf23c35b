"""Grade imports for a learning-management system: one column per lab, the students matched by a
roster.

``grade`` and ``merge`` write three files beside the gradebook:

- ``grades.csv`` — Canvas's gradebook import: its leading columns (Student, ID, SIS User ID, SIS Login
  ID, Section), **one** assignment column named after the lab, and a ``Points Possible`` row giving
  the lab's maximum. Canvas's importer turns every other column into an assignment, so there is none.
- ``grades-moodle.csv`` — Moodle's "Import → CSV file": identity columns (ID number, Email address,
  Username), the lab's points and a feedback text; map the identity column to the user field and the
  points to a grade item whose maximum is the lab's (see docs/platforms.md).
- ``grades-checks.csv`` — the per-check breakdown (points per check), for reading, not for import.

A grade the student does not own — the lab or the harness failed, or a check is in error — is left
out of both imports (a blank cell would clear a Moodle grade) and named in the summary, as is every
submission the roster does not match: a Moodle import stops at the first row it cannot place.

A roster (``--roster students.csv``) is the file Canvas (Grades → Export) or Moodle (Grades → Export →
Plain text file, or Participants → Download) gives, or any CSV with a ``Submission`` column. A
submission matches the student one of whose identifiers — Submission, SIS Login ID, SIS User ID,
Username, ID number, e-mail or its local part, or the name — is the submission's name, or a run of its
words (``lab2-ivanov`` and GitHub Classroom's ``<assignment>-<login>`` repositories match ``ivanov``).

Example::

    roster = Roster.read(Path("students.csv"))
    files, summary = import_files(book["submissions"], book["checks"], "my-lab", roster)
    files["grades.csv"]           # "Student,ID,SIS User ID,SIS Login ID,Section,my-lab\\n    Points Possible,,,,,24\\n…"
    summary.lines()               # ['2 submission(s) match no student on the roster (not in grades.csv): bob-old, x', …]
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import HarnessError

if TYPE_CHECKING:
    from .books import Entry

CANVAS_LEAD = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
# a roster's columns, by the names Canvas's and Moodle's exports give them (compared case-blind)
COLUMNS = {
    "submission": ("submission", "github username", "github", "repository", "repo"),
    "name": ("student", "name", "full name", "fullname"),
    "first": ("first name", "firstname"),
    "last": ("last name", "lastname", "surname"),
    "canvas_id": ("id",),
    "sis_user_id": ("sis user id",),
    "sis_login_id": ("sis login id", "login id", "login"),
    "section": ("section", "group", "groups"),
    "idnumber": ("id number", "idnumber", "student id", "student number"),
    "email": ("email address", "email", "e-mail"),
    "username": ("username", "user name"),
}
PLAIN_IDS = ("submission", "sis_login_id", "sis_user_id", "username", "idnumber", "email", "canvas_id")  # as given
IDENTIFYING = {"submission", "name", "last", "sis_user_id", "sis_login_id", "idnumber", "email", "username"}
TEST_STUDENTS = ("test student", "student, test")  # Canvas's export lists its preview student
FEEDBACK_CHARS = 1000


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\W_]+", text.casefold()) if w]


@dataclass
class Student:
    fields: dict[str, str]

    def get(self, key: str) -> str:
        return self.fields.get(key, "")

    @property
    def name(self) -> str:
        if self.get("name"):
            return self.get("name")
        return " ".join(x for x in (self.get("first"), self.get("last")) if x)

    @property
    def label(self) -> str:
        return (
            self.get("sis_login_id")
            or self.get("username")
            or self.get("email")
            or self.get("idnumber")
            or self.get("sis_user_id")
            or self.name
            or self.get("canvas_id")
        )

    def keys(self) -> dict[str, str]:
        """Its identifiers, normalized, by the column they come from."""
        out = {k: _norm(self.get(k)) for k in PLAIN_IDS if self.get(k)}
        if "@" in self.get("email"):
            out["email_local"] = _norm(self.get("email").split("@")[0])
        if self.name:
            out["name"] = _norm(self.name)
            first, last = self.get("first"), self.get("last")
            if first and last:
                out["name_reversed"] = _norm(last + first)
            elif "," in self.name:  # Canvas's "Last, First"
                out["name_reversed"] = _norm("".join(reversed(self.name.split(",", 1))))
        return {k: v for k, v in out.items() if v}


@dataclass
class Roster:
    students: list[Student]
    source: str = ""

    @classmethod
    def read(cls, path: Path) -> Roster:
        """Read a roster CSV (comma, semicolon or tab separated; Canvas's Points Possible and muted
        rows skipped). Refused, in one sentence, when no column identifies a student."""
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise HarnessError(f"--roster {path}: cannot read it ({exc}); pass a CSV file saved as UTF-8.") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "roster") -> Roster:
        lines = text.splitlines()
        first = lines[0] if lines else ""
        delimiter = max((",", ";", "\t"), key=first.count)
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        if not rows:
            raise HarnessError(f"--roster {source} is empty; pass the roster CSV your LMS exports.")
        head = [h.strip().casefold() for h in rows[0]]
        where = {}
        for key, names in COLUMNS.items():
            for i, h in enumerate(head):
                if h in names and key not in where and i not in where.values():
                    where[key] = i
        if not set(where) & IDENTIFYING:
            raise HarnessError(
                f"--roster {source}: no column names a student (its header is {', '.join(rows[0][:8])}); give it one "
                "of Submission, SIS Login ID, SIS User ID, Username, ID number, Email address or Student."
            )
        students = []
        for row in rows[1:]:
            cells = {k: (row[i].strip() if i < len(row) else "") for k, i in where.items()}
            if not any(cells.values()) or "points possible" in (row[0] if row else "").casefold():
                continue
            if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c or "", re.I) for c in row):
                continue
            if cells.get("name", "").casefold() in TEST_STUDENTS:
                continue
            students.append(Student(cells))
        return cls(students, source)

    def __post_init__(self):
        self._whole: dict[str, set[int]] = {}  # every identifier, for a submission named by it
        self._words: dict[str, set[int]] = {}  # those that can name a run of a submission's words
        for n, s in enumerate(self.students):
            for kind, key in s.keys().items():
                self._whole.setdefault(key, set()).add(n)
                if kind != "canvas_id" and len(key) >= 3 and (not key.isdigit() or len(key) >= 5):
                    self._words.setdefault(key, set()).add(n)

    def match(self, submission: str) -> list[int]:
        """The roster rows that ``submission`` names: its whole name first, else the longest run of its
        words that names someone (e.g. ``lab2-ivanov`` → ``ivanov``)."""
        whole = self._whole.get(_norm(submission))
        if whole:
            return sorted(whole)
        words = _words(submission)
        found: set[int] = set()
        best = 0
        for i in range(len(words)):
            for j in range(i + 1, len(words) + 1):
                rows = self._words.get("".join(words[i:j]))
                if rows and j - i > best:
                    best, found = j - i, set(rows)
                elif rows and j - i == best:
                    found |= rows
        return sorted(found)


@dataclass
class Summary:
    """What an import leaves out, said so the grader can act on it."""

    roster: str = ""
    unmatched: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    shared: dict[str, list[str]] = field(default_factory=dict)  # student label → their submissions
    not_owned: dict[str, str] = field(default_factory=dict)  # submission → why its grade is blank
    without_submission: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if not self.roster:
            out.append("no --roster: grades.csv names each student by the submission's name (as SIS Login ID)")
        if self.unmatched:
            out.append(
                f"{len(self.unmatched)} submission(s) match no student on the roster (not in grades.csv): "
                + ", ".join(self.unmatched)
            )
        for sub, who in self.ambiguous.items():
            out.append(
                f"submission {sub} matches {len(who)} students ({', '.join(who)}); not in grades.csv: add a "
                "Submission column to the roster"
            )
        for who, subs in self.shared.items():
            out.append(f"{who} has {len(subs)} submissions ({', '.join(subs)}); not in grades.csv: keep one")
        for sub, why in self.not_owned.items():
            out.append(f"{sub}: grade left out, it is not the student's ({why}); grade it again")
        if self.without_submission:
            out.append(
                f"{len(self.without_submission)} student(s) on the roster have no submission: "
                + ", ".join(self.without_submission[:50])
                + (" …" if len(self.without_submission) > 50 else "")
            )
        return out

    def as_dict(self) -> dict:
        return {
            "roster": self.roster,
            "unmatched": self.unmatched,
            "ambiguous": self.ambiguous,
            "shared": self.shared,
            "not_owned": self.not_owned,
            "without_submission": self.without_submission,
        }


def not_owned(entry: Entry) -> str | None:
    """Why ``entry``'s score is not the student's to import (the lab or the harness failed, or a
    check could not be judged), or None."""
    if entry["outcome"] in ("lab-failed", "harness-failed"):
        return entry["outcome"]
    errors = [c["id"] for c in entry["checks"] if c["status"] == "error"]
    if errors and entry["outcome"] != "refused":
        return f"{len(errors)} check(s) in error: {', '.join(errors)}"
    return None


def _pairs(entries: list[Entry], roster: Roster | None, summary: Summary) -> list[tuple[dict, Student]]:
    """Each importable submission with its student."""
    if roster is None:
        return [(e, Student({"name": e["submission"], "sis_login_id": e["submission"]})) for e in entries]
    found: dict[int, list[dict]] = {}
    for e in entries:
        rows = roster.match(e["submission"])
        if not rows:
            summary.unmatched.append(e["submission"])
        elif len(rows) > 1:
            summary.ambiguous[e["submission"]] = [roster.students[r].label for r in rows]
        else:
            found.setdefault(rows[0], []).append(e)
    pairs = []
    for row, subs in sorted(found.items()):
        if len(subs) > 1:
            summary.shared[roster.students[row].label] = [e["submission"] for e in subs]
        else:
            pairs.append((subs[0], roster.students[row]))
    summary.without_submission = [s.label for n, s in enumerate(roster.students) if n not in found]
    return pairs


def _points(entry: Entry, summary: Summary) -> str:
    why = not_owned(entry)
    if why:
        summary.not_owned[entry["submission"]] = why
        return ""
    return str(entry["score"])


def feedback(entry: Entry) -> str:
    """One paragraph for the LMS's feedback field: the score, the outcome and the failed checks."""
    text = f"{entry['score']}/{entry['max_score']} points"
    if entry["outcome"] != "graded":
        text += f" ({entry['outcome']}: {entry['reason']})"
    failed = [
        f"{c['id']} ({c['reason'].splitlines()[0][:160]})" if c.get("reason") else c["id"]
        for c in entry["checks"]
        if c["status"] == "failed"
    ]
    if failed:
        text += ". Failed: " + "; ".join(failed)
    return text[:FEEDBACK_CHARS]


def import_files(
    entries: list[Entry], checks: list[dict], title: str, roster: Roster | None = None
) -> tuple[dict[str, str], Summary]:
    """The three import files (name → text) and the summary of what they leave out."""
    summary = Summary(roster=roster.source if roster else "")
    pairs = _pairs(entries, roster, summary)
    points = {e["submission"]: _points(e, summary) for e, _ in pairs}
    student_of = {e["submission"]: s.label for e, s in pairs}
    pairs = [(e, s) for e, s in pairs if points[e["submission"]]]  # a blank cell would clear a grade in Moodle
    maximum = max((e["max_score"] for e in entries), default=sum(c.get("points", 0) for c in checks))

    canvas = io.StringIO()
    w = csv.writer(canvas)
    w.writerow([*CANVAS_LEAD, title])
    w.writerow(["    Points Possible", "", "", "", "", maximum])
    for e, s in pairs:
        name = s.name or (f"{s.get('last')}, {s.get('first')}" if s.get("last") else s.label)
        w.writerow(
            [
                name,
                s.get("canvas_id"),
                s.get("sis_user_id") or s.get("idnumber"),
                s.get("sis_login_id") or s.get("username") or s.get("email"),
                s.get("section"),
                points[e["submission"]],
            ]
        )

    moodle = io.StringIO()
    w = csv.writer(moodle)
    w.writerow(["ID number", "Email address", "Username", "Submission", title, f"{title} feedback"])
    for e, s in pairs:
        w.writerow(
            [
                s.get("idnumber") or s.get("sis_user_id"),
                s.get("email"),
                s.get("username") or s.get("sis_login_id"),
                e["submission"],
                points[e["submission"]],
                feedback(e),
            ]
        )

    breakdown = io.StringIO()
    w = csv.writer(breakdown)
    w.writerow(
        ["Submission", "Student", "Score", "Max", "Outcome", *(f"{c['id']} ({c.get('points', '')})" for c in checks)]
    )
    for e in entries:
        by_id = {c["id"]: c for c in e["checks"]}
        w.writerow(
            [
                e["submission"],
                student_of.get(e["submission"], ""),
                e["score"],
                e["max_score"],
                e["outcome"],
                *((by_id.get(c["id"]) or {}).get("score", "") for c in checks),
            ]
        )
    return (
        {
            "grades.csv": canvas.getvalue(),
            "grades-moodle.csv": moodle.getvalue(),
            "grades-checks.csv": breakdown.getvalue(),
        },
        summary,
    )
