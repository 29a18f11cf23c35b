"""`lvs-harness grade` on a real batch (tests/conftest.py: the real example write-up, the repository's
example, each kind of bad input and the self-test corpus, four labs at a time); then the
example's report rendered in headless Chromium."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lvs_harness import charts
from lvs_harness.books import CSV_FIELDS
from lvs_harness.grading import listed_differences
from lvs_harness.runs import Run
from lvs_harness.submission import load_submission
from conftest import HOSTILE, PROVISION_BUDGET, REAL, SECRET, WRITEUP, corpus

pytestmark = pytest.mark.lab
RUN_NETNS = re.compile(r"lvsh-[0-9a-f]{6}-")  # a run's namespaces (lvsh-vagrant is libvirt's, shared)


def marked_processes(ignore: set[str]) -> list[tuple[int, str]]:
    """(pid, run id) of processes carrying a run id, except those of the runs in ``ignore``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for var in env:
            if var.startswith(b"LVS_HARNESS_RUN=") and var[16:].decode() not in ignore:
                found.append((int(pid), var[16:].decode()))
    return found


def checks(entry) -> dict:
    return {c["id"]: c for c in entry["checks"]}


def test_batch_exits_zero_and_books_every_submission(graded):
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert list(graded["by_name"]) == [
        "example-submission",
        "hw38-writeup",
        *(p.stem for p in corpus(REAL)),
        *(p.stem for p in corpus()),
        *(p.stem for p in corpus(HOSTILE)),
        "nocode",
        "nohost",
        "rubysyntax",
        "huge",
        "images",
        "binary",
        "emptydir",
        "crasher",
        "leaky",
    ]
    assert "reports: reports/index.html" in proc.stdout
    for entry in graded["by_name"].values():
        assert len(entry["checks"]) == 13 and entry["max_score"] == 24
        assert {c["status"] for c in entry["checks"]} <= {"passed", "failed", "error"}
        assert (graded["out"] / entry["report"]).is_file()
    rows = list(csv.DictReader((graded["out"] / "gradebook.csv").open()))
    assert tuple(rows[0]) == CSV_FIELDS and len(rows) == len(graded["by_name"]) * 13
    index = (graded["out"] / "index.html").read_text()
    for name in graded["by_name"]:
        assert f"href='{name}/report.html'" in index
    # the cohort compared: its two near-copies are listed (tests/test_similarity.py says why), nothing else
    book = json.loads((graded["out"] / "gradebook.json").read_text())
    assert {(p["a"], p["b"]) for p in book["similar"]} == {
        ("04-grigoriyazatyan-inline-backtick-configs", "13-omegam-balancers-chk-nginx"),
        ("broken-wrr-weights", "correct-rr-weights"),
    }
    assert "<h2>Similar work</h2>" in index and "<b>broken-wrr-weights</b> and <b>correct-rr-weights</b>" in index


def test_failed_checks_say_why_from_the_live_lab(graded):
    """A failed check's reason starts with its diagnosis (tests/test_diagnosis.py): the first broken
    link, observed on the lab, and its fix; a passing run looks for none."""
    by = graded["by_name"]
    assert re.search(
        r"balancer1 and balancer2 are both MASTER: they announce virtual_router_id 5[12] and 5[12], so "
        r"neither hears the other",
        checks(by["broken-split-brain"])["vip_on_master"]["reason"],
    )
    assert checks(by["broken-no-ipvs-on-backup"])["failover"]["reason"].startswith(
        "balancer2 holds the VIP 172.28.128.200 but has no IPVS service for 172.28.128.200:80"
    )
    assert (
        "the service is persistent (persistence_timeout 5), so one client always reaches the same real"
        in checks(by["01-dokdev-linked-configs-192.168.17"])["traffic_via_vip"]["reason"]
    )
    for name in ("example-submission", "hw38-writeup"):
        assert not [c["id"] for c in by[name]["checks"] if any(k.startswith("diagnosis") for k in c["measured"])]
    # every failed check of the self-test corpus has one, but those whose own reason is the cause
    # (keepalived's messages; priorities or a scheduler read from the configuration)
    undiagnosed = {
        (p.stem, c["id"])
        for p in corpus()
        for c in by[p.stem]["checks"]
        if c["status"] == "failed" and not c["reason"].startswith("not run") and "diagnosis" not in c["measured"]
    }
    assert undiagnosed == {
        ("broken-config-syntax", "config_valid"),
        ("broken-equal-priorities-inline", "vip_on_master"),
        ("broken-wrr-weights", "ipvs_service"),
    }


PYTEST_TEXT = re.compile(
    r"^assert |^\s*\+\s+where |object at 0x|Counter\(|<generator|Full diff|Left contains|"
    r"Request\(|\[\]|\{\}|\{'[^']*': |\[\('|\['[^']*', '|\{\d+: |\{None: ",
    re.M,
)  # dict/list reprs


@pytest.mark.parametrize("batch", ["graded", "graded_nat"])
def test_reasons_are_sentences_not_pytests_text(batch, request):
    """A check's reason is the check's own words: no assertion rewriting, object reprs or raw
    dict/list reprs (the staff report keeps pytest's text in its log)."""
    book = request.getfixturevalue(batch)
    found = [
        (name, c["id"], c["reason"][:300])
        for name, e in book["by_name"].items()
        for c in e["checks"]
        if PYTEST_TEXT.search(c["reason"])
    ]
    assert found == []


def test_good_submissions_score_full_marks(graded):
    for name in ("example-submission", "hw38-writeup"):
        entry = graded["by_name"][name]
        assert (entry["outcome"], entry["score"]) == ("graded", 24), [
            (c["id"], c["status"], c["reason"]) for c in entry["checks"] if c["status"] != "passed"
        ]
        assert entry["backend"] == "uml" and entry["timing"] == "fast"
    parts = {p["part"]: p for p in graded["by_name"]["example-submission"]["parts"]}
    assert parts["balancer2 keepalived.conf"]["student"]
    assert (
        "removed the shell prompt line 'root@balancer2:/home/vagrant# cat /etc/keepalived/keepalived.conf'"
        in parts["balancer2 keepalived.conf"]["notes"]
    )


@pytest.mark.parametrize(
    "name, words",
    [
        ("nocode", "has no code blocks"),
        ("nohost", "raise no virtual address (no virtual_ipaddress)"),
        ("emptydir", "is empty"),
        ("binary", "is a binary file"),
        ("huge", "over the 1000000-byte limit"),
        ("rubysyntax", "rubysyntax.md, block 1 ('Vagrantfile:') line 34: SyntaxError"),
    ],
)
def test_bad_input_is_refused_with_the_problem_named(graded, name, words):
    entry = graded["by_name"][name]
    assert entry["outcome"] == "refused" and entry["score"] == 0
    assert words in entry["reason"], entry["reason"]
    assert all(c["status"] == "error" and words in c["reason"] for c in entry["checks"])
    assert words in html.unescape((graded["out"] / entry["report"]).read_text())


def test_configs_only_in_images_are_a_verdict_of_nothing_to_run(graded):
    entry = graded["by_name"]["images"]
    assert (entry["outcome"], entry["score"]) == ("nothing-to-run", 0)
    assert "(it shows 2 image(s)); hand the configs in as text" in entry["reason"], entry["reason"]


HOSTILE_EXPECTED = tomllib.loads((HOSTILE / "expected.toml").read_text())


def test_hostile_expectations_cover_the_corpus():
    assert sorted(HOSTILE_EXPECTED) == sorted(p.stem for p in corpus(HOSTILE))


@pytest.mark.parametrize("name", sorted(HOSTILE_EXPECTED))
def test_hostile_work_ends_in_bounded_time_with_its_outcome_and_owner(graded, name):
    """Each hostile case (tests/data/hostile/) is graded once, in bounded time, with the outcome its
    expected.toml gives; what a graded one did in one host left every other check as it was."""
    want, entry = HOSTILE_EXPECTED[name], graded["by_name"][name]
    assert entry["outcome"] == want["outcome"], entry["reason"]
    assert len(entry.get("attempts", [])) <= 1  # never graded again as the machine's fault
    assert entry["duration"] < float(PROVISION_BUDGET) + 120
    if want["outcome"] == "graded":
        assert listed_differences(entry, want) == []
    else:
        assert want["reason"] in entry["reason"] and entry["score"] == 0, entry["reason"]


def test_a_provisioner_that_never_ends_costs_its_budget_once_and_is_the_students(graded):
    entry = graded["by_name"]["hang"]
    assert (entry["outcome"], entry["score"]) == ("submission-fault", 0), entry["reason"]
    assert (
        "client's provisioner hang" in entry["reason"]
        and f"was still running when the lab's provisioning budget of {PROVISION_BUDGET} s ran out" in entry["reason"]
        and "'waiting'" in entry["reason"]
    ), entry["reason"]


def test_hostile_output_reaches_no_output_whole(graded):
    """300 MB printed by a provisioner: the lab kept 2 MiB of it (tests/test_hostile.py), and nothing the
    run wrote holds more than a few MB."""
    folder = (graded["out"] / graded["by_name"]["flood"]["report"]).parent
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert sizes and max(sizes.values()) < 4 << 20, sizes


def test_a_vagrantfile_reads_only_the_guests_files(graded):
    machine_id = Path("/etc/machine-id").read_text().strip()
    assert machine_id
    leaks = [p for p in graded["out"].rglob("*") if p.is_file() and machine_id.encode() in p.read_bytes()]
    assert leaks == []


def test_a_file_of_the_grading_machine_behind_a_symlink_is_never_read(graded):
    """The planted secret appears in no output: reports, results, gradebook, exports, logs."""
    entry = graded["by_name"]["leaky"]
    assert entry["outcome"] == "refused" and entry["score"] == 0
    assert (
        "keepalived/balancer1.conf in the submission cannot be read: it leads outside the submission folder"
        in entry["reason"]
    ), entry["reason"]
    leaks = [p for p in graded["out"].rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == [] and SECRET not in graded["proc"].stdout + graded["proc"].stderr


def test_a_lab_crashed_by_its_submission_is_recorded_as_such(graded):
    entry = graded["by_name"]["crasher"]
    assert entry["outcome"] == "lab-crashed"
    assert entry["reason"].startswith("during check vip_by_keepalived: the lab's guest has stopped"), entry["reason"]
    by_id = checks(entry)
    assert [by_id[k]["status"] for k in ("config_valid", "directors_separate", "vip_on_master")] == ["passed"] * 3
    assert all(
        c["status"] == "error"
        for k, c in by_id.items()
        if k not in ("config_valid", "directors_separate", "vip_on_master")
    )
    assert entry["score"] == 4


def test_nothing_is_left_running(graded):
    assert {r.id for r in Run.all()} <= graded["runs_before"]
    assert marked_processes(ignore=graded["runs_before"]) == []  # (a session's lab may be up meanwhile)
    if os.path.isdir("/run/netns"):
        assert [
            n
            for n in os.listdir("/run/netns")
            if RUN_NETNS.match(n) and not any(n.startswith(f"lvsh-{r}-") for r in graded["runs_before"])
        ] == []
    assert not [p for p in graded["out"].iterdir() if p.name.startswith(".") and p.name != ".lvs-harness-reports"]


CHROMIUM = [
    "unshare",
    "--net",
    "--",
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=5000",
]


def test_report_renders_with_visible_charts_in_headless_chromium(graded, tmp_path):
    """The report is opened in a real Chromium (in a network namespace of its own: a
    self-contained report needs no network); its table is built by the page's script and its
    charts are painted: the screenshot holds the charts' colours."""
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed; run install.sh")
    from PIL import Image

    report = graded["out"] / "example-submission" / "report.html"
    dom = subprocess.run([*CHROMIUM, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "test_hw38.py::test_failover" in dom.stdout  # rows the page's script built
    for kind in ("bars", "timeline", "lines"):
        assert f'class="lvsh-chart lvsh-{kind}"' in dom.stdout
    png = tmp_path / "report.png"
    shot = subprocess.run(
        [*CHROMIUM, "--window-size=1280,3200", f"--screenshot={png}", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    colours = Image.open(png).convert("RGB").getcolors(maxcolors=1 << 20)
    count = {rgb: n for n, rgb in colours}

    def pixels(hex_colour: str) -> int:
        return count.get(tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)), 0)

    assert pixels(charts.PALETTE[0]) > 20_000 and pixels(charts.PALETTE[1]) > 20_000, (
        "the bar and timeline charts are not painted"
    )
    assert pixels(charts.OK) > 100, "the client probes lane is not painted"


def test_netns_grading_refuses_scripts_with_the_reason_in_the_report(tmp_path):
    sub = tmp_path / "scripted" / "keepalived"
    sub.mkdir(parents=True)
    text = load_submission(WRITEUP).keepalived["balancer1"].text
    (sub / "balancer1.conf").write_text(
        text.replace("    advert_int 1\n", "    advert_int 1\n    notify_master /usr/local/bin/hello.sh\n")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lvs_harness.cli",
            "grade",
            str(sub.parent),
            "--lab",
            "netns",
            "--out",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = json.loads((tmp_path / "reports" / "gradebook.json").read_text())["submissions"][0]
    assert entry["outcome"] == "refused"
    assert "balancer1: notify_master /usr/local/bin/hello.sh" in entry["reason"]
    assert "--allow-scripts" in entry["reason"]
    report = html.unescape((tmp_path / "reports" / "scripted" / "report.html").read_text())
    assert "would let keepalived run these commands as root on this machine" in report


def test_a_run_that_ends_in_error_is_graded_again_in_a_fresh_lab(tmp_path):
    """A grading run stopped for taking too long is the harness's fault (harness-failed), never
    the student's: grade runs it again in a fresh lab, and the gradebook and the index show
    both attempts, each with its own run."""
    from lvs_harness.books import prepare_out
    from lvs_harness.grading import Grader, RunSpec

    lines = []
    prepare_out(tmp_path / "reports")
    spec = RunSpec.of(backend="uml", timeout=25)
    grader = Grader(tmp_path / "reports", spec, jobs=1, retries=1, progress=lines.append)
    entry = grader.grade([WRITEUP])[0]
    assert entry["outcome"] == "harness-failed"
    assert [a["attempt"] for a in entry["attempts"]] == [1, 2]
    assert all(a["outcome"] == "harness-failed" for a in entry["attempts"]), entry["attempts"]
    assert any(
        "attempt 1 ended in error (harness-failed" in line and "grading it again in a fresh lab" in line
        for line in lines
    ), lines
    # the runs' structured events (report.emit) are relayed: each attempt's lab came up
    assert sum(": lab " in line and " is up (" in line for line in lines) == 2, lines
    book = json.loads((tmp_path / "reports" / "gradebook.json").read_text())
    assert len(book["submissions"][0]["attempts"]) == 2
    rows = list(csv.DictReader((tmp_path / "reports" / "gradebook.csv").open()))
    assert re.fullmatch(
        r"1: harness-failed \d+/24(, error in .*)?; 2: harness-failed \d+/24(, error in .*)?", rows[0]["attempts"]
    ), rows[0]["attempts"]
    assert "<td title='1: harness-failed" in (tmp_path / "reports" / "index.html").read_text()
    assert not [
        p for p in (tmp_path / "reports").iterdir() if p.name.startswith(".") and p.name != ".lvs-harness-reports"
    ]


def test_errors_are_retried_and_flagged_failures_are_not():
    from lvs_harness.books import index_html
    from lvs_harness.attempt import retry_reason

    check = {"id": "failover", "title": "", "score": 0, "max_score": 3, "measured": {}}
    failed = {"outcome": "graded", "reason": "", "checks": [{**check, "status": "failed", "reason": "owners []"}]}
    errored = {
        "outcome": "graded",
        "reason": "",
        "checks": [{**check, "status": "error", "reason": "could not observe …"}],
    }
    assert retry_reason(failed) is None
    assert retry_reason(errored).startswith("1 check(s) in error, first failover")
    assert retry_reason({**errored, "outcome": "lab-crashed"}) is None  # the submission's own doing
    assert retry_reason({**errored, "outcome": "refused"}) is None
    page = index_html(
        [
            {
                **errored,
                "submission": "alice",
                "report": "alice/report.html",
                "score": 0,
                "max_score": 3,
                "duration": 1.0,
            }
        ],
        [{"id": "failover", "title": "", "points": 3}],
    )
    assert "1 submission(s) have checks that could not be judged" in page and "⚠ 1 in error" in page
    # what a submission brings (its name, reasons quoting its files) is text on the page, never markup
    hostile = index_html(
        [
            {
                **errored,
                "submission": "<img src=x onerror=alert(1)>",
                "report": "x/report.html",
                "score": 0,
                "max_score": 3,
                "duration": 1.0,
                "reason": "'><script>alert(1)</script>",
            }
        ],
        [{"id": "failover", "title": "", "points": 3}],
    )
    assert "<script>" not in hostile and "<img" not in hostile and "&lt;img src=x" in hostile
