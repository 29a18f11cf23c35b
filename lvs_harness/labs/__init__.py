"""Lab backends, chosen by name from one small registry.

Example::

    from lvs_harness.labs import LabConfig, start_lab
    with start_lab(LabConfig(backend="auto")) as lab:
        print(lab.NAME, [h.name for h in lab.topology.directors])
"""

from __future__ import annotations

import dataclasses

import importlib

from ..errors import HarnessError, LabError
from ..runs import Run
from ..vagrantfile import read_vagrantfile
from .base import PROVIDERS, Lab, LabBase, LabConfig, ProvisionResult, reference_vagrantfile

# name -> the module holding the backend (its Lab class, available(), cleanup(run)); imported only
# when that backend is asked for, so `--lab uml` never loads the vagrant lab's code
BACKENDS = {
    "uml": ("lvs_harness.labs.uml", "UmlLab"),
    "netns": ("lvs_harness.labs.netns", "NetnsLab"),
    "vagrant": ("lvs_harness.labs.vagrant", "VagrantLab"),
}
CHOICES = ("auto", *BACKENDS)


def backend_module(name: str):
    return importlib.import_module(BACKENDS[name][0])


def backend_class(name: str) -> type[LabBase]:
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def select_backend(name: str) -> tuple[str, str]:
    """(backend, why): ``auto`` picks netns where this kernel has IPVS and we are root, else uml."""
    if name not in CHOICES:
        raise LabError(f"unknown lab backend {name!r}; choose one of {', '.join(CHOICES)}.")
    if name != "auto":
        return name, "chosen with --lab"
    ok, why = backend_module("netns").available()
    if ok:
        return "netns", why
    ok_uml, why_uml = backend_module("uml").available()
    if ok_uml:
        return "uml", f"{why}, so using the {why_uml}"
    raise LabError(f"no lab backend can run here: {why}, and {why_uml}")


def start_lab(config: LabConfig | None = None, provision: bool = True) -> Lab:
    """Bring a lab up (a context manager: leaving the ``with`` block tears it down).

    Stale runs left by killed processes are removed first. With ``config.keep`` the lab is
    held by a keeper process, so it outlives this one (``lvs-harness exec/status/down``).
    """
    config = config or LabConfig()
    read_vagrantfile(config.vagrantfile_file)  # a bad path fails before anything starts
    backend, why = select_backend(config.backend)
    if config.backend == "auto":
        config.progress(f"lab backend: {backend} ({why})")
    clean(stale_only=True, progress=config.progress)
    config = dataclasses.replace(config, backend=backend)
    if config.keep:
        from . import remote

        run_id = remote.spawn(dataclasses.replace(config, keep=False), provision=provision)
        return remote.RemoteLab(Run.load(run_id), keep=True, progress=config.progress)
    return backend_class(backend).start(config, provision=provision)


def cleanup_run(run: Run) -> None:
    if run.backend not in BACKENDS:
        raise HarnessError(f"run {run.id} was made by an unknown backend {run.backend!r}; remove {run.dir} by hand.")
    backend_module(run.backend).cleanup(run)


def clean(stale_only: bool = True, progress=None, run_id: str | None = None) -> list[str]:
    """Remove runs whose owning process is gone (or every run, or just ``run_id``); return their ids."""
    removed = []
    for run in Run.all():
        if run_id and run.id != run_id:
            continue
        if stale_only and not run_id and run.owner_alive():
            continue
        if progress:
            progress(f"removing {run.backend} run {run.id}" + (" (its owner is gone)" if stale_only else ""))
        cleanup_run(run)
        removed.append(run.id)
    return removed


__all__ = [
    "Lab",
    "LabBase",
    "LabConfig",
    "ProvisionResult",
    "PROVIDERS",
    "start_lab",
    "select_backend",
    "clean",
    "cleanup_run",
    "reference_vagrantfile",
    "backend_class",
]
