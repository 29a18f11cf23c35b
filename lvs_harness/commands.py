"""The result of one command on a lab host (shaped like testinfra's CommandResult)."""

from __future__ import annotations

import dataclasses


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
