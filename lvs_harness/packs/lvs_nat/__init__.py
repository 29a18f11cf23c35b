"""LVS-NAT: two keepalived directors with an external VIP and an internal gateway VIP in one
VRRP sync group, IPVS NAT with weighted round robin and HTTP health checks to three nginx reals.

Run its suite: ``pytest --lab uml --pyargs lvs_harness.packs.lvs_nat [--submission write-up.md]``;
grade with it: ``lvs-harness grade --pack lvs-nat write-up.md``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .. import Pack
from ...charts import of_measured

BARS = {
    "by_real": "Requests per real (through the VIP)",
    "expected": "Requests per real the weights call for",
    "after_stop": "Requests per real while one real's server is stopped",
}

PACK = Pack(
    name="lvs-nat",
    title="LVS-NAT",
    suite=__name__,
    reference=Path(__file__).with_name("Vagrantfile"),
    directors=("director1", "director2"),
    vips=2,  # the external VIP and the reals' gateway VIP
    min_reals=3,
    roles={"director": ("director*", "lb*", "lvs*"), "real": ("web*", "real*", "server*"), "client": ("client*",)},
    daemons={"real": ("nginx",), "director": ("keepalived",)},
    services=(),  # read from the lab: the external VIP and port of the directors' virtual_server
    charts=functools.partial(of_measured, bar_titles=BARS),  # the bars, a timeline per VIP
    real_setup="real-server setup (nginx, default route via the gateway VIP)",
    check_seconds=(26.0, 29.0),  # measured 2026-12-06: runs of 39 s and 42 s, lab up in 13 s
)
