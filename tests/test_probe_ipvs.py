"""ipvsadm parsers on real outputs captured from the embedded lab (tests/data/ipvsadm) and the example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lvs_harness.probes.ipvs import (
    IpvsUnavailable,
    number,
    parse_connections,
    parse_counters,
    parse_list,
    parse_timeouts,
)
from support import EXAMPLE

DATA = Path(__file__).parent / "data" / "ipvsadm"


def data(name: str) -> str:
    return (DATA / name).read_text()


def test_list_after_50_requests():
    table = parse_list(data("after-50-list.txt"))
    assert table.version == "1.2.1"
    svc = table.service("172.28.128.200", 80)
    assert (svc.key, svc.scheduler, svc.persistent, svc.flags) == ("TCP 172.28.128.200:80", "rr", None, ())
    assert [(r.address, r.port, r.forward, r.weight, r.active, r.inactive) for r in svc.reals] == [
        ("172.28.128.30", 80, "Route", 1, 0, 25),
        ("172.28.128.40", 80, "Route", 1, 0, 25),
    ]
    assert svc.real("172.28.128.40").inactive == 25 and svc.real("172.28.128.99") is None
    assert table.service("172.28.128.200", 80, "udp") is None


def test_empty_table():
    assert parse_list(data("empty.txt")).services == ()
    assert parse_counters(data("empty.txt")) == []


def test_several_services_ipv6_fwmark_persistence_and_forwarding_methods():
    table = parse_list(data("several-services.txt"))
    assert [s.key for s in table.services] == [
        "TCP 172.28.128.200:80",
        "TCP 172.28.128.201:443",
        "UDP 172.28.128.201:53",
        "TCP [fd00::200]:80",
        "FWM 42",
    ]
    https = table.service("172.28.128.201", 443)
    assert (https.scheduler, https.persistent) == ("wlc", 300)
    assert [(r.forward, r.weight) for r in https.reals] == [("Masq", 3), ("Tunnel", 0)]
    assert table.service("172.28.128.201", 53, "UDP").scheduler == "lc"
    v6 = table.service("fd00::200", 80)
    assert [(r.address, r.port, r.weight) for r in v6.reals] == [("fd00::30", 80, 2)]
    fwm = table.services[-1]
    assert (fwm.protocol, fwm.fwmark, fwm.address, fwm.scheduler) == ("FWM", 42, None, "rr")
    assert [(r.address, r.port) for r in fwm.reals] == [("172.28.128.40", 0)]
    stats = parse_counters(data("several-services-stats.txt"))
    assert [s.key for s in stats] == [
        "TCP 172.28.128.200:80",
        "TCP 172.28.128.201:443",
        "UDP 172.28.128.201:53",
        "TCP [fd00::200]:80",
        "FWM 42",
    ]
    assert list(stats[3].reals) == ["[fd00::30]:80"] and stats[4].conns == 0


def test_stats_and_rates():
    stats = parse_counters(data("after-50-stats.txt"))
    assert len(stats) == 1 and stats[0].key == "TCP 172.28.128.200:80"
    assert stats[0].totals.values == {"Conns": 50, "InPkts": 300, "OutPkts": 0, "InBytes": 19900, "OutBytes": 0}
    assert {k: v["Conns"] for k, v in stats[0].reals.items()} == {"172.28.128.30:80": 25, "172.28.128.40:80": 25}
    rates = parse_counters(data("after-50-rate.txt"))
    assert rates[0].totals["CPS"] == 4 and rates[0].reals["172.28.128.30:80"]["InBPS"] == 702


def test_stats_from_the_example_submission():
    """The student's `ipvsadm -Ln --stats` after failover (balancer2) and on the idle balancer1."""
    if not EXAMPLE.is_file():
        pytest.skip(f"the example submission is not at {EXAMPLE}")
    text = EXAMPLE.read_text()
    tables = re.findall(r"^(IP Virtual Server version.*?)(?=^---|^```)", text, re.M | re.S)
    parsed = [parse_counters(t) for t in tables]
    assert [p[0].conns for p in parsed] == [50, 0, 50]
    assert {k: v["Conns"] for k, v in parsed[0][0].reals.items()} == {"172.28.128.30:80": 25, "172.28.128.40:80": 25}
    assert parsed[0][0].totals["InBytes"] == 19950


def test_connections():
    conns = parse_connections(data("after-50-connections.txt"))
    assert len(conns) == 50
    assert {c.state for c in conns} == {"FIN_WAIT"} and {c.protocol for c in conns} == {"TCP"}
    first = conns[0]
    assert (first.expires, first.source, first.virtual, first.destination) == (
        116,
        "172.28.128.50:36434",
        "172.28.128.200:80",
        "172.28.128.40:80",
    )
    assert sum(c.destination == "172.28.128.30:80" for c in conns) == 25
    assert (
        parse_connections(
            "IPVS connection entries\npro expire state       source             virtual            destination\n"
        )
        == []
    )


def test_timeouts():
    t = parse_timeouts(data("timeout-default.txt"))
    assert (t.tcp, t.tcpfin, t.udp) == (900, 120, 300)
    assert parse_timeouts(data("timeout-fast.txt")).tcpfin == 10
    with pytest.raises(ValueError):
        parse_timeouts("nonsense")


def test_large_numbers_with_suffixes():
    assert [number(x) for x in ("0", "19950", "123K", "4M", "1G")] == [0, 19950, 123000, 4000000, 10**9]


@pytest.mark.parametrize("parser", [parse_list, parse_counters, parse_connections, parse_timeouts])
def test_kernel_without_ipvs(parser):
    with pytest.raises(IpvsUnavailable, match="this kernel has no IPVS"):
        parser(data("no-ipvs.txt"))
