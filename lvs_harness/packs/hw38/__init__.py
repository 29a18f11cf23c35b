"""hw3.8: two keepalived directors (VRRP VIP 172.28.128.200) and IPVS direct routing to two nginx reals.

Run its suite: ``pytest --lab uml --pyargs lvs_harness.packs.hw38 [--submission write-up.md]``;
grade with it: ``lvs-harness grade write-up.md`` (the default pack).
"""

from __future__ import annotations

from pathlib import Path

from .. import Pack
from ...topology import VirtualService
from .charts import for_measured

PACK = Pack(
    name="hw38",
    title="hw3.8",
    suite=__name__,
    reference=Path(__file__).with_name("Vagrantfile"),
    directors=("balancer1", "balancer2"),
    vips=1,
    min_reals=2,
    skeleton_daemons=("nginx",),  # netology-code/sysadm-homeworks' Vagrantfile installs nginx on every host
    roles={
        "director": ("balancer*", "balanser*", "director*", "lb*", "lvs*"),
        "real": ("server*", "real*", "web*", "backend*", "nginx*"),
        "client": ("client*",),
    },
    daemons={"real": ("nginx",), "director": ("keepalived",)},
    services=(VirtualService("172.28.128.200", 80, forward="Route", scheduler="rr"),),
    charts=for_measured,
    real_setup="real-server setup (nginx, VIP on lo, ARP suppression)",
    check_seconds=(51.0, 171.0),  # measured 2026-12-06 (bench/RESULTS.md: fast 50.6 s; faithful adds the 120 s drain)
)
