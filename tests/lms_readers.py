"""How two LMSs read a grade-import CSV, ported from their own importers so the tests read our files
as they do (not as we think they do).

- ``canvas_import``: Canvas's ``GradebookImporter`` (instructure/canvas-lms,
  app/models/gradebook_importer.rb): the delimiter guess (; or ,), the header rule (Student, ID,
  then SIS User ID / SIS Login ID / Integration ID / Root Account, the last student column Section),
  every other column an assignment unless it is a score column (Current/Final/Override/Unposted …),
  "Title (id)" naming an existing assignment, the "Points Possible" row, muted rows skipped, and a
  student found by ID, then SIS User ID, then SIS Login ID, then name or sortable name.
- ``moodle_import``: Moodle's ``gradeimport_csv_load_data::prepare_import_grade_data``
  (grade/import/csv/classes/load_data.php): the grader's mapping of one column to a user field and
  of the others to grade items or their feedback; a row whose user is not found aborts the whole
  import; "" and "-" mean no grade; a non-number aborts ("badgrade").
"""

from __future__ import annotations

import csv
import io
import re

NON_ASSIGNMENT = re.compile(
    "|".join(
        (
            "Current Score",
            "Current Points",
            "Current Grade",
            "Final Score",
            "Final Points",
            "Final Grade",
            "Override Score",
            "Override Grade",
            "Override Status",
        )
    )
)


class ImportFailed(Exception):
    pass


def _canvas_delimiter(text: str) -> str:
    counts = {}
    for sep in (";", ","):
        sizes = {len(next(csv.reader([line], delimiter=sep), [])) for line in text.splitlines()[:3]}
        counts[sep] = sizes.pop() if len(sizes) == 1 else 0
    return ";" if counts[";"] > counts[","] else ","


def canvas_import(text: str, students: list[dict], assignments: dict[int, dict] | None = None) -> dict:
    """Read ``text`` as Canvas does for a course with ``students`` (dicts with id, name,
    sortable_name, sis_user_id, login_id) and existing ``assignments`` (id → {title, points}).
    Returns the assignments it would create or update (title, points_possible, new) and, per row,
    the student found (their id, or None for a student Canvas does not know) with their grades."""
    assignments = assignments or {}
    rows = [
        r
        for r in csv.reader(io.StringIO(text), delimiter=_canvas_delimiter(text))
        if not all(re.fullmatch(r"[;, ]*", c) for c in r)
    ]
    header = rows[0]
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        raise ImportFailed("Invalid header row")
    columns = 3
    sis_user = sis_login = None
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        sis_login, columns = 2, 4
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        extra = 1 if re.search(r"Integration\s+ID", header[4] if len(header) > 4 else "") else 0
        sis_user, sis_login, columns = 2, 3, 5 + extra
        if re.search(r"Root\s+Account", header[4 + extra] if len(header) > 4 + extra else ""):
            columns += 1
    if "Section" not in header[columns - 1]:
        raise ImportFailed("Invalid header row")
    made = []
    for index, name in enumerate(header):
        if index < columns or NON_ASSIGNMENT.search(name):
            continue
        m = re.fullmatch(r"(.*)\s\((\d+)\)", name)
        known = assignments.get(int(m[2])) if m else None
        known = known or next((a for a in assignments.values() if a["title"] == name), None)
        made.append(
            {
                "index": index,
                "title": known["title"] if known else name,
                "new": known is None,
                "points_possible": known["points"] if known else None,
            }
        )
    found = []
    for row in rows[1:]:
        if "Points Possible" in row[0]:
            for a in made:
                if a["index"] < len(row) and row[a["index"]]:
                    a["points_possible"] = row[a["index"]]
            continue
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", c, re.I) for c in row):
            continue
        student = next((s for s in students if row[1] and str(s["id"]) == row[1]), None)
        if student is None and sis_user is not None and row[sis_user]:
            student = next((s for s in students if s.get("sis_user_id") == row[sis_user]), None)
        if student is None and sis_login is not None and row[sis_login]:
            student = next((s for s in students if s.get("login_id") == row[sis_login]), None)
        if student is None:
            student = next((s for s in students if row[0] in (s["name"], s.get("sortable_name"))), None)
        found.append(
            {
                "student": student["id"] if student else None,
                "row_name": row[0],
                "grades": {a["title"]: row[a["index"]].strip() for a in made if a["index"] < len(row)},
            }
        )
    return {"assignments": [{k: a[k] for k in ("title", "points_possible", "new")} for a in made], "rows": found}


def moodle_import(
    text: str, users: list[dict], map_from: str, map_to: str, mapping: dict[str, str], items: dict[str, float]
) -> dict:
    """Read ``text`` as Moodle does, the grader having chosen ``map_from`` (a column) → ``map_to``
    (userid, useridnumber, useremail or username) and ``mapping`` (column → grade item name, or
    "feedback:<item>"; unmapped columns are ignored). ``items``: the course's grade items and their
    maximum grades. Returns {user id: {item: grade}} and {user id: {item: feedback}}; raises
    ImportFailed as Moodle aborts the import."""
    field = {"userid": "id", "useridnumber": "idnumber", "useremail": "email", "username": "username"}[map_to]
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]]
    grades: dict = {}
    feedback: dict = {}
    for line in rows[1:]:
        if len(line) <= 1:
            continue
        student, new, notes = None, {}, {}
        for key, value in enumerate(line):
            value = value.strip()
            column = header[key]
            if column == map_from:
                if value:
                    user = next((u for u in users if str(u.get(field, "")) == value), None)
                    if user is None:
                        raise ImportFailed(f"User mapping error: could not find user with {field} of {value!r}")
                    student = user["id"]
            elif mapping.get(column, "").startswith("feedback:"):
                notes[mapping[column].split(":", 1)[1]] = value
            elif column in mapping:
                item = mapping[column]
                if value in ("", "-"):
                    new[item] = None
                else:
                    try:
                        new[item] = float(value.replace(",", "."))
                    except ValueError:
                        raise ImportFailed(f"badgrade: {value!r} in column {column!r}") from None
                    if new[item] > 100:
                        raise ImportFailed("gradevaluetoobig")
        if student is None:
            raise ImportFailed("usermappingerrorusernotfound")
        grades[student] = {k: (min(v, items[k]) if v is not None else None) for k, v in new.items()}
        feedback[student] = notes
    return {"grades": grades, "feedback": feedback}
