"""The pytest plugin: options (``--lab``, ``--pack``, ``--vagrantfile``, ``--submission``, …) wired to
the lab fixtures; nothing else lives here (submissions: :mod:`lvs_harness.submission`, the check
model and its dependencies: :mod:`lvs_harness.checks`, results and reports: :mod:`lvs_harness.report`).

Fixtures (all session-scoped, so one lab serves the whole run):

- ``lab_config`` — a :class:`~lvs_harness.labs.LabConfig` built from the options;
  override it in your conftest to change the Vagrantfile, roles or services for your lab;
- ``lab`` — the running lab (torn down at the end unless ``--keep-lab``);
- ``hosts`` (name -> Host), ``directors`` and ``reals`` (lists, by name), ``client``;
- ``timing`` ('fast' or 'faithful') and ``measure`` (attach a measured value to the check).

The pack (``--pack``; else the installed pack whose suite is being run; else none — a lab of
your own) gives the reference Vagrantfile, roles, daemons, services and report charts.

Example (a lab author's test)::

    def test_vip_answers(client, lab):
        vip = lab.topology.service.vip
        assert client.check(f"curl -s -o /dev/null -w '%{{http_code}}' {vip}").stdout == "200"
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

import pytest

from .checks import Check, Dependencies
from .errors import HarnessError, Refused, SubmissionFault, VagrantfileError
from .labs import LabConfig, start_lab
from .labs.base import default_timing
from .options import add, interrupt
from .packs import PackError, load_pack, pack_of_module
from .report import RECORDER, HtmlHooks, Recorder, emit
from .submission import NothingToRun, load_submission


def pytest_addoption(parser):
    group = parser.getgroup("lvs-harness", "load-balancer lab")
    add(group.addoption, "--lab", "--provider", "--pack", "--vagrantfile", defaults={"--lab": None})
    group.addoption(
        "--submission",
        type=Path,
        default=None,
        metavar="PATH",
        help="a student's submission (markdown write-up or folder): its Vagrantfile and "
        "keepalived configs, the reference's for what it lacks",
    )
    group.addoption("--keep-lab", action="store_true", help="leave the lab running after the tests")
    add(group.addoption, "--allow-scripts", "--timing")
    group.addoption(
        "--results-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write each check's status, score, reason and measured values, with the run's summary, "
        "as JSON (lvs-harness grade reads it)",
    )
    group.addoption("--student", default=None, help="the name shown in reports (default: the submission's name)")
    # lvs-harness grade, on a retry: the earlier attempts (JSON), shown in the report's summary
    group.addoption("--earlier-attempts", default=None, metavar="PATH", help=argparse.SUPPRESS)
    add(group.addoption, "--audience", defaults={"--audience": None})  # None: not given (staff)
    # lvs-harness check: leave out the checks the pack hides from students
    group.addoption("--without-hidden", action="store_true", default=False, help=argparse.SUPPRESS)
    # lvs-harness grade: structured progress (JSON lines, see report.emit) on the output
    group.addoption("--events", action="store_true", default=False, help=argparse.SUPPRESS)


PACK = pytest.StashKey["str | None"]()
ACTIVE = pytest.StashKey[bool]()
# a run is a lab run when it passes one of these, or collects a check or a test using a lab fixture
LAB_OPTIONS = (
    "--lab",
    "--pack",
    "--vagrantfile",
    "--submission",
    "--keep-lab",
    "--allow-scripts",
    "--timing",
    "--results-json",
    "--student",
    "--earlier-attempts",
    "--audience",
    "--without-hidden",
    "--events",
)
LAB_FIXTURES = {"lab_config", "lab", "hosts", "directors", "reals", "client", "timing"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "check(id, points, title, needs=(), state=None, hint='', hidden=False): a "
        "graded check (lvs_harness.checks.Check); `needs` names checks whose failure makes this "
        "one fail with a reason instead of running, `state` the lab state it starts from",
    )
    html = config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))
    recorder = config.stash[RECORDER] = Recorder(html=html, audience=config.getoption("--audience") or "staff")
    recorder.config = config
    submission = config.getoption("--submission")
    recorder.info["student"] = config.getoption("--student") or (
        submission and (submission.stem if submission.is_file() else submission.name)
    )
    attempts = config.getoption("--earlier-attempts")
    if attempts:
        recorder.info["earlier_attempts"] = json.loads(Path(attempts).read_text())
    config.stash[PACK] = config.getoption("--pack")
    config.stash[ACTIVE] = False
    if any(config.getoption(name) not in (None, False) for name in LAB_OPTIONS):
        _activate(config)


def _activate(config) -> None:
    """Make this a lab run: SIGTERM tears labs down as Ctrl-C does, checks' dependencies and
    results are followed. A pytest run that asks for no lab never gets here (its signals and
    plugins stay its own)."""
    if config.stash[ACTIVE]:
        return
    config.stash[ACTIVE] = True
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)  # tear labs down on `kill`, as on Ctrl-C
    recorder = config.stash[RECORDER]
    config.pluginmanager.register(Dependencies(), "lvs-harness-dependencies")
    config.pluginmanager.register(recorder, "lvs-harness-recorder")
    if recorder.html:
        config.pluginmanager.register(HtmlHooks(recorder), "lvs-harness-html")


def pytest_collection_modifyitems(session, config, items):
    """A run that collects a check or a test using a lab fixture is a lab run. Without --pack, the
    pack is the installed one whose suite is being run (if any); with --without-hidden, the checks
    the pack hides from students are deselected."""
    if any(Check.of(item) or LAB_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        _activate(config)
    if not config.stash[ACTIVE]:
        return
    if config.getoption("--without-hidden"):
        hidden = [item for item in items if (Check.of(item) or Check("")).hidden]
        if hidden:
            config.hook.pytest_deselected(items=hidden)
            items[:] = [item for item in items if item not in hidden]
    if config.stash[PACK] is None:
        found = {pack_of_module(item.module.__name__) for item in items if getattr(item, "module", None)}
        found.discard(None)
        if len(found) == 1:
            config.stash[PACK] = found.pop()
    if config.stash[PACK] or config.getoption("--submission"):
        try:
            config.stash[RECORDER].pack = load_pack(config.stash[PACK])
        except PackError as err:
            raise pytest.UsageError(str(err)) from None


def _progress(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(message: str) -> None:
        if reporter is None:
            return
        if config.getoption("--events"):
            emit(config, "progress", message=message)
        elif capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"lvs-harness: {message}")
        else:
            reporter.write_line(f"lvs-harness: {message}")

    return write


@pytest.fixture(scope="session")
def lab_config(pytestconfig, tmp_path_factory) -> LabConfig:
    """How the session's lab is built: backend, pack, Vagrantfile, the submission's files.
    Override it in a conftest for a lab of your own.

    Example::

        @pytest.fixture(scope="session")
        def lab_config(lab_config):
            return dataclasses.replace(lab_config, vagrantfile=Path(__file__).with_name("Vagrantfile"))
    """
    opt = pytestconfig.getoption
    pack = pytestconfig.stash[RECORDER].pack
    config = LabConfig(
        backend=opt("--lab") or "auto",
        provider=opt("--provider"),
        vagrantfile=opt("--vagrantfile"),
        keep=opt("--keep-lab"),
        pack=pack.name if pack else None,
        allow_scripts=opt("--allow-scripts"),
        progress=_progress(pytestconfig),
    )
    info = pytestconfig.stash[RECORDER].info
    if opt("--submission"):
        try:
            sub = load_submission(opt("--submission"), pack)
        except NothingToRun as err:  # a verdict (0 points), not a refusal of the form
            info["not_graded"] = "nothing-to-run"
            pytest.fail(str(err), pytrace=False)
        except HarnessError as err:
            info["not_graded"] = "refused"
            pytest.fail(f"the submission could not be read: {err}", pytrace=False)
        info["submission"] = sub.report_info()
        config = sub.lab_config(config, tmp_path_factory.mktemp("submission"))
        if sub.vagrantfile and config.vagrantfile and not sub.source.is_dir():
            # errors name the write-up's block, not the copy the lab reads
            pytestconfig.stash[RECORDER].aliases[str(config.vagrantfile)] = sub.vagrantfile.origin
    elif config.vagrantfile:
        info["submission"] = {
            "source": str(config.vagrantfile),
            "parts": [{"part": "Vagrantfile", "student": True, "source": str(config.vagrantfile)}],
        }
    return config


@pytest.fixture(scope="session")
def lab(lab_config, pytestconfig):
    """The running lab (a :class:`~lvs_harness.labs.Lab`), one per session, torn down at the end
    (kept with --keep-lab). A lab that cannot start fails every test that uses it, in one sentence.

    Example::

        def test_two_directors(lab):
            assert len(lab.topology.directors) == 2
            assert lab.topology.service.port == 80
    """
    recorder = pytestconfig.stash[RECORDER]
    t0 = time.monotonic()
    try:
        instance = start_lab(lab_config)
    except HarnessError as err:
        text = str(err)
        for path, origin in recorder.aliases.items():
            text = text.replace(path, origin)
        recorder.info["not_graded"] = (
            "refused"
            if isinstance(err, (Refused, VagrantfileError))
            else "submission-fault"
            if isinstance(err, SubmissionFault)
            else "lab-failed"
        )
        pytest.fail(f"the lab could not be started: {text}", pytrace=False)
    recorder.info.update(backend=instance.NAME, run_id=instance.run_id, lab_seconds=round(time.monotonic() - t0, 1))
    emit(
        pytestconfig,
        "lab_up",
        run_id=instance.run_id,
        backend=instance.NAME,
        timings={k: round(v, 1) for k, v in getattr(instance, "timings", {}).items()},
    )
    if instance.NAME == "vagrant":
        recorder.info["provider"] = lab_config.provider
    recorder.watch(instance.hosts.values())
    with instance:
        yield instance


@pytest.fixture(scope="session")
def hosts(lab):
    """{name: :class:`~lvs_harness.hosts.Host`} of every lab host.

    Example::

        def test_forwarding(hosts):
            assert hosts["lb1"].check("sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
    """
    return lab.hosts


@pytest.fixture(scope="session")
def directors(lab):
    """The hosts whose role is director, by name (roles: the pack's patterns or the lab config's).

    Example::

        def test_keepalived_everywhere(directors):
            assert all(d.is_active("keepalived") for d in directors)
    """
    return [lab.hosts[h.name] for h in lab.topology.directors]


@pytest.fixture(scope="session")
def reals(lab):
    """The real servers, by name.

    Example::

        def test_pages(reals):
            assert all(r.check("curl -s -o /dev/null -w '%{http_code}' 127.0.0.1").stdout == "200" for r in reals)
    """
    return [lab.hosts[h.name] for h in lab.topology.reals]


@pytest.fixture(scope="session")
def client(lab):
    """The first client host (the one that sends requests to the VIP).

    Example::

        def test_answers(client, lab):
            assert client.check(f"curl -s {lab.topology.service.vip}").stdout
    """
    clients = lab.topology.clients
    if not clients:
        pytest.fail(
            f"the lab has no client host (machine names: {', '.join(lab.topology.names)}); "
            "name one client* or map a role in lab_config.roles",
            pytrace=False,
        )
    return lab.hosts[clients[0].name]


@pytest.fixture(scope="session")
def timing(pytestconfig, lab) -> str:
    """'fast' or 'faithful' (see --timing); fast is the default except on the vagrant lab.

    Example::

        def test_drain(timing, directors):
            limit = 5 if timing == "fast" else 120      # IPVS's tcpfin timeout in each mode
            assert limit >= 5
    """
    mode = pytestconfig.getoption("--timing") or default_timing(lab.NAME)
    pytestconfig.stash[RECORDER].info["timing"] = mode
    return mode


@pytest.fixture
def measure(request):
    """``measure(name, value)`` attaches a measured value to this test's report (``user_properties``).

    Example::

        def test_failover(measure, directors):
            measure("directors", [d.name for d in directors])
            measure("failover_s", 3.4)
    """
    return lambda name, value: request.node.user_properties.append((name, value))
