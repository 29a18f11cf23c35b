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

from .checks import Check, Outcomes, is_not_run
from .errors import HarnessError, Refused, VagrantfileError
from .labs import CHOICES, LabConfig, start_lab
from .labs.vagrant import PROVIDERS
from .packs import PackError, load_pack, pack_of_module
from .report import RECORDER, HtmlHooks, Recorder
from .submission import load_submission


def pytest_addoption(parser):
    group = parser.getgroup("lvs-harness", "load-balancer lab")
    group.addoption("--lab", choices=CHOICES, default="auto",
                    help="lab backend: auto (netns where the kernel has IPVS and you are root, else uml), "
                         "uml (embedded User-Mode Linux guest), netns (this kernel), vagrant")
    group.addoption("--provider", choices=PROVIDERS, default="libvirt",
                    help="--lab vagrant: libvirt (default; lvs-harness's own box, VMs in a network namespace) or "
                         "virtualbox (the Vagrantfile's own box)")
    group.addoption("--pack", default=None, metavar="NAME",
                    help="the course pack (`lvs-harness packs` lists them); default: the pack whose suite runs, "
                         "else the default pack for --submission")
    group.addoption("--vagrantfile", type=Path, default=None, metavar="PATH",
                    help="the lab to build (a Vagrantfile or its folder); default: the pack's reference")
    group.addoption("--submission", type=Path, default=None, metavar="PATH",
                    help="a student's submission (markdown write-up or folder): its Vagrantfile and "
                         "keepalived configs, the reference's for what it lacks")
    group.addoption("--keep-lab", action="store_true", help="leave the lab running after the tests")
    group.addoption("--allow-scripts", action="store_true",
                    help="on --lab netns, run the provisioners of a Vagrantfile other than the reference")
    group.addoption("--timing", choices=("fast", "faithful"), default=None,
                    help="fast (default on embedded labs): a short IPVS tcpfin timeout is set before traffic so "
                         "the drain check takes seconds; faithful (default on vagrant): default timeouts (~2 min)")
    group.addoption("--results-json", type=Path, default=None, metavar="PATH",
                    help="write each check's status, score, reason and measured values, with the run's summary, "
                         "as JSON (lvs-harness grade reads it)")
    group.addoption("--student", default=None, help="the name shown in reports (default: the submission's name)")
    # lvs-harness grade, on a retry: the earlier attempts (JSON), shown in the report's summary
    group.addoption("--earlier-attempts", default=None, metavar="PATH", help=argparse.SUPPRESS)


CHECK_OUTCOMES = pytest.StashKey[Outcomes]()
PACK = pytest.StashKey["str | None"]()


def pytest_configure(config):
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)   # tear labs down on `kill`, as on Ctrl-C
    config.addinivalue_line("markers", "check(id, points, title, needs=(), state=None, hint='', hidden=False): a "
                            "graded check (lvs_harness.checks.Check); `needs` names checks whose failure makes this "
                            "one fail with a reason instead of running, `state` the lab state it starts from")
    config.stash[CHECK_OUTCOMES] = Outcomes()
    html = config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))
    recorder = config.stash[RECORDER] = Recorder(html=html)
    submission = config.getoption("--submission")
    recorder.info["student"] = config.getoption("--student") or (
        submission and (submission.stem if submission.is_file() else submission.name))
    attempts = config.getoption("--earlier-attempts")
    if attempts:
        recorder.info["earlier_attempts"] = json.loads(Path(attempts).read_text())
    config.stash[PACK] = config.getoption("--pack")
    config.pluginmanager.register(recorder, "lvs-harness-recorder")
    if html:
        config.pluginmanager.register(HtmlHooks(recorder), "lvs-harness-html")


def pytest_collection_modifyitems(session, config, items):
    """Without --pack, the pack is the installed one whose suite is being run (if any)."""
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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Label a check's report; fail it before its fixtures run when a check it needs failed
    (a blocked check costs nothing: its fixtures might otherwise wait for a VIP that never comes)."""
    check = Check.of(item)
    if check:
        for key in ("id", "points", "title"):
            item.user_properties.append((f"check_{key}", getattr(check, key)))
        outcomes = item.config.stash[CHECK_OUTCOMES]
        need = outcomes.blocked(check)
        if need:
            item.user_properties.append(("check_blocked_by", need.check))
            pytest.fail(outcomes.reason(need), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    check = Check.of(item)
    # a check counts as failed for those that need it when it ran and failed, or was itself
    # not run; not when its setup broke (the lab did not start: the others say so themselves)
    blocked = report.when == "setup" and report.failed and is_not_run(report.longrepr)
    if check and (report.when == "call" or blocked or (report.when == "teardown" and report.failed)):
        item.config.stash[CHECK_OUTCOMES].record(check.id, not report.failed)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _progress(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(message: str) -> None:
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"lvs-harness: {message}")
        else:
            reporter.write_line(f"lvs-harness: {message}")
    return write


@pytest.fixture(scope="session")
def lab_config(pytestconfig, tmp_path_factory) -> LabConfig:
    opt = pytestconfig.getoption
    pack = pytestconfig.stash[RECORDER].pack
    config = LabConfig(backend=opt("--lab"), provider=opt("--provider"), vagrantfile=opt("--vagrantfile"),
                       keep=opt("--keep-lab"), pack=pack.name if pack else None,
                       allow_scripts=opt("--allow-scripts"), progress=_progress(pytestconfig))
    info = pytestconfig.stash[RECORDER].info
    if opt("--submission"):
        try:
            sub = load_submission(opt("--submission"), pack)
        except HarnessError as err:
            info["not_graded"] = "refused"
            pytest.fail(f"the submission could not be read: {err}", pytrace=False)
        info["submission"] = sub.report_info()
        config = sub.lab_config(config, tmp_path_factory.mktemp("submission"))
        if sub.vagrantfile and config.vagrantfile and not sub.source.is_dir():
            # errors name the write-up's block, not the copy the lab reads
            pytestconfig.stash[RECORDER].aliases[str(config.vagrantfile)] = sub.vagrantfile.origin
    elif config.vagrantfile:
        info["submission"] = {"source": str(config.vagrantfile), "parts": [
            {"part": "Vagrantfile", "student": True, "source": str(config.vagrantfile)}]}
    return config


@pytest.fixture(scope="session")
def lab(lab_config, pytestconfig):
    recorder = pytestconfig.stash[RECORDER]
    t0 = time.monotonic()
    try:
        instance = start_lab(lab_config)
    except HarnessError as err:
        text = str(err)
        for path, origin in recorder.aliases.items():
            text = text.replace(path, origin)
        recorder.info["not_graded"] = "refused" if isinstance(err, (Refused, VagrantfileError)) else "lab-failed"
        pytest.fail(f"the lab could not be started: {text}", pytrace=False)
    recorder.info.update(backend=instance.NAME, run_id=instance.run_id, lab_seconds=round(time.monotonic() - t0, 1))
    if instance.NAME == "vagrant":
        recorder.info["provider"] = lab_config.provider
    recorder.watch(instance.hosts.values())
    with instance:
        yield instance


@pytest.fixture(scope="session")
def hosts(lab):
    return lab.hosts


@pytest.fixture(scope="session")
def directors(lab):
    return [lab.hosts[h.name] for h in lab.topology.directors]


@pytest.fixture(scope="session")
def reals(lab):
    return [lab.hosts[h.name] for h in lab.topology.reals]


@pytest.fixture(scope="session")
def client(lab):
    clients = lab.topology.clients
    if not clients:
        pytest.fail(f"the lab has no client host (machine names: {', '.join(lab.topology.names)}); "
                    "name one client* or map a role in lab_config.roles", pytrace=False)
    return lab.hosts[clients[0].name]


@pytest.fixture(scope="session")
def timing(pytestconfig, lab) -> str:
    """'fast' or 'faithful' (see --timing); fast is the default except on the vagrant lab."""
    mode = pytestconfig.getoption("--timing") or ("faithful" if lab.NAME == "vagrant" else "fast")
    pytestconfig.stash[RECORDER].info["timing"] = mode
    return mode


@pytest.fixture
def measure(request):
    """``measure(name, value)`` attaches a measured value to this test's report (``user_properties``).

    Example::

        def test_failover(measure, ...):
            measure("failover_s", 3.4)
    """
    return lambda name, value: request.node.user_properties.append((name, value))
