"""Why a check failed: the first broken link on a request's path, in one sentence with its fix,
from live observations of the lab (bounded commands, run only when a check has failed).

For a virtual service (direct routing or masquerading), the path is followed in order:

1. the director that holds the VIP has an IPVS service for it, with reals;
2. each real can take a request for the VIP: in direct routing the VIP is one of its addresses;
3. its answer goes back the right way: in direct routing not through ``lo`` (a VIP wider than /32 on
   lo makes the whole network local there), in masquerading through the director;
4. the service spreads clients as asked: a persistent service sends one client to one real, a
   weighted scheduler follows the weights, round robin ignores them.

For a real, whether it answers ARP for the VIP (:func:`arp_leak`). For VRRP, the adverts on the lab
network, captured live (who announces which virtual_router_id, priority and addresses), with each
director's addresses and keepalived's own log lines (:func:`vrrp_path`).

A diagnosis never changes a verdict: it explains one. Every function returns a :class:`Finding` or
None, and :func:`explain` turns anything that goes wrong while looking into None.

Example::

    finding = explain(dr_path, client_ip="10.77.0.50", holder=lb1, reals=[web1, web2],
                      vip="10.77.0.100", port=80)
    finding.cause   # "web1 receives the client's requests for 10.77.0.100 from lb1 but drops them: …"
    finding.fix     # 'add it to lo as /32 (with arp_ignore=1 and arp_announce=2)'
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import time

from .assertions import said
from .probes import ipvs, vrrp

WEIGHTED = {"wrr", "wlc", "sed", "nq", "lblc", "lblcr", "fo", "ovf", "mh"}  # IPVS schedulers that use weights


@dataclasses.dataclass(frozen=True)
class Finding:
    cause: str  # the first broken link, as observed
    fix: str = ""  # what to change
    evidence: str = ""  # what was run and seen

    @property
    def sentence(self) -> str:
        return f"{self.cause} — {self.fix}" if self.fix else self.cause


def explain(look, *args, errors: list[str] | None = None, **kwargs) -> Finding | None:
    """``look(*args, **kwargs)``, or None if looking failed (a diagnosis never breaks a check); why
    it failed is added to ``errors`` when given."""
    try:
        return look(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 — the verdict stands without its explanation
        if errors is not None:
            errors.append(f"{type(err).__name__}: {err}"[:500])
        return None


def diagnose(measure, look, **kwargs) -> Finding | None:
    """:func:`explain` ``look(**kwargs)`` for a failed check, and record on it (``measure``, the
    fixture) what was found: ``diagnosis`` (the sentence), ``diagnosis_fix``, ``diagnosis_seen``
    (the commands and their output) and ``diagnosis_s`` (the time it took); ``diagnosis_error`` when
    looking itself failed (the check's verdict stands without an explanation).

    Example::

        finding = diagnose(measure, dr_path, client_ip="10.77.0.50", holder=lb1, reals=[web1, web2],
                           vip="10.77.0.100", port=80)
        assert ok, led(finding) + "statuses …"
    """
    t0 = time.monotonic()
    errors: list[str] = []
    finding = explain(look, errors=errors, **kwargs)
    if errors:  # staff see why there is no explanation
        measure("diagnosis_error", errors[0])
    measure("diagnosis_s", round(time.monotonic() - t0, 2))
    if finding:
        measure("diagnosis", finding.sentence)
        measure("diagnosis_fix", finding.fix)
        measure("diagnosis_seen", finding.evidence[-2000:])
    return finding


def led(finding: Finding | None) -> str:
    """The start of a failed check's reason: the diagnosis's sentence, then what the check saw
    ('' without a diagnosis). Example: ``led(finding) + "50 got no HTTP answer"``."""
    return f"{finding.sentence}. Seen: " if finding else ""


def _run(host, command: str, seen: list[str]) -> str:
    r = host.run(command)
    out = (r.stdout + r.stderr).strip()
    seen.append(f"$ {command}   # on {host.name}, exit {r.rc}\n{out[-1500:]}")
    return r.stdout if r.ok else ""


def _ips(addresses: dict[str, list[str]], *, lo: bool = True) -> set[str]:
    return {a.split("/")[0] for iface, addrs in addresses.items() if lo or iface != "lo" for a in addrs}


def dr_path(
    *,
    client_ip: str,
    holder,
    reals,
    vip: str,
    port: int,
    by_real: dict | None = None,
    directors=(),
    want: str = "even",
    weights: dict | None = None,
) -> Finding | None:
    """The first broken link between the client and the reals through ``holder``'s IPVS service
    for ``vip``:``port``; then, with ``by_real`` (which real answered how many requests), why the
    split is not what the lab asks (``want``: "even", or "weighted" by ``weights`` {real: weight})."""
    seen: list[str] = []
    listed = holder.run("ipvsadm -Ln")
    if not listed.ok:
        return None  # IPVS cannot be read there (no ipvsadm, no IPVS): nothing to say
    seen.append(f"$ ipvsadm -Ln   # on {holder.name}\n{listed.stdout.strip()[-1500:]}")
    svc = ipvs.parse_list(listed.stdout).service(vip, port, "TCP")
    if svc is None:
        holds = vip in _ips(vrrp.read_addresses(holder), lo=False)
        return Finding(
            f"{holder.name} {f'holds the VIP {vip} but ' if holds else ''}has no IPVS service for "
            f"{vip}:{port}, so {'it' if holds else 'holding the VIP it'} forwards nothing",
            "define the virtual_server (or ipvsadm -A/-a) on every director",
            "\n".join(seen),
        )
    addresses = {real.name: vrrp.read_addresses(real) for real in reals}
    if not svc.reals:
        return _no_reals(holder, reals, addresses, vip, port, seen)
    hosts = {ip: real for real in reals for ip in _ips(addresses[real.name])}
    director_ips = set().union(*(_ips(vrrp.read_addresses(d)) for d in directors)) if directors else set()
    for entry in svc.reals:
        real = hosts.get(entry.address)
        if real is None:
            continue
        if entry.forward == "Route":
            found = _dr_drop(real, addresses[real.name], vip, client_ip, seen, via=holder.name)
            if found:
                return found
        elif entry.forward == "Masq":
            route = _run(real, f"ip route get {client_ip}", seen)
            via = re.search(r"\bvia (\S+)", route)
            if not route.strip():
                return Finding(
                    f"IPVS hands the client's requests to {real.name} (masquerading), but {real.name} has no "
                    f"route back to {client_ip}, so its answers are never sent",
                    "make a director's address (the reals' gateway VIP) its default route",
                    "\n".join(seen),
                )
            if not via or via[1] not in director_ips:
                return Finding(
                    f"IPVS rewrites requests to the real's address (masquerading) but {real.name} answers "
                    f"the client directly, not through {holder.name}",
                    "use direct routing (-g) in this topology, or make the director the reals' gateway",
                    "\n".join(seen),
                )
    return _split(svc, by_real, want, weights, {ip: r.name for ip, r in hosts.items()}, seen) if by_real else None


def _split(svc, by_real: dict, want: str, weights: dict | None, names: dict, seen: list[str]) -> Finding | None:
    """Why the service split ``by_real`` as it did: persistence, or a scheduler that does (not) use weights."""
    answered = {k: v for k, v in by_real.items() if k is not None and v}
    listed = {names.get(r.address, r.address): r.weight for r in svc.reals}
    if svc.persistent and len(answered) == 1:
        ((name, n),) = answered.items()
        return Finding(
            f"all {n} requests went to {name}: the service is persistent (persistence_timeout "
            f"{svc.persistent}), so one client always reaches the same real",
            "leave persistence out of this lab",
            "\n".join(seen),
        )
    missing = [n for n in (weights or {}) if n not in listed]
    if missing:
        return Finding(
            f"{said(missing)} {'is' if len(missing) == 1 else 'are'} not in the IPVS service for "
            f"{svc.address}:{svc.port}, so {'it gets' if len(missing) == 1 else 'they get'} no requests: "
            "its health check removed it, or it was never added",
            "check its real_server address, port and health check against what it serves",
            "\n".join(seen),
        )
    uneven = len(set(answered.values())) > 1 or len(answered) < len(listed)
    if want == "even" and uneven and svc.scheduler in WEIGHTED and len(set(listed.values())) > 1:
        return Finding(
            f"the split follows the weights: the scheduler is {svc.scheduler} and the reals' weights are "
            + said(f"{w} ({n})" for n, w in listed.items()),
            "use lb_algo rr (round robin ignores weights), or equal weights",
            "\n".join(seen),
        )
    if want == "weighted" and svc.scheduler not in WEIGHTED and len(set((weights or listed).values())) > 1:
        return Finding(
            f"the split ignores the weights: the scheduler is {svc.scheduler}, which gives every real the "
            "same share whatever its weight",
            "use lb_algo wrr",
            "\n".join(seen),
        )
    return None


def _dr_drop(real, addresses: dict, vip: str, client_ip: str, seen: list[str], via: str = "") -> Finding | None:
    """Why ``real`` does not answer a direct-routing request for ``vip`` (forwarded ``via`` a
    director): the VIP is not one of its addresses, or its answer to ``client_ip`` goes into lo."""
    where = _vip_on(addresses, vip)
    if where is None:
        return Finding(
            f"{real.name} receives the client's requests for {vip}{f' from {via}' if via else ''} but drops "
            "them: the VIP is not one of its addresses",
            "add it to lo as /32 (with arp_ignore=1 and arp_announce=2)",
            "\n".join(seen + [f"addresses of {real.name}: none is {vip}"]),
        )
    route = _run(real, f"ip route get {client_ip} from {vip}", seen)
    iface, prefix = where
    if iface == "lo" and re.search(r"\bdev lo\b", route):
        return Finding(
            f"{real.name} answers, but its reply to {client_ip} is routed through lo: the VIP as "
            f"/{prefix} on lo makes the whole lab network local there",
            "use /32",
            "\n".join(seen),
        )
    return None


def dr_real(*, real, vip: str, client_ip: str, interface: str) -> Finding | None:
    """Why ``real`` is not ready for direct routing: it answers ARP for ``vip``
    (:func:`arp_leak`), drops requests for it, or routes its answers into lo."""
    seen: list[str] = []
    return arp_leak(real=real, vip=vip, interface=interface) or _dr_drop(
        real, vrrp.parse_addresses(_run(real, "ip -o addr show", seen)), vip, client_ip, seen
    )


def arp_leak(*, real, vip: str, interface: str) -> Finding | None:
    """Why ``real`` answers ARP for ``vip`` on ``interface``: the VIP is one of its addresses and
    its ARP suppression is off (the kernel takes the larger of ``all`` and the interface's value)."""
    seen: list[str] = []
    if _vip_on(vrrp.parse_addresses(_run(real, "ip -o addr show", seen)), vip) is None:
        return None
    names = [f"net.ipv4.conf.{scope}.{kind}" for kind in ("arp_ignore", "arp_announce") for scope in ("all", interface)]
    values = [int(v) for v in _run(real, "sysctl -n " + " ".join(map(shlex.quote, names)), seen).split()]
    if len(values) != 4:
        return None
    ignore, announce = max(values[:2]), max(values[2:])
    if ignore >= 1 and announce == 2:
        return None
    return Finding(
        f"{real.name} answers the client's ARP for {vip}: the VIP is one of its addresses and its ARP "
        f"suppression is off on {interface} (arp_ignore {ignore}, arp_announce {announce})",
        "set net.ipv4.conf.all.arp_ignore=1 and net.ipv4.conf.all.arp_announce=2 on it",
        "\n".join(seen),
    )


def _no_reals(holder, reals, addresses: dict, vip: str, port: int, seen: list[str]) -> Finding:
    """Why ``holder``'s service has no reals: a real whose answers to the director's health checks
    go into lo (the VIP wider than /32 there), else the checks or the addresses."""
    own = [
        a.split("/")[0]
        for iface, addrs in vrrp.read_addresses(holder).items()
        if iface != "lo"
        for a in addrs
        if ":" not in a and a.split("/")[0] != vip
    ]
    for real in reals:
        where = _vip_on(addresses[real.name], vip)
        if own and where and where[0] == "lo" and where[1] < 32:
            route = _run(real, f"ip route get {own[0]}", seen)
            if re.search(r"\bdev lo\b", route):
                return Finding(
                    f"{holder.name}'s IPVS service for {vip}:{port} has no reals: its health checks get no "
                    f"answer from {real.name}, whose replies to {own[0]} are routed through lo: the VIP as "
                    f"/{where[1]} on lo makes the whole lab network local there",
                    "use /32",
                    "\n".join(seen),
                )
    return Finding(
        f"{holder.name}'s IPVS service for {vip}:{port} has no reals (its health checks may have removed them)",
        "check the real_server addresses and ports and their checks",
        "\n".join(seen),
    )


def _vip_on(addresses: dict[str, list[str]], vip: str) -> tuple[str, int] | None:
    """(interface, prefix length) of ``vip`` among a host's ``addresses`` ({interface: [cidr]}), or None."""
    for iface, addrs in addresses.items():
        for a in addrs:
            address, _, prefix = a.partition("/")
            if address == vip:
                return iface, int(prefix or 32)
    return None


@dataclasses.dataclass(frozen=True)
class Advert:
    """A VRRP advertisement as captured: who sent it, for which router id, at which priority, with
    which addresses (and simple-password authentication, if any)."""

    source: str
    vrid: int
    priority: int
    addresses: tuple[str, ...] = ()
    auth: str = ""


ADVERT = re.compile(
    r"(?P<src>\d+\.\d+\.\d+\.\d+) > \S+: VRRPv\d, Advertisement, vrid (?P<vrid>\d+), prio (?P<prio>\d+)"
    r"(?:, authtype (?P<authtype>\w+))?.*?(?:addrs(?:\(\d+\))?:(?P<addrs>[ \d.,]*))?"
    r"(?: auth \"(?P<auth>[^\"]*)\")?\s*$",
    re.M,
)


def parse_adverts(text: str) -> list[Advert]:
    """``tcpdump -n -v`` lines of VRRP adverts → [Advert]."""
    return [
        Advert(
            m["src"],
            int(m["vrid"]),
            int(m["prio"]),
            tuple(a for a in re.split(r"[ ,]+", (m["addrs"] or "").strip()) if a),
            f"{m['authtype'] or ''} {m['auth'] or ''}".strip(),
        )
        for m in ADVERT.finditer(text)
    ]


def capture_adverts(host, interface: str, seconds: float, seen: list[str]) -> list[Advert] | None:
    """The VRRP adverts ``host`` sees on ``interface`` for ``seconds`` once tcpdump listens (it
    can take a while to start on a busy machine: up to 3 s is waited for that), or None if it
    could not listen there (no tcpdump, no such interface)."""
    command = (
        f"d=$(mktemp -d) && {{ tcpdump -l -n -v -c 12 -i {shlex.quote(interface)} ip proto 112 >$d/out 2>$d/err & "
        "p=$!; for i in $(seq 60); do grep -q 'listening on' $d/err && break; kill -0 $p 2>/dev/null || break; "
        f"sleep 0.05; done; sleep {seconds:g}; kill -INT $p 2>/dev/null; wait $p; cat $d/out; cat $d/err >&2; "
        "rm -rf $d; }"
    )
    r = host.run(command, timeout=seconds + 15)
    seen.append(
        f"$ tcpdump … ip proto 112 for {seconds:g} s   # on {host.name}, exit {r.rc}\n"
        f"{(r.stdout + r.stderr).strip()[-1500:]}"
    )
    return parse_adverts(r.stdout) if "listening on" in r.stderr else None


def vrrp_path(*, directors, vip: str, instances: dict, lab_if: dict, expected=None) -> Finding | None:
    """Why ``vip`` is not on ``expected`` alone (None: on one director alone), from the adverts on
    the lab network (captured on ``expected``, else the first director, for one advert interval),
    the directors' addresses and keepalived's log (``instances``: name → the VrrpInstance
    keepalived runs for the VIP, for what adverts cannot show: a backup's own priority)."""
    seen: list[str] = []
    found = {d.name: vrrp.parse_addresses(_run(d, "ip -o addr show", seen)) for d in directors}
    owners = vrrp.owners(found, vip)
    if (expected is None and len(owners) <= 1) or (expected is not None and owners == [expected.name]):
        return None
    listener = expected or directors[0]
    interval = max((i.advert_int for i in instances.values()), default=1.0)
    heard = capture_adverts(listener, lab_if[listener.name], interval + 0.3, seen)
    name_of = {ip: n for n, addrs in found.items() for ip in _ips(addrs)}
    by = {}

    def hear(adverts) -> None:  # who announces what, by director name (the first advert of each)
        for a in adverts or ():
            by.setdefault(name_of.get(a.source, a.source), a)

    hear(heard)
    evidence = "\n".join(seen)
    if len(owners) > 1:
        return _several(owners, by, instances, listener, lab_if, vip, evidence)
    if heard is None:
        return None  # what the lab announces could not be seen
    target = expected
    own = by.get(target.name)
    log = target.log("keepalived")  # read once: its transitions and what it says of the instance
    no_vip = _no_vip_lines(log)
    if own is None and _says_master(log, target.name, seen):  # its log says MASTER: its advert fell outside the window
        hear(capture_adverts(listener, lab_if[listener.name], interval + 0.3, seen))
        own = by.get(target.name)
        evidence = "\n".join(seen)
    if own is not None:  # it announces: it is MASTER of its group
        if vip not in own.addresses:
            if own.addresses:
                return Finding(
                    f"{target.name} is MASTER (it announces virtual_router_id {own.vrid}) but its adverts "
                    f"carry {said(own.addresses)}, not {vip}: its virtual_ipaddress names another address",
                    f"put {vip} in virtual_ipaddress on every director",
                    evidence,
                )
            return Finding(
                f"{target.name} is MASTER (it announces virtual_router_id {own.vrid}) but announces no "
                f"address: keepalived runs its instance without a virtual_ipaddress"
                + (f" (its log: {'; '.join(no_vip)})" if no_vip else ""),
                "fix the virtual_ipaddress block in its configuration (see config_valid)",
                evidence,
            )
        return None
    if no_vip:  # not heard, and keepalived itself says its instance has no address to hold
        return Finding(
            f"{target.name} never holds {vip}: keepalived runs its instance without a virtual_ipaddress (its log: "
            f"{'; '.join(no_vip)})",
            "fix the virtual_ipaddress block in its configuration (see config_valid)",
            "\n".join(seen),
        )
    others = sorted((a for n, a in by.items() if n != target.name), key=lambda a: -a.priority)
    mine = instances.get(target.name)
    if not others:
        return Finding(
            f"no director announces VRRP on {target.name}'s {lab_if[target.name]} within {interval + 0.3:g} s, "
            f"so nobody takes {vip}",
            "start keepalived with a vrrp_instance on the lab network's interface",
            evidence,
        )
    top = others[0]
    who = name_of.get(top.source, top.source)
    if mine is None:
        return None
    if mine.virtual_router_id and mine.virtual_router_id != top.vrid:
        return None
    if mine.priority <= top.priority:
        return Finding(
            f"{who} keeps announcing priority {top.priority} and {target.name}'s is {mine.priority}: a "
            "backup takes the VIP only from a lower priority",
            f"give {target.name} a higher priority than {who}",
            evidence,
        )
    if mine.nopreempt:
        return Finding(
            f"{target.name} (priority {mine.priority}) hears {who}'s adverts at priority {top.priority} but "
            "stays BACKUP: it is set nopreempt, so it does not take the VIP back",
            "leave nopreempt out if the VIP should return to it",
            evidence,
        )
    return None


def _no_vip_lines(log: str) -> list[str]:
    """keepalived's own ``log`` lines about an instance without addresses (e.g. '(VI_1)
    No VIP specified; at least one is sensible'), timestamps dropped, the last two."""
    lines = (
        re.sub(r"^.*?(?:\d{4}|\]): ", "", line.strip())
        for line in log.splitlines()
        if "No VIP specified" in line or "virtual_ipaddress" in line.lower()
    )
    return list(dict.fromkeys(lines))[-2:]


def _says_master(log: str, director: str, seen: list[str]) -> bool:
    """Does keepalived's ``log`` on ``director`` end in MASTER (its last transition, any instance)?"""
    transitions = vrrp.parse_transitions(log)
    if transitions:
        seen.append(f"keepalived's last transition on {director}: {transitions[-1].instance} {transitions[-1].state}")
    return bool(transitions) and transitions[-1].state == "MASTER"


def _several(owners, by: dict, instances: dict, listener, lab_if: dict, vip: str, evidence: str) -> Finding:
    names = said(owners)
    ids = {n: by[n].vrid for n in owners if n in by} or {
        n: instances[n].virtual_router_id for n in owners if n in instances
    }
    if len(set(ids.values())) > 1:
        return Finding(
            f"{names} are both MASTER: they announce virtual_router_id {said(ids.values())}, so neither "
            "hears the other",
            "use one virtual_router_id on both",
            evidence,
        )
    auths = {n: by[n].auth for n in owners if n in by}
    if len(auths) > 1 and len(set(auths.values())) > 1:
        return Finding(
            f"{names} are both MASTER: their adverts carry different authentication "
            f"({said(repr(a) for a in auths.values())}), so each drops the other's",
            "use the same auth_type and auth_pass on both",
            evidence,
        )
    unheard = [n for n in owners if n not in by]
    if by and unheard:
        faces = {n: instances[n].interface for n in unheard if n in instances}
        return Finding(
            f"{names} both hold {vip}: {said(unheard)}'s adverts do not reach {listener.name}'s "
            f"{lab_if[listener.name]}" + (f" (it announces on {said(faces.values())})" if faces else ""),
            "announce on the lab network's interface on both",
            evidence,
        )
    return Finding(
        f"{names} both hold the VIP with virtual_router_id {next(iter(ids.values()), '?')}: their adverts "
        "do not reach each other",
        "look for a firewall or another network between them",
        evidence,
    )
