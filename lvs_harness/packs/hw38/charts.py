"""The charts of an hw3.8 report, from the values its checks measured."""

from __future__ import annotations

from ...charts import bars, lines, timeline


def for_measured(measured: dict) -> list[str]:
    """The charts a check's measured values call for (none when it measured nothing chartable)."""
    out = []
    for key, title in (
        ("by_real", "Requests per real (through the VIP)"),
        ("split", "IPVS split on the master"),
        ("split_on_backup", "IPVS split on the backup after failover"),
    ):
        if isinstance(measured.get(key), dict) and measured[key]:
            out.append(bars(measured[key], title))
    if measured.get("ownership"):
        out.append(
            timeline(
                {k: [tuple(r) for r in v] for k, v in measured["ownership"].items()},
                [tuple(p) for p in measured.get("probes", ())],
                [tuple(e) for e in measured.get("events", ())],
            )
        )
    if measured.get("drain"):
        rows = measured["drain"]
        out.append(
            lines(
                {"ActiveConn": [(t, a) for t, a, _ in rows], "InActConn": [(t, i) for t, _, i in rows]},
                "Connections on the master while InActConn drains",
            )
        )
    return out
