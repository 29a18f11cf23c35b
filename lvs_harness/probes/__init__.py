"""Probes: read the live state of a lab host and parse it into values (no asserting here)."""

# Bash snippet for background loops in lab hosts: `nap SECONDS` sleeps without an exec (each
# exec costs ~20 ms in the UML guest) by waiting on a FIFO this shell holds open read-write.
# (`exec {fd}<> <(:)` looks similar but hits EOF at once, and the loop spins.)
NAP = 'f=$(mktemp -u); mkfifo "$f"; exec {nap}<>"$f"; rm -f "$f"; nap() { read -rt "$1" -u "$nap"; }'
