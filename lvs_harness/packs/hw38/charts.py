"""The charts of an hw3.8 report, from the values its checks measured."""

from __future__ import annotations

from ...charts import lines, of_measured

BARS = {
    "by_real": "Requests per real (through the VIP)",
    "split": "IPVS split on the master",
    "split_on_backup": "IPVS split on the backup after failover",
}


def for_measured(measured: dict) -> list[str]:
    """The charts a check's measured values call for: the core's bars and ownership timeline, and
    the master's connections while InActConn drains (inactconn_drains)."""
    out = of_measured(measured, BARS)
    if measured.get("drain"):
        rows = measured["drain"]
        out.append(
            lines(
                {"ActiveConn": [(t, a) for t, a, _ in rows], "InActConn": [(t, i) for t, _, i in rows]},
                "Connections on the master while InActConn drains",
            )
        )
    return out
