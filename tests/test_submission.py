"""Reading submissions: the real example write-up, folders, and each kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lvs_harness.submission import (SubmissionError, load_submission, match_host, strip_transcript,
                                    write_folder)
from support import EXAMPLE, example_parts


@pytest.fixture
def example():
    if not EXAMPLE.is_file():
        pytest.skip(f"the example submission is not at {EXAMPLE}")
    return EXAMPLE


def test_example_writeup_parts_are_found_and_attributed(example):
    sub = load_submission(example)
    parts = example_parts()
    assert sub.vagrantfile.text == parts["Vagrantfile"]
    assert {h: p.text for h, p in sub.keepalived.items()} == {"balancer1": parts["balancer1"],
                                                            "balancer2": parts["balancer2"]}
    assert sub.keepalived["balancer2"].notes[0] == 'host "balanser2" read as balancer2 (1 edit)'
    assert "removed the shell prompt line 'root@balancer1:/home/vagrant# cat /etc/keepalived/keepalived.conf'" \
        in sub.keepalived["balancer1"].notes
    assert "block 3 ('balanser2 keepalived.conf')" in sub.keepalived["balancer2"].origin
    assert not any(p.from_reference for p in sub.keepalived.values())


def test_missing_parts_come_from_the_reference_and_say_so(tmp_path):
    md = tmp_path / "w.md"
    md.write_text("balancer1 keepalived.conf:\n```\nvrrp_instance VI_1 {\n}\n```\n")
    sub = load_submission(md, reference={"Vagrantfile": "# ref", "balancer2": "# ref b2"})
    assert sub.vagrantfile.from_reference and sub.vagrantfile.origin == "reference"
    assert sub.keepalived["balancer2"].from_reference and not sub.keepalived["balancer1"].from_reference


@pytest.mark.parametrize("text, host, how", [
    ("balanser2 keepalived.conf", "balancer2", 'host "balanser2" read as balancer2 (1 edit)'),
    ("Balancer1:", "balancer1", "exact"),
    ("конфиг для balansir1", "balancer1", 'host "balansir1" read as balancer1 (2 edits)'),
    ("balancer3 config", None, ""),
    ("keepalived.conf", None, ""),
])
def test_tolerant_host_matching(text, host, how):
    assert match_host(text, ("balancer1", "balancer2")) == (host, how)


def test_transcript_residue():
    assert strip_transcript("vagrant@client:~$ cat x\nbody\n") == ("body\n", ["removed the shell prompt line "
                                                                            "'vagrant@client:~$ cat x'"])
    assert strip_transcript("vrrp_instance VI_1 {\n") == ("vrrp_instance VI_1 {\n", [])


def test_folder_submission_and_round_trip(example, tmp_path):
    out = write_folder(load_submission(example), tmp_path / "folder")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "Vagrantfile", "keepalived", "keepalived/balancer1.conf", "keepalived/balancer2.conf", "submission.json"]
    manifest = json.loads((out / "submission.json").read_text())
    assert manifest["parts"]["keepalived/balancer2.conf"]["notes"][0].startswith('host "balanser2"')
    again = load_submission(out)
    assert again.keepalived["balancer2"].text == example_parts()["balancer2"]
    assert again.vagrantfile.origin == "Vagrantfile"


def test_write_folder_never_overwrites(example, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(SubmissionError, match="exists and is not empty"):
        write_folder(load_submission(example), out)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and (out / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("content, message", [
    (b"# hw3.8\nno code here\n", "has no fenced code blocks"),
    (b"\x89PNG\r\n\x1a\n\0\0", "is a binary file"),
    (b"#" * 1_000_001, "over the 1000000-byte limit"),
    (b"\xff\xfe not utf8", "is not UTF-8 text"),
])
def test_bad_writeups(tmp_path, content, message):
    md = tmp_path / "w.md"
    md.write_bytes(content)
    with pytest.raises(SubmissionError, match=message):
        load_submission(md)


def test_block_for_no_known_host_is_reported_not_guessed(tmp_path):
    md = tmp_path / "w.md"
    md.write_text("Vagrantfile:\n```ruby\nVagrant.configure('2') do |c|\n  c.vm.define 'balancer1'\nend\n```\n"
                  "director3 keepalived.conf:\n```\nvrrp_instance VI_1 {\n}\n```\n")
    sub = load_submission(md)
    assert sub.keepalived == {}
    assert sub.notes == ["block 2 ('director3 keepalived.conf:') is a keepalived config for no known host "
                         "(balancer1, balancer2): not used"]


def test_a_writeup_for_another_pack_is_refused_naming_the_pack(example):
    """The hw3.8 example read for lvs-nat: none of its configs or machines are lvs-nat's directors."""
    with pytest.raises(SubmissionError, match="name none of pack lvs-nat's directors .director1, director2.*--pack"):
        load_submission(example, "lvs-nat")


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(SubmissionError, match="is empty"):
        load_submission(tmp_path)
    with pytest.raises(SubmissionError, match="does not exist"):
        load_submission(tmp_path / "nope.md")


def test_cli_import(example, tmp_path):
    run = [sys.executable, "-m", "lvs_harness.cli", "import", str(example), "-o", str(tmp_path / "out")]
    r = subprocess.run(run, capture_output=True, text=True)
    assert r.returncode == 0 and 'host "balanser2" read as balancer2' in r.stdout
    again = subprocess.run(run, capture_output=True, text=True)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr and "Traceback" not in again.stderr
