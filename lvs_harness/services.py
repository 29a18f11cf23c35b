"""The virtual services of a running lab, read from its directors when nobody named them.

Order of evidence, per director: keepalived's ``virtual_server`` blocks (VIP, port, lb_kind,
lb_algo, weights; the ``vrrp_instance`` whose ``virtual_ipaddress`` holds the VIP), then the
IPVS table (``ipvsadm -Ln``), then the VIPs of the VRRP instances alone (port 80 assumed, said
in ``source``). A lab where none is found has no services — never another lab's.

Example::

    read_services([lab.hosts["lb1"], lab.hosts["lb2"]])
    # (VirtualService(vip='10.77.0.100', port=80, forward='Route', scheduler='wrr',
    #                 weights=(('10.77.0.31', 3), …), instance='VI_1', source='lb1 keepalived.conf'),)
"""

from __future__ import annotations

from . import keepalived
from .probes import ipvs
from .topology import FORWARDS, VirtualService

CONF = "/etc/keepalived/keepalived.conf"


def from_config(conf: keepalived.KeepalivedConfig, where: str) -> list[VirtualService]:
    out = []
    for vs in conf.virtual_servers:
        inst = conf.instance_for(vs.address)
        out.append(
            VirtualService(
                vs.address,
                vs.port,
                vs.protocol.lower(),
                FORWARDS.get(vs.lb_kind.upper()),
                vs.lb_algo or None,
                tuple((r.address, r.weight) for r in vs.reals),
                inst.name if inst else None,
                f"{where} keepalived.conf",
            )
        )
    return out


def from_table(table: ipvs.IpvsTable, where: str, conf: keepalived.KeepalivedConfig) -> list[VirtualService]:
    out = []
    for svc in table.services:
        if svc.address is None:
            continue
        inst = conf.instance_for(svc.address)
        forwards = {r.forward for r in svc.reals}
        out.append(
            VirtualService(
                svc.address,
                svc.port,
                svc.protocol.lower(),
                forwards.pop() if len(forwards) == 1 else None,
                svc.scheduler or None,
                tuple((r.address, r.weight) for r in svc.reals),
                inst.name if inst else None,
                f"{where} IPVS table",
            )
        )
    return out


def read_services(directors) -> tuple[VirtualService, ...]:
    """The services the directors serve (the first director that names any decides; each VIP once)."""
    found: list[VirtualService] = []
    for d in directors:
        r = d.run(f"cat {CONF}")
        conf = keepalived.parse_config(r.stdout) if r.ok else keepalived.KeepalivedConfig()
        services = from_config(conf, d.name)
        if not services:
            t = d.run("ipvsadm -Ln")
            services = from_table(ipvs.parse_list(t.stdout), d.name, conf) if t.ok else []
        if not services:
            services = [
                VirtualService(
                    vip,
                    80,
                    instance=i.name,
                    source=f"{d.name} keepalived.conf vrrp_instance {i.name} (port 80 assumed)",
                )
                for i in conf.instances
                for vip in i.vips
            ]
        for s in services:
            if all((s.vip, s.port, s.protocol) != (f.vip, f.port, f.protocol) for f in found):
                found.append(s)
        if found:
            break
    return tuple(found)
