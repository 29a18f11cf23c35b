"""The LVS-NAT lab, one pytest test per check, each with a stable id and points.

Two directors hold two VIPs with VRRP — the service's VIP on the client network and a gateway
VIP on the server network, in one ``vrrp_sync_group`` — and keepalived's ``virtual_server``
(``lb_kind NAT``, ``lb_algo wrr``, HTTP health checks) sends the requests to reals whose default
route is the gateway VIP, so answers come back through the master to be translated.

Run: ``pytest --lab uml --pyargs lvs_harness.packs.lvs_nat [--submission write-up.md]``.
Everything the checks expect (the VIPs, the weights, the health checks' bounds) is read from
the lab's own configuration; the service is the directors' ``virtual_server``.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter

import pytest

from lvs_harness import diagnosis, keepalived
from lvs_harness.assertions import (
    LabAssertionError,
    assert_ipvs_service,
    assert_vip_on,
    assert_weighted_split,
    said,
    said_statuses,
    takeover_deadline,
)
from lvs_harness.errors import HarnessError
from lvs_harness.probes import ipvs, vrrp
from lvs_harness.probes.client import distinct
from lvs_harness.suite import (
    STEADY,
    VrrpLab,
    baseline_fixture,
    NEEDS_CONFIG,
    config_valid_check,
    not_ready,
    scenario,
)

KEEPALIVED = NEEDS_CONFIG
CONF = "/etc/keepalived/keepalived.conf"
REQUESTS = 60  # whole cycles of weights 3:2:1 (any split is judged within a tolerance)
SLACK = 2.0  # seconds beyond a bound read from the configuration
ANSWERING = "answering"  # the lab states a check starts from: STEADY and ANSWERING (see `baseline`)


class Nat(VrrpLab):
    """The LVS-NAT lab as the checks see it (:class:`lvs_harness.suite.VrrpLab`): the service, the
    gateway VIP on the reals' network (watched too), each director's interface toward the client."""

    def __init__(self, lab, directors, reals, client, timing):
        vip = lab.topology.service.vip
        self.confs = {d.name: keepalived.parse_config(d.run(f"cat {CONF}").stdout) for d in directors}
        insts = {n: c.instance_for(vip) or keepalived.VrrpInstance("?") for n, c in self.confs.items()}
        super().__init__(lab, directors, reals, client, timing, insts=insts)
        self.rips = {r.name: self._rip(r) for r in reals}
        self.gateway = self._gateway()
        if self.gateway:
            self.watch_also(self.gateway)

    def lab_interface(self, host, addresses: dict) -> str:
        """A director has two lab networks: its interface is the one toward the client (the VIP's)."""
        return vrrp.interface_toward(addresses, self.vip) or vrrp.lab_interface(host, addresses, near=self.vip)

    def _rip(self, real) -> str | None:
        for cidrs in self.addresses[real.name].values():
            for c in cidrs:
                if ":" not in c and not c.startswith("127.") and c.split("/")[0] != self.vip:
                    return c.split("/")[0]
        return None

    def _gateway(self) -> str | None:
        """The VRRP address on the reals' network (their way back), from the intended master's config."""
        conf = self.confs[(self.master or self.directors[0]).name]
        rips = [ipaddress.ip_address(a) for a in self.rips.values() if a]
        for inst in conf.instances:
            for raw in inst.virtual_ipaddresses:
                cidr = raw.split()[0]
                net = ipaddress.ip_interface(cidr if "/" in cidr else f"{cidr}/24").network
                if any(a in net for a in rips):
                    return cidr.split("/")[0]
        return None

    def weights(self) -> dict[str, int]:
        """{real address: weight} of the service in the intended master's configuration."""
        conf = self.confs[(self.master or self.directors[0]).name]
        vs = next((v for v in conf.virtual_servers if (v.address, v.port) == (self.vip, self.port)), None)
        return {r.address: r.weight for r in vs.reals} if vs else {}

    def virtual_server(self, director) -> keepalived.VirtualServerConf | None:
        return next(
            (v for v in self.confs[director.name].virtual_servers if (v.address, v.port) == (self.vip, self.port)), None
        )

    def table(self, director) -> ipvs.Service | None:
        return ipvs.parse_list(director.run("ipvsadm -Ln").stdout).service(self.vip, self.port)

    def in_table(self, director) -> set[str]:
        """The real addresses in ``director``'s IPVS service now."""
        svc = self.table(director)
        return {r.address for r in svc.reals} if svc else set()


@pytest.fixture(scope="module")
def nat(lab, directors, reals, client, timing):
    # --timing fast (the default here): short FIN_WAIT entries, each check's connections are its own
    yield from scenario(Nat, "the LVS-NAT lab", lab, directors, reals, client, timing, fallback=False)


def _gateway_with_the_vip(nat, steady) -> None:
    """Every state: the gateway VIP is with the VIP (else answers would not return through it)."""
    if not nat.gateway:
        return
    deadline = time.monotonic() + takeover_deadline(nat.holder, nat.gateway)
    while vrrp.vip_owners(nat.directors, nat.gateway) != [steady.holder] and time.monotonic() < deadline:
        time.sleep(0.2)
    owners = vrrp.vip_owners(nat.directors, nat.gateway)
    if owners != [steady.holder]:
        not_ready(
            f"the gateway VIP {nat.gateway} is on {' and '.join(owners) or 'no director'}, "
            f"not with the VIP on {steady.holder}: answers would not return through it"
        )


def _answering(nat, steady) -> None:
    """``answering``: steady, and one cycle of the weights' requests all answered (else the
    check's own reason cannot be judged)."""
    count = max(len(nat.reals), sum(nat.weights().values()))
    answers = nat.requests(count)
    failed = [a for a in answers if not a.ok]
    if failed:
        not_ready(
            f"in the steady state {len(failed)} of {count} requests through the VIP were not "
            f"answered ({said_statuses(Counter(a.status for a in answers))}; see wrr_split, "
            "reals_via_gateway)"
        )


# ``steady``: links up, keepalived on every director, the VIP on the intended master alone and the
# gateway VIP with it; ``answering``: steady, and the requests of one cycle of the weights answered
baseline = baseline_fixture("nat", states={ANSWERING: _answering}, always=_gateway_with_the_vip)


test_config_valid = config_valid_check("nat", CONF)


@pytest.mark.check(
    id="sync_group",
    points=2,
    title="the VIP and the gateway VIP are in one vrrp_sync_group on each director",
    needs=KEEPALIVED,
    hint="Both vrrp_instance names must be listed in the `group { … }` of one vrrp_sync_group.",
)
def test_sync_group(nat, measure):
    assert nat.gateway, (
        f"no VRRP instance holds an address on the reals' network "
        f"({', '.join(a for a in nat.rips.values() if a)}): the reals have no gateway VIP"
    )
    problems = {}
    for d in nat.directors:
        conf = nat.confs[d.name]
        ext, gw = conf.instance_for(nat.vip), conf.instance_for(nat.gateway)
        if ext is None or gw is None:
            problems[d.name] = f"no vrrp_instance holds {nat.vip if ext is None else nat.gateway}"
            continue
        group = conf.group_of(ext.name)
        if group is None or gw.name not in group.instances:
            groups = "; ".join(f"{g.name} of {said(g.instances)}" for g in conf.sync_groups) or "none"
            problems[d.name] = (
                f"{ext.name} ({nat.vip}) and {gw.name} ({nat.gateway}) are not in one "
                f"vrrp_sync_group (its sync groups: {groups})"
            )
    measure("problems", problems)
    assert not problems, (
        "; ".join(f"{k}: {v}" for k, v in problems.items())
        + " — put both instances in one vrrp_sync_group, so they move together"
    )


@pytest.mark.check(
    id="vips_on_master",
    points=2,
    title="both VIPs on the intended master only",
    needs=KEEPALIVED,
    hint="Compare state and priority of both instances on the two directors.",
)
def test_vips_on_master(nat, measure):
    measure("intended_master", nat.master_why)
    assert nat.master is not None, nat.master_why
    held = {}
    for vip in filter(None, (nat.vip, nat.gateway)):
        held[vip] = round(assert_vip_on(nat.master, vip).seconds, 2)
    # a backup that does not hear the master takes a VIP after its master-down interval
    hold = max(nat.insts[d.name].master_down_interval for d in nat.directors)
    deadline = time.monotonic() + hold
    while True:
        owners = {vip: vrrp.vip_owners(nat.directors, vip) for vip in held}
        wrong = {vip: o for vip, o in owners.items() if o != [nat.master.name]}
        assert not wrong, f"{'; '.join(f'{v} on {o}' for v, o in wrong.items())}; {nat.master_why}"
        if time.monotonic() > deadline:
            break
        time.sleep(0.3)
    measure("vip_after_s", held)
    measure("watched_s", round(hold, 1))


@pytest.mark.check(
    id="reals_via_gateway",
    points=2,
    title="each real's default route is the gateway VIP",
    hint="NAT needs the answers back through the director: `ip route` on each real.",
)
def test_reals_via_gateway(nat, measure):
    assert nat.gateway, "no VRRP instance holds an address on the reals' network, so there is no gateway VIP"
    routes = {r.name: r.run("ip -4 route show default").stdout.strip() for r in nat.reals}
    measure("routes", routes)
    wrong = {n: rt or "no default route" for n, rt in routes.items() if f"via {nat.gateway} " not in f"{rt} "}
    assert not wrong, (
        f"not via {nat.gateway}: "
        + "; ".join(f"{k}: {v}" for k, v in wrong.items())
        + f" — make {nat.gateway} the default route of every real"
    )


@pytest.mark.check(
    id="ipvs_nat_service",
    points=2,
    title="each director's IPVS service: NAT, wrr, every real with its configured weight",
    needs=KEEPALIVED,
    hint="`ipvsadm -Ln` on each director: Masq forwarding, the wrr scheduler, different weights.",
)
def test_ipvs_nat_service(nat, measure):
    weights = nat.weights()
    measure("weights", weights)
    assert weights, f"the intended master's keepalived.conf has no virtual_server {nat.vip} {nat.port}"
    failures = {}
    for d in nat.directors:
        try:
            assert_ipvs_service(
                d, nat.vip, nat.port, scheduler="wrr", reals=sorted(weights), forward="Masq", weights=weights
            )
        except LabAssertionError as err:
            missing = sorted(set(weights) - nat.in_table(d))
            failures[d.name] = err.got + (f"; not in the table: {', '.join(missing)}" if missing else "")
    measure("failures", failures)
    assert not failures, "; ".join(f"{k}: {v}" for k, v in failures.items())
    assert len(set(weights.values())) > 1, (
        f"every real has weight {next(iter(weights.values()))}: the lab asks for different weights"
    )


@pytest.mark.check(
    id="wrr_split",
    points=3,
    title=f"{REQUESTS} requests through the VIP: all answered, split by the weights",
    needs=KEEPALIVED,
    state=STEADY,
    hint="A split that ignores the weights is round robin (lb_algo rr); failed requests point "
    "at the way back (the reals' default route).",
)
def test_wrr_split(nat, measure):
    before = ipvs.read_stats(nat.holder)
    answers = nat.requests(REQUESTS)
    statuses = Counter(a.status for a in answers)
    measure("statuses", dict(statuses))
    if distinct(nat.pages):
        measure("by_real", dict(Counter(a.real for a in answers if a.ok)))
    weights = nat.weights()
    total = sum(weights.values()) or 1
    measure("expected", {name: round(REQUESTS * weights.get(rip, 0) / total, 1) for name, rip in nat.rips.items()})
    names = {rip: name for name, rip in nat.rips.items()}

    def why(by_real=None):
        client_ip = next(
            (
                a.split("/")[0]
                for addrs in nat.addresses[nat.client.name].values()
                for a in addrs
                if ":" not in a and not a.startswith("127.")
            ),
            None,
        )
        return diagnosis.diagnose(
            measure,
            diagnosis.dr_path,
            client_ip=client_ip,
            holder=nat.holder,
            reals=nat.reals,
            vip=nat.vip,
            port=nat.port,
            by_real=by_real,
            directors=nat.directors,
            want="weighted",
            weights={names.get(k, k): w for k, w in weights.items()},
        )

    assert statuses == {200: REQUESTS}, diagnosis.led(why()) + said_statuses(statuses)
    try:
        split = assert_weighted_split(
            nat.holder, nat.vip, nat.port, expected_total=REQUESTS, since=before, weights=weights
        )
    except LabAssertionError as err:
        last = err.samples[-1][1] if err.samples else {}
        finding = why({names.get(k.rsplit(":", 1)[0], k): v for k, v in last.items()})
        raise (err.explained(finding.sentence) if finding else err) from None
    measure("split", split.value)


@pytest.mark.check(
    id="health_check",
    points=3,
    title="a real whose server stops leaves the IPVS table within "
    "the health check's bound, traffic avoids it, and it returns when restarted",
    needs=KEEPALIVED,
    hint="Each real_server needs a health checker (HTTP_GET or TCP_CHECK) on the port its server listens on.",
    state=ANSWERING,
)
def test_health_check(nat, measure):
    holder = nat.holder
    vs = nat.virtual_server(holder)
    assert vs is not None and vs.reals, f"{holder.name} has no virtual_server {nat.vip} {nat.port} with reals"
    by_rip = {rip: name for name, rip in nat.rips.items()}
    present = nat.in_table(holder)
    missing = [r.address for r in vs.reals if r.address not in present]
    assert not missing, (
        f"{', '.join(missing)} not in {holder.name}'s IPVS table while its server runs: its "
        "health check fails against a working server"
    )
    target = min(vs.reals, key=lambda r: (r.weight, r.address))
    real = nat.lab.hosts[by_rip[target.address]]
    bound = vs.removal_bound(target) + SLACK
    measure("real", real.name)
    measure("removal_bound_s", round(bound, 1))
    assert target.checkers, f"real_server {target.address} has no health checker, so nothing removes it"
    nat.event(real, f"nginx stopped on {real.name}")
    real.stop("nginx")
    try:
        t0 = time.monotonic()
        while target.address in nat.in_table(holder):
            assert time.monotonic() - t0 < bound, (
                f"{target.address} still in {holder.name}'s IPVS table {bound:.0f} s after its server stopped"
            )
            time.sleep(0.3)
        measure("removed_after_s", round(time.monotonic() - t0, 1))
        answers = nat.requests(12)
        statuses = Counter(a.status for a in answers)
        measure("after_stop", dict(Counter(a.real for a in answers if a.ok)) if distinct(nat.pages) else {})
        assert statuses == {200: 12}, f"with {real.name}'s server stopped: {said_statuses(statuses)}"
    finally:
        real.start("nginx")
        nat.event(real, f"nginx started on {real.name}")
    back = vs.delay_loop + max((c.connect_timeout for c in target.checkers), default=0) + SLACK
    t0 = time.monotonic()
    while target.address not in nat.in_table(holder):
        assert time.monotonic() - t0 < back, f"{target.address} not back {back:.0f} s after its server restarted"
        time.sleep(0.3)
    measure("returned_after_s", round(time.monotonic() - t0, 1))


@pytest.mark.check(
    id="failover",
    points=3,
    title="the master's client-side link down: the backup takes both VIPs and traffic flows through it",
    needs=KEEPALIVED,
    hint="Only a sync group moves the gateway VIP with the VIP; without it answers return to the old master.",
    state=ANSWERING,
)
def test_failover(nat, measure):
    def with_the_gateway(moved):  # both VIPs move at once, or the reals' answers have no way back
        measure("failover_s", round(moved.seconds, 2))
        if nat.gateway:
            owners = vrrp.vip_owners(nat.directors, nat.gateway)
            measure("gateway_on", owners)
            assert owners == [backup.name], (
                f"the gateway VIP {nat.gateway} is on {' and '.join(owners) or 'no director'} after the VIP "
                f"moved to {backup.name}: the two did not move together — put both instances in one vrrp_sync_group"
            )

    backup = nat.backup_for(nat.holder)
    with nat.takeover(measure, linger=0.5, also=with_the_gateway):
        answers = nat.requests(12)
        statuses = Counter(a.status for a in answers)
        measure("through_backup", dict(statuses))
        assert statuses == {200: 12}, f"through {backup.name}: {said_statuses(statuses)}"


@pytest.mark.check(
    id="no_split_brain",
    points=2,
    title="never two owners of either VIP (beyond a handover)",
    needs=KEEPALIVED,
    hint="Each instance needs the same virtual_router_id on both directors, and each director "
    "must hear the other's adverts.",
)
def test_no_split_brain(nat, measure):
    assert nat.watches, f"no address events could be watched ({nat.watch_error})"
    advert = max(i.advert_int for i in nat.insts.values())
    start = None
    found, ownership = [], {}
    master_down = max(i.master_down_interval for i in nat.insts.values())
    starved = []
    for vip, mon in nat.watches.items():
        samples = mon.stop()
        start = start or min((rows[0][0] for rows in samples.values() if rows), default=0)
        ownership[vip] = {n: [(round(t - start, 3), has) for t, has in rows] for n, rows in samples.items()}
        lasting = [e for e in vrrp.overlap_intervals(samples) if e["seconds"] >= advert + mon.tolerance()]
        found += [(vip, e) for e in lasting]
        starved += vrrp.starved_episodes(mon, lasting, before=master_down, threshold=advert)
    measure("heartbeat_late_s", {n: late for mon in nat.watches.values() for n, (late, _) in mon.lateness().items()})
    if found and len(starved) == len(found):  # every overlap: while the machine starved the lab
        raise HarnessError(vrrp.starved_reason(starved, start))
    measure("ownership", ownership)
    measure("probes", [(round(r.time - start, 3), r.ok) for r in nat.probes])
    measure("events", [(round(t - start, 2), what) for t, what in nat.events])
    measure(
        "split_brain", [(vip, round(e["start"] - start, 2), round(e["seconds"], 2), e["holders"]) for vip, e in found]
    )
    assert not found, "; ".join(
        f"{vip} held by {said(e['holders'])} for {e['seconds']:.1f} s from {e['start'] - start:.1f} s"
        for vip, e in found
    )
