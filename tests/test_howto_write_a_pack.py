"""How to write a pack — docs/write-a-pack.md, as a test that runs it.

A pack is a Python package: a ``PACK`` (what the lab is), a reference Vagrantfile (the lab), and a
suite (pytest tests carrying ``@pytest.mark.check``). Nothing is installed: the pack lives in a
folder on ``PYTHONPATH`` and is named with ``--pack``. (Installed packs register an entry point in
the group ``lvs_harness.packs`` instead, and then appear in ``lvs-harness packs``.)

This one — "tinylab", in examples/tinylab/ — has one director and one real, names none of hw3.8's hosts or addresses,
runs a plain Ruby HTTP server instead of nginx (a daemon of its own, ``units``), lets the harness
read its virtual service from the director's keepalived.conf, and has one check. The test grades
a student's write-up with it, and a broken one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import shutil
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

# The pack, as real files a lab author copies: examples/tinylab/ — the lab (Vagrantfile, the single
# source of truth, `vagrant up`-able too), the pack (__init__.py: what the harness needs to know about
# the lab; `services` is left out, read from the director's keepalived.conf once the lab is up) and
# the suite (test_tinylab.py: checks are pytest tests with a stable id and points).
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tinylab"
VAGRANTFILE = (EXAMPLE / "Vagrantfile").read_text()
PACK = (EXAMPLE / "__init__.py").read_text()
SUITE = (EXAMPLE / "test_tinylab.py").read_text()
# A student's write-up: only lb1's keepalived.conf (the lab is built to fit it: lb1, the real of its
# virtual_server named after the pack's real pattern (web1), a client; what it does not show is built) ...
WRITEUP = (EXAMPLE.parent / "tinylab-writeup.md").read_text()
# ... and a broken one: IPVS masquerades (NAT) where the lab is direct routing, so web1 answers the
# client itself, from its own address, and no request is answered through lb1.
BROKEN = WRITEUP.replace("lb_kind DR", "lb_kind NAT")


def write_pack(root: Path) -> Path:
    """The example pack copied into ``root``/packs (a folder to put on PYTHONPATH)."""
    shutil.copytree(EXAMPLE, root / "packs" / "tinylab", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "packs"


def test_a_pack_written_from_scratch_grades_a_submission(tmp_path):
    packs = write_pack(tmp_path)
    (tmp_path / "alice.md").write_text(WRITEUP)
    (tmp_path / "bob.md").write_text(BROKEN)
    # as docs/write-a-pack.md says: the pack's folder on PYTHONPATH, relative to where grade is run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [packs.name, os.environ.get("PYTHONPATH")]))}
    # its checks on its own reference lab, from pytest (the pack is found from the suite being run),
    # side by side with grading two write-ups with it
    ref = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "tinylab",
            "--lab",
            "uml",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--results-json={tmp_path / 'ref.json'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvs_harness.cli",
            "grade",
            "--pack",
            "tinylab",
            "alice.md",
            "bob.md",
            "--lab",
            "uml",
            "-j",
            "2",
            "--out",
            "reports",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    ref_out = ref.communicate(timeout=600)[0]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    book = json.loads((tmp_path / "reports" / "gradebook.json").read_text())
    assert book["pack"] == "tinylab" and [c["id"] for c in book["checks"]] == ["config_valid", "answers"]
    alice, bob = book["submissions"]
    assert (alice["outcome"], alice["score"], alice["max_score"]) == ("graded", 3, 3), alice["checks"]
    assert alice["checks"][1]["measured"]["by_real"] == {"web1": 5}
    # bob's keepalived runs his config (1 point), but no request is answered through lb1; the diagnosis,
    # looked at on the lab, says why
    assert (bob["outcome"], bob["score"]) == ("graded", 1) and bob["checks"][1]["status"] == "failed", bob["checks"]
    assert "masquerad" in bob["checks"][1]["reason"], bob["checks"][1]["reason"]
    report = (tmp_path / "reports" / "alice" / "report.html").read_text()
    assert "Tiny lab grading" in report and "lb1 keepalived.conf" in report
    assert ref.returncode == 0 and "2 passed" in ref_out, ref_out[-3000:]
    assert json.loads((tmp_path / "ref.json").read_text())["pack"] == "tinylab"


def test_packs_lists_a_pack_and_refuses_bad_ones_in_one_sentence(tmp_path):
    """Bad packs: unknown, failing to import, no reference Vagrantfile, a check id twice."""
    packs = write_pack(tmp_path)
    broken = {
        "noimport": "import not_a_module_anywhere\n",
        "noref": PACK.replace('with_name("Vagrantfile")', 'with_name("Missing")').replace('"tinylab"', '"noref"'),
        "twice": PACK.replace('"tinylab"', '"twice"'),
    }
    for name, text in broken.items():
        (packs / name).mkdir()
        (packs / name / "__init__.py").write_text(textwrap.dedent(text))
        (packs / name / "Vagrantfile").write_text(VAGRANTFILE)
    (packs / "twice" / "test_twice.py").write_text(
        textwrap.dedent(SUITE) + textwrap.dedent(SUITE).replace("def test_answers", "def test_answers_again")
    )
    env = {**os.environ, "PYTHONPATH": str(packs)}

    def grade(pack: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lvs_harness.cli", "grade", "--pack", pack, "x.md", "--out", "reports"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    (tmp_path / "x.md").write_text(WRITEUP)
    expected = {
        "nosuchpack": "no pack named 'nosuchpack'; installed packs: hw38, lvs-nat",
        "noimport": "pack noimport could not be loaded (it imports not_a_module_anywhere, which is missing)",
        "noref": "pack noref has no reference Vagrantfile",
        "twice": "declares check id 'answers' twice",
    }
    for pack, words in expected.items():
        res = grade(pack)
        assert res.returncode == 2 and words in res.stderr, (pack, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "reports").exists()  # refused before anything was written
    listed = subprocess.run([sys.executable, "-m", "lvs_harness.cli", "packs"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and "hw38" in listed.stdout and "lvs-nat" in listed.stdout, listed.stdout
