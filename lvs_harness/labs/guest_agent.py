"""The command channel into a UML guest: qemu-guest-agent on a UML serial line.

The host holds one end of a socketpair; UML binds the guest's ``/dev/ttyS1`` to the
other (``ssl1=fd:N``), and ``qemu-ga -m isa-serial`` answers JSON requests on it. A
command is ``guest-exec`` (argv, optional stdin, captured output) followed by polling
``guest-exec-status``. Requests from several threads are serialised per round trip, so
commands can overlap.

The guest's tty drops the tail of any request over ~4 KB (measured: a 3000-byte stdin,
4 KB once base64-encoded, never got an answer), so every request is kept under
``MAX_REQUEST`` bytes: larger argv or stdin go through ``guest-file-write`` in chunks
and the command reads them back from those files.

Example::

    agent = GuestAgent(sock)
    agent.wait_ready(timeout=60, alive=lambda: proc.poll() is None)
    rc, out, err, timed_out = agent.exec(["ipvsadm", "-Ln"], timeout=10)
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable

from ..commands import TIMEOUT_RC, timeout_note
from ..errors import LabError, LabGone

MAX_REQUEST = 2048
CHUNK = 1024  # raw bytes per guest-file-write (base64 grows it to ~1.4 KB)
SPILL_PREFIX = "/run/lvsh-spill-"


GONE = (
    "the lab's guest has stopped (it powered off or crashed, e.g. by a command of the submission); "
    "nothing more can run in this lab"
)


class GuestAgent:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._lock = threading.Lock()
        self._buf = b""
        self._spills = 0

    def _read_line(self, deadline: float) -> bytes:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                raise LabGone(GONE) from None
            if not chunk:
                raise LabGone(GONE)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def _request(self, execute: str, timeout: float = 30, **arguments) -> dict:
        msg = json.dumps({"execute": execute, "arguments": arguments}).encode() + b"\n"
        with self._lock:
            try:
                self._sock.sendall(msg)
            except OSError:
                raise LabGone(GONE) from None
            try:
                line = self._read_line(time.monotonic() + timeout)
            except TimeoutError:
                raise LabError(f"the lab guest did not answer {execute} within {timeout:g} s") from None
        reply = json.loads(line.lstrip(b"\xff"))
        if "error" in reply:
            raise LabError(f"guest agent refused {execute}: {reply['error'].get('desc')}")
        return reply["return"]

    def wait_ready(self, timeout: float, alive: Callable[[], bool]) -> float:
        """Block until the agent answers a sync handshake; return the seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        sent: set[int] = set()
        with self._lock:
            while True:
                if not alive():
                    raise LabError("the lab guest stopped while booting")
                if time.monotonic() > deadline:
                    raise LabError(f"the lab guest did not start its agent within {timeout:g} s")
                sent.add(self._send_sync())
                try:
                    if self._await_sync(sent, time.monotonic() + 0.1):
                        break
                except TimeoutError:
                    continue
            # handshakes sent while the guest booted are answered late: one more, and drop all before it
            last = {self._send_sync()}
            while not self._await_sync(last, time.monotonic() + 10):
                pass
        return time.monotonic() - t0

    def _send_sync(self) -> int:
        token = secrets.randbits(31)
        self._sock.sendall(json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": token}}).encode() + b"\n")
        return token

    def _await_sync(self, tokens: set[int], deadline: float) -> bool:
        line = self._read_line(deadline)
        try:
            return json.loads(line.split(b"\xff")[-1]).get("return") in tokens
        except ValueError:
            return False

    def write_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` in the guest, in chunks small enough for the serial line."""
        handle = self._request("guest-file-open", path=path, mode="w")
        try:
            for i in range(0, len(data), CHUNK):
                self._request(
                    "guest-file-write", handle=handle, **{"buf-b64": base64.b64encode(data[i : i + CHUNK]).decode()}
                )
        finally:
            self._request("guest-file-close", handle=handle)

    def _spill(self, argv: list[str], input: bytes | None) -> dict:
        """A request too large for the line: stdin and the command (argv quoted for sh, which then
        execs it, so its exit status is the command's own) go in files first."""
        with self._lock:
            self._spills += 1
            base = f"{SPILL_PREFIX}{self._spills}"
        self.write_file(base + ".in", input or b"")
        self.write_file(
            base + ".sh",
            (
                f'rm -f "$0"; exec 0<{base}.in; rm -f {base}.in; exec ' + " ".join(shlex.quote(a) for a in argv) + "\n"
            ).encode(),
        )
        return {"path": "/bin/sh", "arg": [base + ".sh"], "capture-output": True}

    def start(self, argv: list[str], env: dict | None = None) -> int:
        """Start argv in the guest without waiting for it; return its guest pid."""
        extra = {"env": [f"{k}={v}" for k, v in env.items()]} if env is not None else {}
        return self._request("guest-exec", timeout=5, path=argv[0], arg=list(argv[1:]), **extra)["pid"]

    def exec(
        self, argv: list[str], input: bytes | None = None, timeout: float = 60, env: dict | None = None
    ) -> tuple[int, str, str]:
        """Run argv in the guest as root and return (rc, stdout, stderr).

        ``env`` replaces the environment (default: the agent's own, from the guest's init).
        """
        args = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if input:
            args["input-data"] = base64.b64encode(input).decode()
        if len(json.dumps(args)) > MAX_REQUEST:
            args = self._spill(argv, input)
        if env is not None:
            args["env"] = [f"{k}={v}" for k, v in env.items()]
        pid = self._request("guest-exec", **args)["pid"]
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        timed_out = False
        while True:
            status = self._request("guest-exec-status", pid=pid)
            if status.get("exited"):
                break
            if time.monotonic() > deadline and not timed_out:
                timed_out = True
                self._kill_tree(pid)
                deadline = time.monotonic() + 10
            elif timed_out and time.monotonic() > deadline:
                raise LabError(f"`{' '.join(argv)[:200]}` could not be stopped in the lab guest")
            # poll quickly at first (most commands take 20-100 ms), then back off
            time.sleep(0.003 if time.monotonic() - started < 0.3 else 0.02)
        out = base64.b64decode(status.get("out-data", "")).decode("utf-8", "replace")
        err = base64.b64decode(status.get("err-data", "")).decode("utf-8", "replace")
        rc = status.get("exitcode")
        if rc is None:  # killed by a signal
            rc = 128 + int(status.get("signal", 0))
        if timed_out:
            rc, err = TIMEOUT_RC, err + timeout_note(timeout)
        return rc, out, err, timed_out

    def _kill_tree(self, pid: int) -> None:
        """SIGKILL a guest process and all its descendants (daemons that called setsid stay)."""
        script = (
            'tree() { for c in $(pgrep -P "$1"); do tree "$c"; done; echo "$1"; }; '
            'sid=$(ps -o sid= -p "$1"); pids=""; for p in $(tree "$1"); do '
            '[ "$(ps -o sid= -p "$p")" = "$sid" ] && pids="$pids $p"; done; '
            'kill -STOP $pids; kill -9 $pids; true'
        )
        self._request("guest-exec", path="/bin/sh", arg=["-c", script, "kill-tree", str(pid)])
