"""The hw3.8 homework, one pytest test per check, in order, each with a stable id and points.

Run: ``pytest --lab uml --pyargs lvs_harness.packs.hw38 [--submission STUDENT.md] [--timing faithful]``.
A check that cannot run because one it needs failed fails with the reason (not as an error).
Measured values are attached to each test's report (the ``measure`` fixture).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest

from lvs_harness import diagnosis
from lvs_harness.assertions import (
    LabAssertionError,
    assert_dr_real,
    assert_failover_within,
    assert_inactconn_drains_within,
    assert_ipvs_service,
    assert_rr_balanced,
    assert_single_vip_owner,
    assert_vip_on,
    said,
    said_split,
    said_statuses,
    takeover_deadline,
    vrrp_instance,
)
from lvs_harness.baseline import link_is_up
from lvs_harness.errors import HarnessError
from lvs_harness.probes import arp, ipvs, vrrp
from lvs_harness.probes.client import Prober, distinct
from lvs_harness.suite import (
    FAST_TCPFIN,
    STEADY,
    VrrpLab,
    baseline_fixture,
    NEEDS_CONFIG,
    config_valid_check,
    explained,
    measure_probes,
    not_ready,
    scenario,
    why_path,
    why_vrrp,
)

KEEPALIVED = NEEDS_CONFIG
REQUESTS = 50
DRAIN_REQUESTS = 10
SETTLED_AFTER = 3.0  # seconds after traffic before IPVS counters can be read without settling
TRAFFIC = "traffic"  # the lab states a check starts from: STEADY and TRAFFIC (see `baseline`)


class Scenario(VrrpLab):
    """hw3.8's lab as the checks see it (:class:`lvs_harness.suite.VrrpLab`), with what its checks
    measure together: the reals' addresses, the MAC table, the client's traffic and ARP answer
    per lab state."""

    def __init__(self, lab, directors, reals, client, timing):
        super().__init__(lab, directors, reals, client, timing)
        self.rips = sorted(
            a.split("/")[0]
            for r in reals
            for a in self.addresses[r.name].get(self.lab_if[r.name], [])
            if ":" not in a and a.split("/")[0] != self.vip
        )
        self.macs = arp.mac_table(lab.hosts.values())
        self.last_traffic = 0.0  # monotonic time the last client traffic ended
        self._traffic = self._arp = None

    def moved(self, kind: str, director, up: bool, then, after: float):
        """The time of the first kernel event ``kind`` ("vip" or "link") on ``director`` since
        ``after`` (epoch) making it ``up`` and, if ``then`` is (kind, director, up), of the first
        such event after that: (first, second) in epoch seconds, or None without events."""
        if not isinstance(self.watch, vrrp.OwnershipMonitor):
            return None
        events = self.watch.events()
        first = next(
            (
                e
                for e in events
                if e.time >= after
                and e.kind == kind
                and e.director == director.name
                and e.up == up
                and (kind != "link" or e.interface == self.lab_if[director.name])
            ),
            None,
        )
        if first is None:
            return None
        k2, d2, up2 = then
        if d2 is not director and not getattr(self.lab, "one_clock", False):
            return None  # two machines' clocks: their timestamps do not compare to the ms
        second = next(
            (e for e in events if e.time >= first.time and e.kind == k2 and e.director == d2.name and e.up == up2), None
        )
        return (first.time, second.time) if second else None

    def arp(self):
        """Who answers the client's ARP for the VIP (asked once per lab state)."""
        if self._arp is None or self._arp[0] != (self.epoch, self.holder.name):
            answer = arp.resolve(
                self.client, self.vip, self.lab.hosts.values(), interface=self.lab_if[self.client.name], macs=self.macs
            )
            self._arp = ((self.epoch, self.holder.name), answer)
        return self._arp[1]

    def stats_now(self, director):
        """IPVS counters of ``director`` at rest (they lag traffic by ~2 s)."""
        if time.monotonic() - self.last_traffic < SETTLED_AFTER:
            return ipvs.read_stats_settled(director)
        return ipvs.read_stats(director)

    def requests(self, count: int):
        answers = super().requests(count)
        self.last_traffic = time.monotonic()
        return answers

    def traffic(self):
        """(answers, IPVS counters before, director): REQUESTS requests through the VIP, shared by
        the checks that start from the same lab state."""
        if self._traffic is None or self._traffic[0] != (self.epoch, self.holder.name):
            before = self.stats_now(self.holder) if self.lab.ipvs else None
            self._traffic = ((self.epoch, self.holder.name), (self.requests(REQUESTS), before, self.holder))
        return self._traffic[1]


def _why(hw, measure, holder=None, by_real=None) -> str:
    """A failed traffic check's diagnosis (:func:`lvs_harness.suite.why_path`) as the start of its
    reason ('' when none is found)."""
    return diagnosis.led(why_path(hw, measure, holder, by_real))


@pytest.fixture(scope="module")
def hw(lab, directors, reals, client, timing):
    yield from scenario(Scenario, "hw3.8", lab, directors, reals, client, timing)


def _arp_to_the_holder(hw, steady) -> None:
    """``traffic``: the client's ARP for the VIP is answered by the holder alone (else the
    client's traffic would bypass the director)."""
    answer = hw.arp()
    others = [r for r in answer.repliers if r != steady.holder]
    if others or answer.owner != steady.holder:
        not_ready(
            f"the client's ARP for the VIP is answered by {' and '.join(answer.repliers) or 'nobody'}"
            f" (it resolves to {answer.owner or answer.mac}), not by {steady.holder} alone: "
            "its traffic would not pass the director (see real_dr_ready, vip_arp_to_director)"
        )


# the lab state each check declares (``state=``), verified and restored before it runs: ``steady``
# (links up, keepalived on every director, the VIP on the intended master alone), ``traffic``
# (steady, and the client's ARP for the VIP answered by that director alone); a lab that cannot be
# brought there fails the check with "not run: …", the same reason every time
baseline = baseline_fixture("hw", states={TRAFFIC: _arp_to_the_holder})


test_config_valid = config_valid_check("hw")


@pytest.mark.check(
    id="directors_separate",
    points=1,
    title="no director is also a real server",
    hint="Compare the directors' addresses with the real_server addresses in your virtual_server (or ipvsadm rules).",
)
def test_directors_separate(hw, measure):
    director_ips = {a.split("/")[0] for d in hw.directors for a in vrrp.read_addresses(d).get(hw.lab_if[d.name], [])}
    as_reals = sorted(director_ips & set(hw.rips))
    in_tables = sorted(
        {
            r.address
            for d in hw.directors
            if hw.lab.ipvs
            for s in ipvs.parse_list(d.run("ipvsadm -Ln").stdout).services
            for r in s.reals
        }
        & director_ips
    )
    measure("directors_as_reals", as_reals + in_tables)
    assert not as_reals and not in_tables, f"directors used as reals: {said(dict.fromkeys(as_reals + in_tables))}"


def _left_to_settle(director) -> float:
    """Seconds until ``director``'s keepalived has run for its takeover deadline (its own clock)."""
    inits = [t.time for t in vrrp.read_transitions(director) if t.init]
    if not inits:
        return takeover_deadline(director)
    now = dt.datetime.strptime(director.check("date '+%Y-%m-%d %H:%M:%S.%6N'").stdout.strip(), "%Y-%m-%d %H:%M:%S.%f")
    return (inits[-1] - now).total_seconds() + takeover_deadline(director)


@pytest.mark.check(
    id="vip_on_master",
    points=2,
    title="only the higher-priority director holds the VIP",
    hint="Look at `priority`, `state` and `virtual_router_id` on both directors, and at `ip -br addr` "
    "on each: only one may show the VIP.",
    needs=KEEPALIVED,
)
def test_vip_on_master(hw, measure):
    measure("priorities", hw.priorities)
    measure("intended_master", hw.master_why)
    assert hw.master is not None, f"{hw.master_why} — give the director meant to be master a higher priority"
    try:
        m = assert_vip_on(hw.master, hw.vip)
        # watch until every director has run longer than its master-down interval: a backup that
        # does not hear the master (split brain) takes the VIP by then
        hold = min(
            max(0.0, *(_left_to_settle(d) for d in hw.directors)),
            max(takeover_deadline(d, hw.vip) for d in hw.directors),
        )
        owner = assert_single_vip_owner(hw.directors, hw.vip, hold=hold)
    except LabAssertionError as err:
        raise explained(err, why_vrrp(hw, measure, hw.master)) from None
    measure("vip_after_s", round(m.seconds, 2))
    measure("watched_s", round(hold, 1))
    assert owner.value == hw.master.name, (
        f"{diagnosis.led(why_vrrp(hw, measure, hw.master))}{owner.value} holds the VIP; {hw.master_why}"
    )


@pytest.mark.check(
    id="vip_by_keepalived",
    points=2,
    title="the VIP is keepalived's: stopping it on the master moves the VIP",
    hint="The VIP must come and go with keepalived (virtual_ipaddress), not be added by hand or by a provisioner.",
    needs=KEEPALIVED,
    state=STEADY,
)
def test_vip_by_keepalived(hw, measure):
    holder, backup = hw.holder, hw.backup_for(hw.holder)
    hw.changed()
    hw.event(holder, f"keepalived stopped on {holder.name}")
    holder.stop("keepalived")
    try:
        moved = assert_failover_within(holder, backup, hw.vip)
        measure("moved_after_s", round(moved.seconds, 2))
    except LabAssertionError as err:
        raise explained(err, why_vrrp(hw, measure, backup)) from None
    finally:
        holder.start("keepalived")
        hw.event(holder, f"keepalived started on {holder.name}")


@pytest.mark.check(
    id="real_dr_ready",
    points=2,
    title="each real accepts traffic for the VIP and never answers ARP for it",
    hint="On each real: the VIP as /32 on lo (`ip addr show lo`) with `sysctl "
    "net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2`, or an equivalent such as "
    "an iptables REDIRECT of the VIP's port.",
)
def test_real_dr_ready(hw, measure):
    """Judged by function (a request for the VIP delivered to the real's MAC is answered, and the
    real answers no ARP for the VIP), not by one recipe; the recipe's values are the evidence."""
    problems = {}
    for r in hw.reals:
        try:
            assert_dr_real(r, hw.vip, interface=hw.lab_if[r.name], client=hw.client, port=hw.port)
        except LabAssertionError as err:
            problems[r.name] = err.got
    measure("problems", problems)

    def why() -> str:
        client_ip = hw.client_ip()
        return diagnosis.led(
            next(
                filter(
                    None,
                    (
                        diagnosis.diagnose(
                            measure,
                            diagnosis.dr_real,
                            real=r,
                            vip=hw.vip,
                            client_ip=client_ip,
                            interface=hw.lab_if[r.name],
                        )
                        for r in hw.reals
                        if r.name in problems
                    ),
                ),
                None,
            )
            if client_ip
            else None
        )

    assert not problems, why() + "; ".join(f"{k}: {v}" for k, v in problems.items())


@pytest.mark.check(
    id="ipvs_service",
    points=2,
    title="each director has the IPVS service: rr, DR, both reals",
    hint="Run `ipvsadm -Ln` on both directors, the backup too: the VIP:80 service with rr, both reals, Route.",
    needs=KEEPALIVED,
)
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
    assert not failures, _why(hw, measure, holder=hw.lab.hosts[next(iter(failures))]) + "; ".join(
        f"{k}: {v}" for k, v in failures.items()
    )


@pytest.mark.check(
    id="traffic_via_vip",
    points=2,
    title=f"{REQUESTS} requests to the VIP: all 200, both reals answer",
    hint="From the client, `curl` the VIP several times: which reals answer, and does every request succeed?",
    needs=KEEPALIVED,
    state=TRAFFIC,
)
def test_traffic_via_vip(hw, measure):
    answers, before, director = hw.traffic()
    statuses = Counter(r.status for r in answers)
    if distinct(hw.pages) or not hw.lab.ipvs:
        by_real = Counter(r.real for r in answers if r.ok)
        measure("by_real_from", "each real's own page")
    else:  # the reals serve the same page: count each real's connections in IPVS instead
        names = {a.split("/")[0]: r.name for r in hw.reals for a in vrrp.read_addresses(r).get(hw.lab_if[r.name], [])}
        split = assert_rr_balanced(
            director, hw.vip, hw.port, expected_total=REQUESTS, since=before, tolerance=REQUESTS
        ).value
        by_real = Counter({names.get(k.rsplit(":", 1)[0], k): v for k, v in split.items() if v})
        measure("by_real_from", "IPVS connection counters (the reals serve the same page)")
    measure("statuses", dict(statuses))
    measure("by_real", dict(by_real))
    # a message is made only when its assertion fails: the diagnosis runs on failure alone
    assert statuses == {200: REQUESTS}, _why(hw, measure, by_real=by_real) + said_statuses(statuses)
    assert set(by_real) == {r.name for r in hw.reals}, _why(hw, measure, by_real=by_real) + said_split(
        by_real, [r.name for r in hw.reals]
    )


@pytest.mark.check(
    id="vip_arp_to_director",
    points=1,
    title="the client's ARP for the VIP reaches the active director only",
    hint="On the client, `arping` the VIP: if a real answers too, its ARP suppression is missing.",
    needs=KEEPALIVED,
    state=STEADY,
)
def test_vip_arp_to_director(hw, measure):
    owner = hw.holder.name
    answer = hw.arp()
    measure("arp", {"mac": answer.mac, "owner": answer.owner, "repliers": list(answer.repliers)})

    def why() -> str:
        return diagnosis.led(
            next(
                filter(
                    None,
                    (
                        diagnosis.diagnose(measure, diagnosis.arp_leak, real=r, vip=hw.vip, interface=hw.lab_if[r.name])
                        for r in hw.reals
                        if r.name in answer.repliers
                    ),
                ),
                None,
            )
        )

    assert answer.owner == owner and list(answer.repliers) == [owner], (
        f"{why()}the VIP resolves to {answer.owner} ({answer.mac}); ARP replies came from {said(answer.repliers)}, "
        f"expected from {owner} only\n--- evidence ---\n{answer.raw}"
    )


@pytest.mark.check(
    id="rr_balanced",
    points=2,
    title="round robin: an even split on the active director",
    hint="`ipvsadm -Ln --stats` after a batch of requests: with rr each real gets the same number of connections.",
    needs=KEEPALIVED,
    state=TRAFFIC,
)
def test_rr_balanced(hw, measure):
    if not hw.lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    _, before, director = hw.traffic()
    measure("director", director.name)
    try:
        split = assert_rr_balanced(director, hw.vip, hw.port, expected_total=REQUESTS, since=before)
    except LabAssertionError as err:
        names = {a.split("/")[0]: r.name for r in hw.reals for a in vrrp.read_addresses(r).get(hw.lab_if[r.name], [])}
        last = err.samples[-1][1] if err.samples else {}
        by_real = {names.get(k.rsplit(":", 1)[0], k): v for k, v in last.items()}
        raise explained(err, why_path(hw, measure, holder=director, by_real=by_real)) from None
    measure("split", split.value)


@pytest.mark.check(
    id="inactconn_drains",
    points=2,
    title="question 1: inactive connections linger, then drain within the FIN_WAIT timeout",
    hint="Watch `ipvsadm -Ln` after some requests and compare with `ipvsadm -Ln --timeout` (the tcpfin value).",
    needs=KEEPALIVED,
    state=TRAFFIC,
)
def test_inactconn_drains(hw, measure):
    if not hw.lab.ipvs:
        pytest.skip("this lab's kernel has no IPVS")
    measure("timing", hw.timing)
    if hw.timing == "fast":
        measure(
            "note",
            f"--timing fast: tcpfin set to {FAST_TCPFIN} s before the traffic "
            "(default 120 s = 1 MSL; --timing faithful keeps it)",
        )
    # a burst of its own: the drain is timed from requests just made (earlier entries may have expired)
    answers = hw.requests(DRAIN_REQUESTS)
    assert any(a.ok for a in answers), (
        f"{_why(hw, measure)}no request answered ({said_statuses(Counter(a.status for a in answers))})"
    )
    try:
        drained = assert_inactconn_drains_within(hw.holder, hw.vip, hw.port, interval=0.5)
    except LabAssertionError as err:
        measure("drain", [(t, a, i) for t, (a, i) in err.samples])
        raise
    measure("drain", [(t, a, i) for t, (a, i) in drained.samples])
    measure("inactive_at_start", drained.value)
    measure("drained_after_s", round(drained.seconds, 1))


def _measure_move(hw, measure, name: str, polled, cause: tuple, effect: tuple, after: float) -> None:
    """``name``: the seconds from ``cause`` to ``effect`` by the kernel's own event timestamps
    (ms resolution), else (no events) the polling assertion's figure (0.1 s resolution)."""
    times = hw.moved(*cause, effect, after=after - 0.5)
    if times:
        measure(name, round(times[1] - times[0], 3))
        measure(f"{name.removesuffix('_s')}_from", "kernel address events")
    else:
        measure(name, round(polled.seconds, 2))
        measure(f"{name.removesuffix('_s')}_from", f"polling every {0.1:g} s")


@pytest.mark.check(
    id="failover",
    points=3,
    title="the master's lab link down: the backup takes the VIP and traffic flows through it",
    hint="Take the master's lab interface down (`ip link set eth1 down`) and watch the backup's "
    "keepalived log and `ip addr`.",
    needs=KEEPALIVED,
    state=TRAFFIC,
)
def test_failover(hw, measure):
    with hw.takeover(measure) as t:
        hw.last_traffic = time.monotonic()
        _measure_move(hw, measure, "failover_s", t.moved, ("link", t.holder, False), ("vip", t.backup, True), t.t0)
        results = t.prober.results
        after = [r for r in results if r.time > results[-1].time - 0.5] if results else []
        failing = [r for r in after if not r.ok]
        assert not failing, (
            f"{_why(hw, measure, holder=t.backup)}client requests still fail after the takeover: "
            f"{len(failing)} of the last {len(after)} "
            f"({said_statuses(Counter(r.status for r in after))})"
        )
        assert after, "the client's prober recorded no request after the takeover"
        if hw.lab.ipvs:
            before = hw.stats_now(t.backup)  # the prober's last requests are still being counted
            answers = hw.requests(10)
            assert all(a.ok for a in answers), (
                f"{_why(hw, measure, holder=t.backup)}through the backup: "
                f"{said_statuses(Counter(a.status for a in answers))}"
            )
            # the takeover and traffic through the new holder are failover's; the split is rr_balanced's
            split = assert_rr_balanced(t.backup, hw.vip, hw.port, expected_total=10, since=before, tolerance=10)
            measure("split_on_backup", split.value)


@pytest.mark.check(
    id="failback",
    points=2,
    title="the master's lab link up again: the VIP returns to it, the backup is BACKUP again",
    hint="After the link comes back, the higher-priority director should preempt; `nopreempt` or "
    "equal priorities keep the VIP away.",
    needs=KEEPALIVED,
    state=STEADY,
)
def test_failback(hw, measure):
    holder, backup = hw.holder, hw.backup_for(hw.holder)
    measure("intended_master", hw.master_why)
    try:
        hw.link_down(holder)
        try:
            assert_failover_within(holder, backup, hw.vip)
        except LabAssertionError as err:
            not_ready(
                f"the VIP did not move to {backup.name} when {holder.name}'s lab link went down "
                f"({err.got}; see check failover), so there is nothing to fail back"
            )
        prober = Prober(hw.client, hw.url)
        with prober:
            t0 = hw.link_up(holder)
            try:
                back = assert_failover_within(backup, holder, hw.vip, seconds=takeover_deadline(holder, hw.vip) + 3)
            except LabAssertionError as err:
                raise explained(err.noted(hw.master_why), why_vrrp(hw, measure, holder)) from None
            finally:
                time.sleep(1)
        hw.last_traffic = time.monotonic()
        hw.probes += prober.results
    finally:
        if not link_is_up(holder, hw.lab_if[holder.name]):
            hw.link_up(holder)
    measure_probes(measure, prober)
    _measure_move(hw, measure, "failback_s", back, ("link", holder, True), ("vip", holder, True), t0)
    states = [t.state for t in vrrp.read_transitions(backup)]
    measure("backup_states", states)
    assert states and states[-1] == "BACKUP", f"the backup's last state is {states[-1] if states else 'unknown'}"


@pytest.mark.check(
    id="no_split_brain",
    points=2,
    title="never two VIP owners across the scenario (beyond a preemption handover)",
    hint="Both directors must use the same virtual_router_id on the same network and hear each other's adverts.",
    needs=KEEPALIVED,
)
def test_no_split_brain(hw, measure):
    """Who held the VIP, across the whole scenario, from the kernel's address events on each
    director (or, where a lab gives none, sampled every 0.25 s). During a preemption both hold it
    for a few ms (the new master adds it before the old one reads its advert; seen here: ~10 ms in
    keepalived's logs), so an overlap shorter than one advert interval is reported as a handover;
    one lasting an advert interval or more is a split brain."""
    samples = hw.watch.stop()
    count = sum(len(rows) for rows in samples.values())
    start = min((rows[0][0] for rows in samples.values() if rows), default=0)
    advert = max(vrrp_instance(d).advert_int for d in hw.directors)
    if isinstance(hw.watch, vrrp.OwnershipMonitor):
        episodes = vrrp.overlap_intervals(samples)
    else:
        episodes = vrrp.overlap_episodes(samples, gap=advert)
    # VMs keep clocks of their own: their times are moved to one clock by measured offsets, each
    # known to a few ms; an overlap is a split brain only beyond what that uncertainty could make
    tolerance = hw.watch.tolerance() if isinstance(hw.watch, vrrp.OwnershipMonitor) else 0.0
    lasting = [e for e in episodes if e["seconds"] >= advert + tolerance]
    measure("ownership_from", hw.watch_source)
    if isinstance(hw.watch, vrrp.OwnershipMonitor) and hw.watch.clocks:
        measure(
            "clock_offsets_s",
            {
                n: {"offset": o, "uncertainty": u, "drift": hw.watch.drift.get(n)}
                for n, (o, u) in hw.watch.clocks.items()
            },
        )
        measure("clock_tolerance_s", tolerance)
    measure("samples", count)
    measure("ownership", {n: [(round(t - start, 3), has) for t, has in rows] for n, rows in samples.items()})
    measure("probes", [(round(r.time - start, 3), r.ok) for r in hw.probes])
    measure("events", [(round(t - start, 2), what) for t, what in hw.events])
    measure(
        "handovers",
        [(round(e["start"] - start, 3), round(e["seconds"], 3), e["holders"]) for e in episodes if e not in lasting],
    )
    measure("split_brain", [(round(e["start"] - start, 2), round(e["seconds"], 2), e["holders"]) for e in lasting])
    if isinstance(hw.watch, vrrp.OwnershipMonitor) and hw.watch.beats:
        measure("heartbeat_late_s", {n: late for n, (late, _) in hw.watch.lateness().items()})
        master_down = max(vrrp_instance(d).master_down_interval for d in hw.directors)
        starved = vrrp.starved_episodes(hw.watch, lasting, before=master_down, threshold=advert)
        if lasting and len(starved) == len(lasting):
            raise HarnessError(vrrp.starved_reason(starved, start))
    if not isinstance(hw.watch, vrrp.OwnershipMonitor):  # events always give each director its first state
        assert count, "no VIP samples were taken"
    assert not lasting, (
        f"{diagnosis.led(why_vrrp(hw, measure, None))}two VIP owners for {lasting[0]['seconds']:.1f} s from {lasting[0]['start'] - start:.1f} s "
        f"into the scenario ({said(lasting[0]['holders'])}); {len(lasting)} such episode(s)"
    )
