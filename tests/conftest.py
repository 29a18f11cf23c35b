"""The graded batches shared by tests/test_corpus.py and tests/test_grade.py, run side by side: one
`lvs-harness grade` over the hw3.8 self-test corpus (tests/data/submissions/), the real example
write-up, the repository's example, the real answers, the hostile corpus (tests/data/hostile/) and
one submission per kind of bad input; and one
`lvs-harness grade --pack lvs-nat` over examples/lvs-nat-writeup.md and its corpus
(tests/data/lvs-nat/) — so the lab-heavy part of the tests costs one parallel run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lvs_harness.runs import Run
from lvs_harness.submission import load_submission
from support import EXAMPLE, SHARED

REPO = Path(__file__).resolve().parents[1]
WRITEUP = REPO / "examples" / "hw38-writeup.md"
CORPUS = Path(__file__).parent / "data" / "submissions"
NAT_WRITEUP = REPO / "examples" / "lvs-nat-writeup.md"
NAT_CORPUS = Path(__file__).parent / "data" / "lvs-nat"
REAL = SHARED / "real-hw38"  # real public answers, read in place (never copied here)
HOSTILE = Path(__file__).parent / "data" / "hostile"
BATCH_JOBS = 6
SECRET = "lvsh-secret-7f3a9c1e"  # planted on the grading machine behind a symlink (must show nowhere)
PROVISION_BUDGET = "90"  # the hw3.8 batch's provisioning budget (a correct lab needs ~5-10 s)


def corpus(folder: Path = CORPUS) -> list[Path]:
    return sorted(folder.glob("[0-9]*.md" if folder == REAL else "*.md"))  # real-hw38: the answers, not its README


def start_batch(root: Path, subs: list[Path], jobs: int, *args: str) -> subprocess.Popen:
    """One `lvs-harness grade` run over ``subs`` into root/reports, started."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lvs_harness.cli",
            "grade",
            *map(str, subs),
            "-j",
            str(jobs),
            "--lab",
            "uml",
            "--out",
            "reports",
            *args,
        ],  # relative, as in the quick start
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LVS_HARNESS_PROVISION_BUDGET": PROVISION_BUDGET},
    )


def finish_batch(root: Path, proc: subprocess.Popen) -> dict:
    """The finished batch: its process (stdout, stderr, returncode), gradebook and entries by name."""
    stdout, stderr = proc.communicate(timeout=1800)
    out = root / "reports"
    book = json.loads((out / "gradebook.json").read_text()) if (out / "gradebook.json").exists() else None
    return {
        "proc": subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr),
        "out": out,
        "book": book,
        "by_name": {e["submission"]: e for e in (book or {}).get("submissions", [])},
    }


def bad_inputs(root: Path) -> dict[str, Path]:
    """One submission per kind of bad input the grading issue names."""
    good = WRITEUP.read_text()
    files = {
        "nocode.md": "# Homework 3.8\n\nEverything works, see the screenshots.\n",
        "nohost.md": "balancer7 keepalived.conf:\n```\nvrrp_instance VI_1 {\n    priority 100\n}\n```\n",
        "rubysyntax.md": good.replace(
            '  config.vm.define "client" do |node|\n', '  config.vm.define "client" do |node|\n    if true do\n'
        ),
        "huge.md": "x" * 2_000_001,
        "images.md": "# Homework 3.8\n\nbalancer1:\n![keepalived.conf](b1.png)\n\nbalancer2:\n![conf](b2.png)\n",
    }
    out = {}
    for name, text in files.items():
        (root / name).write_text(text)
        out[name] = root / name
    (root / "binary.md").write_bytes(bytes(range(256)) * 8)
    (root / "emptydir").mkdir()
    out["binary.md"], out["emptydir"] = root / "binary.md", root / "emptydir"
    # a folder whose backup director powers the lab off when it becomes master
    sub = load_submission(WRITEUP)
    (root / "crasher" / "keepalived").mkdir(parents=True)
    (root / "crasher" / "keepalived" / "balancer1.conf").write_text(sub.keepalived["balancer1"].text)
    (root / "crasher" / "keepalived" / "balancer2.conf").write_text(
        "global_defs {\n    enable_script_security\n    script_user root\n}\n"
        + sub.keepalived["balancer2"].text.replace(
            "    advert_int 1\n",
            "    advert_int 1\n    notify_master \"/bin/sh -c 'umount /proc/sysrq-trigger; "
            "echo o > /proc/sysrq-trigger'\"\n",
        )
    )
    out["crasher"] = root / "crasher"
    # a folder whose balancer1.conf is a symlink to a file of the grading machine holding a secret
    (root / "secret.txt").write_text(SECRET + "\n")
    (root / "leaky" / "keepalived").mkdir(parents=True)
    (root / "leaky" / "keepalived" / "balancer1.conf").symlink_to(root / "secret.txt")
    (root / "leaky" / "keepalived" / "balancer2.conf").write_text(sub.keepalived["balancer2"].text)
    out["leaky"] = root / "leaky"
    return out


@pytest.fixture(scope="session")
def batches(tmp_path_factory):
    """Both batches, side by side: hw3.8's (the example, the repository's write-up, the bad inputs,
    the corpus) three labs at a time and lvs-nat's (its example write-up and corpus, and the hw3.8
    write-up, which is not an lvs-nat submission) one at a time — four labs at once, as one batch
    of -j 4 would run, and about as long as the larger alone."""
    if not EXAMPLE.is_file():
        pytest.skip(f"the example submission is not at {EXAMPLE}")
    runs_before = {r.id for r in Run.all()}
    hw38, nat = tmp_path_factory.mktemp("batch"), tmp_path_factory.mktemp("nat-batch")
    # the long runs first, the quick ones (refused, crashing) last: they fill the slots at the end
    procs = {
        "hw38": (
            hw38,
            start_batch(
                hw38,
                [EXAMPLE, WRITEUP, *corpus(REAL), *corpus(), *corpus(HOSTILE), *bad_inputs(hw38).values()],
                BATCH_JOBS - 1,
            ),
        ),
        "lvs-nat": (nat, start_batch(nat, [NAT_WRITEUP, *corpus(NAT_CORPUS), WRITEUP], 1, "--pack", "lvs-nat")),
    }
    try:
        done = {name: finish_batch(root, proc) for name, (root, proc) in procs.items()}
    except BaseException:
        for _, proc in procs.values():
            proc.terminate()
        raise
    done["hw38"]["runs_before"] = runs_before
    return done


@pytest.fixture(scope="session")
def graded(batches):
    """hw3.8's batch: process, output folder, gradebook and entries by submission name."""
    return batches["hw38"]


@pytest.fixture(scope="session")
def graded_nat(batches):
    """lvs-nat's batch (its example write-up, its corpus, and the hw3.8 write-up)."""
    return batches["lvs-nat"]
