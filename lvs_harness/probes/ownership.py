"""Who held a VIP across a scenario: two watchers behind one protocol (:class:`OwnershipWatch`) —
:class:`OwnershipMonitor` (the kernel's own address events, live where the lab streams them) and
:class:`OwnershipRecorder` (sampling, where a lab gives no events) — and what their timelines say
(overlaps, split-brain episodes, a machine too starved to judge).

A live monitor is known to the hosts it watches (``Host.watches``): assertions handed those hosts
wait on its events (:func:`watching`, :func:`pause`) instead of sleeping between polls.

Example::

    mon = OwnershipMonitor(directors, "10.77.0.100").start(); ...; overlap_intervals(mon.stop())
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import secrets
import shlex
import threading
import time
from typing import Protocol

from . import NAP, scratch
from .addresses import owners, parse_addresses


class OwnershipWatch(Protocol):
    """What both watchers do: start watching, stop and hand back each director's timeline
    ({director: [(time, holds the VIP)]}), which stays in ``samples``."""

    samples: dict[str, list[tuple[float, bool]]]

    def start(self) -> OwnershipWatch: ...

    def stop(self) -> dict[str, list[tuple[float, bool]]]: ...


class OwnershipRecorder:
    """Records, on each director itself, whether it holds ``vip`` every ``interval`` seconds.

    Sampling runs as a bash loop inside each director (one `ip` exec per sample, no round
    trip to the harness), so it is cheap enough to run through a whole scenario; bounded by
    ``max_seconds``. :meth:`stop` returns {director: [(epoch seconds, holds?), …]}.

    Example::

        with OwnershipRecorder(directors, vip) as rec:
            ...
        overlaps(rec.samples)        # [] when never two owners at once
    """

    def __init__(self, directors, vip: str, interval: float = 0.25, max_seconds: float = 900):
        self.directors = list(directors)
        self.vip, self.interval, self.max_seconds = vip, interval, max_seconds
        self.samples: dict[str, list[tuple[float, bool]]] = {}
        self._name = f"{scratch(self.directors[0]) if self.directors else '/tmp'}/lvsh-vip-{secrets.token_hex(4)}"

    def start(self) -> OwnershipRecorder:
        loop = (
            f'{NAP}; end=$((SECONDS + {int(self.max_seconds)})); '
            f'while [ -e {self._name}.run ] && [ $SECONDS -lt $end ]; do t=$EPOCHREALTIME; has=0; '
            f'while read -r _ ifname _ addr _; do [ "$ifname" != lo ] && [ "${{addr%/*}}" = {self.vip} ] && has=1; '
            f'done <<< "$(ip -o -4 addr show)"; echo "$t $has"; nap {self.interval:g}; '
            f'done >> {self._name}.log; touch {self._name}.done'
        )
        for d in self.directors:
            d.check(f"touch {self._name}.run && setsid -f bash -c {shlex.quote(loop)} </dev/null >/dev/null 2>&1")
        return self

    def stop(self) -> dict[str, list[tuple[float, bool]]]:
        for d in self.directors:
            d.run(f"rm -f {self._name}.run")
        for d in self.directors:
            deadline = time.monotonic() + self.interval + 5
            while not d.run(f"test -e {self._name}.done").ok and time.monotonic() < deadline:
                time.sleep(0.1)
            out = d.run(f"cat {self._name}.log; rm -f {self._name}.*").stdout
            self.samples[d.name] = [
                (float(t.replace(",", ".")), h == "1")
                for t, h in (line.split() for line in out.splitlines() if len(line.split()) == 2)
            ]
        return self.samples

    def __enter__(self) -> OwnershipRecorder:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# `ip -o -ts monitor address link`: "[2026-12-01T11:42:12.502012] Deleted 3: eth1    inet 10.77.0.100/24 …"
MONITOR_ADDR = re.compile(
    r"^\[(?P<ts>[0-9T:.-]+)\] (?P<deleted>Deleted )?\d+: (?P<ifname>[^\s:@]+)\s+inet6? "
    r"(?P<addr>[0-9a-fA-F:.]+)/"
)


# "[…] 3: eth1@if7: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN …"
MONITOR_LINK = re.compile(
    r"^\[(?P<ts>[0-9T:.-]+)\] (?:Deleted )?\d+: (?P<ifname>[^\s:@]+)(?:@\S+)?: <(?P<flags>[^>]*)>"
)


ISO = "%Y-%m-%dT%H:%M:%S.%f"


@dataclasses.dataclass(frozen=True)
class AddressEvent:
    time: float  # epoch seconds (the director's clock, µs resolution)
    director: str
    kind: str  # "vip" (the VIP added or removed) or "link" (a link set up or down)
    interface: str
    up: bool  # vip: now held on this interface; link: now set up


def parse_monitor(text: str, director: str, vip: str, offset: float) -> list[AddressEvent]:
    """Events of ``ip -o -ts monitor address link`` that concern ``vip`` or a link's admin state;
    ``offset`` turns the director's local timestamps into epoch seconds (see :class:`OwnershipMonitor`)."""
    out, links = [], {}
    for line in text.splitlines():
        if m := MONITOR_ADDR.match(line):
            if m["addr"] == vip and m["ifname"] != "lo":
                out.append(AddressEvent(_stamp(m["ts"], offset), director, "vip", m["ifname"], not m["deleted"]))
        elif m := MONITOR_LINK.match(line):
            up = "UP" in m["flags"].split(",")
            if links.get(m["ifname"]) != up:  # a link's events repeat (carrier, peer); keep the changes
                links[m["ifname"]] = up
                out.append(AddressEvent(_stamp(m["ts"], offset), director, "link", m["ifname"], up))
    return out


def _stamp(ts: str, offset: float) -> float:
    return dt.datetime.strptime(ts, ISO).replace(tzinfo=dt.UTC).timestamp() + offset


def watching(hosts) -> OwnershipMonitor | None:
    """A running :class:`OwnershipMonitor` whose events arrive live from every one of ``hosts``
    (the same Host objects), or None. Assertions wait on it instead of sleeping between polls.

    Example::

        watch = watching([b1, b2])
        if watch is not None:
            seen = watch.generation; ...; watch.wait_change(seen, 1.0)   # True: an event came
    """
    hosts = list(hosts)
    for mon in reversed(getattr(hosts[0], "watches", ()) if hosts else ()):
        if mon.live and all(any(w is mon for w in getattr(h, "watches", ())) for h in hosts):
            return mon
    return None


def events_seen(watch: OwnershipMonitor | None) -> int:
    """``watch``'s :attr:`~OwnershipMonitor.generation` (0 without one): take it before a look, then
    :func:`pause` after it."""
    return watch.generation if watch is not None else 0


def pause(watch: OwnershipMonitor | None, since: int, interval: float, left: float) -> None:
    """Between two looks: where ``watch`` is live, until its next event after ``since`` (at most
    ``left`` s); else ``interval`` s (at most ``left``).

    Example::

        watch = watching(directors)
        while not done():
            since = events_seen(watch); look(); pause(watch, since, 0.2, deadline - time.monotonic())
    """
    left = max(0.0, left)
    if watch is not None and watch.live:
        watch.wait_change(since, left)
    else:
        time.sleep(min(interval, left))


class OwnershipMonitor:
    """Who holds ``vip`` on each director, from the kernel's own address events: ``ip -ts monitor
    address link`` runs in each director (one process each, bounded by ``max_seconds``), so VIP
    moves and link changes carry the kernel's order and µs timestamps, and nothing is polled.
    Where the lab streams a command's output (:meth:`Host.follow`: the embedded lab) the events
    arrive as they happen, so waiting code can be woken by them (:func:`watching`,
    :meth:`wait_change`); elsewhere ``ip monitor`` writes a file in the director, read when asked.
    :meth:`stop` returns {director: [(epoch seconds, holds?), …]} — the state at the start, each
    change, and the state at the end — the shape :class:`OwnershipRecorder` returns.

    Example::

        with OwnershipMonitor(directors, vip) as mon:
            b1.link_down("eth1"); ...
            moves = mon.events()            # [AddressEvent(time, 'lb1', 'link', 'eth1', False), …]
        overlap_intervals(mon.samples)      # [] when never two owners at once
    """

    COMMAND = "ip -o -ts monitor address link"
    BEAT = 0.1
    BEAT_COMMAND = f"exec bash -c {shlex.quote(NAP + '; while :; do nap ' + str(BEAT) + '; echo $EPOCHREALTIME; done')}"

    def __init__(self, directors, vip: str, max_seconds: float = 1800, one_clock: bool = True):
        self.directors = list(directors)
        self.vip, self.max_seconds = vip, max_seconds
        # hosts with clocks of their own (VMs: one_clock False): every time is moved to this machine's
        # clock by each host's measured offset; clocks[host] = (offset s, ± s) at the start, and
        # drift[host] = how far that offset moved by the end
        self.one_clock = one_clock
        self.clocks: dict[str, tuple[float, float]] = {}
        self.drift: dict[str, float] = {}
        self.samples: dict[str, list[tuple[float, bool]]] = {}
        self._name = f"{scratch(self.directors[0]) if self.directors else '/tmp'}/lvsh-mon-{secrets.token_hex(4)}"
        self._start: dict[str, tuple[float, bool, float]] = {}  # director -> (epoch, holds, clock offset)
        self._follows: dict = {}  # director -> its streamed monitor
        self._lines: dict[str, list[str]] = {}  # director -> complete lines so far
        self._partial: dict[str, str] = {}
        self._changed = threading.Condition()
        self.generation = 0  # counts the lines received
        # each director's heartbeat (streamed labs): its clock read every BEAT s by a shell in it,
        # so a stretch the machine did not let it run shows as a late beat (see lateness, starved)
        self.beats: dict[str, list[float]] = {}
        self._beat_follows: dict = {}
        self._beat_partial: dict[str, str] = {}

    def clock(self, host) -> tuple[float, float]:
        """(offset, uncertainty) in seconds that turn ``host``'s clock into this machine's; (0, 0)
        where all hosts share one clock (their times compare as they are)."""
        if self.one_clock:
            return 0.0, 0.0
        if host.name not in self.clocks:
            self.clocks[host.name] = clock_offset(host)
        return self.clocks[host.name]

    def common(self, host, t: float) -> float:
        """``t`` read on ``host``'s clock, on the clock every time of this monitor is on."""
        return t + self.clock(host)[0]

    def tolerance(self) -> float:
        """How far apart two hosts' times may be off (0 with one clock): the two largest
        uncertainties of the directors' offsets, each with its drift over the scenario."""
        worst = sorted((u + abs(self.drift.get(n, 0.0)) for n, (_, u) in self.clocks.items()), reverse=True)
        return round(sum(worst[:2]), 3)

    def _snapshot(self, d) -> tuple[float, bool, float]:
        out = d.check("date '+%s.%N %Y-%m-%dT%H:%M:%S.%6N'; ip -o addr show").stdout.splitlines()
        epoch, local = out[0].split()
        zone = float(epoch) - dt.datetime.strptime(local, ISO).replace(tzinfo=dt.UTC).timestamp()
        held = bool(owners({d.name: parse_addresses("\n".join(out[1:]))}, self.vip))
        return self.common(d, float(epoch)), held, round(zone) + self.clock(d)[0]

    @property
    def live(self) -> bool:
        """Do the events arrive as they happen (and do all the monitors still run)?"""
        return bool(self._follows) and all(f.running for f in self._follows.values())

    def _feed(self, director: str, text: str) -> None:
        with self._changed:
            lines = (self._partial.get(director, "") + text).split("\n")
            self._partial[director] = lines.pop()
            if lines:
                self._lines.setdefault(director, []).extend(lines)
                self.generation += 1
                self._changed.notify_all()

    def _feed_beat(self, director: str, text: str) -> None:
        lines = (self._beat_partial.get(director, "") + text).split("\n")
        self._beat_partial[director] = lines.pop()
        offset = self.clocks.get(director, (0.0, 0.0))[0]  # measured at the start (no command here:
        self.beats.setdefault(director, []).extend(
            float(x) + offset for x in lines if x.strip()
        )  # the reader's thread)

    def lateness(self, start: float = 0.0, end: float = float("inf")) -> dict[str, tuple[float, float]]:
        """{director: (seconds, at)}: the longest a director's heartbeat came late between ``start`` and
        ``end`` (this monitor's clock) beyond its BEAT interval, and when that stretch began."""
        found = {}
        for name, beats in self.beats.items():
            pairs = [(b - a - self.BEAT, a) for a, b in zip(beats, beats[1:]) if b >= start and a <= end]
            if pairs:
                late, at = max(pairs)
                found[name] = (round(max(late, 0.0), 3), at)
        return found

    def starved(self, start: float, end: float, threshold: float) -> list[tuple[str, float, float]]:
        """(director, seconds late, at) for each director whose heartbeat was ``threshold`` s or more late
        between ``start`` and ``end``: the machine did not let the lab run then (its timers, keepalived's
        adverts among them, were as late), whatever the lab's configuration."""
        return [(n, late, at) for n, (late, at) in self.lateness(start, end).items() if late >= threshold]

    def wait_change(self, generation: int, timeout: float) -> bool:
        """Block until an event newer than ``generation`` arrived (True) or ``timeout`` passed."""
        with self._changed:
            return self._changed.wait_for(lambda: self.generation != generation or not self.live, timeout)

    def start(self) -> OwnershipMonitor:
        """Start the monitors; raise :class:`~lvs_harness.errors.HarnessError` where a director's
        ``ip`` gives no events (fall back to :class:`OwnershipRecorder` there)."""
        from ..errors import HarnessError

        for d in self.directors:
            follow = d.follow(f"exec {self.COMMAND}", functools.partial(self._feed, d.name), timeout=self.max_seconds)
            if follow is None:
                break
            self._follows[d.name] = follow
        else:
            time.sleep(0.1)  # ip exits at once where it cannot
            for d in self.directors:
                if not self._follows[d.name].running:
                    why = self._follows[d.name].stop()
                    self._kill()
                    raise HarnessError(
                        f"`ip -ts monitor` gives no events on {d.name}: {(why.stderr or why.stdout).strip()[:200]}"
                    )
                self._start[d.name] = self._snapshot(d)
            for d in self.directors:
                beat = d.follow(self.BEAT_COMMAND, functools.partial(self._feed_beat, d.name), timeout=self.max_seconds)
                if beat is not None:
                    self._beat_follows[d.name] = beat
            for d in self.directors:  # assertions handed these hosts wait on its events (see watching)
                d.watches.append(self)
            return self
        for follow in self._follows.values():  # a backend that streams for some hosts only
            follow.stop()
        self._follows.clear()
        for d in self.directors:
            d.check(
                f"setsid -f sh -c 'echo $$ > {self._name}.pid; exec timeout {int(self.max_seconds)} "
                f"{self.COMMAND}' </dev/null >{self._name}.log 2>&1"
            )
        for d in self.directors:
            r = d.run(f"sleep 0.1; kill -0 $(cat {self._name}.pid)")  # ip exits at once where it cannot
            if not r.ok:
                self._kill()
                raise HarnessError(
                    f"`ip -ts monitor` gives no events on {d.name}: "
                    f"{d.run(f'cat {self._name}.log').stdout.strip()[:200]}"
                )
            self._start[d.name] = self._snapshot(d)
        return self

    def events(self) -> list[AddressEvent]:
        """Every VIP and link event so far, in time order (the monitors keep running)."""
        found = []
        for d in self.directors:
            _, _, offset = self._start[d.name]
            if self._follows:
                with self._changed:
                    text = "\n".join(self._lines.get(d.name, ()))
            else:
                text = d.run(f"cat {self._name}.log").stdout
            found += parse_monitor(text, d.name, self.vip, offset)
        return sorted(found, key=lambda e: e.time)

    def _kill(self) -> None:
        for d in self.directors:
            d.watches[:] = [w for w in d.watches if w is not self]
        if self._follows:
            for f in [*self._follows.values(), *self._beat_follows.values()]:
                f.stop()
            return
        for d in self.directors:
            d.run(f"[ -s {self._name}.pid ] && kill $(cat {self._name}.pid) 2>/dev/null; true")

    def stop(self) -> dict[str, list[tuple[float, bool]]]:
        ends = {d.name: self._snapshot(d) for d in self.directors}
        if not self.one_clock:
            self.drift = {d.name: round(clock_offset(d)[0] - self.clocks[d.name][0], 3) for d in self.directors}
        events = self.events()
        self._kill()
        if not self._follows:
            for d in self.directors:
                d.run(f"rm -f {self._name}.*")
        for d in self.directors:
            t0, held, _ = self._start[d.name]
            rows, holding = [(t0, held)], set()
            for e in events:
                if e.director == d.name and e.kind == "vip" and e.time >= t0:
                    holding = holding | {e.interface} if e.up else holding - {e.interface}
                    rows.append((e.time, bool(holding)))
            rows.append((max(ends[d.name][0], rows[-1][0]), ends[d.name][1]))
            self.samples[d.name] = rows
        return self.samples

    def __enter__(self) -> OwnershipMonitor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def starved_episodes(
    monitor: OwnershipMonitor, episodes: list[dict], before: float, threshold: float
) -> list[tuple[dict, list]]:
    """The overlap ``episodes`` (see :func:`overlap_intervals`) in which, or in the ``before`` s leading
    to which, the machine starved a director (its heartbeat ``threshold`` s or more late): [(episode,
    [(director, seconds late, at)])]. Such an overlap may be the machine's doing, not the lab's.

    Example::

        starved_episodes(mon, lasting, before=3.6, threshold=1.0)   # [] on a machine that kept up
    """
    found = []
    for e in episodes:
        hit = monitor.starved(e["start"] - before, e["end"], threshold)
        if hit:
            found.append((e, hit))
    return found


def starved_reason(found: list[tuple[dict, list]], start: float) -> str:
    """The sentence for a check whose every failing overlap the machine may have caused."""
    e, hit = found[0]
    who = "; ".join(f"{n}'s heartbeat came {late:.1f} s late at {at - start:.1f} s" for n, late, at in hit)
    return (
        f"the machine did not let the lab run on time ({who} into the scenario), and both directors held the "
        f"VIP for {e['seconds']:.1f} s from {e['start'] - start:.1f} s: a split brain this machine, not the lab, "
        "may have caused — the check cannot judge it and is graded again"
    )


def clock_offset(host, tries: int = 5) -> tuple[float, float]:
    """(offset, uncertainty): seconds to add to ``host``'s clock to read this machine's, from the
    quickest of ``tries`` round trips of `date` (the host read its clock within that trip, so the
    uncertainty is half of it), as NTP does.

    Example::

        clock_offset(lab.hosts["lb2"])       # (3.002, 0.021) on a VM whose clock is 3 s behind
    """
    best = None
    for _ in range(tries):
        t1 = time.time()
        remote = float(host.check("date +%s.%N").stdout)
        t2 = time.time()
        if best is None or t2 - t1 < best[1] * 2:
            best = ((t1 + t2) / 2 - remote, (t2 - t1) / 2)
    return round(best[0], 4), round(best[1], 4)


def overlap_intervals(timelines: dict[str, list[tuple[float, bool]]]) -> list[dict]:
    """From state timelines (each entry: the state from then on), the intervals in which more than
    one director held the VIP: {"start", "end", "seconds", "holders"}.

    Example::

        overlap_intervals({"b1": [(0, True), (5.0, False)], "b2": [(0, False), (4.99, True)]})
        # [{'start': 4.99, 'end': 5.0, 'seconds': 0.01, 'holders': ['b1', 'b2']}]
    """
    changes = sorted((t, name, has) for name, rows in timelines.items() for t, has in rows)
    state: dict[str, bool] = {}
    found, current = [], None
    for t, name, has in changes:
        state[name] = has
        holders = sorted(n for n, h in state.items() if h)
        if len(holders) > 1 and current is None:
            current = {"start": t, "holders": holders}
        elif len(holders) > 1:
            current["holders"] = sorted(set(current["holders"]) | set(holders))
        elif current is not None:
            found.append({**current, "end": t, "seconds": round(t - current["start"], 6)})
            current = None
    if current is not None:
        last = changes[-1][0]
        found.append({**current, "end": last, "seconds": round(last - current["start"], 6)})
    return found


def overlaps(samples: dict[str, list[tuple[float, bool]]]) -> list[tuple[float, list[str]]]:
    """Moments when more than one director held the VIP: (time, holders) at each sample taken then."""
    events = sorted((t, name, has) for name, rows in samples.items() for t, has in rows)
    state: dict[str, bool] = {}
    found = []
    for t, name, has in events:
        state[name] = has
        holders = sorted(n for n, h in state.items() if h)
        if len(holders) > 1:
            found.append((t, holders))
    return found


def overlap_episodes(samples: dict[str, list[tuple[float, bool]]], gap: float = 1.0) -> list[dict]:
    """Group :func:`overlaps` into episodes (overlapping samples less than ``gap`` s apart).

    Each episode: {"start", "end", "seconds", "holders", "samples"}. A handover by
    preemption shows as a one-sample episode (both hold the VIP for the few ms until the
    old master reads the new master's advert); a split brain as one that lasts.
    """
    episodes: list[dict] = []
    for t, holders in overlaps(samples):
        if episodes and t - episodes[-1]["end"] < gap:
            ep = episodes[-1]
            ep["end"], ep["samples"] = t, ep["samples"] + 1
            ep["holders"] = sorted(set(ep["holders"]) | set(holders))
        else:
            episodes.append({"start": t, "end": t, "holders": holders, "samples": 1})
    for ep in episodes:
        ep["seconds"] = ep["end"] - ep["start"]
    return episodes
