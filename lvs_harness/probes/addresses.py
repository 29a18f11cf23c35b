"""Who holds an address right now, from the interfaces (not the logs), and which interface of a
host is on the lab network (found by address, never by name).

Example::

    vip_owners(directors, "10.77.0.100")          # ['lb1']
    lab_interface(web1, near="10.77.0.100")       # 'eth1'
"""

from __future__ import annotations

import ipaddress


def parse_addresses(text: str) -> dict[str, list[str]]:
    """``ip -o addr show`` → {interface: ["10.77.0.11/24", …]} (IPv4 and IPv6)."""
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
    return [
        ifname
        for ifname, cidrs in addresses.items()
        if (interfaces is None or ifname in interfaces) and any(ipaddress.ip_interface(c).ip == want for c in cidrs)
    ]


def lab_interface(host, addresses: dict[str, list[str]] | None = None, near: str | None = None) -> str:
    """The interface of ``host`` on the lab network, found by address, never by name: the one
    carrying the host's address from the topology; else (addresses set by a provisioner) the one
    whose IPv4 network holds ``near`` (e.g. the VIP); else the first with a global IPv4 address.
    ``addresses``: read now if not given.

    Example::

        lab_interface(hosts["web1"], near="10.77.0.100")     # 'eth1' (or 'eth2', 'enp0s8' …)
    """
    addresses = read_addresses(host) if addresses is None else addresses
    for spec in host.spec.interfaces:
        if spec.ip:
            found = [i for i in holds(addresses, spec.ip.split("/")[0]) if i != "lo"]
            if found:
                return found[0]
    ipv4 = {
        name: [ipaddress.ip_interface(c) for c in cidrs if ":" not in c]
        for name, cidrs in addresses.items()
        if name != "lo"
    }
    if near:
        want = ipaddress.ip_address(near)
        for name, cidrs in ipv4.items():
            if any(c.network.prefixlen < 32 and want in c.network for c in cidrs):
                return name
    for name, cidrs in ipv4.items():
        if any(c.ip.is_private or c.ip.is_global for c in cidrs):
            return name
    return host.spec.interfaces[0].name if host.spec.interfaces else "eth1"


def interface_toward(addresses: dict[str, list[str]], address: str) -> str | None:
    """The interface whose IPv4 network holds ``address`` (a host with two lab networks: the one
    toward the client, the one toward the reals), or None.

    Example::

        interface_toward(read_addresses(director), "10.70.2.254")     # 'eth2'
    """
    want = ipaddress.ip_address(address)
    for name, cidrs in addresses.items():
        if name != "lo" and any(
            ":" not in c
            and ipaddress.ip_interface(c).network.prefixlen < 32
            and want in ipaddress.ip_interface(c).network
            for c in cidrs
        ):
            return name
    return None


def owners(addresses_by_host: dict[str, dict[str, list[str]]], vip: str) -> list[str]:
    """The hosts whose addresses put ``vip`` on an interface other than lo."""
    return [name for name, addrs in addresses_by_host.items() if [i for i in holds(addrs, vip) if i != "lo"]]


def vip_owners(directors, vip: str) -> list[str]:
    """Names of the directors that have ``vip`` on a non-loopback interface right now."""
    return owners({d.name: read_addresses(d) for d in directors}, vip)
