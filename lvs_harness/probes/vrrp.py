"""VRRP observations in one namespace: keepalived's transitions (:mod:`.transitions`), who holds an
address now and which interface is on the lab network (:mod:`.addresses`), and who held a VIP
across a scenario (:mod:`.ownership`).

Example::

    vip_owners(directors, "10.77.0.100")          # ['lb1']
    [(t.state, t.time) for t in read_transitions(b1)]  # [('BACKUP', …), ('MASTER', …)]
"""

from __future__ import annotations

from .addresses import holds, interface_toward, lab_interface, owners, parse_addresses, read_addresses, vip_owners
from .ownership import (
    AddressEvent,
    OwnershipMonitor,
    OwnershipRecorder,
    OwnershipWatch,
    clock_offset,
    events_seen,
    overlap_episodes,
    overlap_intervals,
    overlaps,
    parse_monitor,
    pause,
    starved_episodes,
    starved_reason,
    watching,
)
from .transitions import Transition, parse_transitions, read_transitions

__all__ = [
    "AddressEvent",
    "OwnershipMonitor",
    "OwnershipRecorder",
    "OwnershipWatch",
    "Transition",
    "clock_offset",
    "events_seen",
    "holds",
    "interface_toward",
    "lab_interface",
    "overlap_episodes",
    "overlap_intervals",
    "overlaps",
    "owners",
    "parse_addresses",
    "parse_monitor",
    "pause",
    "read_addresses",
    "parse_transitions",
    "read_transitions",
    "starved_episodes",
    "starved_reason",
    "vip_owners",
    "watching",
]
