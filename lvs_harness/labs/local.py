"""Commands run on this machine itself: with a timeout that kills the whole process group, and
in a sandbox for untrusted code (a Vagrantfile's Ruby). Shared by the backends that need them."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ..commands import TIMEOUT_RC, CommandResult, timeout_note
from ..errors import LabError
from ..vagrantfile import SANDBOX_ENV


def run_local(argv: list, input: bytes | None, timeout: float, env: dict | None = None) -> CommandResult:
    """Run argv here; on timeout kill its whole process group and return rc 124."""
    t0 = time.monotonic()
    argv = [str(a) for a in argv]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        out, err = proc.communicate(input or b"", timeout=timeout)
        rc, timed_out = proc.returncode, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc, err, timed_out = TIMEOUT_RC, err + timeout_note(timeout).encode(), True
    return CommandResult(
        " ".join(argv),
        rc,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - t0,
        timed_out,
    )


SANDBOX_MOUNTS = (
    "mount --make-rprivate / && mount --bind / / && mount -o remount,bind,ro / && "
    "for d in /tmp /var/tmp /dev/shm /run; do mount -t tmpfs -o size=16m tmpfs $d; done && "
    'exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all -- "$@"'
)


def sandbox_run(argv: list, input: bytes | None, timeout: float = 60) -> CommandResult:
    """Run untrusted ``argv`` on this machine as nobody, with no network, a read-only root and
    empty /tmp, /var/tmp, /dev/shm and /run (used to evaluate Vagrantfiles for the netns lab)."""
    if os.geteuid() != 0:
        raise LabError(
            "evaluating a Vagrantfile on this machine needs root (for its sandbox); run with sudo or use --lab uml."
        )
    return run_local(
        [
            "unshare",
            "--net",
            "--ipc",
            "--uts",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--mount-proc",
            "--",
            "sh",
            "-c",
            SANDBOX_MOUNTS,
            "sandbox",
            *argv,
        ],
        input,
        timeout,
        env=SANDBOX_ENV,
    )
