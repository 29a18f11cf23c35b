"""Evaluate a Vagrantfile with a real Ruby against a recording stand-in for ``Vagrant.configure``.

Vagrantfiles are Ruby programs (loops over hashes, string concatenation), so they are run,
not pattern-matched. They are also untrusted input: the caller supplies ``run``, which
executes the evaluator somewhere disposable — inside the lab guest on the ``uml`` lab, or
as ``nobody`` in fresh namespaces on the ``netns`` lab.

Example::

    recorded = evaluate(Path("Vagrantfile").read_text(), "Vagrantfile", run=guest_run)
    topology = Topology.from_vagrant(recorded, vagrantfile=Path("Vagrantfile"))
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from collections.abc import Callable

from .commands import CommandResult
from .errors import HarnessError, VagrantfileError
from .topology import Topology, VirtualService

MAX_BYTES = 1_000_000
TIMEOUT = 30

Runner = Callable[[list, bytes], CommandResult]
# The environment a runner gives the evaluator, and no other (plus what its machine needs to run
# programs correctly: the UML guest's GLIBC_TUNABLES). The evaluator once cleared it itself with
# `env -i`, which also dropped GLIBC_TUNABLES: Ruby then ran with the AVX string functions whose
# registers UML does not keep, and crashed or returned corrupted output on larger Vagrantfiles
# (a 40-machine one segfaulted 3 times in 3; the "first 64 bytes zeroed" seen before).
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}


def evaluator_script() -> str:
    return resources.files("lvs_harness.data").joinpath("vagrant_eval.rb").read_text()


def read_text(path: Path, error: type[HarnessError], what: str, hint: str) -> str:
    """A user-supplied text file, or ``error`` saying what is wrong with it (missing, over
    ``MAX_BYTES``, binary, not UTF-8). ``what`` names the expected file, ``hint`` the fix
    for a missing one."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise error(f"cannot read {path}: {err.strerror}; {hint}") from None
    if len(data) > MAX_BYTES:
        raise error(f"{path} is {len(data)} bytes, over the {MAX_BYTES}-byte limit for {what}; is it the right file?")
    if b"\0" in data:
        raise error(f"{path} is a binary file, not {what}; pass the text file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text; save it as UTF-8.") from None


def read_vagrantfile(path: Path) -> str:
    """The text of a Vagrantfile, or a VagrantfileError naming what is wrong with the file."""
    return read_text(
        path, VagrantfileError, "a Vagrantfile", "pass --vagrantfile with the path of an existing Vagrantfile."
    )


# The evaluator and the Vagrantfile both travel on stdin (the script first, then SEPARATOR):
# argv stays a few bytes. (With the 3.6 KB script as `ruby -e` and a long file name in argv, the
# UML guest's agent returned the evaluator's output with its first 64 bytes zeroed — reproduced
# 12 times in 12, never with the script on stdin.)
SEPARATOR = "\n#LVSH-VAGRANTFILE\n"
LOADER = (
    'data = $stdin.binmode.read.force_encoding("UTF-8"); '
    's, $lvsh_source = data.split("\\n#LVSH-VAGRANTFILE\\n", 2); eval(s, TOPLEVEL_BINDING, "vagrant_eval.rb", 1)'
)


def evaluate(text: str, name: str, run: Runner) -> dict:
    """Run the recorder on ``text`` through ``run(argv, stdin)`` and return what it recorded."""
    argv = ["timeout", "-k", "2", str(TIMEOUT), "ruby", "--disable-gems", "-e", LOADER, name]
    result = run(argv, (evaluator_script() + SEPARATOR + text).encode())
    if result.rc == 127:
        raise VagrantfileError(
            "ruby is missing where Vagrantfiles are evaluated; install the Debian "
            "package `ruby` (or rebuild the lab image with `lvs-harness image build --force`)."
        )
    if result.rc == 124:
        raise VagrantfileError(
            f"{name} did not finish evaluating within {TIMEOUT} s; "
            "a Vagrantfile should only describe machines, not loop or wait."
        )
    try:
        recorded = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise VagrantfileError(
            f"{name} could not be evaluated (ruby exited {result.rc}: "
            f"{(result.stderr or result.stdout).strip()[-300:]})."
        ) from None
    if "error" in recorded:
        line = f" line {recorded['line']}" if recorded.get("line") else ""
        raise VagrantfileError(
            f"{name}{line}: {recorded['error']} — fix the Vagrantfile so that `vagrant validate` accepts it."
        )
    return recorded


def load_topology(
    path: Path, run: Runner, roles: dict | None = None, services: tuple[VirtualService, ...] = ()
) -> Topology:
    """Read, evaluate and convert a Vagrantfile into a :class:`Topology`."""
    path = Path(path)
    if path.is_dir():
        path = path / "Vagrantfile"
    text = read_vagrantfile(path)
    recorded = evaluate(text, str(path), run)
    return Topology.from_vagrant(recorded, vagrantfile=path, roles=roles, services=services)
