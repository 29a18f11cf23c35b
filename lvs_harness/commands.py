"""The result of one command on a lab host (shaped like testinfra's CommandResult)."""

from __future__ import annotations

import dataclasses

TIMEOUT_RC = 124  # as timeout(1)


def timeout_note(timeout: float) -> str:
    """What a runner appends to stderr when it killed a command at its timeout (rc 124)."""
    return f"timed out after {timeout:g} s\n"


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a command did: exit status, output, and how long it took.

    Example::

        result = host.run("ip -br addr show eth1")
        if result.ok:
            print(result.stdout, f"{result.duration * 1000:.0f} ms")
    """

    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False  # the runner killed it at its timeout (rc 124, and a note on stderr)

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.rc == 0
