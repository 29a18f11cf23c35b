"""VRRP state: who holds an address right now (from the interfaces, not the logs), and each
keepalived instance's state transitions with timestamps (from its log).

Example::

    vip_owners(directors, "172.28.128.200")          # ['balancer1']
    [(t.state, t.time) for t in read_transitions(b1)]  # [('BACKUP', …), ('MASTER', …)]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re

# lvs-harness's own keepalived log: "2026-11-26 12:55:25.620040 Thu Nov 26 12:55:25 2026: (VI_1) Entering …"
LAB_LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) .*?\((?P<inst>[^)]+)\) "
                      r"Entering (?P<state>[A-Z]+) STATE(?P<init> \(init\))?")
# syslog, as students paste it: "May 25 12:31:18 vagrant Keepalived_vrrp[54462]: (VI_1) Entering …"
SYSLOG_LINE = re.compile(r"^(?P<ts>[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d) \S+ Keepalived_vrrp\[\d+\]: \((?P<inst>[^)]+)\) "
                         r"Entering (?P<state>[A-Z]+) STATE(?P<init> \(init\))?")


@dataclasses.dataclass(frozen=True)
class Transition:
    time: dt.datetime
    instance: str
    state: str          # BACKUP, MASTER, FAULT, STOP
    init: bool = False  # the "(init)" entry at start-up


def parse_transitions(log: str, year: int | None = None) -> list[Transition]:
    """State transitions from a keepalived log (the lab's timestamped log or pasted syslog lines)."""
    out = []
    for line in log.splitlines():
        if m := LAB_LINE.match(line):
            when = dt.datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S.%f")
        elif m := SYSLOG_LINE.match(line):
            when = dt.datetime.strptime(f"{year or dt.date.today().year} {m['ts']}", "%Y %b %d %H:%M:%S")
        else:
            continue
        out.append(Transition(when, m["inst"], m["state"], bool(m["init"])))
    return out


def read_transitions(director) -> list[Transition]:
    return parse_transitions(director.log("keepalived"))


def parse_addresses(text: str) -> dict[str, list[str]]:
    """``ip -o addr show`` → {interface: ["172.28.128.10/24", …]} (IPv4 and IPv6)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("inet", "inet6"):
            found.setdefault(fields[1], []).append(fields[3])
    return found


def read_addresses(host) -> dict[str, list[str]]:
    return parse_addresses(host.check("ip -o addr show").stdout)


def holds(addresses: dict[str, list[str]], ip: str, interfaces: tuple[str, ...] | None = None) -> list[str]:
    """The interfaces (optionally among ``interfaces``) that carry ``ip``."""
    want = ipaddress.ip_address(ip)
    return [ifname for ifname, cidrs in addresses.items()
            if (interfaces is None or ifname in interfaces)
            and any(ipaddress.ip_interface(c).ip == want for c in cidrs)]


def vip_owners(directors, vip: str) -> list[str]:
    """Names of the directors that have ``vip`` on a non-loopback interface right now."""
    owners = []
    for d in directors:
        if [i for i in holds(read_addresses(d), vip) if i != "lo"]:
            owners.append(d.name)
    return owners
