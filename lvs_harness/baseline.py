"""The steady state of a VRRP lab: verified before each check that needs it, restored when an
earlier check left the lab otherwise.

Steady means: every director's lab link is up, keepalived runs on every director, and exactly
one director holds the VIP — the one its configuration makes master (the highest priority;
with equal priorities any single holder). To restore it, links are brought up and stopped
daemons started; if the VIP is still elsewhere once the protocol has had its time (no waiting
where ``nopreempt`` says it will never move back), keepalived is restarted in an order that
makes the intended master win: stopped everywhere, started on the master, and on the others
once the master holds the VIP; then watched for the others' master-down interval. When that
fails the lab cannot be brought back, and every later call says so at once (the same reason,
no second wait).

Example::

    master, why = intended_master(directors, vip)     # (<Host lb1>, 'lb1 is the intended …')
    steady = SteadyState(directors, vip, lab_if, master)
    holder = steady.ensure().holder                   # 'lb1'; raises Unsteady with the reason
"""

from __future__ import annotations

import dataclasses
import time

from .assertions import SLACK, LabAssertionError, assert_vip_on, vrrp_instance
from .errors import CommandFailed
from .probes import vrrp

STEADY_REASON = "the lab could not be brought back to its steady state"


class Unsteady(Exception):
    """The lab is not in, and cannot be brought back to, the state a check needs (a verdict on
    the lab, not a harness error): the message says what was seen."""


def intended_master(directors, vip: str, insts: dict | None = None):
    """(director, why): the director keepalived's configuration makes master for ``vip`` — the
    highest priority (``state`` is only where an instance starts) — or (None, why) when the
    highest priority is shared. ``insts``: each director's instance for ``vip``, if already read.

    Example::

        intended_master(directors, "10.77.0.100")
        # (<Host lb1>, 'lb1 is the intended master: priority 150, lb2 100')
    """
    insts = insts or {d.name: vrrp_instance(d, vip) for d in directors}
    ranked = sorted(directors, key=lambda d: (-insts[d.name].priority, d.name))
    listing = ", ".join(f"{d.name} {insts[d.name].priority}" for d in ranked)
    if len(ranked) > 1 and insts[ranked[0].name].priority == insts[ranked[1].name].priority:
        return None, f"no intended master: the highest priority is shared (priority {listing})"
    top = ranked[0]
    notes = [f"state {insts[top.name].state} in its configuration"]
    if insts[top.name].nopreempt:
        notes.append("nopreempt: it does not take the VIP back from another master")
    return top, f"{top.name} is the intended master: priority {listing} ({'; '.join(notes)})"


def _read_flags(link: str) -> str:
    """A shell command printing ``link``'s flags by the shell's own ``read`` (an exec less than
    ``ip link``: ~20 ms each in the UML guest)."""
    return f"read f < /sys/class/net/{link}/flags && echo $f"


def _flags_up(flags: str) -> bool:
    """``/sys/class/net/X/flags`` (e.g. ``0x1003``) → is the link set up (IFF_UP)?"""
    try:
        return bool(int(flags.strip(), 16) & 1)
    except ValueError:
        return False


def link_is_up(host, link: str) -> bool:
    """Is ``link`` of ``host`` set up (``ip link set … up``)?

    Example::

        link_is_up(hosts["lb1"], "eth1")     # True
    """
    return _flags_up(host.run(_read_flags(link)).stdout)


@dataclasses.dataclass(frozen=True)
class DirectorState:
    name: str
    link_up: bool
    keepalived: bool
    holds_vip: bool


@dataclasses.dataclass(frozen=True)
class Steady:
    holder: str  # the director holding the VIP
    actions: tuple[str, ...]  # what was done to get here (empty: it was steady already)
    seconds: float


class SteadyState:
    """Verify and restore the steady state of ``directors`` for ``vip`` (see the module text).

    ``lab_if`` maps each director to its lab interface; ``master`` is :func:`intended_master`'s
    answer; ``on_action(director, text)`` is told of each restoring step (for a timeline).
    """

    def __init__(
        self, directors, vip: str, lab_if: dict[str, str], master=None, on_action=None, insts: dict | None = None
    ):
        self.directors = list(directors)
        self.vip, self.lab_if, self.master = vip, lab_if, master
        self.on_action = on_action or (lambda director, text: None)
        self.unreachable: str | None = None
        # the configs do not change during a scenario: read once
        self.inst = insts or {d.name: vrrp_instance(d, vip) for d in self.directors}

    def _takeover(self, director) -> float:
        inst = self.inst[director.name]
        return inst.master_down_interval + inst.advert_int + SLACK

    # observing -------------------------------------------------------------------------
    def observe(self) -> dict[str, DirectorState]:
        """One command per director: its lab link, its keepalived, whether it holds the VIP."""
        found = {}
        for d in self.directors:
            r = d.run(
                f"{_read_flags(self.lab_if[d.name])}; echo ---; ip -o addr show; echo ---; "
                "systemctl is-active keepalived"
            )
            link, addrs, active = (r.stdout.split("---\n") + ["", "", ""])[:3]
            holds = bool(vrrp.owners({d.name: vrrp.parse_addresses(addrs)}, self.vip))
            found[d.name] = DirectorState(d.name, _flags_up(link), active.strip() == "active", holds)
        return found

    def holder(self, states: dict[str, DirectorState]) -> str | None:
        """The single VIP holder when ``states`` are steady, else None."""
        holders = [n for n, s in states.items() if s.holds_vip]
        ok = (
            all(s.link_up and s.keepalived for s in states.values())
            and len(holders) == 1
            and (self.master is None or holders == [self.master.name])
        )
        return holders[0] if ok else None

    @staticmethod
    def describe(states: dict[str, DirectorState]) -> str:
        holders = [n for n, s in states.items() if s.holds_vip]
        parts = [
            f"{'no director' if not holders else ' and '.join(holders)} hold{'s' if len(holders) == 1 else ''} the VIP"
        ]
        parts += [f"{n}'s lab link is down" for n, s in states.items() if not s.link_up]
        parts += [f"keepalived is not running on {n}" for n, s in states.items() if not s.keepalived]
        return ", ".join(parts)

    # restoring -------------------------------------------------------------------------
    def ensure(self) -> Steady:
        """Return the steady state (restoring it if needed); raise :class:`Unsteady` if it cannot be had."""
        if self.unreachable:
            raise Unsteady(self.unreachable)
        t0 = time.monotonic()
        states = self.observe()
        if (holder := self.holder(states)) is not None:
            return Steady(holder, (), 0.0)
        actions = []
        for d in self.directors:
            if not states[d.name].link_up:
                self._act(actions, d, f"{self.lab_if[d.name]} up on {d.name}")
                d.link_up(self.lab_if[d.name])
        for d in self.directors:
            if not states[d.name].keepalived:
                self._act(actions, d, f"keepalived started on {d.name}")
                self._start(d)
        states = self._settle(states)
        if (holder := self.holder(states)) is None:
            holder = self._restart_in_order(actions, self.describe(states))
        return Steady(holder, tuple(actions), round(time.monotonic() - t0, 2))

    def _act(self, actions: list, director, text: str) -> None:
        actions.append(text)
        self.on_action(director, text)

    def _start(self, director) -> None:
        try:
            director.start("keepalived")
        except CommandFailed as err:
            self._give_up(f"keepalived does not start on {director.name}: {err.result.stderr.strip()[-300:]}")

    def _settle(self, states: dict[str, DirectorState]) -> dict[str, DirectorState]:
        """Give VRRP its own time to settle (preemption, an election) before restarting anything."""
        if (
            self.master is not None
            and self.inst[self.master.name].nopreempt
            and states[self.master.name].keepalived
            and any(s.holds_vip for s in states.values())
        ):
            return self.observe()  # nopreempt: the VIP does not come back by itself
        who = self.master or self.directors[0]
        deadline = time.monotonic() + self._takeover(who) + self.inst[who.name].preempt_delay
        watch = vrrp.watching(self.directors)  # where it streams events, look at each one instead
        while True:
            since = vrrp.events_seen(watch)
            states = self.observe()
            if self.holder(states) is not None or time.monotonic() > deadline:
                return states
            vrrp.pause(watch, since, 0.2, deadline - time.monotonic())

    def _restart_in_order(self, actions: list, seen: str) -> str:
        first = [self.master] if self.master is not None else self.directors
        rest = [d for d in self.directors if d not in first]
        self._act(
            actions,
            first[0],
            "keepalived restarted: stopped everywhere, then started on "
            + (f"{self.master.name} first" if self.master is not None else "every director"),
        )
        for d in self.directors:
            d.stop("keepalived")
        states = self.observe()
        if any(s.holds_vip for s in states.values()):
            self._give_up(
                f"{seen}; with keepalived stopped everywhere "
                f"{' and '.join(n for n, s in states.items() if s.holds_vip)} still holds the VIP "
                "(it is not keepalived's)"
            )
        for d in first:
            self._start(d)
        want = first[0] if self.master is not None else None
        try:
            if want is not None:
                assert_vip_on(want, self.vip, deadline=self._takeover(want) + SLACK)
        except LabAssertionError as err:
            for d in rest:  # leave no keepalived stopped that the lab had running: later checks
                self._start(d)  # (an IPVS table keepalived programs) judge the student's lab, not ours
            self._give_up(f"{seen}; after a restart {want.name} did not take the VIP ({err.got})")
        for d in rest:
            self._start(d)
        # a backup that cannot hear the master takes the VIP after its master-down interval
        hold = max([self.inst[d.name].master_down_interval for d in rest] or [0.0]) + 0.5
        deadline = time.monotonic() + (hold if want is not None else max(map(self._takeover, self.directors)))
        watch = vrrp.watching(self.directors)
        since = vrrp.events_seen(watch)
        states = self.observe()
        while time.monotonic() < deadline:
            vrrp.pause(watch, since, 0.25, deadline - time.monotonic())
            since = vrrp.events_seen(watch)
            states = self.observe()
            if want is not None and self.holder(states) is None:
                break
        holder = self.holder(states)
        if holder is None:
            self._give_up(f"{seen}; after keepalived was restarted, {self.describe(states)}")
        return holder

    def _give_up(self, why: str) -> None:
        self.unreachable = f"{STEADY_REASON} ({why})"
        raise Unsteady(self.unreachable)


def await_steady(directors, vip: str) -> tuple[bool, str]:
    """Wait, touching nothing, for the steady state of a lab just brought up: at most the time the
    intended master (or, without one, any director) takes to win the VIP. (True, 'lb1 holds
    10.77.0.100 (…) after 3.4 s'), or (False, what is seen instead) — `lvs-harness up` says which.

    Example::

        ready, text = await_steady([lab.hosts["lb1"], lab.hosts["lb2"]], "10.77.0.100")
    """
    t0 = time.monotonic()
    insts = {d.name: vrrp_instance(d, vip) for d in directors}
    master, why = intended_master(directors, vip, insts)
    steady = SteadyState(directors, vip, {d.name: insts[d.name].interface for d in directors}, master, insts=insts)
    who = master or directors[0]
    deadline = t0 + steady._takeover(who) + insts[who.name].preempt_delay + SLACK
    while True:
        states = steady.observe()
        if (holder := steady.holder(states)) is not None:
            return True, f"{holder} holds {vip} after {time.monotonic() - t0:.1f} s ({why})"
        if time.monotonic() > deadline:
            return False, (
                f"not steady after {time.monotonic() - t0:.1f} s, the time keepalived needs to elect "
                f"{who.name}: {steady.describe(states)} ({why})"
            )
        time.sleep(0.2)
