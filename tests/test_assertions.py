"""The assertions on a real lab: each passes on the reference lab with measured values, and each can fail."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import pytest

from lvs_harness.assertions import (
    MSL,
    LabAssertionError,
    assert_dr_real,
    assert_failover_within,
    assert_inactconn_drains_within,
    assert_ipvs_service,
    assert_rr_balanced,
    assert_single_vip_owner,
    assert_vip_absent,
    assert_vip_on,
    takeover_deadline,
)
from lvs_harness.labs import start_lab
from lvs_harness.probes import ipvs
from lvs_harness.probes.client import Prober, http_requests

pytestmark = pytest.mark.lab
VIP = "172.28.128.200"
REALS = ["172.28.128.30", "172.28.128.40"]


@pytest.fixture(scope="module")
def ready(lab, directors):
    if not lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    assert_vip_on(directors[0], VIP)
    assert_ipvs_service(directors[0], VIP, 80, reals=REALS)
    return lab


def test_default_tcpfin_timeout_is_one_msl():
    """The drain check's premise (homework question 1): IPVS's default FIN_WAIT timeout, as
    ipvsadm printed it in the lab, is one Maximum Segment Lifetime."""
    captured = (Path(__file__).parent / "data" / "ipvsadm" / "timeout-default.txt").read_text()
    assert ipvs.parse_timeouts(captured).tcpfin == MSL


def test_vip_owner_assertions(ready, directors):
    b1, b2 = directors
    assert assert_single_vip_owner(directors, VIP).value == "balancer1"
    assert assert_vip_absent(b2, VIP).seconds < 1
    with pytest.raises(LabAssertionError) as err:
        assert_vip_on(b2, VIP, deadline=1)
    assert "expected 172.28.128.200 on a balancer2 interface" in str(err.value)
    assert "$ ip -o -4 addr show   # on balancer2" in err.value.evidence
    assert takeover_deadline(b2) == pytest.approx(3 + 156 / 256 + 1 + 2)


def test_ipvs_service_assertion(ready, directors):
    svc = assert_ipvs_service(directors[1], VIP, 80, reals=REALS).value
    assert [r.forward for r in svc.reals] == ["Route", "Route"]
    with pytest.raises(LabAssertionError, match=r"got scheduler rr, reals"):
        assert_ipvs_service(directors[0], VIP, 80, scheduler="wlc", reals=REALS, deadline=1)
    with pytest.raises(LabAssertionError, match=r"got no TCP 172.28.128.200:8080 service"):
        assert_ipvs_service(directors[0], VIP, 8080, deadline=1)


def test_dr_real_assertion(ready, reals):
    values = assert_dr_real(reals[0], VIP).value
    assert values["arp_ignore(all)"] == 1 and values["arp_announce(all)"] == 2
    with pytest.raises(LabAssertionError, match="VIP/32 on lo: False"):
        assert_dr_real(reals[0], "172.28.128.201")


def test_rr_balanced_waits_for_the_lagging_stats(ready, directors, client):
    before = ipvs.read_stats(directors[0])
    answers = http_requests(client, f"http://{VIP}/", count=50)
    assert len(answers) == 50 and all(a.ok for a in answers)
    split = assert_rr_balanced(directors[0], VIP, 80, expected_total=50, since=before)
    assert split.value == {"172.28.128.30:80": 25, "172.28.128.40:80": 25}
    with pytest.raises(LabAssertionError, match="expected 60 connections"):
        assert_rr_balanced(directors[0], VIP, 80, expected_total=60, since=before, deadline=1)


@pytest.fixture(scope="module")
def fresh_lab(lab_config):
    """A lab of its own: IPVS entries keep the timer they were created with, so the short tcpfin
    timeout must be set before any traffic has passed."""
    with start_lab(dataclasses.replace(lab_config, keep=False)) as lab:
        if not lab.ipvs:
            pytest.skip("this lab's kernel has no IPVS")
        yield lab


def test_inactconn_drains_within_the_tcpfin_timeout(fresh_lab):
    b1, client = fresh_lab.hosts["balancer1"], fresh_lab.hosts["client"]
    assert_vip_on(b1, VIP)
    assert_ipvs_service(b1, VIP, 80, reals=REALS)
    with pytest.raises(LabAssertionError, match="expected InActConn > 0"):
        assert_inactconn_drains_within(b1, VIP, 80)
    b1.check("ipvsadm --set 0 5 0")  # FIN_WAIT entries created from now on expire after 5 s
    answers = http_requests(client, f"http://{VIP}/", count=6)
    assert all(a.ok for a in answers)
    drained = assert_inactconn_drains_within(b1, VIP, 80)
    assert drained.value == 6 and drained.deadline == 5 + 2
    assert 2 < drained.seconds <= 7


def test_failover_is_measured_and_probes_show_the_gap(ready, directors, client):
    b1, b2 = directors
    with Prober(client, f"http://{VIP}/") as prober:
        b1.link_down("eth1")
        try:
            failover = assert_failover_within(b1, b2, VIP)
        finally:
            b1.link_up("eth1")
        back = assert_failover_within(b2, b1, VIP)
    assert 2 < failover.seconds < failover.deadline
    assert back.seconds < back.deadline
    # a request starts every 40 ms, also while others hang in the outage: the gap is measured,
    # not counted in timeouts
    assert prober.rate >= 20, prober.rate
    start, outage = prober.outage()
    # the outage is the failover as the client sees it: longer than a second, within the takeover
    # deadline plus one request's timeout (a request under way when the link went down fails too)
    assert 1.0 < outage < failover.deadline + prober.timeout, (outage, failover.seconds)
    assert {r.word for r in prober.results if r.ok} == {"server1", "server2"}


def test_a_bar_chart_shows_requests_no_real_answered():
    """Regression: requests answered by no real (None) crashed the report of a whole run."""
    from lvs_harness import charts

    svg = charts.bars({"server1": 25, None: 25}, "answered by")
    assert "(no real)" in svg and "server1" in svg
