"""Reading submissions: the real example write-up, folders, and each kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lvs_harness.submission import (
    MAX_HOSTS,
    NothingToRun,
    SubmissionError,
    load_submission,
    match_host,
    strip_transcript,
    write_folder,
)
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
    assert {h: p.text for h, p in sub.keepalived.items()} == {
        "balancer1": parts["balancer1"],
        "balancer2": parts["balancer2"],
    }
    # the label says "balanser2", the shell prompt inside the block says balancer2: the prompt decides
    assert (
        "removed the shell prompt line 'root@balancer1:/home/vagrant# cat /etc/keepalived/keepalived.conf'"
        in sub.keepalived["balancer1"].notes
    )
    assert "block 3 ('balanser2 keepalived.conf')" in sub.keepalived["balancer2"].origin
    assert not any(p.from_reference for p in sub.keepalived.values())


def test_nothing_comes_from_the_reference(tmp_path):
    md = tmp_path / "w.md"
    """A write-up with one VRRP config: balancer2's is derived from it (and says so), the lab is built
    in the write-up's terms (its VIP), nothing is the reference's."""
    md.write_text(
        "balancer1 keepalived.conf:\n```\nvrrp_instance VI_1 {\n  state MASTER\n  interface enp0s8\n"
        "  virtual_ipaddress {\n    10.9.8.7/24\n  }\n}\n```\nbalancer2 differs only by state BACKUP\n"
    )
    sub = load_submission(md)
    assert sub.vagrantfile is None and sub.design.vip == "10.9.8.7"
    assert sub.design.interfaces["balancer1"] == "enp0s8" and "lvs_harness__interface" in sub.design.vagrantfile()
    assert sub.keepalived["balancer2"].derived and "state BACKUP" in sub.keepalived["balancer2"].text
    assert not any(p.from_reference for p in sub.keepalived.values())


@pytest.mark.parametrize(
    "text, host, how",
    [
        ("balanser2 keepalived.conf", "balancer2", 'host "balanser2" read as balancer2 (1 edit)'),
        ("Balancer1:", "balancer1", "exact"),
        ("конфиг для balansir1", "balancer1", 'host "balansir1" read as balancer1 (2 edits)'),
        ("balancer3 config", None, ""),
        ("keepalived.conf", None, ""),
    ],
)
def test_tolerant_host_matching(text, host, how):
    assert match_host(text, ("balancer1", "balancer2")) == (host, how)


def test_transcript_residue():
    assert strip_transcript("vagrant@client:~$ cat x\nbody\n") == (
        "body\n",
        ["removed the shell prompt line 'vagrant@client:~$ cat x'"],
    )
    # a prompt anywhere, not only on the first line (a real answer began its block with an empty line)
    assert strip_transcript("\nroot@lb1:/home/vagrant# cat k.conf\nbody\n")[0] == "\nbody\n"
    assert strip_transcript("vrrp_instance VI_1 {\n") == ("vrrp_instance VI_1 {\n", [])


def test_folder_submission_and_round_trip(example, tmp_path):
    out = write_folder(load_submission(example), tmp_path / "folder")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "Vagrantfile",
        "keepalived",
        "keepalived/balancer1.conf",
        "keepalived/balancer2.conf",
        "submission.json",
    ]
    manifest = json.loads((out / "submission.json").read_text())
    assert manifest["parts"]["keepalived/balancer2.conf"]["notes"][0].startswith("removed the shell prompt line")
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


@pytest.mark.parametrize(
    "content, message",
    [
        (b"# hw3.8\nno code here\n", "has no code blocks"),
        (b"\x89PNG\r\n\x1a\n\0\0", "is a binary file"),
        (b"#" * 1_000_001, "over the 1000000-byte limit"),
        (b"\xff\xfe not utf8", "is not UTF-8 text"),
    ],
)
def test_bad_writeups(tmp_path, content, message):
    md = tmp_path / "w.md"
    md.write_bytes(content)
    with pytest.raises(SubmissionError, match=message):
        load_submission(md)


def test_a_config_names_its_host_however_the_student_names_it(tmp_path):
    """The student's own names are kept (roles come from function, not from the pack's names)."""
    md = tmp_path / "w.md"
    md.write_text(
        "director3 keepalived.conf:\n```\nvrrp_instance VI_1 {\n  virtual_ipaddress {\n    10.1.2.3\n  }\n}\n```\n"
    )
    sub = load_submission(md)
    assert list(sub.keepalived)[0] == "director3" and sub.roles["director"][0] == "director3"


def test_configs_only_in_images_are_nothing_to_run(tmp_path):
    md = tmp_path / "w.md"
    md.write_text("# hw\n![balancer1](b1.png)\n![balancer2](b2.png)\n")
    with pytest.raises(NothingToRun, match="2 image"):
        load_submission(md)


@pytest.mark.parametrize("form", ["crlf", "indented", "quoted", "html", "inline", "info"])
def test_every_markdown_form_is_read(tmp_path, form):
    conf = "vrrp_instance VI_1 {\n    state MASTER\n    virtual_ipaddress {\n        10.5.5.5/24\n    }\n}\n"
    lines = conf.splitlines()
    text = {
        "crlf": ("lb1:\n```\n" + conf + "```\n").replace("\n", "\r\n"),
        "indented": "1. lb1:\n\n    ```\n" + "".join("    " + line + "\n" for line in lines) + "    ```\n",
        "quoted": "> lb1:\n> ```bash\n" + "".join("> " + line + "\n" for line in lines) + "> ```\n",
        "html": "<p>lb1:</p>\n<pre><code>" + conf.replace("{", "&#123;") + "</code></pre>\n",
        "inline": "lb1:\n" + "".join(f"`{line}`  \n" for line in lines),
        "info": "lb1:\n```" + conf.replace("\n", "\n", 1) + "```\n",
    }[form]
    md = tmp_path / "w.md"
    md.write_text(text)
    sub = load_submission(md)
    assert "lb1" in sub.keepalived and sub.design.vip == "10.5.5.5", sub.summary()


def test_links_are_read_inside_the_folder_only(tmp_path):
    secret = tmp_path / "secret.conf"
    secret.write_text("vrrp_instance LEAK {\n virtual_ipaddress {\n 10.6.6.6\n }\n}\n")
    sub_dir = tmp_path / "sub"
    (sub_dir / "configs").mkdir(parents=True)
    (sub_dir / "configs" / "lb1.conf").write_text("vrrp_instance VI_1 {\n virtual_ipaddress {\n 10.7.7.7\n }\n}\n")
    (sub_dir / "configs" / "lb2.conf").symlink_to(secret)
    md = sub_dir / "README.md"
    md.write_text("[lb1](configs/lb1.conf) [lb2](configs/lb2.conf) [up](../secret.conf)\n")
    sub = load_submission(md)
    assert "LEAK" not in "".join(p.text for p in sub.keepalived.values())
    assert any("lb2.conf" in n and "outside the submission folder" in n for n in sub.notes)
    assert any("../secret.conf" in n and "outside" in n for n in sub.notes)
    with pytest.raises(SubmissionError, match="lb2.conf in the submission cannot be read: it leads outside"):
        load_submission(sub_dir)


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(SubmissionError, match="is empty"):
        load_submission(tmp_path)
    with pytest.raises(SubmissionError, match="does not exist"):
        load_submission(tmp_path / "nope.md")


def test_cli_import(example, tmp_path):
    run = [sys.executable, "-m", "lvs_harness.cli", "import", str(example), "-o", str(tmp_path / "out")]
    r = subprocess.run(run, capture_output=True, text=True)
    assert r.returncode == 0 and "balancer2 keepalived.conf: example-submission.md, block 3" in r.stdout
    again = subprocess.run(run, capture_output=True, text=True)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr and "Traceback" not in again.stderr


def test_configs_naming_no_host_are_one_per_director_in_the_order_shown(tmp_path):
    """Two different configs under "Балансировщик 1" / "Балансировщик 2" headings (no host names):
    each is its own director's, never "the last one for both" (which would make both BACKUP)."""
    conf = (
        "vrrp_instance VI_1 {{\n    state {}\n    priority {}\n    virtual_ipaddress {{\n        10.4.4.4\n    }}\n}}\n"
    )
    md = tmp_path / "w.md"
    md.write_text(
        f"### Балансировщик 2 (BACKUP)\n\n```\n{conf.format('BACKUP', 100)}```\n\n"
        f"### Балансировщик 1 (MASTER)\n\n```\n{conf.format('MASTER', 150)}```\n"
    )
    sub = load_submission(md)
    assert {h: "MASTER" in p.text for h, p in sub.keepalived.items()} == {"balancer1": True, "balancer2": False}
    assert "the director shown as number 1" in sub.keepalived["balancer1"].notes[-1]


def test_directors_balancing_with_nginx_get_no_ipvs_of_ours(tmp_path):
    """A function the student solved another way is not overwritten: no IPVS service is built."""
    conf = "vrrp_instance VI_1 {{\n  state {}\n  priority {}\n  virtual_ipaddress {{\n    10.3.3.3\n  }}\n}}\n"
    md = tmp_path / "w.md"
    md.write_text(
        f"lb1:\n```\n{conf.format('MASTER', 150)}```\nlb2:\n```\n{conf.format('BACKUP', 100)}```\n"
        "nginx on the balancers:\n```\nupstream web {\n  server 10.3.3.21;\n}\nserver {\n  location / {\n"
        "    proxy_pass http://web;\n  }\n}\n```\n"
    )
    sub = load_submission(md)
    assert not any(h in sub.design.built for h in ("lb1", "lb2"))
    assert any("balances with nginx (proxy_pass), not IPVS" in n for n in sub.design.notes)
    functions = {f["function"]: f for f in sub.functions()}
    assert functions["IPVS service on lb1"]["how"] == "none"


def test_commented_prompts_and_the_other_director_said_by_its_role(tmp_path):
    """Prompts left as comments (`# root@h:~# …`) are prompts; "the 2nd balancer: the same, only state
    BACKUP" derives the other director's config, which the prompts name."""
    conf = (
        "vrrp_instance VI_1 {\n    state MASTER\n    interface enp0s3\n    priority 100\n    virtual_ipaddress {\n"
        "        10.8.8.20/24 dev enp0s3\n    }\n}\n"
    )
    md = tmp_path / "w.md"
    md.write_text(
        "> ```bash\n> root@my-lb1:/home/me# cat /etc/keepalived/keepalived.conf\n"
        + "".join(f"> {line}\n" for line in conf.splitlines())
        + "> ```\n"
        "> On the 2nd balancer everything is the same, only state BACKUP in keepalived.conf.\n"
        "> ```bash\n> # root@my-lb2:/home/me# ipvsadm -ln\n"
        "> # root@my-rs1:/home/me# ip addr add 10.8.8.20/32 dev lo label lo:20\n> ```\n"
    )
    sub = load_submission(md)
    assert sub.roles["director"] == ["my-lb1", "my-lb2"]
    assert "state BACKUP" in sub.keepalived["my-lb2"].text and sub.keepalived["my-lb2"].derived
    assert sub.replayed()["my-rs1"] == ["ip addr add 10.8.8.20/32 dev lo label lo:20"]


def test_a_writeup_naming_too_many_hosts_is_read_with_a_bound(tmp_path):
    """Hostile input: thousands of prompt hosts are cut at MAX_HOSTS with one note (the reading stays
    linear in the text instead of matching every name against every other)."""
    md = tmp_path / "w.md"
    md.write_text(
        "```\n"
        + "".join(f"root@host{i}:~# ipvsadm -Ln\n" for i in range(3000))
        + "```\n"
        + "lb1:\n```\nvrrp_instance V {\n virtual_ipaddress {\n 10.1.1.1\n }\n}\n```\n"
        + "\n" * 50000
    )
    sub = load_submission(md)
    assert len(sub.roles["director"]) == MAX_HOSTS + 1  # the prompts' 32 hosts (ipvsadm) and lb1
    assert f"the write-up names more than {MAX_HOSTS} hosts in shell prompts" in sub.notes[0]
