"""The options ``pytest`` and ``lvs-harness`` share, declared once: each is added to a pytest
option group (``group.addoption``) or an argparse parser (``parser.add_argument``) with the same
name, choices and help; a command may change a default.

Example::

    add(parser.add_argument, "--lab", "--pack")                  # lvs-harness up
    add(group.addoption, "--lab", defaults={"--lab": None})      # pytest: None = not given
"""

from __future__ import annotations

from pathlib import Path

from .labs import CHOICES, PROVIDERS

OPTIONS: dict[str, dict] = {
    "--lab": dict(
        choices=CHOICES,
        default="auto",
        help="lab backend: auto (netns where the kernel has IPVS and you are root, else uml), uml (embedded "
        "User-Mode Linux guest), netns (this kernel), vagrant",
    ),
    "--provider": dict(
        choices=PROVIDERS,
        default="libvirt",
        help="--lab vagrant: libvirt (default; lvs-harness's own box, VMs in a network namespace) or "
        "virtualbox (the Vagrantfile's own box)",
    ),
    "--pack": dict(
        default=None,
        metavar="NAME",
        help="the course pack (`lvs-harness packs` lists them); default: the pack whose suite runs, else "
        "the default pack",
    ),
    "--vagrantfile": dict(
        type=Path,
        default=None,
        metavar="PATH",
        help="the lab to build (a Vagrantfile or its folder); default: the pack's reference",
    ),
    "--timing": dict(
        choices=("fast", "faithful"),
        default=None,
        help="fast (default on embedded labs): a short IPVS tcpfin timeout is set before traffic so the "
        "drain check takes seconds; faithful (default on vagrant): default timeouts (~2 min)",
    ),
    "--allow-scripts": dict(
        action="store_true",
        help="on --lab netns, run the provisioners (and keepalived scripts) of a Vagrantfile other "
        "than the reference on this machine",
    ),
    "--audience": dict(
        choices=("staff", "student"),
        default="staff",
        help="student: reports show each check's reason, why and fix (or hint) and evidence, no "
        "traceback or harness source (staff: everything)",
    ),
}


def add(adder, *names: str, defaults: dict | None = None) -> None:
    """Declare ``names`` with ``adder`` (``parser.add_argument`` or a pytest group's ``addoption``),
    ``defaults`` changing a default for this command."""
    for name in names:
        spec = dict(OPTIONS[name])
        if defaults and name in defaults:
            spec["default"] = defaults[name]
        adder(name, **spec)


def interrupt(signum, frame):
    """A SIGTERM handler: stop as on Ctrl-C, so labs are torn down (``signal.signal(SIGTERM, interrupt)``)."""
    raise KeyboardInterrupt(f"signal {signum}")
