"""Assertions about a running load-balancer lab.

Each one polls a probe until its deadline (every ``interval`` seconds), then returns what it
measured — or fails with expected-vs-got and the raw evidence. The VIP assertions, where an
:class:`~lvs_harness.probes.vrrp.OwnershipMonitor` streams the directors' address events
(:func:`~lvs_harness.probes.vrrp.watching`), look again at each event instead, and once more at the
deadline: the same observation, the same verdict (an event lost could only delay a pass, never
make one), without a process every 0.1 s.
When no deadline is given it is derived from the protocol, from the lab's own configuration:

- VRRP: the backup takes over after the master-down interval,
  ``3 × advert_int + (256 − priority) / 256`` (RFC 5798, with keepalived's VRRPv2 skew),
  read from the director's keepalived.conf, plus one advert interval and ``SLACK``.
- IPVS: an inactive (FIN_WAIT) entry lives for the ``tcpfin`` timeout read from
  ``ipvsadm -Ln --timeout``, plus ``SLACK``.

About MSL: RFC 793/1122 set the Maximum Segment Lifetime to 2 minutes (:data:`MSL`), and
a TCP endpoint that closes first waits 2 × MSL in TIME_WAIT. The director is not an
endpoint: IPVS keeps its own entry per connection, which after the FIN moves to FIN_WAIT
and expires after the ``tcpfin`` timeout — 120 s by default, i.e. one MSL. That is why
``ipvsadm -Ln`` shows InActConn for about two minutes after fast requests (homework
question 1). ``ipvsadm --set 0 10 0`` shortens it for entries created afterwards.

Example::

    assert_vip_on(b1, "10.77.0.100").seconds          # 3.6
    failover = assert_failover_within(b1, b2, "10.77.0.100")   # after b1.link_down("eth1")
    assert_rr_balanced(b2, "10.77.0.100", 80, expected_total=50, since=before)
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from collections.abc import Callable

from .errors import HarnessError, LabError, LabGone
from . import keepalived
from .probes import arp, ipvs, vrrp

MSL = 120.0  # seconds: RFC 793 / RFC 1122 Maximum Segment Lifetime (2 minutes)
SLACK = 2.0  # seconds added to protocol-derived deadlines (scheduling, polling)
DEFAULT_VRRP = keepalived.VrrpInstance(name="default")  # keepalived's defaults: priority 100, advert_int 1
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"


class LabAssertionError(AssertionError):
    """A lab assertion that failed: ``expected``/``got`` plus the raw ``evidence``."""

    def __init__(
        self,
        what: str,
        expected: str,
        got: str,
        seconds: float,
        evidence: str = "",
        samples: tuple = (),
        because: str = "",
    ):
        self.what, self.expected, self.got, self.seconds, self.evidence = what, expected, got, seconds, evidence
        self.samples, self.because = samples, because
        text = f"{what}: expected {expected}, got {got} (after {seconds:.1f} s)"
        if because:
            text = f"{because}. Seen: {text}"
        if evidence:
            text += "\n--- evidence ---\n" + evidence.rstrip()[-3000:]
        super().__init__(text)

    def noted(self, note: str) -> LabAssertionError:
        """The same failure with ``note`` added to what was got (e.g. what the configuration implies)."""
        return LabAssertionError(
            self.what, self.expected, f"{self.got}; {note}", self.seconds, self.evidence, self.samples, self.because
        )

    def explained(self, because: str) -> LabAssertionError:
        """The same failure, its reason led by ``because`` (why it failed: a diagnosis's sentence)."""
        return LabAssertionError(self.what, self.expected, self.got, self.seconds, self.evidence, self.samples, because)


@dataclasses.dataclass(frozen=True)
class Measured:
    """What a passing assertion measured: the value, how long it took, and the raw evidence."""

    value: Any
    seconds: float
    deadline: float
    evidence: str = ""
    samples: tuple = ()  # (seconds since the start, observation) for each poll, where the probe keeps them


class ObservationError(LabError):
    """An assertion whose probe kept failing (the lab or the harness, not the lab's behaviour)."""


_ERROR = object()  # _Seen.sample of an observation that raised


@dataclasses.dataclass(frozen=True)
class _Seen:
    ok: bool
    value: Any
    got: str
    evidence: str = ""
    sample: Any = None


def _poll(
    observe: Callable[[], _Seen], *, what: str, expected: str, deadline: float, interval: float, hosts=()
) -> Measured:
    """``observe`` until it is ok or ``deadline`` s passed: every ``interval`` s, or, where a live
    monitor streams ``hosts``' address events, at each event and at the deadline."""
    t0 = time.monotonic()
    samples = []
    watch = vrrp.watching(hosts) if hosts else None

    def attempt() -> _Seen:
        try:
            seen = observe()
        except LabGone:
            raise  # no later poll can succeed
        except HarnessError as err:
            return _Seen(False, err, f"an error: {err}", sample=_ERROR)
        if seen.sample is not None and seen.sample is not _ERROR:
            samples.append((round(time.monotonic() - t0, 2), seen.sample))
        return seen

    while True:
        since = vrrp.events_seen(watch)
        seen = attempt()
        left = deadline - (time.monotonic() - t0)
        if seen.ok or left <= 0:
            break
        vrrp.pause(watch, since, interval, left)
    elapsed = time.monotonic() - t0
    how = "looked at each of the kernel's address events" if watch is not None else f"polled every {interval:g} s"
    if seen.sample is _ERROR:
        # the lab could not be observed (a command timed out, the guest did not answer): that
        # is no verdict on the lab, so it is an error, not an assertion that failed
        raise ObservationError(f"could not observe {what} for {elapsed:.1f} s: {seen.value}") from seen.value
    if not seen.ok:
        raise LabAssertionError(
            f"{what} (deadline {round(deadline, 2):g} s, {how})",
            expected,
            seen.got,
            elapsed,
            seen.evidence,
            tuple(samples),
        )
    return Measured(seen.value, elapsed, deadline, seen.evidence, tuple(samples))


def vrrp_instance(director, vip: str | None = None) -> keepalived.VrrpInstance:
    """The director's vrrp_instance that carries ``vip`` (the first one when ``vip`` is None or
    none carries it), from its keepalived.conf; keepalived's defaults if unreadable.

    Example::

        vrrp_instance(b1, "10.77.0.100").priority     # 150
    """
    r = director.run(f"cat {KEEPALIVED_CONF}")
    instances = keepalived.parse_config(r.stdout).instances if r.ok else ()
    carrying = [i for i in instances if vip is not None and vip in i.vips]
    return (carrying or list(instances) or [DEFAULT_VRRP])[0]


def takeover_deadline(director, vip: str | None = None) -> float:
    """How long ``director`` may take to become MASTER once the master is gone."""
    inst = vrrp_instance(director, vip)
    return inst.master_down_interval + inst.advert_int + SLACK


def _said_addresses(by_interface: dict) -> str:
    """{interface: [addresses]} in words: 'addresses eth1 10.0.0.1/24 and 10.0.0.100/32; lo 127.0.0.1/8'."""
    return "addresses " + (
        "; ".join(f"{iface} {said(addrs)}" for iface, addrs in by_interface.items()) if by_interface else "none"
    )


def _said_owners(owners: list[str]) -> str:
    return f"owners {said(owners)}" if owners else "no owner"


def _said_connections(total: int, per_real: dict) -> str:
    return f"{total} connections" + (
        ": " + ", ".join(f"{n} to {real}" for real, n in per_real.items()) if per_real else ", to no real"
    )


def _addresses_evidence(hosts) -> tuple[dict, str]:
    found, text = {}, []
    for h in hosts:
        out = h.run("ip -o -4 addr show").stdout
        found[h.name] = vrrp.parse_addresses(out)
        text.append(f"$ ip -o -4 addr show   # on {h.name}\n{out}")
    return found, "\n".join(text)


def assert_vip_on(director, vip: str, *, deadline: float | None = None, interval: float = 0.2) -> Measured:
    """``vip`` is on one of ``director``'s interfaces (lo excluded); returns the seconds it took.

    Example::

        assert_vip_on(lab.hosts["lb1"], "10.77.0.100")
    """

    def observe():
        found, evidence = _addresses_evidence([director])
        owned = vrrp.owners(found, vip) == [director.name]
        return _Seen(owned, director.name, _said_addresses(found[director.name]), evidence)

    return _poll(
        observe,
        what=f"VIP {vip} on {director.name}",
        expected=f"{vip} on a {director.name} interface",
        deadline=deadline or takeover_deadline(director) + 3,
        interval=interval,
        hosts=[director],
    )


def assert_vip_absent(host, vip: str, *, deadline: float = 5.0, interval: float = 0.2) -> Measured:
    """``vip`` is on no interface of ``host`` except lo.

    Example::

        assert_vip_absent(lab.hosts["lb2"], "10.77.0.100")
    """

    def observe():
        found, evidence = _addresses_evidence([host])
        return _Seen(not vrrp.owners(found, vip), None, _said_addresses(found[host.name]), evidence)

    return _poll(
        observe,
        what=f"VIP {vip} absent from {host.name}",
        expected=f"no {vip} outside lo",
        deadline=deadline,
        interval=interval,
        hosts=[host],
    )


def assert_single_vip_owner(
    directors, vip: str, *, deadline: float | None = None, hold: float = 0.0, interval: float = 0.2
) -> Measured:
    """Exactly one director holds ``vip``, and keeps holding it alone for ``hold`` seconds; returns its name.

    Example::

        owner = assert_single_vip_owner(directors, "10.77.0.100", hold=3).value   # 'lb1'
    """
    directors = list(directors)

    def observe():
        found, evidence = _addresses_evidence(directors)
        owners = vrrp.owners(found, vip)
        return _Seen(len(owners) == 1, owners[0] if len(owners) == 1 else None, _said_owners(owners), evidence)

    watch = vrrp.watching(directors)
    since = vrrp.events_seen(watch)
    first = _poll(
        observe,
        what=f"a single owner of {vip}",
        expected="exactly one director",
        deadline=deadline or max(takeover_deadline(d) for d in directors) + 3,
        interval=interval,
        hosts=directors,
    )
    t0 = time.monotonic()
    while (left := hold - (time.monotonic() - t0)) > 0:  # an observation window, not a wait for state
        vrrp.pause(watch, since, interval, left)
        since = vrrp.events_seen(watch)
        seen = observe()
        if seen.value != first.value:
            raise LabAssertionError(
                f"{vip} staying with {first.value} for {hold:.1f} s",
                f"only {first.value}",
                seen.got,
                first.seconds + time.monotonic() - t0,
                seen.evidence,
            )
    return first


FORWARDING = {"Route": "direct routing", "Masq": "masquerading (NAT)", "Tunnel": "tunneling", "Local": "local"}


def said(names) -> str:
    """Names as a sentence says them: 'a', 'a and b', 'a, b and c' ('nobody' for none)."""
    names = [str(n) for n in names]
    if not names:
        return "nobody"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def said_statuses(statuses: dict) -> str:
    """How a batch of HTTP requests ended, in words (status 0: no HTTP answer at all).

    Example::

        said_statuses({0: 25, 200: 25})   # 'statuses of the 50 requests: 25 answered 200, 25 got no HTTP answer'
    """
    total = sum(statuses.values())
    parts = [
        f"{n} " + ("got no HTTP answer" if not status else f"answered {status}")
        for status, n in sorted(statuses.items(), key=lambda kv: (-kv[1], -(kv[0] or 0)))
    ]
    return f"statuses of the {total} requests: " + ", ".join(parts)


def said_split(by_real: dict, expected: list[str] = ()) -> str:
    """Which reals answered how many requests, in words, naming those that answered none.

    Example::

        said_split({"web1": 50}, ["web1", "web2"])   # 'answers came from web1 (50); none from web2'
    """
    got = [
        f"{name} ({n})" for name, n in sorted(by_real.items(), key=lambda kv: (-kv[1], str(kv[0]))) if name is not None
    ]
    text = "answers came from " + said(got) if got else "no real answered"
    if by_real.get(None):
        text += f"; {by_real[None]} request(s) got no answer"
    silent = [name for name in expected if not by_real.get(name)]
    return text + (f"; none from {said(silent)}" if silent and got else "")


def said_reals(reals) -> str:
    """[(address, forward)] in words: '10.0.0.1 and 10.0.0.2 by direct routing'."""
    modes = {f for _, f in reals}
    if len(modes) == 1:
        mode = modes.pop()
        return f"{said(a for a, _ in reals)} by {FORWARDING.get(mode, mode)}"
    return said(f"{a} by {FORWARDING.get(f, f)}" for a, f in reals)


def assert_ipvs_service(
    director,
    vip: str,
    port: int,
    *,
    scheduler: str = "rr",
    reals: list[str] | None = None,
    forward: str = "Route",
    protocol: str = "TCP",
    weights: dict[str, int] | None = None,
    deadline: float = 15.0,
    interval: float = 0.5,
) -> Measured:
    """``director`` has the virtual service with this scheduler and exactly these reals in ``forward``
    mode (``Route`` DR, ``Masq`` NAT, ``Tunnel``); with ``weights`` ({real address: weight}), each
    real's weight too.

    Example::

        assert_ipvs_service(lb1, "10.77.0.100", 80, scheduler="wrr", reals=["10.77.0.31", "10.77.0.32"],
                            weights={"10.77.0.31": 3, "10.77.0.32": 1})
    """

    def observe():
        r = director.run("ipvsadm -Ln")
        text = r.stdout + r.stderr
        # the table is stdout (a VM's sudo may warn on stderr); stderr counts when ipvsadm fails (no IPVS)
        svc = ipvs.parse_list(r.stdout if r.ok else text).service(vip, port, protocol)
        if svc is None:
            return _Seen(False, None, f"no {protocol} {vip}:{port} service", text)
        got_reals = sorted((r.address, r.forward) for r in svc.reals)
        want = sorted((a, forward) for a in reals) if reals is not None else None
        got_weights = {r.address: r.weight for r in svc.reals}
        ok = svc.scheduler == scheduler and (
            want is None and all(f == forward for _, f in got_reals) or got_reals == want
        )
        ok = ok and (weights is None or got_weights == dict(weights))
        got = f"scheduler {svc.scheduler}, reals {said_reals(got_reals) if got_reals else 'none'}" + (
            f", weights {said(f'{a} {w}' for a, w in sorted(got_weights.items()))}" if weights else ""
        )
        return _Seen(ok, svc, got, text)

    expected = (
        f"{protocol} {vip}:{port} {scheduler}"
        + (f" with {said_reals([(a, forward) for a in sorted(reals)])}" if reals else "")
        + (f", weights {said(f'{a} {w}' for a, w in sorted(weights.items()))}" if weights else "")
    )
    return _poll(
        observe, what=f"IPVS service on {director.name}", expected=expected, deadline=deadline, interval=interval
    )


def _conns(stats, key: str, by_address: bool = False) -> dict:
    """{"total": the service's connections, real ("addr:port", or "addr"): its connections}."""
    for s in stats or []:
        if s.key == key:
            return {
                "total": s.conns,
                **{(r.rsplit(":", 1)[0] if by_address else r): c["Conns"] for r, c in s.reals.items()},
            }
    return {"total": 0}


def _conns_since(director, key: str, since, by_address: bool = False) -> tuple[dict, str]:
    """How much each of the service's counters grew since ``since`` (read_stats), and the raw text."""
    text = director.run("ipvsadm -Ln --stats --exact").stdout
    base, now = _conns(since, key, by_address), _conns(ipvs.parse_counters(text), key, by_address)
    return {k: v - base.get(k, 0) for k, v in now.items()}, text


def split_tolerance(requests: int) -> int:
    """How far a real's count may be from its weighted share after ``requests`` requests: 5 % of
    them, at least 1. (wrr and rr give every real its exact share over whole cycles of the
    weights; a partial cycle, or a connection still being counted, moves a share by a few.)"""
    return max(1, round(requests * 0.05))


def assert_weighted_split(
    director,
    vip: str,
    port: int,
    *,
    expected_total: int,
    since: list | None = None,
    weights: dict[str, int] | None = None,
    tolerance: int | None = None,
    deadline: float = 10.0,
    interval: float = 0.5,
) -> Measured:
    """The service's connection counter grew by ``expected_total``, split over its reals in
    proportion to their weights (``weights`` {address: weight}, default: the IPVS table's), each
    within ``tolerance`` (default :func:`split_tolerance`) of its share. Pass
    ``since=ipvs.read_stats(director)`` taken before the traffic. The value is {real: count}.

    Example::

        before = ipvs.read_stats(lb1); http_requests(client, url, 60)
        assert_weighted_split(lb1, vip, 80, expected_total=60, since=before).value
        # {'10.77.0.31:80': 45, '10.77.0.32:80': 15}     (weights 3:1)
    """
    tolerance = split_tolerance(expected_total) if tolerance is None else tolerance
    key = ipvs.Service("TCP", vip, port).key
    if weights is None:
        svc = ipvs.parse_list(director.run("ipvsadm -Ln").stdout).service(vip, port)
        weights = {r.address: r.weight for r in svc.reals} if svc else {}
    total_weight = sum(weights.values()) or 1
    shares = {a: expected_total * w / total_weight for a, w in weights.items()}

    def observe():
        delta, text = _conns_since(director, key, since, by_address=True)
        per_real = {k: v for k, v in delta.items() if k != "total" and (v or k in shares)}
        ok = (
            delta["total"] == expected_total
            and set(per_real) <= set(shares)
            and all(abs(per_real.get(a, 0) - share) <= tolerance for a, share in shares.items())
        )
        return _Seen(ok, per_real, _said_connections(delta["total"], per_real), text, sample=per_real)

    want = ", ".join(f"{a}: {share:g}" for a, share in shares.items())
    return _poll(
        observe,
        what=f"weighted split over {vip}:{port} on {director.name}",
        expected=f"{expected_total} connections, by weight ({want}; ±{tolerance} each)",
        deadline=deadline,
        interval=interval,
    )


def assert_rr_balanced(
    director,
    vip: str,
    port: int,
    *,
    expected_total: int,
    tolerance: int = 1,
    since: list | None = None,
    deadline: float = 10.0,
    interval: float = 0.5,
) -> Measured:
    """The service's connection counter grew by ``expected_total``, split evenly over its reals
    (each within ``tolerance`` of an equal share). Waits for ``ipvsadm --stats``, which lags
    about 2 s. Pass ``since=read_stats(director)`` taken before the traffic.

    Example::

        before = ipvs.read_stats(b1); http_requests(client, url, 50)
        assert_rr_balanced(b1, vip, 80, expected_total=50, since=before).value
        # {'10.77.0.21:80': 25, '10.77.0.22:80': 25}
    """
    key = ipvs.Service("TCP", vip, port).key

    def observe():
        delta, text = _conns_since(director, key, since)
        per_real = {k: v for k, v in delta.items() if k != "total"}
        share = expected_total / max(len(per_real), 1)
        ok = (
            delta["total"] == expected_total
            and bool(per_real)
            and all(abs(v - share) <= tolerance for v in per_real.values())
        )
        return _Seen(ok, per_real, _said_connections(delta["total"], per_real), text, sample=per_real)

    return _poll(
        observe,
        what=f"round robin over {vip}:{port} on {director.name}",
        expected=f"{expected_total} connections, an equal share (±{tolerance}) per real",
        deadline=deadline,
        interval=interval,
    )


def _sysctl(host, name: str) -> int:
    return int(host.check(f"cat /proc/sys/{name.replace('.', '/')}").stdout.strip())


def assert_config_runs(directors, path: str = "/etc/keepalived/keepalived.conf") -> Measured:
    """keepalived runs each director's config as written (``keepalived --config-test``, read by
    :func:`lvs_harness.keepalived.config_test_findings`): what it drops, cannot use or cannot start
    fails; what it recovers from (auth_pass truncated, scripts without script security, unknown or
    deprecated keywords) is the value, {director: [warning]}.

    Example::

        assert_config_runs(directors).value     # {'lb1': ['Truncating auth_pass to 8 characters']}
    """
    t0 = time.monotonic()
    errors, warnings, evidence = {}, {}, []
    for d in directors:
        r = d.run(f"keepalived --config-test -f {path}")
        out = (r.stderr + r.stdout).strip()
        bad, notes = keepalived.config_test_findings(r.rc, out)
        evidence.append(f"$ ({d.name}) keepalived --config-test -f {path}   # exit {r.rc}\n{out}")
        if bad:
            errors[d.name] = "; ".join(bad + [f"also: {n}" for n in notes])
        if notes:
            warnings[d.name] = notes
    seconds = time.monotonic() - t0
    if errors:
        raise LabAssertionError(
            "keepalived runs each director's config as written",
            "no message of a part it drops, cannot use or cannot start",
            "; ".join(f"{k}: {v}" for k, v in errors.items()),
            seconds,
            "\n".join(evidence),
        )
    return Measured(warnings, seconds, 0.0, "\n".join(evidence))


def _dr_recipe(real, vip: str, interface: str) -> tuple[bool, dict, str, str]:
    """The usual recipe on ``real``: (VIP/32 on lo and ARP suppression in effect, values, summary, evidence)."""
    lo = real.run("ip -o -4 addr show dev lo").stdout
    on_lo = any(c.split("/")[0] == vip and c.endswith("/32") for c in vrrp.parse_addresses(lo).get("lo", []))
    values = {
        f"{kind}({scope})": _sysctl(real, f"net.ipv4.conf.{scope}.{kind}")
        for kind in ("arp_ignore", "arp_announce")
        for scope in ("all", interface)
    }
    ignore = max(values["arp_ignore(all)"], values[f"arp_ignore({interface})"])
    announce = max(values["arp_announce(all)"], values[f"arp_announce({interface})"])
    return (
        on_lo and ignore >= 1 and announce == 2,
        values,
        f"VIP/32 on lo: {on_lo}, effective arp_ignore={ignore} arp_announce={announce}",
        f"$ ip -o -4 addr show dev lo\n{lo}\n" + "\n".join(f"{k} = {v}" for k, v in values.items()),
    )


def _dr_delivery(real, client, vip: str, port: int, interface: str) -> tuple[int, str]:
    """Send one HTTP request from ``client`` to ``vip`` the way a DR director forwards it: to the
    real's MAC, still addressed to the VIP (a host route for the VIP via the real, for this one
    request). (HTTP status, 0 = no answer; evidence)."""
    address = vrrp.read_addresses(real).get(interface, [""])[0].split("/")[0]
    if not address:
        return 0, f"{real.name} has no address on {interface}"
    link = arp.route_interface(client, address) or "eth1"
    route = f"{vip}/32 via {address} dev {link}"
    r = client.run(
        f"ip route replace {route} && trap 'ip route del {route}' EXIT; "
        f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' http://{vip}:{port}/",
        timeout=15,
    )
    status = int(r.stdout.strip()) if r.stdout.strip().isdigit() else 0
    said = r.stdout.strip() or r.stderr.strip() or r.rc
    return status, f"$ (on {client.name}) ip route replace {route}; curl http://{vip}:{port}/ → {said}"


def assert_dr_real(real, vip: str, *, interface: str | None = None, client=None, port: int = 80) -> Measured:
    """A real ready for direct routing. With ``client``, judged by function: a request addressed to
    ``vip`` and delivered to the real's MAC (as a DR director forwards it) is answered, and the real
    answers no ARP request for ``vip`` — VIP/32 on lo with ARP suppression, or an equivalent such as
    an iptables REDIRECT on the real. Without ``client``, the usual recipe: ``vip``/32 on lo and
    ARP suppression in effect on ``interface`` (default: the real's lab interface) — the kernel
    applies max(all, interface): arp_ignore ≥ 1, arp_announce = 2.

    Example::

        assert_dr_real(lab.hosts["web1"], "10.77.0.100", client=lab.hosts["client"])
    """
    interface = interface or vrrp.lab_interface(real, near=vip)

    def recipe():
        ok, values, got, evidence = _dr_recipe(real, vip, interface)
        return _Seen(ok, values, got, evidence)

    if client is None:
        return _poll(
            recipe,
            what=f"{real.name} ready for direct routing",
            expected=f"{vip}/32 on lo, arp_ignore ≥ 1 and arp_announce = 2",
            deadline=3.0,
            interval=0.5,
        )

    def function():
        status, sent = _dr_delivery(real, client, vip, port, interface)
        macs = arp.mac_table([real])
        answer = arp.resolve(client, vip, [real], macs=macs)
        answers_arp = real.name in answer.repliers
        _, values, recipe_got, recipe_evidence = _dr_recipe(real, vip, interface)
        problems = ([] if status else [f"does not answer a request for {vip} delivered to it"]) + (
            [f"answers ARP for {vip}"] if answers_arp else []
        )
        got = "; ".join(problems) or "accepts DR traffic for the VIP and answers no ARP for it"
        return _Seen(
            not problems,
            {"http_status": status, "answers_arp": answers_arp, **values},
            f"{got} ({recipe_got})",
            f"{sent}\n{answer.raw}\n{recipe_evidence}",
        )

    return _poll(
        function,
        what=f"{real.name} ready for direct routing",
        expected=f"a request for {vip} delivered to it is answered, and no ARP reply for {vip}",
        deadline=3.0,
        interval=0.5,
    )


def assert_failover_within(
    from_director, to_director, vip: str, *, seconds: float | None = None, interval: float = 0.1
) -> Measured:
    """Call right after breaking ``from_director``: ``vip`` moves to ``to_director`` and leaves
    ``from_director`` within ``seconds`` (default: the backup's master-down interval + one
    advert + SLACK). Returns the measured failover time.

    Example::

        b1.link_down("eth1")
        assert_failover_within(b1, b2, "10.77.0.100").seconds    # ~3.4
    """

    def observe():
        found, evidence = _addresses_evidence([from_director, to_director])
        owners = vrrp.owners(found, vip)
        return _Seen(owners == [to_director.name], owners, _said_owners(owners), evidence)

    return _poll(
        observe,
        what=f"failover of {vip} from {from_director.name} to {to_director.name}",
        expected=f"{vip} on {to_director.name} only",
        deadline=seconds if seconds is not None else takeover_deadline(to_director),
        interval=interval,
        hosts=[from_director, to_director],
    )


def assert_inactconn_drains_within(
    director, vip: str, port: int, *, seconds: float | None = None, interval: float = 1.0
) -> Measured:
    """Inactive connections exist now for ``vip:port`` and all drain within ``seconds``
    (default: the tcpfin timeout from ``ipvsadm -Ln --timeout`` + SLACK). Returns the drain time;
    ``value`` is the number of inactive connections seen at the start.

    ``samples`` holds (seconds, (ActiveConn, InActConn)) for each poll.

    Example::

        http_requests(client, url, 50)
        assert_inactconn_drains_within(b1, vip, 80).seconds   # ~tcpfin
    """

    def connections() -> tuple[int, int, str]:
        text = director.run("ipvsadm -Ln").stdout
        svc = ipvs.parse_list(text).service(vip, port)
        reals = svc.reals if svc else ()
        return sum(r.active for r in reals), sum(r.inactive for r in reals), text

    _, start, text = connections()
    if start == 0:
        raise LabAssertionError(
            f"inactive connections on {director.name}", f"InActConn > 0 for {vip}:{port}", "none", 0.0, text
        )
    limit = seconds if seconds is not None else ipvs.read_timeouts(director).tcpfin + SLACK

    def observe():
        active, count, table = connections()
        return _Seen(count == 0, start, f"InActConn {count}", table, sample=(active, count))

    measured = _poll(
        observe,
        what=f"InActConn draining on {director.name}",
        expected="InActConn 0",
        deadline=limit,
        interval=interval,
    )
    return dataclasses.replace(measured, value=start)
