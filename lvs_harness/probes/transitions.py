"""keepalived's own account of its VRRP instances: each state transition with its timestamp, read
from its log (the embedded labs' log file, syslog, or the journal).

Example::

    [(t.state, t.time) for t in read_transitions(b1)]  # [('BACKUP', …), ('MASTER', …)]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re


# lvs-harness's own keepalived log: "2026-11-26 12:55:25.620040 Thu Nov 26 12:55:25 2026: (VI_1) Entering …"
LAB_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) .*?\((?P<inst>[^)]+)\) "
    r"Entering (?P<state>[A-Z]+) STATE(?P<init> \(init\))?"
)


# syslog, as students paste it: "May 25 12:31:18 vagrant Keepalived_vrrp[54462]: (VI_1) Entering …"
SYSLOG_LINE = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d) \S+ Keepalived_vrrp\[\d+\]: \((?P<inst>[^)]+)\) "
    r"Entering (?P<state>[A-Z]+) STATE(?P<init> \(init\))?"
)


# journalctl -o short-iso-precise (the VMs): "2026-11-26T16:00:01.123456+00:00 lb1 Keepalived_vrrp[512]: (VI_1) …"
JOURNAL_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\S* \S+ Keepalived_vrrp\[\d+\]: "
    r"\((?P<inst>[^)]+)\) Entering (?P<state>[A-Z]+) STATE(?P<init> \(init\))?"
)


@dataclasses.dataclass(frozen=True)
class Transition:
    time: dt.datetime
    instance: str
    state: str  # BACKUP, MASTER, FAULT, STOP
    init: bool = False  # the "(init)" entry at start-up


def parse_transitions(log: str, year: int | None = None) -> list[Transition]:
    """State transitions from a keepalived log (the lab's timestamped log, the journal of a VM, or
    pasted syslog lines)."""
    out = []
    for line in log.splitlines():
        if m := LAB_LINE.match(line):
            when = dt.datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S.%f")
        elif m := JOURNAL_LINE.match(line):
            when = dt.datetime.strptime(m["ts"], "%Y-%m-%dT%H:%M:%S.%f")  # the host's local time, as `date`
        elif m := SYSLOG_LINE.match(line):
            when = dt.datetime.strptime(f"{year or dt.date.today().year} {m['ts']}", "%Y %b %d %H:%M:%S")
        else:
            continue
        out.append(Transition(when, m["inst"], m["state"], bool(m["init"])))
    return out


def read_transitions(director) -> list[Transition]:
    return parse_transitions(director.log("keepalived"))
