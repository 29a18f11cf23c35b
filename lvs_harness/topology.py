"""What the lab is: hosts, their roles, interfaces and provisioners, and the virtual service.

A topology is built from a Vagrantfile (see :mod:`lvs_harness.vagrantfile`): each
``config.vm.define`` is a host, each ``private_network`` an interface (``eth1``,
``eth2``, … in order, as Vagrant numbers them after the NAT ``eth0``), each shell
provisioner a script to run in that host. Machine names map to roles through glob
patterns: a pack's own (which may allow for common misspellings of its host names), else
generic ones (director*, lb*, server*, web*, client* …). The virtual services come from the
pack or the lab author, else from the running lab (see :mod:`lvs_harness.services`).

Example::

    topo = Topology.from_vagrant(recorded, vagrantfile=Path("Vagrantfile"))
    [d.name for d in topo.directors]      # ['lb1', 'lb2']
    topo.host("web1").interfaces[0].ip     # '10.77.0.31/24'
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import re
from pathlib import Path

from .errors import LabError, VagrantfileError

DIRECTOR, REAL, CLIENT, OTHER = "director", "real", "client", "other"

DEFAULT_ROLES: dict[str, tuple[str, ...]] = {
    DIRECTOR: ("balancer*", "director*", "lb*", "lvs*"),
    REAL: ("server*", "real*", "web*", "backend*", "nginx*"),
    CLIENT: ("client*",),
}


FORWARDS = {"DR": "Route", "NAT": "Masq", "TUN": "Tunnel"}  # keepalived lb_kind -> ipvsadm's word


@dataclasses.dataclass(frozen=True)
class VirtualService:
    """A load-balanced service: the VIP and port, and what is known of how it is served —
    forwarding (``Route``, ``Masq``, ``Tunnel``: ipvsadm's words), scheduler, the reals'
    weights ((address, weight) pairs) and the VRRP instance that carries the VIP. None / ():
    not known. ``source`` says where it came from (the pack, the lab author, a director's config).

    Example::

        VirtualService("10.77.0.100", 80, forward="Route", scheduler="wrr",
                       weights=(("10.77.0.31", 3), ("10.77.0.32", 1)))
    """

    vip: str
    port: int = 80
    protocol: str = "tcp"
    forward: str | None = None
    scheduler: str | None = None
    weights: tuple[tuple[str, int], ...] = ()
    instance: str | None = None
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> VirtualService:
        return cls(**{**data, "weights": tuple(tuple(w) for w in data.get("weights", ()))})


@dataclasses.dataclass(frozen=True)
class Interface:
    """One lab interface. ``ip`` carries the prefix ("10.77.0.11/24") or is None when
    the Vagrantfile leaves configuration to a provisioner (``auto_config: false``)."""

    name: str
    segment: str
    ip: str | None = None
    auto_config: bool = True


@dataclasses.dataclass(frozen=True)
class Provisioner:
    """A shell provisioner: the script text, its arguments, and where it came from."""

    script: str
    args: tuple[str, ...] | str | None = None
    name: str | None = None
    origin: str = ""


@dataclasses.dataclass(frozen=True)
class HostSpec:
    name: str
    role: str
    hostname: str
    interfaces: tuple[Interface, ...] = ()
    provisioners: tuple[Provisioner, ...] = ()

    @property
    def address(self) -> str | None:
        """The first statically configured address (without prefix), if any."""
        for iface in self.interfaces:
            if iface.ip and iface.auto_config:
                return iface.ip.split("/")[0]
        return None


@dataclasses.dataclass(frozen=True)
class Topology:
    hosts: tuple[HostSpec, ...]
    services: tuple[VirtualService, ...] = ()
    source: str = ""

    @property
    def service(self) -> VirtualService:
        """The lab's virtual service, for a lab with one (else the first of ``services``)."""
        if not self.services:
            raise LabError(
                "this lab names no virtual service and none was found in it (no keepalived "
                "virtual_server, IPVS service or VRRP address on its directors); name it with "
                "LabConfig(services=(VirtualService(vip, port),)) or in the pack."
            )
        return self.services[0]

    def with_services(self, services) -> Topology:
        return dataclasses.replace(self, services=tuple(services))

    def host(self, name: str) -> HostSpec:
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise KeyError(f"no host named {name!r} in this lab; hosts are: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def by_role(self, role: str) -> list[HostSpec]:
        return sorted((h for h in self.hosts if h.role == role), key=lambda h: h.name)

    @property
    def directors(self) -> list[HostSpec]:
        return self.by_role(DIRECTOR)

    @property
    def reals(self) -> list[HostSpec]:
        return self.by_role(REAL)

    @property
    def clients(self) -> list[HostSpec]:
        return self.by_role(CLIENT)

    @property
    def segments(self) -> list[str]:
        seen: list[str] = []
        for h in self.hosts:
            for i in h.interfaces:
                if i.segment not in seen:
                    seen.append(i.segment)
        return seen

    @classmethod
    def from_dict(cls, data: dict) -> Topology:
        """The inverse of ``dataclasses.asdict(topology)`` (as sent by a lab keeper)."""

        def prov(p: dict) -> Provisioner:
            return Provisioner(**{**p, "args": tuple(p["args"]) if isinstance(p["args"], list) else p["args"]})

        return cls(
            hosts=tuple(
                HostSpec(
                    name=h["name"],
                    role=h["role"],
                    hostname=h["hostname"],
                    interfaces=tuple(Interface(**i) for i in h["interfaces"]),
                    provisioners=tuple(prov(p) for p in h["provisioners"]),
                )
                for h in data["hosts"]
            ),
            services=tuple(VirtualService.from_dict(v) for v in data.get("services", ())),
            source=data["source"],
        )

    @classmethod
    def from_vagrant(
        cls, recorded: dict, *, vagrantfile: Path, roles: dict | None = None, services: tuple[VirtualService, ...] = ()
    ) -> Topology:
        """Build a topology from what ``vagrant_eval.rb`` recorded of a Vagrantfile."""
        where = str(vagrantfile)
        configs = recorded.get("configs") or []
        if not configs:
            raise VagrantfileError(
                f"{where} never calls Vagrant.configure, so it defines no machines; "
                "wrap the machines in `Vagrant.configure(\"2\") do |config| … end`."
            )
        if not any(c["defines"] for c in configs):
            raise VagrantfileError(
                f"{where} names no machines; define each lab host with `config.vm.define \"director1\" do |m| … end`."
            )
        # Vagrant merges every Vagrant.configure block: top-level settings apply to all machines,
        # and a machine defined again (in a later block) gets the later networks and provisioners too
        top = {"networks": [], "provisioners": [], "hostname": None}
        machines: dict[str, dict] = {}
        for config in configs:
            top["networks"] += config["vm"]["networks"]
            top["provisioners"] += config["vm"]["provisioners"]
            top["hostname"] = config["vm"].get("hostname") or top["hostname"]
            for define in config["defines"]:
                vm = define["vm"]
                m = machines.setdefault(define["name"], {"networks": [], "provisioners": [], "hostname": None})
                m["networks"] += vm["networks"]
                m["provisioners"] += vm["provisioners"]
                m["hostname"] = vm.get("hostname") or m["hostname"]
        hosts = []
        for name, vm in machines.items():
            provs = top["provisioners"] + vm["provisioners"]
            interfaces = _interfaces(top["networks"] + vm["networks"])
            hosts.append(
                HostSpec(
                    name=name,
                    role=role_for(name, roles, tuple(_addresses(interfaces, provs))),
                    hostname=vm["hostname"] or top["hostname"] or name,
                    interfaces=interfaces,
                    provisioners=tuple(
                        _provisioner(p, name, i + 1, vagrantfile)
                        for i, p in enumerate(provs)
                        if p.get("run") != "never"
                    ),
                )
            )
        return cls(hosts=tuple(hosts), services=tuple(services), source=where)


def role_for(name: str, roles: dict | None = None, addresses: tuple[str, ...] = ()) -> str:
    """The role of a machine under ``roles`` (role -> glob patterns), else the generic defaults.
    ``roles["by_function"]`` ({"directors": names, "reals": addresses}) decides by what the machine
    does instead: a director by name, a real by its address, any other machine is a client."""
    function = (roles or {}).get("by_function")
    if function:
        if name in function.get("directors", ()):
            return DIRECTOR
        if set(addresses) & set(function.get("reals", ())):
            return REAL
        if function.get("reals"):
            return CLIENT
        by_name = role_for(name, {k: v for k, v in roles.items() if k != "by_function"} or None)
        return CLIENT if by_name == DIRECTOR else by_name  # no real addresses known: reals by name
    table = roles or DEFAULT_ROLES
    for role, patterns in table.items():
        if isinstance(patterns, str):
            patterns = (patterns,)
        if any(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns):
            return role
    return OTHER


def _addresses(interfaces, provisioners) -> list[str]:
    """A machine's addresses: its static ones, and those its provisioners' arguments give
    (``ip addr add $2`` with ``args: [name, "10.77.0.31/24"]``, as the course skeleton does)."""
    found = [i.ip.split("/")[0] for i in interfaces if i.ip]
    for p in provisioners:
        args = p.get("args")
        for a in args if isinstance(args, list) else [args] if args else []:
            m = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+)(?:/\d+)?", str(a))
            if m:
                found.append(m[1])
        found += re.findall(r"\baddr(?:ess)? add (\d+\.\d+\.\d+\.\d+)", str(p.get("inline") or ""))
    return found


def _segment(opts: dict) -> str:
    intnet = opts.get("virtualbox__intnet")
    if intnet:
        return "intnet" if intnet is True else str(intnet)
    if opts.get("libvirt__network_name"):
        return str(opts["libvirt__network_name"])
    if opts.get("ip"):
        net = ipaddress.ip_network(f"{opts['ip']}/{_prefix(opts)}", strict=False)
        return f"hostonly-{net.network_address}"
    return "default"


def _prefix(opts: dict) -> int:
    mask = opts.get("netmask", "255.255.255.0")
    if isinstance(mask, int) or str(mask).isdigit():
        return int(mask)
    return ipaddress.ip_network(f"0.0.0.0/{mask}").prefixlen


def _interfaces(networks: list[dict]) -> tuple[Interface, ...]:
    ifaces = []
    for net in networks:
        if net["type"] != "private_network":
            continue  # forwarded_port / public_network are about the host, not the lab segment
        opts = net["options"]
        ip = opts.get("ip")
        ifaces.append(
            Interface(
                # lvs_harness__interface: a lab built in a student's terms names the link as their config does
                name=str(opts.get("lvs_harness__interface") or f"eth{len(ifaces) + 1}"),
                segment=_segment(opts),
                ip=f"{ip}/{_prefix(opts)}" if ip and opts.get("type") != "dhcp" else None,
                auto_config=opts.get("auto_config", True) is not False,
            )
        )
    return tuple(ifaces)


def _provisioner(rec: dict, machine: str, index: int, vagrantfile: Path) -> Provisioner:
    origin = f"{vagrantfile.name}, machine {machine}, provisioner {index}"
    if rec["type"] != "shell":
        raise VagrantfileError(
            f"{vagrantfile} gives machine {machine} a {rec['type']!r} provisioner; lvs-harness runs "
            "shell provisioners only (`provision \"shell\", inline: …` or `path: …`)."
        )
    if rec.get("inline") is not None:
        script = str(rec["inline"])
    elif rec.get("path"):
        base = vagrantfile.parent.resolve()
        path = (base / rec["path"]).resolve()
        if base not in path.parents:
            raise VagrantfileError(
                f"{vagrantfile}: provisioner path {rec['path']!r} of {machine} points "
                "outside the Vagrantfile's folder; keep provisioning scripts beside it."
            )
        try:
            script = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise VagrantfileError(
                f"{vagrantfile}: cannot read provisioner script {rec['path']!r} of "
                f"{machine} ({err.strerror if isinstance(err, OSError) else err}); "
                "put the script beside the Vagrantfile."
            ) from None
        origin += f" ({rec['path']})"
    else:
        raise VagrantfileError(
            f"{vagrantfile}: a shell provisioner of {machine} has neither `inline:` nor `path:`; give it one of them."
        )
    args = rec.get("args")
    if isinstance(args, list):
        args = tuple(str(a) for a in args)
    elif args is not None:
        args = str(args)
    return Provisioner(script=script, args=args, name=rec.get("name"), origin=origin)
