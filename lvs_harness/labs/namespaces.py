"""Lab hosts as namespaces: shared by the ``uml`` lab (inside the guest) and the ``netns`` lab.

Each host is a network namespace plus its own UTS namespace (hostname), PID namespace and
mount namespace, in which ``/etc``, ``/var``, ``/root``, ``/home`` and ``/usr/local`` are overlays
over the real ones and ``/run`` and ``/tmp`` are fresh tmpfs: what a provisioner writes
stays in its host, daemons' default pid files and logs never collide, and nothing of it
touches the underlying system. The PID namespace's PID 1 is ``init`` (the host agent's
``--init``: it mounts the host's own ``/proc`` and reaps orphans), so ``kill -9 -1``, ``pkill``
or a fork bomb in one host reach that host only; with ``cgroups`` (the embedded lab's guest)
each host is also a cgroup with its own process and memory limits (``HOST_LIMITS``). Each interface is a veth created inside its host's
namespace (nothing appears in the outer one) whose peer sits on a bridge, one per
network segment, in a switch namespace.

All names carry the run's prefix (``lvsh-<run id>``). The whole build and the whole
teardown are one bash script each, run through ``root_run`` — a local subprocess on the
``netns`` lab, the guest agent on the ``uml`` lab.

Example::

    ns = Namespaces(prefix="lvsh-1a2b3c", state="/run/lvs-harness/1a2b3c/ns", run_id="1a2b3c")
    root_run(SCRIPT_ON_STDIN, ns.build_script(topology).encode(), 60)
    root_run(ns.enter_argv("lb1", "ip -br addr"), None, 10)
"""

from __future__ import annotations

import re
import shlex
from importlib import resources

from ..errors import LabError
from ..probes import SCRATCH
from ..topology import Topology

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
# a script too long for one argument (over 128 KB: a lab of 64 hosts) runs from stdin, read whole
# first, so no command in it reads the rest of the script as its input
SCRIPT_ON_STDIN = ["bash", "-c", 'eval "$(cat)"']
OVERLAID = ("etc", "var", "root", "home", "usr/local")
# per lab host: processes (a lab host runs ~10; a fork bomb stops here) and memory (the embedded
# lab's guest has 256 MB; a host past this is OOM-killed inside its own cgroup)
HOST_LIMITS = {"pids.max": "256", "memory.max": str(128 << 20)}
# the sizes of a host's writable layers (/etc /var /root /home /usr/local), /run and /tmp: in memory,
# so together well under its memory limit (a host whose disk is full still runs its programs)
HOST_DISK, HOST_RUN, HOST_TMP = "48m", "8m", "16m"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def shim_text() -> str:
    return resources.files("lvs_harness.data").joinpath("systemctl").read_text()


class Namespaces:
    def __init__(
        self,
        prefix: str,
        state: str,
        run_id: str,
        env: dict | None = None,
        init: list[str] | None = None,
        cgroups: str | None = None,
    ):
        self.prefix = prefix
        self.state = state.rstrip("/")
        self.run_id = run_id
        self.init = init  # argv of each host's PID 1 (None: hosts share the outer PID namespace)
        self.cgroups = cgroups  # a cgroup2 directory with pids and memory enabled, or None
        self.env = {
            "PATH": PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "LVS_HARNESS_RUN": run_id,
            **(env or {}),
        }

    # names ------------------------------------------------------------------
    def netns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def switch(self) -> str:
        return f"{self.prefix}--switch"

    def all_netns(self, hosts) -> list[str]:
        return [self.netns(h) for h in hosts] + [self.switch]

    def _ns_file(self, host: str, kind: str) -> str:
        return f"{self.state}/ns/{host}.{kind}"

    # commands ---------------------------------------------------------------
    def enter_argv(self, host: str, command: str) -> list[str]:
        """argv that runs ``command`` with /bin/sh as root inside ``host``; run it with :attr:`env`.

        Every exec costs ~20 ms in the UML guest (a fork more), so the chain is only
        nsenter → sh (dash; bash costs ~20 ms more). Timeouts are enforced by the runner,
        which kills the process tree, rather than by a `timeout` process per command.
        """
        pid = [f"--pid={self._ns_file(host, 'pid')}"] if self.init else []
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns(host)}",
            f"--mount={self._ns_file(host, 'mnt')}",
            f"--uts={self._ns_file(host, 'uts')}",
            *pid,
            "--wd=/root",
            "--",
            "/bin/sh",
            "-c",
            command,
        ]

    def build_script(self, topology: Topology) -> str:
        """One bash script that creates every namespace, bridge and veth of the topology."""
        for h in topology.hosts:
            if not NAME_RE.match(h.name):
                raise LabError(
                    f"machine name {h.name!r} cannot name a lab host; use letters, digits, "
                    "'-', '_' or '.' (up to 41 characters), starting with a letter or digit."
                )
        segs = {s: f"br{i}" for i, s in enumerate(topology.segments)}
        q = shlex.quote
        sw = q(self.switch)
        overlays = " ".join(OVERLAID)
        # every exec costs ~10-20 ms in the UML guest: `ip -batch`, one mkdir, touch and chmod for all
        # hosts, files written by bash itself, one `mount -a` per host
        netns_adds = "\n".join(f"netns add {n}" for n in self.all_netns(topology.names))
        hdirs = [f'"$S/hosts/"{q(h.name)}' for h in topology.hosts]
        shims = [f"{hdir}/usr-local.u/sbin/{name}" for hdir in hdirs for name in ("systemctl", "service")]
        lines = [
            "set -eu",
            f"S={q(self.state)}",
            # each host's writable layers on a tmpfs of its own size: a host that fills its disk fills
            # only that (and the memory it writes is its cgroup's)
            "mkdir -p \"$S/ns\" " + " ".join(hdirs),
            *(f"mount -t tmpfs -o size={HOST_DISK},mode=755 lvsh-layers {hdir}" for hdir in hdirs),
            "mkdir -p "
            + " ".join(f"{hdir}/{d.replace('/', '-')}.{kind}" for hdir in hdirs for d in OVERLAID for kind in "uw")
            + " "
            + " ".join(f"{hdir}/usr-local.u/sbin" for hdir in hdirs),
            'mountpoint -q "$S/ns" || mount --bind "$S/ns" "$S/ns"',
            'mount --make-private "$S/ns"',
            "touch "
            + " ".join(f'"$S/ns/"{q(h.name)}.{kind}' for h in topology.hosts for kind in ("mnt", "uts", "pid")),
            f"ip -b - <<'EOF'\n{netns_adds}\nEOF",
            f"ip -n {sw} -b - <<'EOF'\nlink set lo up\n"
            + "".join(f"link add {br} type bridge\nlink set {br} up\n" for br in segs.values())
            + "EOF",
            "IFS= read -r -d '' SHIM <<'LVSH_SHIM_EOF' || true",
            shim_text().rstrip("\n"),
            "LVSH_SHIM_EOF",
            *(f'printf "%s\\n" "$SHIM" > {shim}' for shim in shims),  # `service` too: the shim reads $0
            "chmod 755 " + " ".join(shims),
        ]
        # the host's own mounts, by one `mount -a`: sysfs (this network namespace's /sys/class/net),
        # the overlays, a fresh /run and /tmp (sources named for lvs-harness, so that mount does not
        # take the guest's sysfs and tmpfs for these already mounted)
        setup = (
            'set -e; H=$1; echo "$2" > /proc/sys/kernel/hostname; '
            '{ echo "lvsh-sysfs /sys sysfs defaults 0 0"; '
            f'for d in {overlays}; do [ -d "/$d" ] || continue; k=${{d//\\//-}}; '
            'echo "overlay /$d overlay lowerdir=/$d,upperdir=$H/$k.u,workdir=$H/$k.w 0 0"; done; '
            f'echo "lvsh-run /run tmpfs mode=755,size={HOST_RUN} 0 0"; echo "lvsh-tmp /tmp tmpfs mode=1777,size={HOST_TMP} 0 0"; '
            # the probes' own files (see probes.scratch): not on a disk the host's code can fill
            f'echo "lvsh-scratch {SCRATCH} tmpfs mode=700,size=8m,X-mount.mkdir 0 0"; '
            '} > "$H/fstab"; '
            'mount -a -T "$H/fstab"; '
            'mkdir -p /run/lock /run/sshd /var/log/nginx /var/www/html /home/vagrant; echo "$2" > /etc/hostname; '
            # no lab host reaches a name server or a mirror: make lookups and apt fail at once
            # (students' provisioners run `apt update`: 7.5 s of retries per call otherwise)
            'if [ -L /etc/resolv.conf ]; then rm -f /etc/resolv.conf; fi; '
            'echo "nameserver 127.0.0.1" > /etc/resolv.conf; '
            """printf 'Acquire::Retries "0";\\n' > /etc/apt/apt.conf.d/99lvs-harness-offline"""
        )
        ports = []
        for idx, h in enumerate(topology.hosts):
            ns = q(self.netns(h.name))
            hdir = hdirs[idx]
            batch = ["link set lo up"]
            for n, iface in enumerate(h.interfaces):
                peer = f"h{idx}e{n + 1}"
                batch.append(f"link add {iface.name} type veth peer name {peer} netns {self.switch}")
                ports += [f"link set {peer} master {segs[iface.segment]}", f"link set {peer} up"]
                if iface.ip and iface.auto_config:
                    batch += [f"addr add {iface.ip} dev {iface.name}", f"link set {iface.name} up"]
            lines += [
                f'nsenter --net=/run/netns/{ns} unshare --mount="$S/ns/"{q(h.name)}.mnt '
                f'--uts="$S/ns/"{q(h.name)}.uts --propagation private bash -c {q(setup)} _ {hdir} {q(h.hostname)}',
                f"ip -n {ns} -b - <<'EOF'\n" + "\n".join(batch) + "\nEOF",
            ]
        if ports:
            lines.append(f"ip -n {sw} -b - <<'EOF'\n" + "\n".join(ports) + "\nEOF")
        if self.init:
            lines += self._init_lines(topology)
        return "\n".join(lines) + "\n"

    def _init_lines(self, topology: Topology) -> list[str]:
        """Each host's PID namespace and its PID 1 (in the host's cgroup, if any), all started at
        once; the script goes on when every init has mounted its /proc ("ready")."""
        q = shlex.quote
        lines, fds = [], []
        if self.cgroups:  # (a guest whose init could not set up cgroups: hosts without limits)
            lines.append(f'CG={q(self.cgroups)}; [ -d "$CG" ] || CG=""')
            for h in topology.hosts:
                cg = f'"$CG"/{q(self.netns(h.name))}'
                lines.append(
                    f'if [ -n "$CG" ]; then mkdir {cg}; '
                    + "; ".join(f"echo {v} > {cg}/{k}" for k, v in HOST_LIMITS.items())
                    + "; fi"
                )
        init = " ".join(q(a) for a in self.init)
        for idx, h in enumerate(topology.hosts):
            name = q(h.name)
            join = (
                f'[ -z "$CG" ] || echo $BASHPID > "$CG"/{q(self.netns(h.name))}/cgroup.procs; ' if self.cgroups else ""
            )
            lines.append(
                f'exec {{init{idx}}}< <({join}exec nsenter --net=/run/netns/{q(self.netns(h.name))} '
                f'unshare --pid="$S/ns/"{name}.pid --fork nsenter --mount="$S/ns/"{name}.mnt '
                f'--uts="$S/ns/"{name}.uts {init} </dev/null 2>&1)'
            )
            fds.append(f"init{idx}")
        lines += [
            f'read -r ready <&${fd} && [ "$ready" = ready ] || {{ echo "the init of a lab host failed: $ready" >&2; '
            f"exit 1; }}; exec {{{fd}}}<&-"
            for fd in fds
        ]
        return lines

    def destroy_script(self, hosts) -> str:
        """A bash script that kills every process in the run's namespaces and removes them.

        It only touches names carrying this run's prefix and the run's own state dir,
        and succeeds when parts are already gone. (Each host's init is in its network
        namespace: killing it ends every process of its PID namespace, wherever they are.)
        """
        q = shlex.quote
        names = " ".join(q(n) for n in self.all_netns(hosts))
        cgroups = " ".join(f"{q(self.cgroups)}/{q(self.netns(h))}" for h in hosts) if self.cgroups else ""
        return (
            "\n".join(
                [
                    f"S={q(self.state)}",
                    "all=''",
                    f"for ns in {names}; do",
                    '  [ -e "/run/netns/$ns" ] || continue',
                    '  pids=$(ip netns pids "$ns" 2>/dev/null); [ -n "$pids" ] && kill -9 $pids 2>/dev/null',
                    '  all="$all $pids"',
                    "done",
                    "# wait (up to 5 s) until the killed processes are gone or zombies",
                    "for i in $(seq 50); do",
                    '  left=$(for p in $all; do ps -o stat= -p "$p" 2>/dev/null | grep -qv Z && echo "$p"; done)',
                    '  [ -z "$left" ] && break; sleep 0.1',
                    "done",
                    'for f in "$S"/ns/*.mnt "$S"/ns/*.uts "$S"/ns/*.pid; do [ -e "$f" ] && umount "$f" 2>/dev/null; done',
                    *(
                        [
                            f"for cg in {cgroups}; do [ -d \"$cg\" ] || continue; for i in $(seq 50); do rmdir \"$cg\" 2>/dev/null && break; "
                            "sleep 0.1; done; done"
                        ]
                        if cgroups
                        else []
                    ),
                    f"for ns in {names}; do ip netns del \"$ns\" 2>/dev/null; done",
                    'mountpoint -q "$S/ns" && umount "$S/ns"',
                    'for d in "$S"/hosts/*; do mountpoint -q "$d" && umount -l "$d"; done',
                    'rm -rf "$S"',
                    "true",
                ]
            )
            + "\n"
        )
