"""Inline SVG charts for the reports: no scripts, no external files, readable without colour.

Each function takes measured values (as the checks attach them to their reports) and
returns one ``<svg>`` element as a string.

Example::

    bars({"web1": 25, "web2": 25}, "Requests per real")
    timeline({"lb1": [(0.0, True), (0.25, True)], "lb2": [(0.0, False), (0.25, False)]},
             probes=[(0.1, True)], events=[(0.2, "eth1 down on lb1")])
    lines({"ActiveConn": [(0, 0), (1, 0)], "InActConn": [(0, 50), (1, 0)]}, "Connections on lb1")
"""

from __future__ import annotations

from html import escape

WIDTH = 720
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
OK, BAD = "#2ca02c", "#d62728"
FONT = 'font-family="sans-serif" font-size="12"'


def _svg(height: int, body: list[str], title: str, kind: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lvsh-chart lvsh-{kind}" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
        f'<title>{escape(title)}</title><rect width="{WIDTH}" height="{height}" fill="#fff"/>'
        f'<text x="8" y="18" {FONT} font-weight="bold">{escape(title)}</text>' + "".join(body) + "</svg>"
    )


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    span = hi - lo or 1.0
    raw = span / count
    step = next(m * 10**e for e in range(-2, 6) for m in (1, 2, 5) if m * 10**e >= raw)
    first = -(-lo // step) * step
    return [round(first + i * step, 6) for i in range(int((hi - first) / step) + 1)]


def _axis(x0: int, x1: int, y: int, lo: float, hi: float, unit: str) -> list[str]:
    scale = (x1 - x0) / ((hi - lo) or 1.0)
    out = [f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#444"/>']
    for t in _ticks(lo, hi):
        x = x0 + (t - lo) * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#444"/>'
            f'<text x="{x:.1f}" y="{y + 16}" {FONT} text-anchor="middle">{t:g}</text>'
        )
    out.append(f'<text x="{x1}" y="{y + 30}" {FONT} text-anchor="end">{escape(unit)}</text>')
    return out


def bars(counts: dict[str, float], title: str, unit: str = "requests") -> str:
    """Horizontal bars, one per key (e.g. requests answered by each real; None: by no real, e.g. failed)."""
    counts = {("(no real)" if k is None else str(k)): v for k, v in counts.items()}
    names = sorted(counts)
    top = max([*counts.values(), 1])
    x0, x1 = 130, WIDTH - 60
    body = []
    for i, name in enumerate(names):
        y = 32 + i * 28
        w = (x1 - x0) * counts[name] / top
        body.append(
            f'<text x="{x0 - 8}" y="{y + 15}" {FONT} text-anchor="end">{escape(name)}</text>'
            f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="20" fill="{PALETTE[i % len(PALETTE)]}">'
            f'<title>{escape(name)}: {counts[name]:g} {unit}</title></rect>'
            f'<text x="{x0 + w + 6:.1f}" y="{y + 15}" {FONT}>{counts[name]:g}</text>'
        )
    total = sum(counts.values())
    y = 32 + len(names) * 28 + 8
    body.append(f'<text x="{x0}" y="{y + 6}" {FONT} fill="#444">{total:g} {unit} in all</text>')
    return _svg(y + 16, body, title, "bars")


def timeline(
    ownership: dict[str, list[tuple[float, bool]]],
    probes: list[tuple[float, bool]] = (),
    events: list[tuple[float, str]] = (),
    title: str = "VIP ownership and client probes",
) -> str:
    """One lane per director, filled where it held the VIP; a lane of client probes (green
    answered, red failed); dashed lines where a fault was injected or lifted."""
    times = [t for rows in ownership.values() for t, _ in rows] + [t for t, _ in probes] + [t for t, _ in events]
    lo, hi = (min(times), max(times)) if times else (0.0, 1.0)
    x0, x1 = 130, WIDTH - 20
    scale = (x1 - x0) / ((hi - lo) or 1.0)
    lanes = sorted(ownership) + (["client probes"] if probes else [])
    body = []
    top = 40 + 14 * len(events)
    for i, name in enumerate(lanes):
        y = top + i * 30
        body.append(
            f'<text x="{x0 - 8}" y="{y + 15}" {FONT} text-anchor="end">{escape(name)}</text>'
            f'<rect x="{x0}" y="{y}" width="{x1 - x0}" height="20" fill="#f2f2f2"/>'
        )
    for i, name in enumerate(sorted(ownership)):
        y, rows = top + i * 30, ownership[name]
        held = 0
        for (t, has), nxt in zip(rows, [*rows[1:], None]):
            if has:
                end = nxt[0] if nxt else t
                held += 1
                body.append(
                    f'<rect x="{x0 + (t - lo) * scale:.1f}" y="{y}" width="{max(1.0, (end - t) * scale):.1f}" '
                    f'height="20" fill="{PALETTE[i % len(PALETTE)]}"/>'
                )
        body.append(f'<title>{escape(name)}: held the VIP in {held} of {len(rows)} samples</title>')
    if probes:
        y = top + len(ownership) * 30
        failed = sum(not ok for _, ok in probes)
        for t, ok in probes:
            body.append(
                f'<rect x="{x0 + (t - lo) * scale:.1f}" y="{y + (0 if not ok else 5)}" width="2" '
                f'height="{20 if not ok else 10}" fill="{OK if ok else BAD}"/>'
            )
        body.append(
            f'<text x="{x1}" y="{y + 36}" {FONT} text-anchor="end" fill="{BAD}">{failed} of {len(probes)} '
            "probes failed (red)</text>"
        )
    bottom = top + len(lanes) * 30 + (20 if probes else 0)
    for n, (t, what) in enumerate(events):
        x = x0 + (t - lo) * scale
        right = x > (x0 + x1) / 2  # labels of late events go left of their line
        body.append(
            f'<line x1="{x:.1f}" y1="{28 + 14 * n}" x2="{x:.1f}" y2="{bottom - 20 + 20 * (not probes)}" '
            f'stroke="#000" stroke-dasharray="4 3"/><text x="{x - 4 if right else x + 4:.1f}" '
            f'y="{36 + 14 * n}" {FONT} text-anchor="{"end" if right else "start"}">{escape(what)} ({t:g} s)</text>'
        )
    body += _axis(x0, x1, bottom + 6, lo, hi, "seconds into the scenario")
    return _svg(bottom + 44, body, title, "timeline")


def lines(series: dict[str, list[tuple[float, float]]], title: str, unit: str = "seconds") -> str:
    """Line chart of numeric series over time (e.g. ActiveConn and InActConn while draining)."""
    points = [p for rows in series.values() for p in rows]
    tlo, thi = (min(t for t, _ in points), max(t for t, _ in points)) if points else (0.0, 1.0)
    vhi = max([v for _, v in points] + [1])
    x0, x1, y0, y1 = 60, WIDTH - 20, 40, 200
    sx, sy = (x1 - x0) / ((thi - tlo) or 1.0), (y1 - y0) / vhi
    body = [f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>']
    for v in _ticks(0, vhi, 4):
        y = y1 - v * sy
        body.append(
            f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{x0 - 8}" y="{y + 4:.1f}" {FONT} text-anchor="end">{v:g}</text>'
        )
    for i, (name, rows) in enumerate(sorted(series.items())):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x0 + (t - tlo) * sx:.1f},{y1 - v * sy:.1f}" for t, v in rows)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [
            f'<circle cx="{x0 + (t - tlo) * sx:.1f}" cy="{y1 - v * sy:.1f}" r="3" fill="{colour}">'
            f'<title>{escape(name)} {v:g} at {t:g} s</title></circle>'
            for t, v in rows
        ]
        body.append(
            f'<rect x="{x0 + 10 + i * 130}" y="{y0 - 12}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x0 + 26 + i * 130}" y="{y0 - 2}" {FONT}>{escape(name)}</text>'
        )
    body += _axis(x0, x1, y1, tlo, thi, unit)
    return _svg(y1 + 40, body, title, "lines")


def of_measured(measured: dict, bar_titles: dict[str, str]) -> list[str]:
    """The charts a check's measured values call for: a bar chart for each key of ``bar_titles``
    measured as ``{name: count}``; a timeline of the VIP's owners (``ownership``: ``{director:
    [(t, held)]}``, or ``{vip: {director: [(t, held)]}}`` for several VIPs, one timeline each) with
    the client's ``probes`` and the check's ``events``. None when it measured nothing chartable.

    Example (a pack's ``charts``)::

        charts=functools.partial(of_measured, bar_titles={"by_real": "Requests per real"})
    """
    out = [
        bars(measured[k], title) for k, title in bar_titles.items() if isinstance(measured.get(k), dict) and measured[k]
    ]
    ownership = measured.get("ownership") or {}
    per_vip = ownership if all(isinstance(v, dict) for v in ownership.values()) else {None: ownership}
    for vip, rows in per_vip.items():
        if rows:
            out.append(
                timeline(
                    {k: [tuple(r) for r in v] for k, v in rows.items()},
                    [tuple(p) for p in measured.get("probes", ())],
                    [tuple(e) for e in measured.get("events", ())],
                    **({"title": f"Who held {vip}"} if vip else {}),
                )
            )
    return out
