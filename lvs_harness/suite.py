"""The suite kit: what the checks of a VRRP + IPVS lab share, so that a pack's suite file reads as
its homework's checks only.

- :class:`VrrpLab` — the lab as the checks see it (:func:`scenario` makes it a fixture): who is who (from the configuration), each
  host's lab interface (found by address), the intended master, the steady state, the kernel's
  address events for the VIPs, a timeline of what the checks did, client traffic and probes;
- :func:`baseline_fixture` — the autouse fixture that brings the lab to the state a check
  declares (``state=`` on its marker) before it runs, or fails it with "not run: …";
- :func:`config_valid_check` — the shared check that keepalived runs each director's config
  (:func:`config_valid`), and :data:`NEEDS_CONFIG` for the checks that need it;
- :func:`set_timing` — ``--timing`` applied to the directors' IPVS timeouts;
- :meth:`VrrpLab.takeover` — the VIP's holder loses its lab link while the client probes the VIP:
  the backup's takeover judged, the probes measured, the link up again at the end;
- :func:`why_path`, :func:`why_vrrp`, :func:`explained` — a failed check's diagnosis
  (:mod:`lvs_harness.diagnosis`), measured.

Example (a pack's suite)::

    @pytest.fixture(scope="module")
    def mylab(lab, directors, reals, client, timing):
        yield from scenario(VrrpLab, "my lab", lab, directors, reals, client, timing)

    baseline = baseline_fixture("mylab")

    test_config_valid = config_valid_check("mylab")
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from . import diagnosis
from .assertions import KEEPALIVED_CONF, LabAssertionError, assert_config_runs, assert_failover_within, vrrp_instance
from .baseline import SteadyState, Unsteady, intended_master
from .checks import Check, not_run
from .errors import HarnessError
from .probes import vrrp
from .probes.client import Prober, http_requests, identify, real_pages

FAST_TCPFIN = 5  # seconds, --timing fast: IPVS's FIN_WAIT timeout (default 120 s = 1 MSL)
STEADY = "steady"  # the lab state every suite knows: links up, keepalived everywhere, the VIP on its master


def not_ready(reason: str):
    """Fail the check as not run (the lab could not be brought to the state it needs)."""
    pytest.fail(not_run(reason), pytrace=False)


@dataclass
class Takeover:
    """A failover under way (:meth:`VrrpLab.takeover`): who held the VIP, who took it, the move
    (``assert_failover_within``'s value), the time the link went down (the holder's clock) and the
    client's probes through it."""

    holder: object
    backup: object
    moved: object
    t0: float
    prober: Prober


class VrrpLab:
    """The lab as a suite sees it. ``insts``: each director's VrrpInstance for the VIP (read from
    its keepalived.conf if not given); ``vips``: more virtual addresses whose ownership is watched
    (e.g. a gateway VIP)."""

    def __init__(self, lab, directors, reals, client, timing: str = "fast", *, insts: dict | None = None, vips=()):
        self.lab, self.directors, self.reals, self.client, self.timing = lab, directors, reals, client, timing
        self.vip = lab.topology.service.vip
        self.port = lab.topology.service.port
        self.url = f"http://{self.vip}:{self.port}/"
        self.insts = insts or {d.name: vrrp_instance(d, self.vip) for d in directors}
        self.priorities = {n: i.priority for n, i in self.insts.items()}
        self.master, self.master_why = intended_master(directors, self.vip, self.insts)
        self.addresses = {h.name: vrrp.read_addresses(h) for h in [*directors, *reals, client]}
        self.lab_if = {name: self.lab_interface(lab.hosts[name], found) for name, found in self.addresses.items()}
        self.steady = SteadyState(directors, self.vip, self.lab_if, self.master, on_action=self.event, insts=self.insts)
        self.pages = real_pages(reals, self.port)  # which real answered: by its own page
        one_clock = getattr(lab, "one_clock", True)
        self.watches = {v: vrrp.OwnershipMonitor(directors, v, one_clock=one_clock) for v in (self.vip, *vips) if v}
        self.watch_source = "the kernel's address events on each director (ip -ts monitor)"
        self.watch_error = ""
        self.epoch = 0  # counts changes to the lab (breaks, restores)
        self.holder = None  # the director holding the VIP as the check began
        self.events: list[tuple[float, str]] = []  # (unix time, what was done), for the ownership timeline
        self.probes: list = []  # client probes during failover and failback

    def lab_interface(self, host, addresses: dict) -> str:
        """``host``'s interface on the lab network (by address, never by name)."""
        return vrrp.lab_interface(host, addresses, near=self.vip)

    def watch_also(self, vip: str) -> None:
        """Watch the owners of ``vip`` too (before :meth:`start_watching`)."""
        self.watches[vip] = vrrp.OwnershipMonitor(self.directors, vip, one_clock=getattr(self.lab, "one_clock", True))

    @property
    def watch(self):
        """The watch of the VIP's ownership (a monitor of kernel events, or a sampling recorder)."""
        return self.watches.get(self.vip)

    def start_watching(self, *, fallback: bool = True) -> None:
        """Start watching every VIP's owners. Where a lab gives no address events: with
        ``fallback``, sample the VIP instead and say so; else watch nothing (``watch_error`` says why)."""
        started = []
        try:
            for mon in self.watches.values():
                started.append(mon.start())
        except HarnessError as err:
            for mon in started:
                mon.stop()
            if fallback:
                self.watches = {self.vip: vrrp.OwnershipRecorder(self.directors, self.vip).start()}
                self.watch_source = f"sampling every {self.watches[self.vip].interval:g} s on each director ({err})"
            else:
                self.watches, self.watch_error = {}, str(err)

    def stop_watching(self) -> None:
        for mon in self.watches.values():
            if not mon.samples:
                mon.stop()

    def event(self, host, what: str) -> None:
        """Note ``what`` at ``host``'s clock, moved to the clock the ownership samples use."""
        t = float(host.check("date +%s.%N").stdout)
        watch = self.watch
        self.events.append((watch.common(host, t) if isinstance(watch, vrrp.OwnershipMonitor) else t, what))

    def changed(self) -> None:
        """The lab was changed (a fault, a restore): what was observed together is stale."""
        self.epoch += 1

    def backup_for(self, holder):
        """The director that should take the VIP from ``holder``: the highest priority of the others."""
        return max((d for d in self.directors if d is not holder), key=lambda d: (self.priorities[d.name], d.name))

    def requests(self, count: int):
        """``count`` requests from the client to the VIP, each told by the real that answered it."""
        return identify(http_requests(self.client, self.url, count=count), self.pages)

    def client_ip(self) -> str | None:
        """The client's address on its lab interface."""
        return next(
            (
                a.split("/")[0]
                for a in self.addresses[self.client.name].get(self.lab_if[self.client.name], [])
                if ":" not in a
            ),
            None,
        )

    def link_down(self, director, link: str | None = None) -> float:
        """Take ``director``'s lab link (or ``link``) down; the time just before (epoch, its clock)."""
        link = link or self.lab_if[director.name]
        self.changed()
        self.event(director, f"{link} down on {director.name}")
        director.link_down(link)
        return self.events[-1][0]

    @contextlib.contextmanager
    def takeover(self, measure, *, linger: float = 0.0, also: Callable | None = None) -> Iterator[Takeover]:
        """The VIP's holder (as the check began) loses its lab link while the client probes the VIP.
        The backup's takeover is judged (a failure's reason is led by :func:`why_vrrp`), then
        ``also(moved)`` — what must hold at once —, and the client keeps probing one advert
        interval (+ ``linger`` s) more: the gap must have closed. The probes are measured
        (:func:`measure_probes`) and kept; the body runs with the link still down; it comes up
        again at the end, whatever happened.

        Example::

            with s.takeover(measure) as t:
                measure("failover_s", round(t.moved.seconds, 2))
                assert s.requests(10)[-1].ok, f"no answer through {t.backup.name}"
        """
        holder, backup = self.holder, self.backup_for(self.holder)
        prober = Prober(self.client, self.url)
        try:
            with prober:
                t0 = self.link_down(holder)
                try:
                    moved = assert_failover_within(holder, backup, self.vip)
                    if also:
                        also(moved)
                except LabAssertionError as err:
                    raise explained(err, why_vrrp(self, measure, backup)) from None
                finally:
                    until = time.monotonic() + self.insts[backup.name].advert_int + linger
                    while time.monotonic() < until:
                        time.sleep(0.1)
            self.probes += prober.results
            measure_probes(measure, prober)
            yield Takeover(holder, backup, moved, t0, prober)
        finally:
            self.link_up(holder)

    def link_up(self, director, link: str | None = None) -> float:
        link = link or self.lab_if[director.name]
        self.event(director, f"{link} up on {director.name}")
        director.link_up(link)
        return self.events[-1][0]


def scenario(
    cls, lab_title: str, lab, directors, reals, client, timing, *, fallback: bool = True, directors_needed: int = 2
):
    """A module-scoped fixture's body: the suite's :class:`VrrpLab` (of class ``cls``) for its
    checks, with ``--timing`` applied and the VIPs' owners watched, stopped at the end. A lab
    with fewer than ``directors_needed`` directors or no real fails every check, naming the roles
    found.

    Example::

        @pytest.fixture(scope="module")
        def mylab(lab, directors, reals, client, timing):
            yield from scenario(VrrpLab, "my lab", lab, directors, reals, client, timing)
    """
    if len(directors) < directors_needed or not reals:
        needed = "two directors" if directors_needed == 2 else f"{directors_needed} director(s)"
        pytest.fail(
            f"{lab_title} needs {needed} and at least one real; roles found: "
            f"{[(h.name, h.role) for h in lab.topology.hosts]}",
            pytrace=False,
        )
    s = cls(lab, directors, reals, client, timing)
    set_timing(directors, timing)
    s.start_watching(fallback=fallback)
    yield s
    s.stop_watching()


def measure_probes(measure, prober) -> None:
    """What the client's prober saw: its probes, the failed ones, its rate, the longest outage."""
    outage = prober.outage()
    measure("failed_probes", sum(not r.ok for r in prober.results))
    measure("probes", len(prober.results))
    measure("probe_rate_per_s", round(prober.rate, 1))
    measure("client_outage_s", round(outage[1], 3) if outage else 0.0)


def baseline_fixture(scenario: str, states: dict[str, Callable] | None = None, always: Callable | None = None):
    """The autouse fixture that brings the lab to the state a check declares before it runs:
    ``steady`` (links up, keepalived on every director, the VIP on the intended master alone:
    :class:`lvs_harness.baseline.SteadyState`), then ``always(s, steady)`` and
    ``states[check.state](s, steady)`` — a pack's own states, each failing the check with
    :func:`not_ready` when the lab cannot be brought there. ``scenario``: the name of the suite's
    :class:`VrrpLab` fixture.

    Example::

        baseline = baseline_fixture("hw", states={"traffic": arp_reaches_the_holder})
    """
    states = states or {}

    @pytest.fixture(autouse=True)
    def baseline(request, measure):
        check = Check.of(request.node)
        if check is None or check.state is None:
            return
        s = request.getfixturevalue(scenario)
        try:
            steady = s.steady.ensure()
        except Unsteady as err:
            not_ready(str(err))
        if steady.actions:
            s.changed()
            measure("baseline_restored", list(steady.actions))
        s.holder = s.lab.hosts[steady.holder]
        if always:
            always(s, steady)
        if check.state in states:
            states[check.state](s, steady)

    return baseline


NEEDS_CONFIG = {"config_valid": "needs a valid keepalived config"}  # ``needs=`` of a check that runs keepalived
CONFIG_VALID_HINT = (
    "Run `keepalived --config-test -f {path}` on each director and read what it drops or cannot use; an "
    "unbalanced brace, a track_script used before its vrrp_script, or an interface the host lacks are the "
    "usual causes."
)


def config_valid_check(scenario: str, path: str = KEEPALIVED_CONF, points: int = 1):
    """The shared check ``config_valid`` for a suite whose :class:`VrrpLab` fixture is called
    ``scenario``: keepalived runs each director's ``path`` as written (:func:`config_valid`).
    Checks that need it say ``needs=NEEDS_CONFIG``.

    Example (in a pack's suite module)::

        test_config_valid = config_valid_check("mylab")
    """

    @pytest.mark.usefixtures(scenario)  # set up before the check: a lab that cannot start is an error, not a failure
    @pytest.mark.check(
        id="config_valid",
        points=points,
        title="keepalived runs each director's configuration as written",
        hint=CONFIG_VALID_HINT.format(path=path),
    )
    def test_config_valid(request, measure):
        """keepalived runs the config as written: messages it recovers from (auth_pass truncated,
        scripts without script security, unknown or deprecated keywords) are listed, not failed."""
        config_valid(request.getfixturevalue(scenario).directors, measure, path)

    return test_config_valid


def config_valid(directors, measure, path: str = KEEPALIVED_CONF) -> None:
    """keepalived runs each director's config as written: messages it recovers from are listed
    (``config_warnings``), not failed; a config it cannot run fails, and when keepalived runs it
    anyway the checks that need it still run (they judge what it does)."""
    try:
        measure("config_warnings", assert_config_runs(directors, path).value)
    except LabAssertionError as err:
        measure("config_errors", err.got)
        running = {d.name: d.is_active("keepalived") for d in directors}
        measure("keepalived_runs", running)
        if all(running.values()):  # keepalived runs the config anyway: the checks needing it still judge it
            soft = err.noted("keepalived runs it anyway, so the checks that need it still run")
            soft.blocks_dependents = False
            raise soft from None
        raise


def set_timing(directors, timing: str) -> None:
    """``--timing fast``: IPVS's FIN_WAIT timeout set to :data:`FAST_TCPFIN` s on every director
    before any traffic (entries keep the timer they were created with); ``faithful`` keeps 120 s."""
    if timing == "fast":
        for d in directors:
            d.run(f"ipvsadm --set 0 {FAST_TCPFIN} 0")


def why_path(s: VrrpLab, measure, holder=None, by_real=None, **kwargs):
    """A failed traffic check's diagnosis (:func:`lvs_harness.diagnosis.dr_path` through
    ``holder``, default the VIP's holder as the check began), measured; None without one."""
    if not s.lab.ipvs:
        return None

    def look():
        client_ip = s.client_ip()
        return client_ip and diagnosis.dr_path(
            client_ip=client_ip,
            holder=holder or s.holder,
            reals=s.reals,
            vip=s.vip,
            port=s.port,
            by_real=by_real,
            directors=s.directors,
            **kwargs,
        )

    return diagnosis.diagnose(measure, look)


def why_vrrp(s: VrrpLab, measure, expected):
    """Why the VIP is not on ``expected`` alone (None: on one director alone):
    :func:`lvs_harness.diagnosis.vrrp_path`, measured."""
    return diagnosis.diagnose(
        measure,
        diagnosis.vrrp_path,
        directors=s.directors,
        vip=s.vip,
        instances=s.insts,
        lab_if=s.lab_if,
        expected=expected,
    )


def explained(err: LabAssertionError, finding) -> LabAssertionError:
    """``err`` with its reason led by ``finding``'s sentence (unchanged without one)."""
    return err.explained(finding.sentence) if finding else err
