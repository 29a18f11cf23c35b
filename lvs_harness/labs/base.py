"""What every lab backend offers (:class:`Lab`), the one lifecycle they share
(:class:`LabBase`), and the bring-up shared by the namespace-based ones (:class:`NamespacedLab`).

A backend is a :class:`LabBase` subclass with ``NAME`` whose ``start(config)`` returns a running
:class:`Lab`; ``lvs_harness.labs`` finds it by name in its registry (imported only when asked for).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Protocol
from collections.abc import Callable

from ..commands import CommandResult
from ..errors import CommandTimeout, LabError, LabGone, Refused, SubmissionFault
from ..hosts import Host, host_map
from ..runs import Run
from ..topology import Provisioner, Topology, VirtualService
from ..vagrantfile import load_topology
from .namespaces import SCRIPT_ON_STDIN, Namespaces

PROVISION_BUDGET = 300  # seconds for all provisioners of a lab together: a correct lab needs ~5 s here
# (4x that on a slow machine); LVS_HARNESS_PROVISION_BUDGET overrides it


def provision_budget() -> float:
    return float(os.environ.get("LVS_HARNESS_PROVISION_BUDGET") or PROVISION_BUDGET)


def default_timing(backend: str) -> str:
    """The timing a run uses unless told (see ``--timing``): faithful on VMs, fast on the embedded labs."""
    return "faithful" if backend == "vagrant" else "fast"


PROVIDERS = ("libvirt", "virtualbox")  # --lab vagrant


def reference_vagrantfile(pack: str | None = None) -> Path:
    """The reference Vagrantfile of ``pack`` (default: the default pack's)."""
    from ..packs import load_pack

    return Path(load_pack(pack).reference)


def stderr_progress(message: str) -> None:
    print(f"lvs-harness: {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class LabConfig:
    """How to bring a lab up. Override the ``lab_config`` fixture to change it for a test suite.

    Example::

        @pytest.fixture(scope="session")
        def lab_config(lab_config):
            return dataclasses.replace(lab_config, vagrantfile=Path("my-lab/Vagrantfile"))
    """

    backend: str = "auto"
    provider: str = "libvirt"  # vagrant lab: libvirt (here, CI) or virtualbox (graders' laptops)
    vagrantfile: Path | None = None  # None: the pack's reference
    keep: bool = False  # outlive this process (held by a keeper process)
    pack: str | None = None  # the course pack (None: the default pack's reference lab, or
    # a lab of your own when you give `vagrantfile`)
    roles: dict | None = None  # role -> glob patterns; None: the pack's, else generic ones
    services: tuple[VirtualService, ...] = ()  # the virtual services; (): the pack's, else read from the lab
    daemons: dict | None = None  # role -> daemons started at bring-up; None: the pack's
    allow_scripts: bool = False  # run provisioners of a non-reference Vagrantfile on netns
    files: dict | None = None  # {host: {path: text}} written after provisioning (e.g. keepalived.conf)
    commands: dict | None = None  # {host: [command]} replayed after provisioning and files (a
    # write-up's setup commands), before keepalived starts
    generated: bool = False  # the Vagrantfile was written by lvs-harness (a lab built in a
    # student's terms): its provisioners are ours
    progress: Callable[[str], None] = stderr_progress

    @functools.cached_property
    def the_pack(self):
        """The pack this lab belongs to: the one named, else (for the reference lab) the default
        (resolved once per config; ``dataclasses.replace`` makes a config that resolves again)."""
        from ..packs import load_pack

        return load_pack(self.pack) if self.pack or not self.vagrantfile else None

    @property
    def role_patterns(self) -> dict | None:
        pack = self.the_pack
        return self.roles or (pack.roles if pack else None)

    @property
    def service_list(self) -> tuple[VirtualService, ...]:
        """The services named by the lab author, else by the pack (a lab of your own gets none
        from any pack: its services are read from the running lab)."""
        pack = self.the_pack
        return tuple(self.services) or (tuple(pack.services) if pack else ())

    @property
    def daemon_map(self) -> dict:
        pack = self.the_pack
        if self.daemons is not None:
            return self.daemons
        from ..packs import DEFAULT_DAEMONS

        return pack.daemons if pack else DEFAULT_DAEMONS

    @property
    def unit_map(self) -> dict:
        pack = self.the_pack
        return dict(pack.units) if pack else {}

    @functools.cached_property
    def reference_path(self) -> Path:
        """The reference Vagrantfile of the pack named (else the default pack's)."""
        from ..packs import load_pack

        return Path(load_pack(self.pack).reference)

    @property
    def vagrantfile_path(self) -> Path:
        return Path(self.vagrantfile) if self.vagrantfile else self.reference_path

    @property
    def vagrantfile_file(self) -> Path:
        """The Vagrantfile itself (``vagrantfile`` may name its folder)."""
        path = self.vagrantfile_path
        return path / "Vagrantfile" if path.is_dir() else path

    @functools.cached_property
    def trusted(self) -> bool:
        """May this machine run the Vagrantfile's code: the pack's reference, or ``allow_scripts``."""
        return self.allow_scripts or self.generated or self.vagrantfile_file.resolve() == self.reference_path.resolve()


def name_real_pages(hosts: dict[str, Host], topology: Topology) -> None:
    """Each real's page names it, unless one is there (a readable page; which real answered is
    told apart by each real's own page, whatever it says: see :mod:`lvs_harness.probes.client`)."""
    for spec in topology.reals:
        hosts[spec.name].check(
            f"[ -e /var/www/html/index.html ] || echo {shlex.quote(spec.name)} > /var/www/html/index.html"
        )


# daemons started once the configs are in place (after provisioning and the submission's files)
DIRECTOR_DAEMONS = ("keepalived",)
UNITS_DIR = "/etc/lvs-harness/units"


def role_daemons(topology: Topology, daemons: dict) -> dict[str, list[str]]:
    """{host: daemons to start}, from role -> daemons (a pack's, or the lab author's)."""
    return {h.name: list(daemons.get(h.role, ())) for h in topology.hosts if daemons.get(h.role)}


def describe(daemons: dict[str, list[str]]) -> str:
    by_name: dict[str, list[str]] = {}
    for host, names in daemons.items():
        for name in names:
            by_name.setdefault(name, []).append(host)
    return "; ".join(f"{name} on {', '.join(hosts)}" for name, hosts in by_name.items())


def install_units(hosts: dict[str, Host], units: dict) -> None:
    """Give every host the pack's own daemons ({name: command line}): the embedded labs' systemctl
    runs ``/etc/lvs-harness/units/NAME`` in the foreground under its own pid file; on a machine
    that runs systemd (a Vagrant VM) a unit ``NAME.service`` runs the same file."""
    for name, command in units.items():
        unit = (
            f"[Unit]\nDescription={name} (lvs-harness pack unit)\n\n[Service]\n"
            f"ExecStart=/bin/sh {UNITS_DIR}/{name}\nRestart=no\n"
        )
        for host in hosts.values():
            host.write_file(f"{UNITS_DIR}/{name}", f"exec {command}\n")
            host.check(
                f"if [ -d /run/systemd/system ]; then cat > /etc/systemd/system/{shlex.quote(name)}.service && "
                "systemctl daemon-reload; fi",
                input=unit,
            )


def discover_services(topology: Topology, hosts: dict[str, Host]) -> Topology:
    """``topology`` with its services read from the running lab when nobody named them."""
    if topology.services:
        return topology
    from ..services import read_services

    return topology.with_services(read_services([hosts[d.name] for d in topology.directors]))


KEEPALIVED_DIR = "/etc/keepalived/"


def write_files(hosts: dict[str, Host], files: dict | None) -> list[str]:
    """Write ``files`` ({host: {path: text}}) into the lab; the hosts whose keepalived config changed."""
    changed: list[str] = []
    for host, contents in (files or {}).items():
        if host not in hosts:
            raise LabError(
                f"a file is meant for host {host!r}, which the Vagrantfile does not define; "
                f"hosts are: {', '.join(hosts)}"
            )
        for path, text in contents.items():
            hosts[host].write_file(path, text)
            if path.startswith(KEEPALIVED_DIR) and host not in changed:
                changed.append(host)
    return changed


@dataclasses.dataclass(frozen=True)
class ProvisionResult:
    host: str
    origin: str
    result: CommandResult


REPLAY_TIMEOUT = 30


def replay(
    hosts: dict[str, Host], commands: dict | None, theirs=lambda what: contextlib.nullcontext()
) -> list[ProvisionResult]:
    """Run each host's replayed setup commands ({host: [command]}) in order; a failing one is
    recorded, as a provisioner's, and the next runs. A key ``role:ROLE`` stands for every host of
    that role that has no commands of its own. Each runs inside ``theirs(what)`` (see LabBase._theirs)."""
    done = []
    commands = dict(commands or {})
    for key in [k for k in commands if k.startswith("role:")]:
        cmds = commands.pop(key)
        for name, host in hosts.items():
            if host.role == key[5:] and name not in commands:
                commands[name] = cmds
    for host, cmds in commands.items():
        if host not in hosts:
            raise LabError(
                f"commands are meant for host {host!r}, which the lab does not have; hosts are: {', '.join(hosts)}"
            )
        for n, command in enumerate(cmds, 1):
            try:
                with theirs(f"the command {command[:80]!r} shown for {host}"):
                    res = hosts[host].run(command, timeout=REPLAY_TIMEOUT)
            except CommandTimeout as err:
                res = err.result
            done.append(ProvisionResult(host, f"replayed from the write-up, command {n}: {command}", res))
    return done


class Lab(Protocol):
    """Everything the plugin, the keeper, the suites and ``grade`` use of a running lab.

    Example::

        with start_lab(LabConfig(pack="lvs-nat")) as lab:          # a Lab; closed on leaving the block
            lab.NAME, lab.run_id, lab.topology.service.vip           # 'uml', '3f9a1c', '10.70.1.100'
            lab.hosts["client"].check("curl -s 10.70.1.100").stdout
    """

    NAME: str  # the backend: uml, netns, vagrant
    config: LabConfig  # how it was asked for
    run: Run  # its run (state folder, owner), by id
    run_id: str
    topology: Topology  # hosts, roles, interfaces, services
    hosts: dict[str, Host]  # name -> Host (commands, files, links, daemons)
    provisioning: list[ProvisionResult]  # what each provisioner did
    timings: dict[str, float]  # bring-up steps -> seconds
    ipvs: bool  # does the lab's kernel have IPVS (False: netns on a kernel without it)
    one_clock: bool  # do all hosts share one clock (one kernel), so their timestamps compare to the µs

    def close(self) -> None: ...
    def __enter__(self) -> Lab: ...
    def __exit__(self, *exc) -> None: ...


class LabBase:
    """The lifecycle every backend shares: ``start`` (refuse early, create the run, bring up, and
    on any failure — Ctrl-C included — remove what was made), a context manager, and an
    idempotent ``close``. Subclasses give ``_preflight``, ``_up`` and ``_teardown``."""

    NAME = "?"

    def __init__(self, config: LabConfig, run: Run):
        self.config = config
        self.run = run
        self.run_id = run.id
        self.topology: Topology | None = None
        self.hosts: dict[str, Host] = {}
        self.provisioning: list[ProvisionResult] = []
        self.timings: dict[str, float] = {}
        self.ipvs = True
        self.one_clock = True
        self._closed = False

    @classmethod
    def start(cls, config: LabConfig, provision: bool = True):
        """Bring a lab up; on any failure (Ctrl-C included) remove what was made and re-raise."""
        cls._preflight(config, provision)
        run = Run.create(cls.NAME, keep=config.keep)
        lab = cls(config, run)
        try:
            lab._up(provision)
        except BaseException:
            lab.close()
            raise
        config.progress(f"lab {run.id} is up ({', '.join(f'{k} {v:.1f} s' for k, v in lab.timings.items())})")
        return lab

    @classmethod
    def _preflight(cls, config: LabConfig, provision: bool) -> None:
        """Refuse early, with the fix, what cannot work (before anything is created)."""

    def _up(self, provision: bool) -> None:
        raise NotImplementedError

    def _teardown(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _timed(self, key: str, message: str):
        """Say ``message``, and time what follows as ``key`` (the bring-up's figures)."""
        self.config.progress(message)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[key] = time.monotonic() - t0

    def _start_services(self, provision=None) -> None:
        """What every backend does once its machines run, in this order: the pack's units, the
        reals' pages and the daemons that need no config of the student's; ``provision()`` (the
        Vagrantfile's provisioners, where the backend runs them itself); the submission's files
        and replayed commands; then keepalived (restarted where its config was just written); and
        the services read from the running lab where nobody named them."""
        cfg = self.config
        daemons = role_daemons(self.topology, cfg.daemon_map)
        install_units(self.hosts, cfg.unit_map)
        early = {h: [d for d in ds if d not in DIRECTOR_DAEMONS] for h, ds in daemons.items()}
        with self._timed("daemons", f"starting {describe(early) or 'no daemons'}"):
            name_real_pages(self.hosts, self.topology)
            for host, names in early.items():
                for name in names:
                    self.hosts[host].check(f"systemctl start {name}")
        if provision:
            with self._timed("provision", "running the Vagrantfile's provisioners"):
                provision()
        changed = write_files(self.hosts, cfg.files)
        running = [h for h in changed if self.hosts[h].is_active("keepalived")]
        for host in changed:
            self.hosts[host].run("systemctl stop keepalived")  # started below with the new config
        self.provisioning += replay(self.hosts, cfg.commands, self._theirs)
        late = {h: [d for d in ds if d in DIRECTOR_DAEMONS] for h, ds in daemons.items()}
        for host in running:  # it ran before its config was written (a VM's boot): it runs again
            if "keepalived" not in late.setdefault(host, []):
                late[host].append("keepalived")
        with self._timed("keepalived", f"starting {describe(late) or 'no daemons'}"):
            for host, names in late.items():
                for name in names:
                    self.hosts[host].run(f"systemctl start {name}")
        self.topology = discover_services(self.topology, self.hosts)

    def _ended_by_itself(self) -> str | None:
        """How the lab ended by its own doing (powered off, rebooted, its kernel panicked: what only
        code running as root in it does), or None (still there, or stopped by this machine)."""
        return None

    @contextlib.contextmanager
    def _theirs(self, what: str):
        """Run the submission's own code (``what``): if the lab ends under it by its own doing, that is
        the submission's fault (SubmissionFault, graded once), not the machine's."""
        try:
            yield
        except LabGone:
            how = self._ended_by_itself()
            if how is None:
                raise
            raise SubmissionFault(
                f"the lab {how} while {what} ran; a setup command must not power off, reboot or crash the machine."
            ) from None

    def _closed_error(self, host: str, command: str) -> LabError:
        return LabError(f"the lab {self.run_id} is closed; start a new one to run `{command}` on {host}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Tear the lab down: every process, namespace, machine and file the run made (once)."""
        if self._closed:
            return
        self._closed = True
        self._teardown()


class NamespacedLab(LabBase):
    """Bring-up shared by ``uml`` and ``netns``: evaluate, build namespaces, start daemons, provision.

    Subclasses provide ``_root_run(argv, input, timeout, env)`` (root in the outer system),
    ``_sandbox_run(argv, input)`` (where the untrusted Vagrantfile is evaluated) and
    ``_teardown()``, and may add ``_preflight`` checks and a ``_boot`` step (see :class:`LabBase`).
    """

    GUEST_ENV: dict = {}
    MAX_HOSTS: int | None = None  # lab hosts this backend holds (None: as many as the machine)

    def __init__(
        self, config: LabConfig, run: Run, ns_state: str, init: list[str] | None = None, cgroups: str | None = None
    ):
        super().__init__(config, run)  # one_clock: every host is a namespace of one kernel
        self.ns = Namespaces(
            prefix=f"lvsh-{run.id}", state=ns_state, run_id=run.id, env=self.GUEST_ENV, init=init, cgroups=cgroups
        )

    # to be provided ------------------------------------------------------------
    def _root_run(self, argv: list, input: bytes | None, timeout: float, env: dict | None = None) -> CommandResult:
        """Run argv as root in the outer system (env None: the outer system's own environment).

        When ``timeout`` passes, the command and everything it started are killed and the
        result has rc 124, as with timeout(1).
        """
        raise NotImplementedError

    def _sandbox_run(self, argv: list, input: bytes) -> CommandResult:
        raise NotImplementedError

    # bring-up --------------------------------------------------------------------
    def _bring_up(self, provision: bool = True) -> None:
        cfg = self.config
        with self._timed("evaluate", f"evaluating {cfg.vagrantfile_path}"):
            self.topology = load_topology(cfg.vagrantfile_path, self._sandbox_run, cfg.role_patterns, cfg.service_list)
        if self.MAX_HOSTS and len(self.topology.hosts) > self.MAX_HOSTS:
            raise Refused(
                f"{cfg.vagrantfile_path.name} defines {len(self.topology.hosts)} machines; the {self.NAME} lab "
                f"holds at most {self.MAX_HOSTS} — a homework lab needs a handful."
            )
        self.run.set(hosts=self.topology.names, ns_prefix=self.ns.prefix)
        with self._timed("namespaces", f"creating hosts {', '.join(self.topology.names)}"):
            self._root_check(
                SCRIPT_ON_STDIN, "build the lab namespaces", input=self.ns.build_script(self.topology).encode()
            )
        self.hosts = host_map(self.topology.hosts, self._execute, self._follow)
        self._start_services(self._provision if provision else None)

    def _provision(self) -> None:
        """Each machine's provisioners in Vagrantfile order, as `vagrant up` runs them.

        (Running hosts side by side was measured slower: the guest has one CPU, and the
        first director's keepalived then started later.)
        """
        budget = provision_budget()
        deadline = time.monotonic() + budget
        for spec in self.topology.hosts:
            for n, prov in enumerate(spec.provisioners):
                with self._theirs(f"{spec.name}'s provisioner {prov.name or n + 1} ({prov.origin})"):
                    res = self._run_provisioner(self.hosts[spec.name], prov, n, max(1.0, deadline - time.monotonic()))
                self.provisioning.append(ProvisionResult(spec.name, prov.origin, res))
                if res.rc == 124 and time.monotonic() >= deadline:
                    said = [
                        line
                        for line in (res.stdout + "\n" + res.stderr).splitlines()
                        if line.strip() and not line.startswith("timed out after")
                    ]
                    tail = said[-1:] or ["nothing"]
                    raise SubmissionFault(
                        f"{spec.name}'s provisioner {prov.name or n + 1} ({prov.origin}) was still running when the "
                        f"lab's provisioning budget of {budget:.0f} s ran out, and was stopped (its last output: "
                        f"{tail[0][:200]!r}); a provisioner must finish on its own — no endless loops, prompts or "
                        "long sleeps."
                    )
                if not res.ok:
                    self.config.progress(
                        f"provisioner of {spec.name} ({prov.origin}) exited {res.rc}; "
                        "continuing (its output is in lab.provisioning)"
                    )

    @staticmethod
    def _run_provisioner(host: Host, prov: Provisioner, n: int, timeout: float) -> CommandResult:
        path = f"/tmp/vagrant-shell-{n}"
        host.write_file(path, prov.script, mode=0o755)
        if isinstance(prov.args, tuple):
            args = " ".join(shlex.quote(a) for a in prov.args)
        else:
            args = prov.args or ""
        try:
            return host.run(f"cd /root && bash {path} {args}", timeout=timeout)
        except CommandTimeout as err:
            return err.result

    # commands ----------------------------------------------------------------------
    def _execute(self, host: str, command: str, *, timeout: float, input: bytes | None) -> CommandResult:
        if self._closed:
            raise self._closed_error(host, command)
        return self._host_run(host, command, input, timeout)

    def _follow(self, host: str, command: str, on_output, *, timeout: float):
        if self._closed:
            raise self._closed_error(host, command)
        return self._host_follow(host, command, on_output, timeout)

    def _host_follow(self, host: str, command: str, on_output, timeout: float):
        """Start ``command`` in ``host``, its stdout handed to ``on_output`` as it comes (see
        :meth:`Host.follow`); None: this backend cannot."""
        return None

    def _host_run(self, host: str, command: str, input: bytes | None, timeout: float) -> CommandResult:
        """Run ``command`` with /bin/sh as root in ``host`` (a backend may have a faster way)."""
        t0 = time.monotonic()
        res = self._root_run(self.ns.enter_argv(host, command), input, timeout, self.ns.env)
        return dataclasses.replace(res, command=command, duration=time.monotonic() - t0)

    def _root_check(self, argv: list, what: str, input: bytes | None = None, timeout: float = 120) -> CommandResult:
        res = self._root_run(argv, input, timeout)
        if not res.ok:
            raise LabError(f"could not {what} ({res.rc}): {(res.stderr or res.stdout).strip()[-800:]}")
        return res

    def _up(self, provision: bool) -> None:
        self._boot()
        self._bring_up(provision=provision)

    def _boot(self) -> None:
        """Start whatever holds the hosts (the UML guest); nothing for netns."""
