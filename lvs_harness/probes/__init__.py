"""Probes: read the live state of a lab host and parse it into values (no asserting here)."""

# Bash snippet for background loops in lab hosts: `nap SECONDS` sleeps without an exec (each
# exec costs ~20 ms in the UML guest) by waiting on a FIFO this shell holds open read-write.
# (`exec {fd}<> <(:)` looks similar but hits EOF at once, and the loop spins.)
NAP = 'f=$(mktemp -u); mkfifo "$f"; exec {nap}<>"$f"; rm -f "$f"; nap() { read -rt "$1" -u "$nap"; }'

# In the embedded labs' hosts: a small tmpfs of the harness's own for the probes' files, so that
# a host whose disk, /tmp and /run its code filled is still measured (elsewhere: /tmp).
SCRATCH = "/run/lvsh-probes"


def scratch(host) -> str:
    """The folder the probes keep their files in on ``host`` (asked once per host).

    Example::

        f"{scratch(client)}/lvsh-probe-1a2b"      # '/run/lvsh-probes/lvsh-probe-1a2b' in an embedded lab
    """
    found = getattr(host, "_lvsh_scratch", None)
    if found is None:
        found = SCRATCH if host.run(f"mountpoint -q {SCRATCH}").ok else "/tmp"
        host._lvsh_scratch = found
    return found
