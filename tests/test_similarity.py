"""Copied work, flagged (``lvs_harness.similarity``): on the self-test corpora and the real answers,
the near-copies are the pairs listed and nothing else is; what a copier changes (addresses, names,
comments, order, defaults) does not hide a copy; the reference's lines are no evidence; the index and
the gradebook list the pairs and no score changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lvs_harness import similarity
from lvs_harness.books import write_books
from lvs_harness.grading import fingerprint_of
from lvs_harness.shards import merge
from lvs_harness.packs import load_pack
from lvs_harness.submission import Part, Submission
from support import SHARED

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
PACK = load_pack("hw38")


def cohort(paths) -> list[dict]:
    return [{"submission": p.stem, "fingerprint": fingerprint_of(p, PACK)} for p in paths]


def flagged(entries) -> dict[frozenset, dict]:
    return {frozenset((p["a"], p["b"])): p for p in similarity.pairs(entries)}


def test_the_corpus_near_copies_are_flagged_and_nothing_else():
    ours = (
        sorted((DATA / "copies").glob("*.md"))
        + sorted((DATA / "submissions").glob("*.md"))
        + [REPO / "examples" / "hw38-writeup.md"]
    )
    real = sorted((SHARED / "real-hw38").glob("[0-9]*.md")) + [SHARED / "hw3.8" / "example-submission.md"]
    if not all(p.is_file() for p in real):
        pytest.skip(f"the real answers are not at {SHARED} (set LVS_HARNESS_SHARED)")
    entries = cohort(ours + real)
    assert all(e["fingerprint"] for e in entries), [e["submission"] for e in entries if not e["fingerprint"]]
    pairs = flagged(entries)
    assert set(pairs) == {
        frozenset(("original", "renumbered")),  # written for this test: renumbered, renamed, reordered
        frozenset(("broken-wrr-weights", "correct-rr-weights")),  # one written from the other, the algorithm changed
        # two real answers run the same keepalived config (the same secret, router id, priorities and check)
        frozenset(("04-grigoriyazatyan-inline-backtick-configs", "13-omegam-balancers-chk-nginx")),
    }, {tuple(sorted(k)): v["score"] for k, v in pairs.items()}
    copied = pairs[frozenset(("original", "renumbered"))]
    assert copied["score"] >= 0.9
    assert "k vrrp_instance > authentication > auth_pass h7Tq2v" in copied["shared"]
    assert "k vrrp_instance > virtual_ipaddress > ip.250/32 dev eth1 label eth1:vip" in copied["shared"]
    # the same task done independently, with the same homework's shape, is not a copy of either
    alone = flagged(cohort([DATA / "copies" / n for n in ("original.md", "renumbered.md", "independent.md")]))
    assert set(alone) == {frozenset(("original", "renumbered"))}


A = """# a comment
global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    state MASTER
    interface eth1
    virtual_router_id 61
    priority 120
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass h7Tq2v
    }
    virtual_ipaddress {
        10.1.1.250/32
    }
}
virtual_server 10.1.1.250 80 {
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 10.1.1.31 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
"""
B = """virtual_server 192.168.9.250 80 {   ! renumbered and reordered
  real_server 192.168.9.31 80 {
    TCP_CHECK { connect_timeout 3 }
  }
  lb_kind DR
  lb_algo wrr
}
vrrp_instance OTHER_NAME {
  authentication {
    auth_pass h7Tq2v
    auth_type PASS
  }
  priority 120
  virtual_router_id 61
  interface eth1
  state MASTER
  virtual_ipaddress {
    192.168.9.250/32
  }
}
global_defs {
  router_id dir1
}
"""


def test_what_a_copier_changes_does_not_hide_a_copy():
    a, b = similarity.config_lines(A, {"lb1"}), similarity.config_lines(B, {"dir1"})
    assert a == b
    assert "vrrp_instance > authentication > auth_pass h7Tq2v" in a
    assert not any("advert_int" in x or "weight" in x or "protocol" in x for x in a)  # defaults, filled in
    assert similarity.config_lines(A.replace("auth_pass h7Tq2v", "auth_pass other1"), {"lb1"}) != b


def test_the_references_lines_are_no_evidence():
    reference = similarity.reference_lines(str(PACK.reference))
    assert "k vrrp_instance > virtual_router_id 38" in reference  # from the config its provisioner writes
    assert any(x.startswith("v ") for x in reference)
    script = next(s for s in similarity._provisioner_scripts(str(PACK.reference)) if "vrrp_instance" in s)
    config = similarity.HEREDOC.search(script)[2]
    handed_in = Submission(
        "copied-the-reference", Path("x.md"), keepalived={"balancer1": Part(config, "block 1")}, pack=PACK
    )
    assert similarity.fingerprint(handed_in) == []
    assert similarity.fingerprint(handed_in, reference=set()) != []


def test_the_index_and_the_gradebook_list_the_pairs_and_scores_stay(tmp_path):
    book = json.loads((DATA / "gradebook" / "hw38-graded.json").read_text())
    base = {e["submission"]: e for e in book["submissions"]}["example-submission"]
    entries = []
    for name in ("original", "renumbered", "independent"):
        e = copy.deepcopy(base)
        e["submission"], e["fingerprint"] = name, fingerprint_of(DATA / "copies" / f"{name}.md", PACK)
        e["inputs"] = {"sha256": name}
        entries.append(e)
    out = tmp_path / "shard"
    out.mkdir()
    (out / ".lvs-harness-reports").write_text("")
    write_books(out, PACK, book["checks"], entries)
    assert json.loads((out / "gradebook.json").read_text())["similar"] is None  # not compared while grading
    merged, _, _ = merge([out], tmp_path / "reports")
    written = json.loads((tmp_path / "reports" / "gradebook.json").read_text())
    assert [(p["a"], p["b"]) for p in written["similar"]] == [("original", "renumbered")]
    assert [e["score"] for e in written["submissions"]] == [24, 24, 24]
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "<b>original</b> and <b>renumbered</b>: 100% alike" in index and "auth_pass h7Tq2v" in index
