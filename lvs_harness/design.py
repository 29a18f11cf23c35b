"""The lab in the student's terms: what a write-up without a Vagrantfile describes, built to fit it.

A :class:`Design` holds the student's parameters — host names, the VIP, the subnet, the interface
each config names — and the parts the harness had to build because the write-up did not show them
(each with a note). :meth:`Design.vagrantfile` renders it as a Vagrantfile that the lab evaluates
like any other; its private networks carry ``lvs_harness__interface`` so that a host's lab link is
named as the student's config names it (``eth0``, ``enp0s3``), which only the embedded labs honour.

Example::

    d = Design(vip="10.77.0.100", prefix=24, directors={"lb1": "eth0", "lb2": "eth0"},
               reals={"web1": "10.77.0.31", "web2": "10.77.0.32"})
    d.allocate()                    # addresses for the directors and the client, off the VIP's subnet
    print(d.vagrantfile())
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json

DR_SETUP = (
    "ip addr replace {vip}/32 dev lo label lo:vip",
    "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2",
)


@dataclasses.dataclass
class Design:
    vip: str
    prefix: int = 24
    directors: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> lab interface
    reals: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> address
    client: str = "client"
    addresses: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> address (all hosts)
    interfaces: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> lab interface (all hosts)
    built: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # host -> commands the harness adds
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(f"{self.vip}/{min(self.prefix, 30) if self.prefix >= 16 else 24}", strict=False)

    @property
    def hosts(self) -> list[str]:
        return [*self.directors, *self.reals, self.client]

    def allocate(self) -> None:
        """Give every host an address on the VIP's subnet: the ones the student named, then free ones."""
        self.addresses.update(self.reals)
        taken = {self.vip, *self.addresses.values()}
        free = (str(a) for a in self.network.hosts() if str(a) not in taken and int(a) % 256 % 10 == 0 and int(a) % 256)
        spare = (str(a) for a in self.network.hosts() if str(a) not in taken)
        for name in self.hosts:
            if name not in self.addresses:
                self.addresses[name] = next(free, None) or next(spare)
                taken.add(self.addresses[name])
        common = set(self.directors.values())
        default = common.pop() if len(common) == 1 else "eth1"
        for name in self.hosts:
            self.interfaces.setdefault(name, self.directors.get(name) or default)

    def vagrantfile(self) -> str:
        """The lab as a Vagrantfile (machines, the lab network, the parts the harness built)."""
        mask = str(self.network.netmask)
        lines = [
            "# The lab of a write-up without a Vagrantfile, built by lvs-harness in the student's terms:",
            "# their host names, VIP, subnet and interface names; what the write-up did not show is",
            "# built to fit and listed in the report.",
            'Vagrant.configure("2") do |config|',
        ]
        for name in self.hosts:
            lines += [
                f"  config.vm.define {json.dumps(name)} do |m|",
                f"    m.vm.hostname = {json.dumps(name)}",
                f'    m.vm.network "private_network", ip: {json.dumps(self.addresses[name])}, netmask: '
                f'{json.dumps(mask)}, lvs_harness__interface: {json.dumps(self.interfaces[name])}',
            ]
            if self.built.get(name):
                script = "\n".join(self.built[name]) + "\n"
                lines.append(f'    m.vm.provision "shell", name: "built by lvs-harness", inline: {json.dumps(script)}')
            lines.append("  end")
        lines.append("end")
        return "\n".join(lines) + "\n"
