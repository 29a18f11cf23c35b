"""ARP: which MAC a host resolves an address to, and whose interface that MAC is.

With ARP suppression missing on a real (arp_ignore/arp_announce), the real answers ARP for
the VIP too and the client may send VIP traffic straight to it, bypassing IPVS.

Example::

    answer = resolve(client, "10.77.0.100", lab.hosts.values())
    answer.owner, answer.repliers      # 'lb1', ['lb1']
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class ArpAnswer:
    address: str
    mac: str | None  # what the neighbour table holds after resolving
    owner: str | None  # the lab host whose interface has that MAC
    repliers: tuple[str, ...]  # every lab host that answered an ARP request for the address
    raw: str = ""  # arping's and `ip neigh`'s output, as evidence


def parse_link_macs(text: str) -> dict[str, str]:
    """``ip -o link`` → {interface: mac}."""
    macs = {}
    for line in text.splitlines():
        m = re.match(r"^\d+:\s+([^:@\s]+)[@:].*?link/ether ([0-9a-f:]{17})", line)
        if m:
            macs[m[1]] = m[2]
    return macs


def parse_arping(text: str) -> list[str]:
    """MACs that replied, from iputils arping output ("Unicast reply from IP [MAC] …")."""
    return [m.lower() for m in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]{17})\]", text)]


def mac_table(hosts) -> dict[str, str]:
    """{mac: host name} for every interface of ``hosts`` (one `ip -o link` per host)."""
    return {mac: host.name for host in hosts for mac in parse_link_macs(host.run("ip -o link").stdout).values()}


def route_interface(host, address: str) -> str | None:
    """The interface ``host`` uses to reach ``address`` (``ip route get``)."""
    m = re.search(r"\bdev (\S+)", host.run(f"ip -o route get {address}").stdout)
    return m[1] if m else None


def resolve(client, address: str, hosts, interface: str | None = None, macs: dict | None = None) -> ArpAnswer:
    """Ask for ``address`` with a fresh ARP exchange from ``client`` (on the interface its route
    to the address uses, unless given) and say who answered. ``macs``: :func:`mac_table` of
    ``hosts``, if already read."""
    hosts = list(hosts)
    interface = interface or route_interface(client, address) or "eth1"
    r = client.run(
        f"ip neigh flush to {address}; arping -c 2 -w 3 -I {interface} {address}; "
        f"ping -c 1 -W 1 {address} >/dev/null; ip neigh show to {address}"
    )
    mac = re.search(r"lladdr ([0-9a-f:]{17})", r.stdout)
    table = macs if macs is not None else mac_table(hosts)
    mac_value = mac[1] if mac else None
    repliers = sorted(table.get(m, m) for m in set(parse_arping(r.stdout)))
    return ArpAnswer(
        address, mac_value, table.get(mac_value) if mac_value else None, tuple(repliers), r.stdout + r.stderr
    )
