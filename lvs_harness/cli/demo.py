"""``lvs-harness demo``: the reference lab balancing and failing over."""

from __future__ import annotations

import time
from collections import Counter

from ..errors import HarnessError
from ..labs import LabConfig, start_lab
from ..options import add
from ..packs import load_pack
from ..probes import ipvs, vrrp
from ..probes.client import http_requests, identify, real_pages


def cmd_demo(args) -> int:
    """Bring a pack's reference lab up, show it balancing and failing over, tear it down."""
    pack = load_pack(args.pack)
    t0 = time.monotonic()
    with start_lab(LabConfig(backend=args.lab, pack=pack.name)) as lab:
        if len(lab.topology.directors) < 2 or not lab.topology.clients or not lab.topology.services:
            raise HarnessError(f"pack {pack.name}'s lab has no two directors, client and virtual service to demo.")
        vip = lab.topology.service.vip
        b1, b2 = (lab.hosts[h.name] for h in lab.topology.directors[:2])
        client = lab.hosts[lab.topology.clients[0].name]
        reals = len(lab.topology.reals)
        iface = vrrp.lab_interface(b1, near=vip)

        def holder():
            return vrrp.vip_owners((b1, b2), vip)

        def wait(cond, limit):
            start = time.monotonic()
            while not cond() and time.monotonic() - start < limit:
                time.sleep(0.1)
            return time.monotonic() - start

        def in_table():
            svc = ipvs.parse_list(b1.run("ipvsadm -Ln").stdout).service(vip, lab.topology.service.port)
            return bool(svc) and len(svc.reals) == reals

        wait(lambda: holder() == [b1.name] and in_table(), 20)
        print(
            f"\nlab {lab.run_id} ({pack.name}, {lab.NAME}) up, VIP {vip} on {', '.join(holder()) or 'nobody'} "
            f"after {time.monotonic() - t0:.1f} s\n"
        )
        print(b1.run("ipvsadm -Ln").stdout)
        url = f"http://{vip}:{lab.topology.service.port}/"
        pages = real_pages([lab.hosts[r.name] for r in lab.topology.reals], lab.topology.service.port)
        counts = Counter(a.real for a in identify(http_requests(client, url, count=50), pages))
        print("50 requests from client:", dict(sorted(counts.items(), key=str)))
        b1.link_down(iface)
        took = wait(lambda: holder() == [b2.name], 15)
        print(f"{iface} down on {b1.name}: VIP on {', '.join(holder()) or 'nobody'} after {took:.1f} s")
        counts = Counter(a.real for a in identify(http_requests(client, url, count=10), pages))
        print("10 requests via the backup:", dict(sorted(counts.items(), key=str)))
        b1.link_up(iface)
        took = wait(lambda: holder() == [b1.name], 15)
        print(f"{iface} up on {b1.name}: VIP back on {', '.join(holder()) or 'nobody'} after {took:.1f} s\n")
    return 0


def register(sub) -> None:
    demo = sub.add_parser("demo", help="bring the reference lab up, show balancing and failover, tear it down")
    add(demo.add_argument, "--lab", "--pack")
    demo.set_defaults(func=cmd_demo)
