"""lvs-harness: stand up, check and grade keepalived + IPVS direct-routing labs on real kernels.

Example::

    from lvs_harness import LabConfig, start_lab
    with start_lab(LabConfig(backend="uml")) as lab:
        print(lab.hosts["client"].check("curl -s 10.77.0.100").stdout)
"""

from .commands import CommandResult
from .errors import CommandFailed, HarnessError, LabError, VagrantfileError
from .hosts import Host
from .labs import LabConfig, clean, start_lab
from .topology import HostSpec, Interface, Topology, VirtualService

__all__ = [
    "CommandResult",
    "CommandFailed",
    "HarnessError",
    "LabError",
    "VagrantfileError",
    "Host",
    "LabConfig",
    "clean",
    "start_lab",
    "HostSpec",
    "Interface",
    "Topology",
    "VirtualService",
]
