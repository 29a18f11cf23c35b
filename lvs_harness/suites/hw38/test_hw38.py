"""The hw3.8 homework, one pytest test per check, in order, each with a stable id and points.

Run: ``pytest --lab uml --pyargs lvs_harness.suites.hw38 [--vagrantfile STUDENT/] [--timing faithful]``.
A check that cannot run because one it needs failed fails with the reason (not as an error).
Measured values are attached to each test's report (the ``measure`` fixture).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest

from lvs_harness.assertions import (LabAssertionError, assert_dr_real, assert_failover_within,
                                    assert_inactconn_drains_within, assert_ipvs_service, assert_rr_balanced,
                                    assert_single_vip_owner, assert_vip_on, takeover_deadline, vrrp_instance)
from lvs_harness.probes import arp, ipvs, vrrp
from lvs_harness.probes.client import Prober, http_requests

FAST_TCPFIN = 5           # seconds, --timing fast
KEEPALIVED = {"config_valid": "needs a valid keepalived config"}
REQUESTS = 50
DRAIN_REQUESTS = 10


class Scenario:
    def __init__(self, lab, directors, reals, client, timing):
        self.lab, self.directors, self.reals, self.client, self.timing = lab, directors, reals, client, timing
        self.vip = lab.topology.service.vip
        self.port = lab.topology.service.port
        self.url = f"http://{self.vip}:{self.port}/"
        prios = {d.name: vrrp_instance(d).priority for d in directors}
        ordered = sorted(directors, key=lambda d: -prios[d.name])
        self.master, self.backup = ordered[0], ordered[-1]
        self.priorities = prios
        addresses = {h.name: vrrp.read_addresses(h) for h in [*directors, *reals]}
        self.lab_if = {h.name: vrrp.lab_interface(h, addresses[h.name])          # eth1 in the homework
                       for h in [*directors, *reals]}
        self.rips = sorted(a.split("/")[0] for r in reals for a in addresses[r.name].get(self.lab_if[r.name], [])
                           if not a.startswith("fe80"))
        self.watch = vrrp.OwnershipRecorder(directors, self.vip)
        self.traffic = None
        self.stats_before = None
        self.events: list[tuple[float, str]] = []     # (epoch, what was done), for the ownership timeline
        self.probes: list = []                        # client probes during failover and failback

    def event(self, host, what: str) -> None:
        """Note ``what`` at ``host``'s clock (the clock the ownership samples use)."""
        self.events.append((float(host.check("date +%s.%N").stdout), what))


@pytest.fixture(scope="module")
def hw(lab, directors, reals, client, timing):
    if len(directors) < 2 or not reals:
        pytest.fail(f"hw3.8 needs two directors and at least one real; roles found: "
                    f"{[(h.name, h.role) for h in lab.topology.hosts]}", pytrace=False)
    s = Scenario(lab, directors, reals, client, timing)
    if timing == "fast":
        for d in directors:   # before any traffic: IPVS entries keep the timer they were created with
            d.run(f"ipvsadm --set 0 {FAST_TCPFIN} 0")
    s.watch.start()
    yield s
    if not s.watch.samples:
        s.watch.stop()


@pytest.mark.check(id="config_valid", points=1, title="keepalived accepts each director's configuration")
def test_config_valid(hw, measure):
    errors = {}
    for d in hw.directors:
        r = d.run("keepalived --config-test -f /etc/keepalived/keepalived.conf")
        if r.rc != 0:
            errors[d.name] = (r.stderr or r.stdout).strip() or f"exit status {r.rc}"
    measure("config_errors", errors)
    assert not errors, "keepalived --config-test rejects: " + "; ".join(f"{k}: {v}" for k, v in errors.items())


@pytest.mark.check(id="directors_separate", points=1, title="no director is also a real server")
def test_directors_separate(hw, measure):
    director_ips = {a.split("/")[0] for d in hw.directors
                    for a in vrrp.read_addresses(d).get(hw.lab_if[d.name], [])}
    as_reals = sorted(director_ips & set(hw.rips))
    in_tables = sorted({r.address for d in hw.directors if hw.lab.ipvs
                        for s in ipvs.parse_list(d.run("ipvsadm -Ln").stdout).services for r in s.reals}
                       & director_ips)
    measure("directors_as_reals", as_reals + in_tables)
    assert not as_reals and not in_tables, f"directors used as reals: {as_reals + in_tables}"


def _left_to_settle(director) -> float:
    """Seconds until ``director``'s keepalived has run for its takeover deadline (its own clock)."""
    inits = [t.time for t in vrrp.read_transitions(director) if t.init]
    if not inits:
        return takeover_deadline(director)
    now = dt.datetime.strptime(director.check("date '+%Y-%m-%d %H:%M:%S.%6N'").stdout.strip(), "%Y-%m-%d %H:%M:%S.%f")
    return (inits[-1] - now).total_seconds() + takeover_deadline(director)


@pytest.mark.check(id="vip_on_master", points=2, title="only the higher-priority director holds the VIP",
                   needs=KEEPALIVED)
def test_vip_on_master(hw, measure):
    measure("priorities", hw.priorities)
    assert hw.priorities[hw.master.name] != hw.priorities[hw.backup.name], \
        f"both directors have priority {hw.priorities[hw.master.name]}: neither is the intended master"
    m = assert_vip_on(hw.master, hw.vip)
    # watch until every director has run longer than its master-down interval: a backup that
    # does not hear the master (split brain) takes the VIP by then
    hold = min(max(0.0, *(_left_to_settle(d) for d in hw.directors)),
               max(takeover_deadline(d) for d in hw.directors))
    owner = assert_single_vip_owner(hw.directors, hw.vip, hold=hold)
    measure("vip_after_s", round(m.seconds, 2))
    measure("watched_s", round(hold, 1))
    assert owner.value == hw.master.name


@pytest.mark.check(id="vip_by_keepalived", points=2, title="the VIP is keepalived's: stopping it on the master "
                   "moves the VIP", needs=KEEPALIVED)
def test_vip_by_keepalived(hw, measure):
    hw.master.stop("keepalived")
    try:
        moved = assert_failover_within(hw.master, hw.backup, hw.vip)
        measure("moved_after_s", round(moved.seconds, 2))
    finally:
        hw.master.start("keepalived")
    back = assert_vip_on(hw.master, hw.vip, deadline=takeover_deadline(hw.master) + 5)
    measure("returned_after_s", round(back.seconds, 2))


@pytest.mark.check(id="real_dr_ready", points=2, title="each real has the VIP on lo and ARP suppression")
def test_real_dr_ready(hw, measure):
    problems = {}
    for r in hw.reals:
        try:
            assert_dr_real(r, hw.vip)
        except LabAssertionError as err:
            problems[r.name] = err.got
    measure("problems", problems)
    assert not problems, "; ".join(f"{k}: {v}" for k, v in problems.items())


@pytest.mark.check(id="ipvs_service", points=2, title="each director has the IPVS service: rr, DR, both reals",
                   needs=KEEPALIVED)
def test_ipvs_service(hw, measure):
    if not hw.lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    failures = {}
    for d in hw.directors:
        try:
            assert_ipvs_service(d, hw.vip, hw.port, scheduler="rr", reals=hw.rips, forward="Route")
        except LabAssertionError as err:
            failures[d.name] = err.got
    measure("failures", failures)
    assert not failures, "; ".join(f"{k}: {v}" for k, v in failures.items())


@pytest.fixture(scope="module")
def traffic(hw):
    if hw.traffic is None:
        # no request has gone through the VIP yet (health checks go to the reals directly), so
        # the counters are at rest and need no settling
        hw.stats_before = ipvs.read_stats(hw.master) if hw.lab.ipvs else None
        hw.traffic = http_requests(hw.client, hw.url, count=REQUESTS)
    return hw.traffic


@pytest.mark.check(id="traffic_via_vip", points=2, title=f"{REQUESTS} requests to the VIP: all 200, both reals "
                   "answer", needs=KEEPALIVED)
def test_traffic_via_vip(hw, traffic, measure):
    statuses = Counter(r.status for r in traffic)
    by_real = Counter(r.real for r in traffic if r.ok)
    measure("statuses", dict(statuses))
    measure("by_real", dict(by_real))
    assert statuses == {200: REQUESTS}, f"statuses {dict(statuses)}"
    assert set(by_real) == {r.name for r in hw.reals}, f"answered by {dict(by_real)}"


@pytest.mark.check(id="vip_arp_to_director", points=1, title="the client's ARP for the VIP reaches the active "
                   "director only", needs=KEEPALIVED)
def test_vip_arp_to_director(hw, measure):
    owner = assert_single_vip_owner(hw.directors, hw.vip).value
    answer = arp.resolve(hw.client, hw.vip, hw.lab.hosts.values())
    measure("arp", {"mac": answer.mac, "owner": answer.owner, "repliers": list(answer.repliers)})
    assert answer.owner == owner and list(answer.repliers) == [owner], (
        f"the VIP resolves to {answer.owner} ({answer.mac}); ARP replies from {list(answer.repliers)}, "
        f"expected only {owner}\n{answer.raw}")


@pytest.mark.check(id="rr_balanced", points=2, title="round robin: an even split on the active director",
                   needs=KEEPALIVED)
def test_rr_balanced(hw, traffic, measure):
    if not hw.lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    split = assert_rr_balanced(hw.master, hw.vip, hw.port, expected_total=REQUESTS, since=hw.stats_before)
    measure("split", split.value)


@pytest.mark.check(id="inactconn_drains", points=2, title="question 1: inactive connections linger, then drain "
                   "within the FIN_WAIT timeout", needs=KEEPALIVED)
def test_inactconn_drains(hw, measure):
    if not hw.lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    measure("timing", hw.timing)
    if hw.timing == "fast":
        measure("note", f"--timing fast: tcpfin set to {FAST_TCPFIN} s before the traffic "
                                "(default 120 s = 1 MSL; --timing faithful keeps it)")
    # a burst of its own: the earlier traffic's entries may have expired already (fast timing,
    # a loaded machine), and the drain is then timed from requests just made
    answers = http_requests(hw.client, hw.url, count=DRAIN_REQUESTS)
    assert any(a.ok for a in answers), f"no request answered: {Counter(a.status for a in answers)}"
    try:
        drained = assert_inactconn_drains_within(hw.master, hw.vip, hw.port, interval=0.5)
    except LabAssertionError as err:
        measure("drain", [(t, a, i) for t, (a, i) in err.samples])
        raise
    measure("drain", [(t, a, i) for t, (a, i) in drained.samples])
    measure("inactive_at_start", drained.value)
    measure("drained_after_s", round(drained.seconds, 1))


@pytest.mark.check(id="failover", points=3, title="eth1 down on the master: the backup takes the VIP and "
                   "traffic flows, balanced", needs=KEEPALIVED)
def test_failover(hw, measure):
    assert_vip_on(hw.master, hw.vip)
    prober = Prober(hw.client, hw.url)
    with prober:
        hw.event(hw.master, f"{hw.lab_if[hw.master.name]} down on {hw.master.name}")
        hw.master.link_down(hw.lab_if[hw.master.name])
        try:
            moved = assert_failover_within(hw.master, hw.backup, hw.vip)
        finally:
            # keep probing for one advert interval after the takeover: the gap must have closed
            prober_until = time.monotonic() + vrrp_instance(hw.backup).advert_int
            while time.monotonic() < prober_until:
                time.sleep(0.1)
    hw.probes += prober.results
    failed = [r for r in prober.results if not r.ok]
    after = [r for r in prober.results if r.time > prober.results[-1].time - 0.5] if prober.results else []
    assert after and all(r.ok for r in after), "client requests still fail after the takeover"
    measure("failover_s", round(moved.seconds, 2))
    measure("failed_probes", len(failed))
    measure("probes", len(prober.results))
    if hw.lab.ipvs:
        before = ipvs.read_stats_settled(hw.backup)   # the prober's last requests are still being counted
        answers = http_requests(hw.client, hw.url, count=10)
        assert all(a.ok for a in answers), f"through the backup: {Counter(a.status for a in answers)}"
        split = assert_rr_balanced(hw.backup, hw.vip, hw.port, expected_total=10, since=before)
        measure("split_on_backup", split.value)


@pytest.mark.check(id="failback", points=2, title="eth1 up: the VIP returns to the master, the backup is BACKUP "
                   "again", needs=KEEPALIVED)
def test_failback(hw, measure):
    prober = Prober(hw.client, hw.url)
    with prober:
        hw.event(hw.master, f"{hw.lab_if[hw.master.name]} up on {hw.master.name}")
        hw.master.link_up(hw.lab_if[hw.master.name])
        try:
            back = assert_failover_within(hw.backup, hw.master, hw.vip, seconds=takeover_deadline(hw.master) + 3)
        finally:
            time.sleep(1)
    hw.probes += prober.results
    measure("failed_probes", sum(not r.ok for r in prober.results))
    measure("failback_s", round(back.seconds, 2))
    states = [t.state for t in vrrp.read_transitions(hw.backup)]
    measure("backup_states", states)
    assert states and states[-1] == "BACKUP", f"the backup's last state is {states[-1:] or 'unknown'}"


@pytest.mark.check(id="no_split_brain", points=2, title="never two VIP owners across the scenario (beyond a "
                   "preemption handover)", needs=KEEPALIVED)
def test_no_split_brain(hw, measure):
    """Each director records every 0.25 s whether it holds the VIP. During a preemption both
    hold it for a few ms (the new master adds it before the old one reads its advert; seen
    here: ~10 ms in keepalived's logs), so an overlap seen in samples less than one advert
    interval long is reported as a handover; one lasting an advert interval or more is a
    split brain."""
    samples = hw.watch.stop()
    count = sum(len(rows) for rows in samples.values())
    start = min((rows[0][0] for rows in samples.values() if rows), default=0)
    advert = max(vrrp_instance(d).advert_int for d in hw.directors)
    episodes = vrrp.overlap_episodes(samples, gap=advert)
    lasting = [e for e in episodes if e["seconds"] >= advert]
    measure("samples", count)
    measure("ownership", {n: [(round(t - start, 2), has) for t, has in rows] for n, rows in samples.items()})
    measure("probes", [(round(r.time - start, 2), r.ok) for r in hw.probes])
    measure("events", [(round(t - start, 2), what) for t, what in hw.events])
    measure("handovers", [(round(e["start"] - start, 2), e["holders"]) for e in episodes if e not in lasting])
    measure("split_brain", [(round(e["start"] - start, 2), round(e["seconds"], 2), e["holders"])
                                    for e in lasting])
    assert count, "no VIP samples were taken"
    assert not lasting, (f"two VIP owners for {lasting[0]['seconds']:.1f} s from {lasting[0]['start'] - start:.1f} s "
                         f"into the scenario ({lasting[0]['holders']}); {len(lasting)} such episode(s)")
