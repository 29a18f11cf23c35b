"""Grading where course staff are, on real labs: a cohort graded as shards by a real Slurm job array
then merged equals one run, --resume skips what is graded, Gradescope's run_autograder in an /autograder layout, and a
student's self-check. They use the tutorial's one-check pack (tests/test_howto_write_a_pack.py),
whose lab comes up in seconds, so six submissions cost what one hw3.8 run does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from lvs_harness.labs.image import ensure_image
import slurm_cluster
from test_howto_write_a_pack import BROKEN, WRITEUP, write_pack

pytestmark = pytest.mark.lab
SCHEMAS = Path(__file__).parent / "data" / "schemas"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A folder with the tiny pack on PYTHONPATH and six write-ups, three of them broken."""
    root = tmp_path_factory.mktemp("tiny")
    packs = write_pack(root)
    subs = []
    for i in range(6):
        path = root / f"student{i}.md"
        path.write_text(WRITEUP if i % 2 == 0 else BROKEN)
        subs.append(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(packs), os.environ.get("PYTHONPATH")]))}
    return {"root": root, "subs": subs, "env": env}


def cli_run(tiny, *args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lvs_harness.cli", *args],
        cwd=tiny["root"],
        env=tiny["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def verdicts(out: Path) -> dict:
    book = json.loads((out / "gradebook.json").read_text())
    return {
        e["submission"]: (e["outcome"], e["score"], [(c["id"], c["status"], c["score"]) for c in e["checks"]])
        for e in book["submissions"]
    }


SHARDS = 4
slurm = slurm_cluster.slurm  # the fixture


def test_a_slurm_job_array_grades_shards_a_dependent_job_merges_them_and_resume_skips_them(tiny, slurm):
    """docs/platforms.md's Slurm recipe on a real (one-node) Slurm cluster: an array task per shard with
    ``--shard auto``, a merge job after them all (``afterany``: it runs, and says what is missing, even
    when a task failed); the merged books equal an unsharded run's."""
    names = [str(p) for p in tiny["subs"]]
    slurm.env.update(tiny["env"])
    cli = f"{sys.executable} -m lvs_harness.cli"
    array = slurm.sbatch(
        f"--array=0-{SHARDS - 1}",
        "-D",
        str(tiny["root"]),
        "-o",
        "shard-%a.log",
        "-c",
        "1",
        "--wrap",
        f"{cli} grade --pack tinylab {' '.join(names)} --lab uml -j 1 --shard auto --out shard-$SLURM_ARRAY_TASK_ID",
    )
    merge = slurm.sbatch(
        f"--dependency=afterany:{array}",
        "-D",
        str(tiny["root"]),
        "-o",
        "merge.log",
        "--wrap",
        f"{cli} merge {' '.join(f'shard-{k}' for k in range(SHARDS))} --out merged",
    )
    whole = cli_run(
        tiny, "grade", "--pack", "tinylab", *names, "--lab", "uml", "-j", "2", "--out", "whole", "--format", "junit"
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    state = slurm.wait(merge)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(tiny["root"].glob("*.log")))
    assert state == "COMPLETED", f"merge job {state}{logs}{slurm.logs()}"
    books = [json.loads((tiny["root"] / f"shard-{k}" / "gradebook.json").read_text()) for k in range(SHARDS)]
    assert sorted(b["shard"] for b in books) == [f"{k}/{SHARDS}" for k in range(1, SHARDS + 1)], logs
    graded = [{e["submission"] for e in b["submissions"]} for b in books]
    assert sum(map(len, graded)) == 6 and set.union(*graded) == {p.stem for p in tiny["subs"]}
    assert verdicts(tiny["root"] / "merged") == verdicts(tiny["root"] / "whole"), logs
    scores = {name: v[1] for name, v in verdicts(tiny["root"] / "whole").items()}
    assert scores == {f"student{i}": 3 if i % 2 == 0 else 1 for i in range(6)}  # the broken ones: config_valid only
    for name in scores:
        assert (tiny["root"] / "merged" / name / "report.html").is_file()
        assert (tiny["root"] / "whole" / name / "junit.xml").is_file()
    for name in ("grades.csv", "grades-checks.csv"):  # (reasons, and so feedback, carry timings)
        assert (tiny["root"] / "merged" / name).read_text() == (tiny["root"] / "whole" / name).read_text()
    # the same inputs again with --resume: nothing is graded again
    again = cli_run(
        tiny, "grade", "--pack", "tinylab", *names, "--lab", "uml", "--out", "whole", "--resume", timeout=120
    )
    assert again.returncode == 0 and "--resume: skipped 6 submission(s)" in again.stderr, again.stderr[-2000:]
    assert "started" not in again.stderr


def test_run_autograder_in_an_autograder_layout(tiny, tmp_path):
    zip_path = tmp_path / "autograder.zip"
    built = cli_run(
        tiny,
        "gradescope",
        "build",
        "--pack",
        "tinylab",
        "--out",
        str(zip_path),
        "--image-url",
        "file:///srv/lvs-harness/rootfs.img",
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        assert {
            "setup.sh",
            "run_autograder",
            "lvs-harness/pyproject.toml",
            "lvs-harness/lvs_harness/cli/__init__.py",
            "linux.uml",
        } <= set(names)
        assert (z.getinfo("linux.uml").external_attr >> 16) & 0o111
        z.extract("linux.uml", tmp_path / "alice" / "source")
        assert (z.getinfo("run_autograder").external_attr >> 16) & 0o111
        setup = z.read("setup.sh").decode()
        z.extract("run_autograder", tmp_path)
    assert "/srv/lvs-harness/rootfs.img" in setup and "mmdebstrap" not in setup
    assert subprocess.run(["bash", "-n", "-c", setup]).returncode == 0
    script = tmp_path / "run_autograder"
    script.chmod(0o755)
    env = {**tiny["env"], "LVS_HARNESS_PYTHON": sys.executable, "LVS_HARNESS_IMAGE": str(ensure_image(print))}
    (tmp_path / "alice" / "source" / "linux.uml").chmod(0o755)  # the kernel run_autograder uses (its default)
    results = {}
    for case, files in (("alice", {"write-up.md": WRITEUP}), ("empty", {"notes.txt": "I will hand it in later"})):
        root = tmp_path / case
        for sub in ("submission", "results", "source"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / "submission" / name).write_text(text)
        run = subprocess.run(
            [str(script)],
            cwd=root,
            env={**env, "AUTOGRADER_ROOT": str(root)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        results[case] = json.loads((root / "results" / "results.json").read_text())
        jsonschema.validate(results[case], json.loads((SCHEMAS / "gradescope-results.schema.json").read_text()))
    assert results["alice"]["score"] == 3 and {t["status"] for t in results["alice"]["tests"]} == {"passed"}
    assert results["empty"]["score"] == 0 and "nothing to grade" in results["empty"]["output"]
    assert "markdown write-up" in results["empty"]["output"]


def test_a_student_checks_their_own_lab(tiny):
    runs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lvs_harness.cli",
                "check",
                "--pack",
                "tinylab",
                str(tiny["subs"][i]),
                "--lab",
                "uml",
                "--out",
                f"self-{name}",
            ],
            cwd=tiny["root"],
            env=tiny["env"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, i in (("good", 0), ("bad", 1))
    }
    (good_out, good_err), (bad_out, bad_err) = (runs[n].communicate(timeout=600) for n in ("good", "bad"))
    assert runs["good"].returncode == 0, good_out[-2000:] + good_err[-2000:]
    assert "✓ answers: five requests to the VIP" in good_out and "2 of 2 checks passed" in good_out
    assert runs["bad"].returncode == 1, bad_out[-2000:] + bad_err[-2000:]
    # the failed check says why, from the lab, and the fix, in place of its general hint
    assert "✗ answers" in bad_out and "why: IPVS rewrites requests to the real's address (masquerading)" in bad_out
    assert "fix: use direct routing" in bad_out and "hint: Is the VIP on lb1" not in bad_out
    assert "report: self-bad/student1/report.html" in bad_out
    assert "lab " in bad_err and " is up" in bad_err  # progress while the lab came up (plain lines)
    report = (tiny["root"] / "self-bad" / "student1" / "report.html").read_text()
    assert "&lt;b&gt;Why:&lt;/b&gt; IPVS rewrites requests" in report and "&lt;b&gt;Fix:&lt;/b&gt; use direct" in report
    assert "Traceback" not in report and "def test_answers" not in report and "assert [a.real" not in report
