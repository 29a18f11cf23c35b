"""The charts of an LVS-NAT report, from the values its checks measured."""

from __future__ import annotations

from ...charts import bars, timeline


def for_measured(measured: dict) -> list[str]:
    out = []
    for key, title in (
        ("by_real", "Requests per real (through the VIP)"),
        ("expected", "Requests per real the weights call for"),
        ("after_stop", "Requests per real while one real's server is stopped"),
    ):
        if isinstance(measured.get(key), dict) and measured[key]:
            out.append(bars(measured[key], title))
    for vip, rows in (measured.get("ownership") or {}).items():
        out.append(
            timeline(
                {k: [tuple(r) for r in v] for k, v in rows.items()},
                [tuple(p) for p in measured.get("probes", ())],
                [tuple(e) for e in measured.get("events", ())],
                title=f"Who held {vip}",
            )
        )
    return out
