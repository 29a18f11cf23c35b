"""Lab backends, chosen by name from one small registry.

Example::

    from lvs_harness.labs import LabConfig, start_lab
    with start_lab(LabConfig(backend="auto")) as lab:
        print(lab.NAME, lab.hosts["balancer1"].check("hostname").stdout)
"""

from __future__ import annotations

import dataclasses

from ..errors import HarnessError, LabError
from ..runs import Run
from ..vagrantfile import read_vagrantfile
from . import netns, remote, uml, vagrant
from .base import Lab, LabConfig, ProvisionResult, reference_vagrantfile

BACKENDS = {"uml": uml, "netns": netns, "vagrant": vagrant}
CHOICES = ("auto", "uml", "netns", "vagrant")
_LABS = {"uml": uml.UmlLab, "netns": netns.NetnsLab, "vagrant": vagrant.VagrantLab}


def select_backend(name: str) -> tuple[str, str]:
    """(backend, why): ``auto`` picks netns where this kernel has IPVS and we are root, else uml."""
    if name not in CHOICES:
        raise LabError(f"unknown lab backend {name!r}; choose one of {', '.join(CHOICES)}.")
    if name != "auto":
        return name, "chosen with --lab"
    ok, why = netns.available()
    if ok:
        return "netns", why
    ok_uml, why_uml = uml.available()
    if ok_uml:
        return "uml", f"{why}, so using the {why_uml}"
    raise LabError(f"no lab backend can run here: {why}, and {why_uml}")


def start_lab(config: LabConfig | None = None, provision: bool = True) -> Lab:
    """Bring a lab up (a context manager: leaving the ``with`` block tears it down).

    Stale runs left by killed processes are removed first. With ``config.keep`` the lab is
    held by a keeper process, so it outlives this one (``lvs-harness exec/status/down``).
    """
    config = config or LabConfig()
    read_vagrantfile(config.vagrantfile_file)   # a bad path fails before anything starts
    backend, why = select_backend(config.backend)
    if config.backend == "auto":
        config.progress(f"lab backend: {backend} ({why})")
    clean(stale_only=True, progress=config.progress)
    config = dataclasses.replace(config, backend=backend)
    if config.keep:
        run_id = remote.spawn(dataclasses.replace(config, keep=False), provision=provision)
        return remote.RemoteLab(Run.load(run_id), keep=True, progress=config.progress)
    return _LABS[backend].start(config, provision=provision)


def cleanup_run(run: Run) -> None:
    module = BACKENDS.get(run.backend)
    if module is None:
        raise HarnessError(f"run {run.id} was made by an unknown backend {run.backend!r}; "
                           f"remove {run.dir} by hand.")
    module.cleanup(run)


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


__all__ = ["Lab", "LabConfig", "ProvisionResult", "start_lab", "select_backend", "clean", "cleanup_run",
           "reference_vagrantfile"]
