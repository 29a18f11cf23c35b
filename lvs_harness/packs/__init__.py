"""Course packs: a lab is data and a suite, the harness knows none of them by name.

A pack is a :class:`Pack` registered under the entry-point group ``lvs_harness.packs``
(or, for a pack that is not installed, the ``PACK`` attribute of an importable module named
with ``--pack``). It carries everything lab-specific: the reference Vagrantfile, the role
patterns of its machine names, the directors a write-up hands in a keepalived.conf for, the
suite (the pytest module of its checks), the daemons each role runs, the virtual services
the lab is about (none: read from the running lab), and the charts its report shows.

Example::

    pack = load_pack("hw38")
    pack.title, pack.suite                 # ('hw3.8 …', 'lvs_harness.packs.hw38')
    [c.id for c in pack.checks()][:2]      # ['config_valid', 'directors_separate']
    [p.name for p in installed()]          # ['hw38', 'lvs-nat']

    # a pack of your own (my_lab/__init__.py), used with --pack my_lab:
    PACK = Pack(name="my-lab", title="My lab", suite="my_lab", reference=Path(__file__).parent / "Vagrantfile",
                directors=("lb1", "lb2"))
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from importlib import metadata
from pathlib import Path
from collections.abc import Callable

from ..checks import Check, CheckError, collect, validate
from ..errors import HarnessError
from ..topology import VirtualService

GROUP = "lvs_harness.packs"
DEFAULT_PACK = "hw38"  # what every command grades when no --pack is given

# the daemons a role runs unless the pack says otherwise
DEFAULT_DAEMONS = {"real": ("nginx",), "director": ("keepalived",)}


class PackError(HarnessError):
    """A pack that cannot be used: unknown, not importable, or declared wrongly."""


@dataclasses.dataclass(frozen=True)
class Pack:
    """One course lab.

    - ``suite``: the importable package (or module) of its checks, run with ``pytest --pyargs``;
    - ``reference``: its reference Vagrantfile (the lab when a submission brings none);
    - ``roles``: role -> machine-name glob patterns (None: the core's generic patterns);
    - ``directors``: the hosts a write-up hands in a keepalived.conf for (their names are matched
      tolerantly: "balanser2" reads as balancer2);
    - ``daemons``: role -> daemons started on that role's hosts at bring-up (``units`` adds
      daemons of its own: name -> command line, run in the foreground by the lab's systemctl);
    - ``services``: the virtual services the lab is about (empty: read from the running lab);
    - ``charts``: measured values of a check -> SVG strings (use :mod:`lvs_harness.charts`);
    - ``real_setup``: what the reference's real-server provisioning supplies, for the report;
    - ``vips``: how many virtual addresses its directors' keepalived raises (0: not said) — with
      the directors' names, what tells a write-up for this lab from one for another;
    - ``min_reals``: how many reals the homework asks for (a lab built for a write-up that names
      fewer gets that many);
    - ``check_seconds``: how long its checks took on its reference in the embedded lab, with fast
      and with faithful timing (measured; a grading run's time budget follows from it);
    - ``skeleton_daemons``: daemons the course's own skeleton runs on every host, which a lab built
      for a write-up without a Vagrantfile runs too (a director's health check may track them).
    """

    name: str
    title: str
    suite: str
    reference: Path
    directors: tuple[str, ...] = ()
    roles: dict | None = None
    daemons: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_DAEMONS))
    units: dict = dataclasses.field(default_factory=dict)
    services: tuple[VirtualService, ...] = ()
    charts: Callable[[dict], list[str]] | None = None
    real_setup: str = "real-server setup"
    vips: int = 0
    min_reals: int = 1
    skeleton_daemons: tuple[str, ...] = ()
    check_seconds: tuple[float, float] = (120.0, 300.0)

    def checks(self) -> list[Check]:
        """The suite's checks in order (ids checked unique across its modules)."""
        module = importlib.import_module(self.suite)
        names = _suite_modules(module) if hasattr(module, "__path__") else [self.suite]
        found = [c for n in names for c in collect(importlib.import_module(n))]
        validate(found, f"pack {self.name}")
        return found

    def chart(self, measured: dict) -> list[str]:
        return list(self.charts(measured)) if self.charts else []


def _suite_modules(package) -> list[str]:
    """The test modules of a suite package (test_*.py beside its __init__)."""
    folder = Path(package.__file__).parent
    return [f"{package.__name__}.{p.stem}" for p in sorted(folder.glob("test_*.py"))]


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def pack_names() -> list[str]:
    """The names of the installed packs (registered under ``lvs_harness.packs``), loaded or not."""
    return sorted(_entry_points())


def installed() -> list[Pack]:
    """Every pack registered under ``lvs_harness.packs`` (those that fail to load are skipped)."""
    out = []
    for name in pack_names():
        try:
            out.append(load_pack(name))
        except PackError:
            continue
    return out


@functools.cache
def load_pack(name: str | None = None) -> Pack:
    """The pack called ``name`` (default :data:`DEFAULT_PACK`): an installed one, else an
    importable module's ``PACK``. Refused, in one sentence, when it cannot be used."""
    name = name or DEFAULT_PACK
    eps = _entry_points()
    if name in eps:
        try:
            obj = eps[name].load()
        except Exception as err:  # a pack's own import error: name the pack and the problem
            raise PackError(
                f"pack {name} could not be loaded ({type(err).__name__}: {err}); "
                f"fix or reinstall the package that provides it ({eps[name].value})."
            ) from None
    else:
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.split(".")[0] != err.name.split(".")[0]:
                raise PackError(
                    f"pack {name} could not be loaded (it imports {err.name}, which is missing); install what it needs."
                ) from None
            known = ", ".join(sorted(eps)) or "none"
            raise PackError(
                f"no pack named {name!r}; installed packs: {known} (or name an importable "
                "module whose PACK is a lvs_harness.packs.Pack)."
            ) from None
        except Exception as err:
            raise PackError(f"pack {name} could not be loaded ({type(err).__name__}: {err}).") from None
    pack = getattr(obj, "PACK", obj)
    if not isinstance(pack, Pack):
        raise PackError(f"{name} is not a pack: it has no PACK of type lvs_harness.packs.Pack.")
    return _validated(pack)


def _validated(pack: Pack) -> Pack:
    if not Path(pack.reference).is_file():
        raise PackError(
            f"pack {pack.name} has no reference Vagrantfile ({pack.reference} is missing); "
            "a pack ships the Vagrantfile of its reference lab."
        )
    try:
        pack.checks()
    except PackError:
        raise
    except CheckError as err:
        raise PackError(str(err)) from None
    except Exception as err:
        raise PackError(
            f"pack {pack.name}'s suite {pack.suite} could not be imported ({type(err).__name__}: {err})."
        ) from None
    return pack


def pack_of_module(module_name: str) -> str | None:
    """The pack whose suite holds ``module_name`` (a collected test module), if any: an installed
    pack's name, else the name of the package above it that carries a ``PACK`` (a pack that is not
    installed, which ``load_pack`` then imports by that name)."""
    for name, ep in _entry_points().items():
        suite = ep.value.split(":")[0]
        if module_name == suite or module_name.startswith(suite + "."):
            return name
    parts = module_name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        package = sys.modules.get(".".join(parts[:i]))
        if isinstance(getattr(package, "PACK", None), Pack):
            return package.__name__
    return None


__all__ = ["Pack", "PackError", "load_pack", "installed", "DEFAULT_PACK", "pack_of_module"]
