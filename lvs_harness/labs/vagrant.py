"""The ``vagrant`` lab: the Vagrantfile brought up as VMs by Vagrant, with libvirt (the default:
lvs-harness's own box, software emulation) or VirtualBox (the Vagrantfile's own box; graders' laptops).

The run's own ``vagrant`` (a wrapper that enters the lab's namespace) is called for ``vagrant up``
(its output streamed as progress), ``ssh-config`` once per machine and ``destroy``; hosts are reached over ssh (one persistent ControlMaster connection per
host, ``sudo``), with the same :class:`~lvs_harness.hosts.Host` API as the embedded labs, so the
pack suites run unchanged. On libvirt everything happens inside the network namespace of
:mod:`.libvirt_ns`. Each run works in its own folder ``/run/lvs-harness/<id>/lvsh-<id>/``, so its
libvirt domains are named ``lvsh-<id>_<machine>``; a wrapper Vagrantfile gives each lab segment a
network ``lvsh-<id>-<n>`` (VirtualBox: an internal network of that run), so two runs on one
machine never share a bridge.

Example::

    with start_lab(LabConfig(backend="vagrant")) as lab:
        lab.hosts["client"].check("curl -s 10.77.0.100")
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path


from ..commands import CommandResult
from ..errors import LabError, Refused
from ..hosts import host_map
from ..runs import MARKER, Run, kill_marked
from ..vagrantfile import load_topology
from . import libvirt_ns
from .base import PROVIDERS, LabBase, LabConfig
from .box import BOX_NAME, ensure_box
from .image import cache_root
from .local import run_local, sandbox_run

BOOT_TIMEOUT = 600  # seconds a machine may take to get its address under `vagrant up` (libvirt)
SSH_TIMEOUT = 300  # seconds for a machine to answer ssh once `vagrant up` is done
WRAPPER_NAME = "Vagrantfile.lvs-harness"
WRAPPER = """# lvs-harness: this run's view of {source}
module LvsHarnessRun
  # one libvirt network per lab segment, as VirtualBox would join them (lvs_harness.topology._segment):
  # by internal network name, else by subnet
  NETWORKS = {{}}
  # The run defines its networks itself, with bridge names of its own: vagrant-libvirt takes the first free
  # virbrN, and two runs starting together picked the same one.
  def self.define(name, index)
    return name unless {define_networks}
    virsh = ["virsh", "-q", "-c", "qemu:///system"]
    return name if system(*virsh, "net-info", name, out: File::NULL, err: File::NULL)
    xml = File.join({workdir!r}, "#{{name}}.xml")
    File.write(xml, "<network><name>#{{name}}</name><bridge name='lvsh{run_id}b#{{index}}' stp='off'/></network>")
    system(*virsh, "net-define", xml, out: File::NULL) && system(*virsh, "net-start", name, out: File::NULL) or
      raise "lvs-harness could not define libvirt network #{{name}}"
    name
  end

  def network(type, **options)
    if type.to_s == "private_network" && !options.key?(:libvirt__network_name)
      intnet = options[:virtualbox__intnet]
      key = if intnet then (intnet == true ? "intnet" : intnet.to_s)
            elsif options[:ip] then "hostonly-" + IPAddr.new("#{{options[:ip]}}/#{{options[:netmask] || 24}}").to_s
            else "default" end
      # a bridge of its own with no address on the host side: found by name, never by subnet
      # (vagrant-libvirt would hand another run's network of the same subnet to this one)
      options[:libvirt__network_name] = (NETWORKS[key] ||= LvsHarnessRun.define("lvsh-{run_id}-#{{NETWORKS.size}}",
                                                                                NETWORKS.size))
      options[:libvirt__forward_mode] = "veryisolated"
      options[:libvirt__dhcp_enabled] = false
      options[:virtualbox__intnet] = "lvsh-{run_id}-#{{key}}" if intnet
    end
    super(type, **options)
  end
end
require "ipaddr"
require Vagrant.source_root.join("plugins/kernel_v2/config/vm").to_s
VagrantPlugins::Kernel_V2::VMConfig.prepend(LvsHarnessRun)
load {vagrantfile!r}
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv, override|
    override.vm.box = {box!r}
    override.vm.synced_folder ".", "/vagrant", disabled: true
    lv.emulator_path = {emulator!r}
    lv.management_network_name = {mgmt!r}
    lv.management_network_address = "192.168.121.0/24"
    lv.management_network_keep = true
  end
end
"""


def available() -> tuple[bool, str]:
    missing = libvirt_ns.missing_tools()
    if missing:
        return False, f"the vagrant lab needs {' '.join(missing)}"
    return True, "Vagrant with libvirt in a network namespace"


def provider_problem(provider: str) -> str | None:
    """Why ``provider`` cannot run here, as a sentence with the fix (None: it can)."""
    if provider not in PROVIDERS:
        return f"unknown Vagrant provider {provider!r}; choose one of {', '.join(PROVIDERS)}."
    if provider == "virtualbox":
        if not shutil.which("vagrant"):
            return "the vagrant lab needs Vagrant, and this machine has no `vagrant` command: install Vagrant."
        if not shutil.which("VBoxManage"):
            return (
                "--provider virtualbox needs VirtualBox, and this machine has none (no VBoxManage): install "
                "VirtualBox, or use --provider libvirt (lvs-harness builds its own box for it)."
            )
        return None
    ok, why = available()
    if not ok:
        return (
            f"{why}: sudo apt-get install vagrant vagrant-libvirt libvirt-daemon-system qemu-system-x86 "
            "qemu-utils dnsmasq-base."
        )
    if os.geteuid() != 0:
        return (
            "the vagrant lab on libvirt needs root here (libvirt runs in a network namespace of its own); "
            "run it with sudo."
        )
    return None


def vagrant_env(run_id: str, provider: str = "libvirt") -> dict:
    """The environment of this run's vagrant commands: the wrapper Vagrantfile, the run's marker, and on
    libvirt lvs-harness's own VAGRANT_HOME (where its box is); VirtualBox uses the user's boxes."""
    env = {
        **os.environ,
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_DEFAULT_PROVIDER": provider,
        "VAGRANT_VAGRANTFILE": WRAPPER_NAME,
        MARKER: run_id,
    }
    if provider == "libvirt":
        env["VAGRANT_HOME"] = str(cache_root() / "vagrant-home")
    return env


def vagrant_command(provider: str) -> str:
    """The run's `vagrant`: on libvirt inside the lab's network namespace, with VirtualBox the plain one."""
    if provider == "libvirt":
        return f"#!/bin/sh\nexec ip netns exec {libvirt_ns.NETNS} vagrant \"$@\"\n"
    return "#!/bin/sh\nexec vagrant \"$@\"\n"


class VagrantLab(LabBase):
    NAME = "vagrant"

    def __init__(self, config: LabConfig, run: Run):
        super().__init__(config, run)
        self.dir = run.dir / f"lvsh-{run.id}"
        self.one_clock = False  # each VM keeps its own clock
        self.provider = config.provider
        self._env = vagrant_env(run.id, self.provider)

    def _vagrant(self, *args: str):
        """Run the run's ``vagrant`` (inside the lab's namespace) in the run's folder, its stderr kept
        in ``vagrant.err``: a generator of its output lines; CalledProcessError when it fails."""
        argv = [str(self.run.dir / "bin" / "vagrant"), *args]
        with (
            self._stderr() as err,
            subprocess.Popen(
                argv, cwd=self.dir, env=self._env, stdout=subprocess.PIPE, stderr=err, text=True, errors="replace"
            ) as proc,
        ):
            yield from proc.stdout
            proc.wait()
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv)

    # bring-up -------------------------------------------------------------------------
    @classmethod
    def _preflight(cls, config: LabConfig, provision: bool) -> None:
        problem = provider_problem(config.provider)
        if problem:
            raise LabError(problem)
        if not config.trusted:
            raise Refused(
                f"Vagrant would run the code and provisioners of {config.vagrantfile_path} as root on this "
                "machine; use --lab uml (they run inside a guest there), or pass --allow-scripts if you "
                "trust that Vagrantfile."
            )
        load_topology(config.vagrantfile_file, sandbox_run, config.role_patterns, config.service_list)  # fails early

    def _up(self, provision: bool) -> None:
        self.topology = load_topology(
            self.config.vagrantfile_file, sandbox_run, self.config.role_patterns, self.config.service_list
        )
        self._vagrant_lab_up(provision)

    def _took(self, key: str, t0: float) -> None:
        self.timings[key] = time.monotonic() - t0

    def _vagrant_lab_up(self, provision: bool) -> None:
        progress = self.config.progress
        t0 = time.monotonic()
        if self.provider == "libvirt":
            with libvirt_ns.lock():
                libvirt_ns.ensure(progress)
                self._add_box(ensure_box(progress))
        self._took("prepare", t0)
        source = self.config.vagrantfile_file
        self.run.set(hosts=self.topology.names, workdir=str(self.dir), provider=self.provider)
        self.dir.mkdir()
        shutil.copy(source, self.dir / "Vagrantfile")
        for extra in source.parent.iterdir():  # provisioner scripts beside it (`path:`)
            if extra.is_file() and extra.name != source.name and extra.stat().st_size < 1_000_000:
                shutil.copy(extra, self.dir / extra.name)
        (self.dir / WRAPPER_NAME).write_text(
            WRAPPER.format(
                source=source,
                run_id=self.run_id,
                vagrantfile=str(self.dir / "Vagrantfile"),
                box=BOX_NAME,
                mgmt=libvirt_ns.MGMT_NETWORK,
                define_networks=str(self.provider == "libvirt").lower(),
                workdir=str(self.dir),
                emulator=str(libvirt_ns.emulator()) if self.provider == "libvirt" else "",
            )
        )
        bindir = self.run.dir / "bin"
        bindir.mkdir()
        (bindir / "vagrant").write_text(vagrant_command(self.provider))
        (bindir / "vagrant").chmod(0o755)
        t0 = time.monotonic()
        progress(
            f"vagrant up ({len(self.topology.names)} machines, {self.provider}"
            + (", software emulation: minutes)" if self.provider == "libvirt" else ")")
        )
        self._vagrant_up(provision)
        self._took("vagrant up", t0)
        t0 = time.monotonic()
        self._ssh_config()
        self.hosts = host_map(self.topology.hosts, self._execute)
        for name, host in self.hosts.items():
            deadline = time.monotonic() + SSH_TIMEOUT
            while True:
                try:
                    r = host.run("true", timeout=30)
                    if r.ok:
                        break
                    why = (r.stderr or r.stdout).strip()[-300:] or f"exit status {r.rc}"
                except LabError as err:
                    why = str(err)
                if time.monotonic() > deadline:
                    raise LabError(
                        f"{name} does not answer ssh {SSH_TIMEOUT} s after `vagrant up` ({why}); check "
                        "that its box boots and runs sshd (--keep-lab keeps the machines for a look)."
                    )
                time.sleep(2)
        self._took("ssh", t0)
        self._start_services()  # the Vagrantfile's provisioners ran in `vagrant up`

    @contextlib.contextmanager
    def _stderr(self):
        """Where vagrant's stderr goes (its stdout is read as it comes): the run's vagrant.err."""
        with open(self.run.dir / "vagrant.err", "ab") as fh:
            yield fh

    def _errors(self) -> list[str]:
        """What vagrant wrote to stderr, without Ruby backtrace lines (its message is above them)."""
        try:
            lines = (self.run.dir / "vagrant.err").read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if not re.match(r"\s+from \S+\.rb:\d+:in ", line)][-40:]

    def _vagrant_up(self, provision: bool) -> None:
        """`vagrant up`, streamed as progress. vagrant-libvirt waits very long (300 tries) for a machine's
        address; a machine still without one BOOT_TIMEOUT s after vagrant began waiting ends the run."""
        said = collections.deque(maxlen=40)
        waiting: dict[str, float] = {}  # machine -> when vagrant began waiting for its address
        stalled: list[str] = []
        done = threading.Event()

        def watchdog():
            while not done.wait(1):
                late = [m for m, since in list(waiting.items()) if time.monotonic() - since > BOOT_TIMEOUT]
                if late:
                    stalled.extend(late)
                    kill_marked(self.run_id)  # this run's `vagrant up`, by its marker
                    return

        threading.Thread(target=watchdog, daemon=True).start()
        try:
            up = ["up", f"--provider={self.provider}", *([] if provision else ["--no-provision"])]
            for line in self._vagrant(*up):
                line = line.rstrip()
                if not line or "Progress:" in line:
                    continue
                said.append(line)
                self.config.progress(f"  {line}")
                about = re.match(r"\s*(?:==> )?([\w.-]+): (.*)", line)
                if about and "Waiting for domain to get an IP address" in about[2]:
                    waiting[about[1]] = time.monotonic()
                elif about:
                    waiting.pop(about[1], None)
        except subprocess.CalledProcessError as err:
            if stalled:
                raise LabError(
                    f"{stalled[0]} got no address in {BOOT_TIMEOUT} s (vagrant was waiting for one): it "
                    "did not boot, or its box starts no DHCP client on its first NIC; `lvs-harness box "
                    "build --force` rebuilds lvs-harness's box."
                ) from None
            errors = self._errors()
            for line in errors:
                self.config.progress(f"  {line}")
            raise LabError(up_failure(err.returncode, [*said, *errors], self.provider)) from None
        finally:
            done.set()

    def _add_box(self, box) -> None:
        listed = subprocess.run(
            libvirt_ns.in_netns(["vagrant", "box", "list"]), capture_output=True, text=True, env=self._env
        )
        stamp = cache_root() / "vagrant-home" / f".{BOX_NAME.replace('/', '-')}.added"
        if BOX_NAME in listed.stdout and stamp.exists() and stamp.read_text() == str(box.file):
            return
        self.config.progress(f"adding box {BOX_NAME} to Vagrant")
        r = subprocess.run(
            libvirt_ns.in_netns(
                ["vagrant", "box", "add", "--force", "--name", BOX_NAME, "--provider", "libvirt", str(box.file)]
            ),
            capture_output=True,
            text=True,
            env=self._env,
        )
        if r.returncode != 0:
            raise LabError(f"`vagrant box add {BOX_NAME}` failed: {(r.stderr or r.stdout).strip()[-500:]}")
        stamp.write_text(str(box.file))
        # vagrant-libvirt copies a box into libvirt's pool once per box it sees; drop the copies of earlier
        # builds while no machine can be using them (a run that is up keeps its copy)
        if not libvirt_ns.virsh("list", "--all", "--name", check=False).stdout.split():
            prefix = BOX_NAME.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_"
            for line in libvirt_ns.virsh("vol-list", "default", check=False).stdout.splitlines():
                if line.split() and line.split()[0].startswith(prefix):
                    libvirt_ns.virsh("vol-delete", line.split()[0], "--pool", "default", check=False)

    def _ssh_config(self) -> None:
        parts = []
        for name in self.topology.names:
            try:
                text = "".join(self._vagrant("ssh-config", name))
            except subprocess.CalledProcessError as err:
                said = (self._errors() or ["(no message)"])[-1].strip()[:300]
                raise LabError(f"`vagrant ssh-config {name}` failed (exit {err.returncode}): {said}") from None
            # what vagrant printed, even nothing, for a machine that is not there
            if f"Host {name}" not in (text or ""):
                raise LabError(f"`vagrant ssh-config {name}` gave no configuration: is the machine up?")
            parts.append(text)
        (self.run.dir / "ssh_config").write_text("\n".join(parts))

    # commands -------------------------------------------------------------------------------
    def _execute(self, host: str, command: str, *, timeout: float, input: bytes | None) -> CommandResult:
        if self._closed:
            raise self._closed_error(host, command)
        t0 = time.monotonic()
        argv = [
            "ssh",
            "-F",
            str(self.run.dir / "ssh_config"),
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.run.dir}/ssh-%n.sock",
            "-o",
            "ControlPersist=yes",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ConnectTimeout=20",
            host,
            "sudo -n sh -c " + shlex.quote(command),
        ]
        if self.provider == "libvirt":
            argv = libvirt_ns.in_netns(argv)
        res = run_local(argv, input, timeout, self._env)
        if res.rc == 255 and not res.stdout:
            raise LabError(f"ssh to {host} failed: {res.stderr.strip()[-300:]}")
        return dataclasses.replace(res, command=command, duration=time.monotonic() - t0)

    def _teardown(self) -> None:
        cleanup(self.run, progress=self.config.progress)


def destroy_libvirt_objects(run_id: str) -> None:
    """Destroy and undefine the libvirt domains (with their storage) and networks named for ``run_id``."""
    if not (Path(f"/run/netns/{libvirt_ns.NETNS}").exists() and libvirt_ns.SOCKET.exists()):
        return
    prefix = f"lvsh-{run_id}"
    domains = libvirt_ns.virsh("list", "--all", "--name", check=False).stdout.split()
    for dom in (d for d in domains if d.startswith(prefix + "_")):
        libvirt_ns.virsh("destroy", dom, check=False)
        libvirt_ns.virsh("undefine", dom, "--remove-all-storage", check=False)
    networks = libvirt_ns.virsh("net-list", "--all", "--name", check=False).stdout.split()
    for net in (n for n in networks if n.startswith(prefix + "-")):
        libvirt_ns.virsh("net-destroy", net, check=False)
        libvirt_ns.virsh("net-undefine", net, check=False)


UP_FAILURES = (  # (what vagrant says, what it means for the user)
    (
        r"The box '(?P<box>[^']+)' could not be found or could not be accessed in the remote catalog",
        "box '{box}' is not installed in Vagrant and cannot be downloaded here: add it with `vagrant box add "
        "{box} FILE`, or use --provider libvirt, where lvs-harness builds and uses its own box",
    ),
    (
        r"The provider '(?P<provider>\w+)' that was requested .* isn't usable on this system",
        "the {provider} provider cannot run on this machine (install it, or choose the other --provider)",
    ),
    (
        r"Timed out while waiting for the machine to boot",
        "a machine did not become reachable by ssh within the Vagrantfile's boot_timeout: check that it boots "
        "(its console log) and that its box runs sshd",
    ),
)


def up_failure(returncode: int, said: list[str], provider: str) -> str:
    """One sentence for a failed `vagrant up`, from the last lines it printed."""
    text = " ".join(" ".join(said).split())
    for pattern, meaning in UP_FAILURES:
        found = re.search(pattern, text)
        if found:
            return f"`vagrant up` ({provider}) failed: {meaning.format(**found.groupdict())}."
    errors = [line.strip() for line in said if line.strip() and not line.startswith((" ", "==>"))]
    last = errors[-1][:300] if errors else "(no message)"
    return f"`vagrant up` ({provider}) failed with exit status {returncode}: {last} (its output is above)."


def cleanup(run: Run, progress=None) -> None:
    """Destroy a vagrant run's machines and networks (by its id), end its ssh connections, remove its folder.

    Its machines outlive libvirtd (qemu keeps running when the daemon stops): a run that has machines
    starts lvs-harness's libvirt daemons again first, else they would be left running with no record."""
    provider = run.data.get("provider", "libvirt")
    workdir = run.dir / f"lvsh-{run.id}"
    kill_marked(run.id)  # a `vagrant up` a killed run left going would go on creating machines
    if provider == "libvirt" and (workdir / ".vagrant").exists():
        try:
            with libvirt_ns.lock():
                libvirt_ns.ensure(progress or (lambda message: None))
        except LabError as err:
            if progress:
                progress(f"run {run.id}: libvirt could not be started to destroy its machines ({err})")
    if (workdir / ".vagrant").exists() and (run.dir / "bin" / "vagrant").exists():
        if progress:
            progress(f"vagrant destroy (run {run.id})")
        subprocess.run(
            [str(run.dir / "bin" / "vagrant"), "destroy", "-f"],
            cwd=workdir,
            capture_output=True,
            env=vagrant_env(run.id, provider),
            timeout=600,
        )
    if provider == "libvirt":
        destroy_libvirt_objects(run.id)
    kill_marked(run.id)
    shutil.rmtree(run.dir, ignore_errors=True)
