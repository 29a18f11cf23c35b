"""The ``netns`` lab: the same namespaces as the embedded lab, directly on this machine's kernel.

For graders whose kernel has IPVS and who run as root: no guest to boot, so it starts in
about a second. Everything lives in namespaces named ``lvsh-<run id>-*``; interfaces are
created inside them, so nothing appears in (or sends from) the main network namespace.
Provisioners would run as root on this machine, so only the shipped reference
Vagrantfile is provisioned unless ``allow_scripts`` is set; the Vagrantfile itself is
evaluated as ``nobody`` in fresh, network-less namespaces.

Example::

    with NetnsLab.start(LabConfig(backend="netns")) as lab:
        lab.hosts["client"].check("curl -s 10.77.0.21")
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .. import keepalived
from ..commands import CommandResult
from ..errors import LabError, Refused
from ..runs import Run, kill_marked
from .base import LabConfig, NamespacedLab
from .image import host_agent
from .local import run_local, sandbox_run
from .namespaces import SCRIPT_ON_STDIN, Namespaces

REQUIRED = (
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("setpriv", "util-linux"),
    ("keepalived", "keepalived"),
    ("nginx", "nginx-light"),
    ("curl", "curl"),
    ("ruby", "ruby"),
)


def ipvs_available() -> bool:
    if os.path.exists("/proc/net/ip_vs"):
        return True
    subprocess.run(["modprobe", "-q", "ip_vs"], capture_output=True)
    return os.path.exists("/proc/net/ip_vs")


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "the netns lab needs root"
    missing = [pkg for tool, pkg in REQUIRED if not shutil.which(tool)]
    if missing:
        return False, f"the netns lab needs {', '.join(sorted(set(missing)))} installed"
    if not ipvs_available():
        return False, "this kernel has no IPVS (ip_vs)"
    return True, "namespaces on this machine's kernel, which has IPVS"


class NetnsLab(NamespacedLab):
    NAME = "netns"

    def __init__(self, config: LabConfig, run: Run):
        super().__init__(config, run, ns_state=str(run.dir / "ns"), init=[host_agent(), "--init"])
        self.ipvs = ipvs_available()

    @classmethod
    def _preflight(cls, config: LabConfig, provision: bool) -> None:
        if os.geteuid() != 0:
            raise LabError(
                "the netns lab needs root (it creates network namespaces); run it with sudo or use --lab uml."
            )
        missing = [pkg for tool, pkg in REQUIRED if not shutil.which(tool)]
        if missing:
            raise LabError(f"the netns lab needs these Debian packages: {' '.join(sorted(set(missing)))}.")
        if provision and not config.trusted:
            raise Refused(
                f"the netns lab would run the provisioners of {config.vagrantfile_path} as root on "
                "this machine; use --lab uml (they run inside a guest there), or pass "
                "--allow-scripts if you trust that Vagrantfile."
            )
        scripts = [
            f"{host}: {key} {command}"
            for host, files in (config.files or {}).items()
            for path, text in files.items()
            if path.startswith("/etc/keepalived/")
            for key, command in keepalived.script_commands(text)
        ]
        if scripts and not config.allow_scripts:
            raise Refused(
                "the netns lab would let keepalived run these commands as root on this machine: "
                f"{'; '.join(scripts)}; use --lab uml (they run inside a guest there), or pass "
                "--allow-scripts if you trust them."
            )

    def _root_run(self, argv, input, timeout, env=None) -> CommandResult:
        return run_local(argv, input, timeout, env)

    def _sandbox_run(self, argv, input) -> CommandResult:
        return sandbox_run(argv, input)

    def _teardown(self) -> None:
        cleanup(self.run)


def cleanup(run: Run) -> None:
    """Remove what a netns run made: processes in its namespaces, the namespaces, its state dir."""
    hosts = run.data.get("hosts") or []
    ns = Namespaces(prefix=run.data.get("ns_prefix", f"lvsh-{run.id}"), state=str(run.dir / "ns"), run_id=run.id)
    # hosts not yet recorded (killed during bring-up): find the run's namespaces by its prefix
    if os.path.isdir("/run/netns"):
        hosts = sorted(
            set(hosts)
            | {
                n[len(ns.prefix) + 1 :]
                for n in os.listdir("/run/netns")
                if n.startswith(ns.prefix + "-") and n != ns.switch
            }
        )
    run_local(SCRIPT_ON_STDIN, ns.destroy_script(hosts).encode(), 60)
    kill_marked(run.id)
    shutil.rmtree(run.dir, ignore_errors=True)
