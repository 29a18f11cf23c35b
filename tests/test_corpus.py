"""The self-test corpora, graded in one batch per pack (tests/conftest.py): every check of every
write-up gets the verdict its expected.toml gives it (tests/data/submissions/ for hw3.8,
tests/data/lvs-nat/ for lvs-nat) — the correct variants full marks, each broken one exactly the
checks it should fail, for the reason it should."""

from __future__ import annotations

import tomllib

import pytest

from conftest import CORPUS, NAT_CORPUS, REAL, corpus
from lvs_harness.grading import listed_differences, verdict_differences

pytestmark = pytest.mark.lab
EXPECTED = tomllib.loads((CORPUS / "expected.toml").read_text())
NAT_EXPECTED = tomllib.loads((NAT_CORPUS / "expected.toml").read_text())
REAL_EXPECTED = tomllib.loads((REAL / "expected.toml").read_text()) if (REAL / "expected.toml").is_file() else {}


def test_expectations_cover_the_corpus():
    assert sorted(EXPECTED) == sorted(p.stem for p in corpus())
    assert len(EXPECTED) >= 12
    assert sum(not e["failed"] for e in EXPECTED.values()) >= 6  # correct variants
    assert sum(bool(e["failed"]) for e in EXPECTED.values()) >= 6  # broken ones


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_verdict_is_as_expected(graded, name):
    entry = graded["by_name"].get(name)
    assert entry is not None, graded["proc"].stdout[-2000:] + graded["proc"].stderr[-2000:]
    assert entry["outcome"] == "graded", entry["reason"]
    assert verdict_differences(entry, EXPECTED[name]["failed"]) == []
    assert entry["score"] == entry["max_score"] - sum(
        c["max_score"] for c in entry["checks"] if c["id"] in EXPECTED[name]["failed"]
    )


def test_configs_only_gets_its_ipvs_service_built_to_fit_and_says_so(graded):
    functions = {f["function"]: f for f in graded["by_name"]["correct-configs-only"]["functions"]}
    assert not functions["IPVS service on balancer1"]["student"]
    assert "built to fit" in functions["IPVS service on balancer1"]["how"]
    assert "ipvsadm -A -t 172.28.128.200:80 -s rr" in functions["IPVS service on balancer1"]["how"]
    assert functions["VRRP on balancer2 (keepalived vrrp_instance)"]["student"]
    assert not functions["topology (machines, networks, addresses)"]["student"]
    assert "reference" not in str(graded["by_name"]["correct-configs-only"]["functions"])


@pytest.mark.parametrize("name", sorted(REAL_EXPECTED))
def test_real_answers_are_judged_as_a_careful_grader_judges_them(graded, name):
    """Real public answers (../shared/real-hw38/): every verdict expected.toml lists — `pass`, `fail`,
    or `all_pass` — as graded in the batch; none with configs in its text is refused."""
    entry = graded["by_name"].get(name.removesuffix(".md"))
    assert entry is not None, graded["proc"].stdout[-2000:] + graded["proc"].stderr[-2000:]
    assert entry["outcome"] == "graded", entry["reason"]
    assert listed_differences(entry, REAL_EXPECTED[name]) == []


def test_nat_expectations_cover_its_corpus():
    assert sorted(NAT_EXPECTED) == sorted(p.stem for p in corpus(NAT_CORPUS))
    assert sum(bool(e["failed"]) for e in NAT_EXPECTED.values()) >= 4  # a write-up for each broken kind


def test_nat_example_scores_full_marks_with_its_charts(graded_nat):
    entry = graded_nat["by_name"].get("lvs-nat-writeup")
    assert entry is not None, graded_nat["proc"].stdout[-2000:] + graded_nat["proc"].stderr[-2000:]
    assert entry["outcome"] == "graded", entry["reason"]
    assert verdict_differences(entry, {}) == []
    assert entry["score"] == entry["max_score"] == 20
    assert graded_nat["book"]["pack"] == "lvs-nat"
    report = (graded_nat["out"] / entry["report"]).read_text()
    assert "LVS-NAT grading" in report and "hw3.8" not in report
    assert "Requests per real the weights call for" in report and "Who held 10.70.2.254" in report


@pytest.mark.parametrize("name", sorted(NAT_EXPECTED))
def test_every_nat_verdict_is_as_expected(graded_nat, name):
    entry = graded_nat["by_name"].get(name)
    assert entry is not None, graded_nat["proc"].stdout[-2000:] + graded_nat["proc"].stderr[-2000:]
    assert entry["outcome"] == "graded", entry["reason"]
    assert verdict_differences(entry, NAT_EXPECTED[name]["failed"]) == []


def test_a_writeup_for_another_pack_is_refused_saying_so(graded_nat):
    entry = graded_nat["by_name"]["hw38-writeup"]
    assert entry["outcome"] == "refused" and entry["score"] == 0
    assert "name none of pack lvs-nat's directors (director1, director2)" in entry["reason"], entry["reason"]
    assert "Traceback" not in (graded_nat["out"] / "hw38-writeup" / "pytest.log").read_text()
