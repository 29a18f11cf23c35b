"""Why a check failed: the first broken link on a request's path, in one sentence with its fix,
from live observations of the lab (bounded commands, run only when a check has failed).

For a virtual service (direct routing or masquerading), the path is followed in order:

1. the director that holds the VIP has an IPVS service for it, with reals;
2. each real can take a request for the VIP: in direct routing the VIP is one of its addresses;
3. its answer goes back the right way: in direct routing not through ``lo`` (a VIP wider than /32 on
   lo makes the whole network local there), in masquerading through the director;
4. the service spreads clients: a persistent service sends one client to one real.

For VRRP, the directors that hold the VIP at once, and what each announces (router id, interface).

A diagnosis never changes a verdict: it explains one. Every function returns a :class:`Finding` or
None, and :func:`explain` turns anything that goes wrong while looking into None.

Example::

    finding = explain(dr_path, client_ip="10.77.0.50", holder=lb1, reals=[web1, web2],
                      vip="10.77.0.100", port=80)
    finding.sentence   # 'web1 receives the client's requests for 10.77.0.100 from lb1 but drops them: …'
"""

from __future__ import annotations

import dataclasses
import re

from .assertions import said
from .probes import ipvs, vrrp


@dataclasses.dataclass(frozen=True)
class Finding:
    sentence: str           # the first broken link and its fix
    evidence: str = ""      # what was run and seen


def explain(look, *args, **kwargs) -> Finding | None:
    """``look(*args, **kwargs)``, or None if looking failed (a diagnosis never breaks a check)."""
    try:
        return look(*args, **kwargs)
    except Exception:         # noqa: BLE001 — the verdict stands without its explanation
        return None


def _run(host, command: str, seen: list[str]) -> str:
    r = host.run(command)
    out = (r.stdout + r.stderr).strip()
    seen.append(f"$ {command}   # on {host.name}, exit {r.rc}\n{out[-1500:]}")
    return r.stdout if r.ok else ""


def dr_path(*, client_ip: str, holder, reals, vip: str, port: int, by_real: dict | None = None,
            directors=()) -> Finding | None:
    """The first broken link between the client and the reals through ``holder``'s IPVS service
    for ``vip``:``port`` (``by_real``: which real answered how many requests, if known)."""
    seen: list[str] = []
    listed = holder.run("ipvsadm -Ln")
    if not listed.ok:
        return None                   # IPVS cannot be read there (no ipvsadm, no IPVS): nothing to say
    seen.append(f"$ ipvsadm -Ln   # on {holder.name}\n{listed.stdout.strip()[-1500:]}")
    svc = ipvs.parse_list(listed.stdout).service(vip, port, "TCP")
    if svc is None:
        return Finding(f"{holder.name} holds the VIP {vip} but has no IPVS service for {vip}:{port}, so it forwards "
                       f"nothing: define the virtual_server (or ipvsadm -A/-a) on every director", "\n".join(seen))
    addresses = {real.name: vrrp.read_addresses(real) for real in reals}
    if not svc.reals:
        return _no_reals(holder, reals, addresses, vip, port, seen)
    hosts = {a.split("/")[0]: real for real in reals for addrs in addresses[real.name].values() for a in addrs}
    director_ips = {a.split("/")[0] for d in directors for addrs in vrrp.read_addresses(d).values() for a in addrs}
    for entry in svc.reals:
        real = hosts.get(entry.address)
        if real is None:
            continue
        where = _vip_on(addresses[real.name], vip)
        if entry.forward == "Route":
            if where is None:
                return Finding(f"{real.name} receives the client's requests for {vip} from {holder.name} but drops "
                               f"them: the VIP is not one of its addresses — add it to lo as /32 (with arp_ignore=1 "
                               "and arp_announce=2)", "\n".join(seen + [f"addresses of {real.name}: none is {vip}"]))
            route = _run(real, f"ip route get {client_ip} from {vip}", seen)
            iface, prefix = where
            if iface == "lo" and re.search(r"\bdev lo\b", route):
                return Finding(f"{real.name} answers, but its reply to {client_ip} is routed through lo: the VIP as "
                               f"/{prefix} on lo makes the whole lab network local there — use /32",
                               "\n".join(seen))
        elif entry.forward == "Masq":
            route = _run(real, f"ip route get {client_ip}", seen)
            via = re.search(r"\bvia (\S+)", route)
            if not via or via[1] not in director_ips:
                return Finding(f"IPVS rewrites requests to the real's address (masquerading) but {real.name} answers "
                               f"the client directly, not through {holder.name}: use direct routing (-g) in this "
                               "topology, or make the director the reals' gateway", "\n".join(seen))
    if svc.persistent and by_real:
        answered = {k: v for k, v in by_real.items() if k is not None and v}
        if len(answered) == 1:
            (name, n), = answered.items()
            return Finding(f"all {n} requests went to {name}: the service is persistent (persistence_timeout "
                           f"{svc.persistent}), so one client always reaches the same real — leave persistence "
                           "out of this lab", "\n".join(seen))
    return None


def _no_reals(holder, reals, addresses: dict, vip: str, port: int, seen: list[str]) -> Finding:
    """Why ``holder``'s service has no reals: a real whose answers to the director's health checks
    go into lo (the VIP wider than /32 there), else the checks or the addresses."""
    own = [a.split("/")[0] for iface, addrs in vrrp.read_addresses(holder).items() if iface != "lo" for a in addrs
           if ":" not in a and a.split("/")[0] != vip]
    for real in reals:
        where = _vip_on(addresses[real.name], vip)
        if own and where and where[0] == "lo" and where[1] < 32:
            route = _run(real, f"ip route get {own[0]}", seen)
            if re.search(r"\bdev lo\b", route):
                return Finding(f"{holder.name}'s IPVS service for {vip}:{port} has no reals: its health checks get no "
                               f"answer from {real.name}, whose replies to {own[0]} are routed through lo — the VIP as "
                               f"/{where[1]} on lo makes the whole lab network local there; use /32", "\n".join(seen))
    return Finding(f"{holder.name}'s IPVS service for {vip}:{port} has no reals (its health checks may have removed "
                   "them): check the real_server addresses and ports and their checks", "\n".join(seen))


def _vip_on(addresses: dict[str, list[str]], vip: str) -> tuple[str, int] | None:
    """(interface, prefix length) of ``vip`` among a host's ``addresses`` ({interface: [cidr]}), or None."""
    for iface, addrs in addresses.items():
        for a in addrs:
            address, _, prefix = a.partition("/")
            if address == vip:
                return iface, int(prefix or 32)
    return None


def vrrp_owners(*, directors, vip: str, instances: dict) -> Finding | None:
    """Why more than one director holds ``vip`` (``instances``: name → the VrrpInstance keepalived
    runs for it): what each announces."""
    seen: list[str] = []
    found = {d.name: vrrp.parse_addresses(_run(d, "ip -o addr show", seen)) for d in directors}
    owners = vrrp.owners(found, vip)
    if len(owners) < 2:
        return None
    names = said(owners)
    ids = {n: instances[n].virtual_router_id for n in owners if n in instances}
    if len(set(ids.values())) > 1:
        return Finding(f"{names} are both MASTER: they announce virtual_router_id {said(ids.values())}, so neither "
                       "hears the other — use one virtual_router_id on both", "\n".join(seen))
    faces = {n: instances[n].interface for n in owners if n in instances}
    if len(set(faces.values())) > 1:
        return Finding(f"{names} are both MASTER: they announce on {said(faces.values())}, so their adverts "
                       "may not reach each other — announce on the lab network's interface on both",
                       "\n".join(seen))
    return Finding(f"{names} both hold the VIP with virtual_router_id {next(iter(ids.values()), '?')}: their adverts "
                   "do not reach each other (authentication, a firewall, or another network)", "\n".join(seen))
