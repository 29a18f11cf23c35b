"""A long-lived command channel into the lab hosts of a UML guest (``data/host-agent.c``).

qemu-guest-agent runs a command as a new process that then ``nsenter``s the host and starts
``sh``, and the harness polls for its end: three execs and a dozen serial round trips per
command. The host agent is one small C process in the guest (built into the image) on its own
serial line (``/dev/ttyS2``); per command it clones (``CLONE_VM | CLONE_VFORK``: no copy of its
address space), ``setns``es the child into the host's namespaces and execs ``/bin/sh -c`` once (or
the program itself, for a plain ``program arg …`` line), and pushes the result back the moment
the command ends. Commands from several threads overlap (each request and reply carries an id).
A streamed command (:meth:`HostChannel.stream`) hands its output over as it is written (an
``ip monitor``'s events, live) until it ends or is stopped.

Example::

    channel = HostChannel(sock)
    channel.wait_ready(timeout=10, alive=lambda: proc.poll() is None)
    rc, out, err, timed_out = channel.run("host1", "ip -br addr", None, timeout=10)
    stream = channel.stream("host1", "exec ip -o monitor address", print, timeout=600)
    ...; rc, out, err, timed_out = stream.stop()
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Callable

from ..errors import LabError, LabGone
from . import image
from .guest_agent import GONE  # the channel ends with the guest (or with its agent, killed by a submission)

TTY = "/dev/ttyS2"
SPOOL = "/run/lvsh-agent"
LOG = "/run/lvsh-agent.log"  # the agent's own errors (in the guest)
WINDOW = 2048  # bytes sent and not yet acknowledged by the agent (see host-agent.c)
CHUNK = 1024
MARGIN = 15.0  # s past a command's timeout before the harness stops waiting for the agent's kill


def agent_argv(prefix: str, state: str, agent: str | None = None, cgroups: str | None = None) -> list[str]:
    """What starts the agent in the guest (as root, detached): raw mode on its line, then the agent,
    then its end said on the line (an image without the agent: "EXIT 127" at once)."""
    return [
        "/bin/sh",
        "-c",
        f'stty -F {TTY} raw -echo && "$0" {TTY} "$1" "$2" {SPOOL} $3 2>>{LOG}; echo "EXIT $?" > {TTY}',
        agent or image.AGENT,
        prefix,
        state,
        cgroups or "",
    ]


class _Pending:
    __slots__ = ("done", "result", "on_output")

    def __init__(self, on_output: Callable[[str], None] | None = None):
        self.done = threading.Event()
        self.result: tuple[int, str, str, bool] | None = None
        self.on_output = on_output


class Stream:
    """A command started by :meth:`HostChannel.stream`: ``stop()`` kills its process group (if it
    still runs) and returns (rc, stdout not streamed, stderr, timed out); ``running`` says whether
    it still runs."""

    def __init__(self, channel: HostChannel, rid: int, pending: _Pending, what: str):
        self._channel, self._rid, self._pending, self._what = channel, rid, pending, what

    @property
    def running(self) -> bool:
        return not self._pending.done.is_set()

    def stop(self, timeout: float = 10.0) -> tuple[int, str, str, bool]:
        if self.running:
            try:
                self._channel._send(f"K {self._rid}\n".encode(), timeout)
            except (OSError, LabGone):
                pass
        return self._channel._wait(self._rid, self._pending, timeout, self._what)


class HostChannel:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._send_lock = threading.Lock()
        self._credit = threading.Condition()
        self._unacked = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._ready = threading.Event()
        self._gone = False
        self.agent_pid: int | None = None
        self.exit_status: int | None = None  # the agent's, if it ended
        self._reader = threading.Thread(target=self._read_loop, name="lvsh-channel", daemon=True)
        self._reader.start()

    # the reader -------------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = b""

        def fill(enough) -> bool:
            """Read until ``enough(buf)``; False when the line closed first."""
            nonlocal buf
            while not enough(buf):
                chunk = self._sock.recv(262144)
                if not chunk:
                    return False
                buf += chunk
            return True

        try:
            while True:
                if not fill(lambda b: b"\n" in b):
                    return
                head, buf = buf.split(b"\n", 1)
                fields = head.split()
                if not fields:
                    continue
                if fields[0] == b"A" and len(fields) == 2:
                    with self._credit:
                        self._unacked = max(0, self._unacked - int(fields[1]))
                        self._credit.notify_all()
                    continue
                if fields[0] == b"EXIT":  # the agent ended (see agent_argv): nothing more will come
                    self.exit_status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
                    return
                if fields[0] == b"READY":
                    self.agent_pid = int(fields[1])
                    self._ready.set()
                    continue
                if fields[0] == b"O" and len(fields) == 3:  # a streamed command's output
                    rid, n = int(fields[1]), int(fields[2])
                    if not fill(lambda b: len(b) >= n):
                        return
                    data, buf = buf[:n], buf[n:]
                    pending = self._pending.get(rid)
                    if pending is not None and pending.on_output is not None:
                        pending.on_output(data.decode("utf-8", "replace"))
                    continue
                if fields[0] != b"R" or len(fields) != 6:
                    continue  # line noise before the agent set its line raw
                rid, rc, timed_out, n_out, n_err = (int(f) for f in fields[1:])
                if not fill(lambda b: len(b) >= n_out + n_err):
                    return
                out, err, buf = buf[:n_out], buf[n_out : n_out + n_err], buf[n_out + n_err :]
                pending = self._pending.pop(rid, None)
                if pending is not None:
                    pending.result = (
                        rc,
                        out.decode("utf-8", "replace"),
                        err.decode("utf-8", "replace"),
                        bool(timed_out),
                    )
                    pending.done.set()
        except OSError:
            return
        finally:
            self._gone = True
            for pending in list(self._pending.values()):
                pending.done.set()
            self._ready.set()
            with self._credit:
                self._credit.notify_all()

    # the API ----------------------------------------------------------------------
    def wait_ready(self, timeout: float, alive: Callable[[], bool]) -> None:
        """Block until the agent said READY on its line (or raise LabError)."""
        waited = 0.0
        while not self._ready.wait(0.05):
            waited += 0.05
            if not alive() or waited > timeout:
                break
        if self.agent_pid is None:
            if self.exit_status is not None:
                raise LabError(
                    f"the lab's command channel exited at its start (status {self.exit_status}; "
                    f"its errors are in the guest's {LOG})"
                )
            raise LabError(f"the lab's command channel did not start within {timeout:g} s")

    def run(self, host: str, command: str, input: bytes | None, timeout: float) -> tuple[int, str, str, bool]:
        """Run ``command`` with /bin/sh as root in ``host``: (rc, stdout, stderr, timed out)."""
        rid, pending = self._request("X", host, command, input, timeout)
        return self._wait(rid, pending, timeout + MARGIN, f"`{command[:200]}` on {host}")

    def stream(self, host: str, command: str, on_output: Callable[[str], None], timeout: float) -> Stream:
        """Start ``command`` in ``host``; each piece of its stdout goes to ``on_output`` (called on the
        channel's reader thread: keep it short) as soon as it is written. It ends by itself, at
        ``timeout`` (its process group killed) or by :meth:`Stream.stop`."""
        rid, pending = self._request("S", host, command, None, timeout, on_output)
        return Stream(self, rid, pending, f"`{command[:200]}` on {host}")

    def _request(
        self,
        kind: str,
        host: str,
        command: str,
        input: bytes | None,
        timeout: float,
        on_output: Callable[[str], None] | None = None,
    ) -> tuple[int, _Pending]:
        if self._gone:
            raise LabGone(GONE)
        rid = next(self._ids)
        cmd, data = command.encode(), input or b""
        pending = _Pending(on_output)
        self._pending[rid] = pending
        header = f"{kind} {rid} {host} {max(1, int(timeout * 1000))} {len(cmd)} {len(data)}\n".encode()
        try:
            self._send(header + cmd + data, timeout + MARGIN)
        except OSError:
            self._pending.pop(rid, None)
            raise LabGone(GONE) from None
        except LabError:
            self._pending.pop(rid, None)
            raise
        return rid, pending

    def _wait(self, rid: int, pending: _Pending, timeout: float, what: str) -> tuple[int, str, str, bool]:
        if not pending.done.wait(timeout):
            self._pending.pop(rid, None)
            raise LabError(f"the lab's command channel did not answer {what} within {timeout:g} s")
        if pending.result is None:
            raise LabGone(GONE)
        return pending.result

    def _send(self, data: bytes, timeout: float) -> None:
        """Send ``data`` in chunks, keeping at most :data:`WINDOW` bytes unacknowledged."""
        with self._send_lock:
            for i in range(0, len(data), CHUNK):
                piece = data[i : i + CHUNK]
                with self._credit:
                    if not self._credit.wait_for(lambda: self._gone or self._unacked + len(piece) <= WINDOW, timeout):
                        raise LabError(f"the lab's command channel took no input for {timeout:g} s")
                    if self._gone:
                        raise LabGone(GONE)
                    self._unacked += len(piece)
                self._sock.sendall(piece)

    def close(self) -> None:
        try:
            with self._send_lock:
                self._sock.sendall(b"Q\n")
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
