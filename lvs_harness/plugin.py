"""The pytest plugin: ``--lab``, ``--vagrantfile``, ``--keep-lab``, ``--allow-scripts`` and the lab fixtures.

Fixtures (all session-scoped, so one lab serves the whole run):

- ``lab_config`` — a :class:`~lvs_harness.labs.LabConfig` built from the options;
  override it in your conftest to change the Vagrantfile, roles or VIP for your lab;
- ``lab`` — the running lab (torn down at the end unless ``--keep-lab``);
- ``hosts`` (name -> Host), ``directors`` and ``reals`` (lists, by name), ``client``.

Example (a lab author's test)::

    def test_vip_answers(client, lab):
        vip = lab.topology.service.vip
        assert client.check(f"curl -s -o /dev/null -w '%{{http_code}}' {vip}").stdout == "200"
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .errors import HarnessError
from .labs import CHOICES, LabConfig, start_lab


def pytest_addoption(parser):
    group = parser.getgroup("lvs-harness", "load-balancer lab")
    group.addoption("--lab", choices=CHOICES, default="auto",
                    help="lab backend: auto (netns where the kernel has IPVS and you are root, else uml), "
                         "uml (embedded User-Mode Linux guest), netns (this kernel), vagrant")
    group.addoption("--vagrantfile", type=Path, default=None, metavar="PATH",
                    help="the lab to build (a Vagrantfile or its folder); default: the shipped hw3.8 reference")
    group.addoption("--keep-lab", action="store_true", help="leave the lab running after the tests")
    group.addoption("--allow-scripts", action="store_true",
                    help="on --lab netns, run the provisioners of a Vagrantfile other than the reference")


def pytest_configure(config):
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)   # tear labs down on `kill`, as on Ctrl-C


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
def lab_config(pytestconfig) -> LabConfig:
    opt = pytestconfig.getoption
    return LabConfig(backend=opt("--lab"), vagrantfile=opt("--vagrantfile"), keep=opt("--keep-lab"),
                     allow_scripts=opt("--allow-scripts"), progress=_progress(pytestconfig))


@pytest.fixture(scope="session")
def lab(lab_config):
    try:
        instance = start_lab(lab_config)
    except HarnessError as err:
        pytest.fail(f"the lab could not be started: {err}", pytrace=False)
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

