"""IPVS state from ``ipvsadm``: the table, counters, rates, connection entries and timeouts.

The parsers take the text ipvsadm prints (so they are tested on real captured outputs);
the ``read_*`` functions run ipvsadm on a lab host and parse its answer.

Example::

    table = read_table(director)
    svc = table.service("10.77.0.100", 80)
    [(r.address, r.forward, r.inactive) for r in svc.reals]
    # [('10.77.0.21', 'Route', 25), ('10.77.0.22', 'Route', 25)]
    read_timeouts(director).tcpfin   # 120
"""

from __future__ import annotations

import dataclasses
import re
import time

from ..errors import HarnessError

SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


class IpvsUnavailable(HarnessError):
    """The host's kernel has no IPVS ("Can't initialize ipvs: Protocol not available")."""


@dataclasses.dataclass(frozen=True)
class RealServer:
    address: str
    port: int
    forward: str = ""  # Route (DR), Masq (NAT), Tunnel, Local
    weight: int = 0
    active: int = 0  # ActiveConn
    inactive: int = 0  # InActConn


@dataclasses.dataclass(frozen=True)
class Service:
    protocol: str  # TCP, UDP, SCTP or FWM
    address: str | None  # None for a firewall-mark service
    port: int | None
    fwmark: int | None = None
    scheduler: str = ""
    persistent: int | None = None  # persistence timeout in seconds
    flags: tuple[str, ...] = ()  # the rest of the flags, as printed
    reals: tuple[RealServer, ...] = ()

    @property
    def key(self) -> str:
        if self.fwmark is not None:
            return f"FWM {self.fwmark}"
        host = f"[{self.address}]" if ":" in (self.address or "") else self.address
        return f"{self.protocol} {host}:{self.port}"

    def real(self, address: str, port: int | None = None) -> RealServer | None:
        for r in self.reals:
            if r.address == address and (port is None or r.port == port):
                return r
        return None


@dataclasses.dataclass(frozen=True)
class IpvsTable:
    services: tuple[Service, ...] = ()
    version: str = ""

    def service(self, address: str, port: int, protocol: str = "TCP") -> Service | None:
        for s in self.services:
            if s.address == address and s.port == port and s.protocol == protocol.upper():
                return s
        return None


@dataclasses.dataclass(frozen=True)
class Counters:
    """One row of ``--stats`` (totals) or ``--rate`` (per second): five numbers, named by the header."""

    values: dict

    def __getitem__(self, name: str) -> int:
        return self.values[name]


@dataclasses.dataclass(frozen=True)
class ServiceCounters:
    key: str
    totals: Counters
    reals: dict  # "address:port" -> Counters

    @property
    def conns(self) -> int:
        return self.totals.values.get("Conns", 0)


@dataclasses.dataclass(frozen=True)
class Connection:
    protocol: str
    expires: int  # seconds until the entry expires
    state: str  # ESTABLISHED, FIN_WAIT, TIME_WAIT, SYN_RECV, NONE (UDP) …
    source: str
    virtual: str
    destination: str


@dataclasses.dataclass(frozen=True)
class Timeouts:
    tcp: int
    tcpfin: int
    udp: int


def _check(text: str) -> None:
    if "Can't initialize ipvs" in text or "Protocol not available" in text:
        raise IpvsUnavailable(
            "this kernel has no IPVS (ipvsadm: Can't initialize ipvs); use a lab with an IPVS kernel (--lab uml)"
        )


def _split_hostport(text: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s]+):(\d+)", text)
    if not m:
        raise ValueError(f"not an address:port: {text!r}")
    return (m[1], int(m[2])) if m[1] else (m[3], int(m[4]))


def number(text: str) -> int:
    """ipvsadm's numbers: plain, or with K/M/G/T (powers of 1000) when large and not --exact."""
    if text[-1:] in SUFFIX:
        return int(float(text[:-1]) * SUFFIX[text[-1]])
    return int(text)


def _service_head(fields: list[str]) -> tuple[str, str | None, int | None, int | None, list[str]]:
    proto = fields[0]
    if proto == "FWM":
        return proto, None, None, int(fields[1]), fields[2:]
    address, port = _split_hostport(fields[1])
    return proto, address, port, None, fields[2:]


def parse_list(text: str) -> IpvsTable:
    """``ipvsadm -Ln``."""
    _check(text)
    services: list[Service] = []
    reals: list[RealServer] = []
    version = ""
    head = None
    for line in text.splitlines():
        if line.startswith("IP Virtual Server version"):
            version = line.split()[4]
            continue
        if not line.strip() or line.startswith("Prot ") or "RemoteAddress:Port" in line:
            continue
        fields = line.split()
        if fields[0] == "->":
            address, port = _split_hostport(fields[1])
            reals.append(RealServer(address, port, fields[2], int(fields[3]), int(fields[4]), int(fields[5])))
            continue
        if head:
            services.append(dataclasses.replace(head, reals=tuple(reals)))
        proto, address, port, fwmark, rest = _service_head(fields)
        scheduler, flags = (rest[0], rest[1:]) if rest else ("", [])
        persistent = None
        if "persistent" in flags:
            i = flags.index("persistent")
            persistent = int(flags[i + 1])
            flags = flags[:i] + flags[i + 2 :]
        head, reals = Service(proto, address, port, fwmark, scheduler, persistent, tuple(flags)), []
    if head:
        services.append(dataclasses.replace(head, reals=tuple(reals)))
    return IpvsTable(tuple(services), version)


def parse_counters(text: str) -> list[ServiceCounters]:
    """``ipvsadm -Ln --stats`` or ``--rate``: per service, totals and per-real rows."""
    _check(text)
    names: list[str] = []
    result: list[ServiceCounters] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or line.startswith("IP Virtual Server"):
            continue
        if fields[0] == "Prot":
            names = fields[2:]
            continue
        if fields[0] == "->":
            if len(fields) < 2 + len(names) or not fields[2][:1].isdigit():
                continue  # the "-> RemoteAddress:Port" header line
            result[-1].reals[fields[1]] = Counters(dict(zip(names, map(number, fields[2:]))))
            continue
        result.append(ServiceCounters(" ".join(fields[:2]), Counters(dict(zip(names, map(number, fields[2:])))), {}))
    return result


def parse_connections(text: str) -> list[Connection]:
    """``ipvsadm -Lnc``."""
    _check(text)
    conns = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6 or fields[0] in ("pro", "IPVS"):
            continue
        minutes, seconds = fields[1].split(":")
        conns.append(Connection(fields[0], int(minutes) * 60 + int(seconds), fields[2], *fields[3:6]))
    return conns


def parse_timeouts(text: str) -> Timeouts:
    """``ipvsadm -Ln --timeout``: "Timeout (tcp tcpfin udp): 900 120 300"."""
    _check(text)
    m = re.search(r"Timeout \(tcp tcpfin udp\):\s+(\d+)\s+(\d+)\s+(\d+)", text)
    if not m:
        raise ValueError(f"not ipvsadm --timeout output: {text.strip()[:200]!r}")
    return Timeouts(*map(int, m.groups()))


def _read(host, args: str) -> str:
    r = host.run(f"ipvsadm {args}")
    _check(r.stdout + r.stderr)
    if not r.ok:
        raise HarnessError(f"`ipvsadm {args}` on {host.name} failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def read_table(host) -> IpvsTable:
    return parse_list(_read(host, "-Ln"))


def read_stats(host) -> list[ServiceCounters]:
    return parse_counters(_read(host, "-Ln --stats --exact"))


def read_stats_settled(host, quiet: float = 2.5, timeout: float = 15.0) -> list[ServiceCounters]:
    """``--stats`` once the counters have stopped moving for ``quiet`` seconds.

    The kernel folds connections into these counters about 2 s late, so a baseline read
    right after traffic misses some of it. Returns the last read when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    last, since = read_stats(host), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read_stats(host)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def read_timeouts(host) -> Timeouts:
    return parse_timeouts(_read(host, "-Ln --timeout"))
