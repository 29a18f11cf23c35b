"""Copied work, flagged: the cohort's submissions compared pairwise on what they run.

Each submission is reduced to a **fingerprint**: the lines of its own keepalived configs, Vagrantfile
and replayed setup commands, normalized so that what a copier changes does not hide the copy —
comments and whitespace dropped, blocks and lines in any order (a fingerprint is a set), each
keepalived statement written with the blocks it is in (``vrrp_instance > virtual_ipaddress > …``),
statements that say a keepalived default dropped (the default filled in), addresses kept only as their
last octet and prefix (``10.77.0.200/32`` and ``10.1.1.200/32`` are both ``ip.200/32``: a
renumbered subnet is the same design), and names abstracted (the submission's host names, and the
instance, script and group names its configs define). Lines of the pack's reference (its Vagrantfile
and the keepalived configs that writes) are left out: what everyone may copy from the course is not
evidence.

Two fingerprints are compared by weighted Jaccard: shared weight ÷ weight of the union, each line
weighing ``ln(1 + N / df)`` (N submissions, df of them have the line), so a line every student has
counts little and a secret two students share counts much. Pairs at or above ``THRESHOLD`` that share
at least ``MIN_SHARED`` lines are listed with the lines they share, rarest first. Only pairs sharing
a line held by at most ``RARE`` of the cohort are scored, which keeps a cohort of 500 quick
(``bench/similarity.py``). It never changes a score: it tells a grader where to look.

Example::

    sub = load_submission(Path("alice.md"), "my-lab")
    fp = fingerprint(sub)                     # ['k vrrp_instance > virtual_router_id 77', 'v ip.200', …]
    pairs(entries)                            # [{'a': 'alice', 'b': 'bob', 'score': 0.91, 'shared': [...]}]
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from . import keepalived

if TYPE_CHECKING:
    from .books import Entry

THRESHOLD = 0.6
MIN_SHARED = 6
RARE = 0.1  # a line held by at most this share of the cohort (and at least 2) makes pairs candidates
MAX_LINES = 400
MAX_CHARS = 200
SHOWN = 25  # shared lines listed per pair
# keepalived's own defaults: a statement giving one says nothing a config without it does not
DEFAULTS = {
    "advert_int": "1",
    "weight": "1",
    "protocol": "TCP",
    "lb_kind": "NAT",
    "delay_loop": "60",
    "connect_timeout": "5",
    "retry": "1",
    "nb_get_retry": "1",
    "delay_before_retry": "1",
}
NAMED_BLOCKS = ("vrrp_instance", "vrrp_script", "vrrp_sync_group", "track_script", "group", "router_id")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}(\d{1,3})(/\d{1,2})?\b")
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?[^\n]*\n(.*?)\n\s*\1\s*$", re.S | re.M)


def _addresses(text: str) -> str:
    return IPV4.sub(lambda m: f"ip.{m[1]}{m[2] or ''}", text)


def _names(text: str, names: set[str]) -> str:
    if not names:
        return text
    pattern = re.compile(
        r"(?<![\w.-])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")(?![\w-])", re.I
    )
    return pattern.sub("<name>", text)


def config_lines(text: str, hosts: set[str] = frozenset()) -> set[str]:
    """A keepalived config's statements, each with the blocks it is in, normalized."""
    try:
        statements = keepalived._statements(text)
    except (RecursionError, ValueError):
        return set()
    defined: set[str] = set(hosts)

    def collect(block: list) -> None:
        for stmt in block:
            words = [w for w in stmt if not isinstance(w, list)]
            if len(words) > 1 and words[0] in NAMED_BLOCKS:
                defined.add(words[1].strip('"'))
            if stmt and isinstance(stmt[-1], list):
                collect(stmt[-1])

    collect(statements)
    out: set[str] = set()

    def walk(block: list, path: tuple[str, ...]) -> None:
        for stmt in block:
            words = [w for w in stmt if not isinstance(w, list)]
            if not words:
                continue
            if len(words) == 2 and DEFAULTS.get(words[0]) == words[1]:
                continue
            line = _names(_addresses(" ".join(words)), defined)
            out.add(" > ".join((*path, line))[:MAX_CHARS])
            if isinstance(stmt[-1], list):
                walk(stmt[-1], (*path, words[0]))

    walk(statements, ())
    return out


def text_lines(text: str, hosts: set[str] = frozenset()) -> set[str]:
    """A Vagrantfile's or a script's lines, normalized: comments, blank and bare-syntax lines gone."""
    out = set()
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#(?![{!]).*$", "", raw).strip().replace("'", '"')
        line = re.sub(r"\s+", " ", line)
        if len(line) < 6 or re.fullmatch(r"(end|do|\}|\{|else|\|?\w+\|?)[\s;]*", line):
            continue
        out.add(_names(_addresses(line), hosts)[:MAX_CHARS])
    return out


def fingerprint(sub, reference: set[str] | None = None) -> list[str]:
    """The normalized lines a submission runs (``k`` keepalived, ``v`` Vagrantfile, ``c`` commands),
    without those of ``reference`` (default: its pack's reference fingerprint)."""
    hosts = {h for names in (sub.roles or {}).values() for h in names} | set(sub.keepalived)
    lines: set[str] = set()
    for part in sub.keepalived.values():
        if not part.from_reference:
            lines |= {"k " + x for x in config_lines(part.text, hosts)}
    if sub.vagrantfile is not None and not sub.vagrantfile.from_reference:
        lines |= {"v " + x for x in text_lines(sub.vagrantfile.text, hosts)}
    for commands in sub.replayed().values():  # setup, not the demonstration's observations
        for command in commands:
            lines |= {"c " + x for x in text_lines(command, hosts)}
    if reference is None:
        reference = reference_lines(str(sub.pack.reference)) if getattr(sub, "pack", None) else set()
    return sorted(lines - reference)[:MAX_LINES]


@functools.lru_cache(maxsize=8)
def reference_lines(vagrantfile: str) -> frozenset[str]:
    """The fingerprint of a pack's reference: its Vagrantfile's lines, and the keepalived configs its
    provisioners write (heredocs in their scripts; the reference is the pack's own code, evaluated
    with this machine's ruby — without ruby only the Vagrantfile's lines)."""
    text = Path(vagrantfile).read_text()
    lines = {"v " + x for x in text_lines(text)}
    for script in _provisioner_scripts(vagrantfile):
        lines |= {"c " + x for x in text_lines(script)}
        for m in HEREDOC.finditer(script):
            lines |= {"k " + x for x in config_lines(m[2])}
    return frozenset(lines)


def _provisioner_scripts(vagrantfile: str) -> list[str]:
    from .labs.local import run_local
    from .vagrantfile import load_topology

    try:
        topology = load_topology(Path(vagrantfile), lambda argv, stdin: run_local(argv, stdin, 60))
    except Exception:  # noqa: BLE001 — no ruby here: the Vagrantfile's own lines only
        return []
    return [p.script for host in topology.hosts for p in host.provisioners]


def pairs(entries: list[Entry], threshold: float = THRESHOLD) -> list[dict]:
    """The pairs of ``entries`` (gradebook entries with a ``fingerprint``) whose weighted Jaccard
    similarity is at least ``threshold``, most similar first: {a, b, score, shared (lines, rarest
    first), count (shared lines)}."""
    prints = {e["submission"]: set(e.get("fingerprint") or ()) for e in entries}
    prints = {k: v for k, v in prints.items() if v}
    n = len(prints)
    if n < 2:
        return []
    holders: dict[str, list[str]] = {}
    for name, lines in prints.items():
        for line in lines:
            holders.setdefault(line, []).append(name)
    df = {line: len(who) for line, who in holders.items()}
    weight = {line: math.log(1 + n / d) for line, d in df.items()}
    rare = max(2, int(RARE * n))
    candidates = {
        tuple(sorted((a, b)))
        for line, who in holders.items()
        if 2 <= len(who) <= rare
        for i, a in enumerate(who)
        for b in who[i + 1 :]
    }
    found = []
    for a, b in candidates:
        shared = prints[a] & prints[b]
        if len(shared) < MIN_SHARED:
            continue
        union = prints[a] | prints[b]
        score = sum(weight[x] for x in shared) / sum(weight[x] for x in union)
        if score >= threshold:
            found.append(
                {
                    "a": a,
                    "b": b,
                    "score": round(score, 3),
                    "count": len(shared),
                    "shared": sorted(shared, key=lambda x: (df[x], x))[:SHOWN],
                }
            )
    return sorted(found, key=lambda p: (-p["score"], p["a"], p["b"]))
