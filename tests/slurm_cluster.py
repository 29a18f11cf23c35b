"""A one-machine Slurm cluster for the tests: Debian's munged, slurmctld and slurmd, configured and
started in a folder of its own, in a network namespace of its own (``lvsh-slurm-<id>``).

Its daemons talk on that namespace's loopback (plus one link-local address on an unconnected veth,
because glibc's getaddrinfo resolves not even 127.0.0.1 for Slurm where no interface but lo has an
address), so nothing of it reaches this machine's network. Its processes are ended by the pids they
recorded and then by the namespace's own pid list, and the namespace is deleted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "mungekey")


class SlurmCluster:
    """munged + slurmctld + slurmd for one node (this machine, CPUs=2), all files under ``root``."""

    def __init__(self, root: Path):
        self.id = secrets.token_hex(3)
        self.ns = f"lvsh-slurm-{self.id}"
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}

    def run(self, *argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=kw.pop("timeout", 60),
            **kw,
        )

    def start(self) -> None:
        r = self.root
        (r / "state").mkdir(parents=True)
        (r / "spool").mkdir()
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        for cmd in (
            ["link", "set", "lo", "up"],
            ["link", "add", "lvshs0", "type", "veth", "peer", "name", "lvshs1"],
            ["addr", "add", "169.254.77.1/32", "dev", "lvshs0"],
            ["link", "set", "lvshs0", "up"],
        ):
            subprocess.run(["ip", "-n", self.ns, *cmd], check=True)
        subprocess.run(["mungekey", "--create", f"--keyfile={r / 'munge.key'}"], check=True)
        (r / "munge.key").chmod(0o600)
        self.run(
            "munged",
            "--force",
            f"--socket={r / 'munge.sock'}",
            f"--key-file={r / 'munge.key'}",
            f"--pid-file={r / 'munged.pid'}",
            f"--log-file={r / 'munged.log'}",
            f"--seed-file={r / 'munged.seed'}",
        )
        cgroup = "cgroup/v2\nIgnoreSystemd=yes" if _fs_type("/sys/fs/cgroup") == "cgroup2" else "cgroup/v1"
        (r / "cgroup.conf").write_text(f"CgroupPlugin={cgroup}\nCgroupAutomount=no\n")
        (r / "slurm.conf").write_text(f"""ClusterName=lvsh{self.id}
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={r / 'munge.sock'}
CredType=cred/munge
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'slurmctld.log'}
SlurmdLogFile={r / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=3600
NodeName={self.node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=lab Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        self.run("slurmctld")
        self.run("slurmd", "-N", self.node)
        deadline = time.monotonic() + 60
        while "idle" not in self.run("sinfo", "-h", "-o", "%t", check=False).stdout:
            assert time.monotonic() < deadline, "the Slurm node never became idle: " + self.logs()
            time.sleep(0.5)

    def sbatch(self, *argv: str) -> str:
        return self.run("sbatch", "--parsable", *argv).stdout.strip().split(";")[0]

    def state(self, job: str) -> str:
        out = self.run("scontrol", "show", "job", job, check=False).stdout
        return next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "UNKNOWN")

    def wait(self, job: str, timeout: float = 900) -> str:
        """Wait until ``job`` has ended; its final JobState."""
        deadline = time.monotonic() + timeout
        while (state := self.state(job)) in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "UNKNOWN"):
            assert time.monotonic() < deadline, f"Slurm job {job} is still {state}" + self.logs()
            time.sleep(1)
        return state

    def logs(self) -> str:
        return "".join(
            f"\n--- {name}\n" + (self.root / name).read_text(errors="replace")[-3000:]
            for name in ("slurmctld.log", "slurmd.log")
            if (self.root / name).exists()
        )

    def stop(self) -> None:
        for name in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            try:
                os.kill(int((self.root / name).read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.2)
        for pid in self.pids():  # what is left in the cluster's own namespace is its own
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["ip", "netns", "del", self.ns], check=False)

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]


def _fs_type(path: str) -> str:
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()
    return "cgroup2" if out in ("cgroup2", "cgroup2fs") else out


@pytest.fixture
def slurm(tmp_path):
    """A running one-node Slurm cluster (CPUs=2); ``slurm.sbatch(...)`` returns a job id,
    ``slurm.state(job)`` its JobState."""
    missing = [d for d in DAEMONS if not shutil.which(d)]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing); install.sh installs it")
    cluster = SlurmCluster(tmp_path / "slurm")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
