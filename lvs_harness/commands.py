"""The result of one command on a lab host (shaped like testinfra's CommandResult)."""

from __future__ import annotations

import dataclasses
import re

TIMEOUT_RC = 124                    # as timeout(1)
_TIMED_OUT = re.compile(r"timed out after [\d.e+]+ s\n\Z")


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

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.rc == 0

    @property
    def timed_out(self) -> bool:
        """True when the runner killed the command at its timeout."""
        return self.rc == TIMEOUT_RC and bool(_TIMED_OUT.search(self.stderr))
