"""The diagnosis of a failed check (``lvs_harness.diagnosis``): from what the lab's commands print,
the first broken link on the request's path and its fix, in one sentence. Hosts here answer with
recorded outputs of the real commands (tests/data/ipvsadm, tests/data/ip); the graded batches
(tests/test_grade.py) check the sentences on live labs."""

from __future__ import annotations

from pathlib import Path

from lvs_harness import diagnosis
from lvs_harness.commands import CommandResult
from lvs_harness.keepalived import VrrpInstance

DATA = Path(__file__).parent / "data"
LIST = (DATA / "ipvsadm" / "after-50-list.txt").read_text()
VIP, CLIENT = "172.28.128.200", "172.28.128.50"


class Host:
    """A lab host that answers each command from a table (prefix → output)."""

    def __init__(self, name: str, answers: dict[str, str]):
        self.name, self.answers = name, answers

    def run(self, command: str, **_) -> CommandResult:
        for prefix, out in self.answers.items():
            if command.startswith(prefix):
                return CommandResult(command, 0, out, "", 0.0)
        return CommandResult(command, 1, "", f"{command}: not recorded", 0.0)

    check = run


def addrs(*lines: str) -> str:
    return "".join(f"{n}: {iface}    inet {a} scope global {iface}\\       valid_lft forever\n"
                   for n, (iface, a) in enumerate((line.split() for line in lines), 1))


def real(name: str, rip: str, vip_line: str | None = f"lo {VIP}/32", route: str = f"{CLIENT} from {VIP} dev eth1"):
    return Host(name, {"ip -o addr show": addrs("lo 127.0.0.1/8", *([vip_line] if vip_line else []), f"eth1 {rip}/24"),
                       f"ip route get {CLIENT}": route})


def lab(list_text: str = LIST, **reals):
    holder = Host("balancer1", {"ipvsadm -Ln": list_text,
                                "ip -o addr show": addrs("eth1 172.28.128.10/24", f"eth1 {VIP}/32")})
    servers = [reals.get("server1") or real("server1", "172.28.128.30"),
               reals.get("server2") or real("server2", "172.28.128.40")]
    return dict(client_ip=CLIENT, holder=holder, reals=servers, vip=VIP, port=80, directors=[holder])


def sentence(**kw) -> str | None:
    finding = diagnosis.explain(diagnosis.dr_path, **kw)
    return finding.sentence if finding else None


def test_a_working_path_has_no_diagnosis():
    assert sentence(**lab(), by_real={"server1": 25, "server2": 25}) is None


def test_no_ipvs_service_on_the_holder():
    said = sentence(**lab(list_text=LIST.split("TCP ")[0]))
    assert said.startswith("balancer1 holds the VIP 172.28.128.200 but has no IPVS service for 172.28.128.200:80")


def test_a_real_without_the_vip_drops_the_requests():
    said = sentence(**lab(server1=real("server1", "172.28.128.30", vip_line=None)))
    assert said.startswith("server1 receives the client's requests for 172.28.128.200 from balancer1 but drops them: "
                           "the VIP is not one of its addresses — add it to lo as /32")


def test_the_vip_as_slash_24_on_lo_routes_the_answer_into_lo():
    wide = real("server2", "172.28.128.40", vip_line=f"lo {VIP}/24", route=f"local {CLIENT} from {VIP} dev lo")
    assert sentence(**lab(server2=wide)) == (
        "server2 answers, but its reply to 172.28.128.50 is routed through lo: the VIP as /24 on lo makes the whole "
        "lab network local there — use /32")


def test_masquerading_while_the_reals_answer_the_client_directly():
    masq = LIST.replace("Route", "Masq  ")
    said = sentence(**lab(list_text=masq, server1=real("server1", "172.28.128.30",
                                                        route=f"{CLIENT} dev eth1 src 172.28.128.30")))
    assert said.startswith("IPVS rewrites requests to the real's address (masquerading) but server1 answers the "
                           "client directly, not through balancer1: use direct routing (-g)")


def test_a_persistent_service_sends_one_client_to_one_real():
    persistent = LIST.replace("172.28.128.200:80 rr", "172.28.128.200:80 rr persistent 9600")
    assert sentence(**lab(list_text=persistent), by_real={"server1": 50}).startswith(
        "all 50 requests went to server1: the service is persistent (persistence_timeout 9600)")


def test_two_masters_that_announce_different_router_ids():
    both = [Host(n, {"ip -o addr show": addrs(f"eth1 172.28.128.{o}/24", f"eth1 {VIP}/32")})
            for n, o in (("balancer1", 10), ("balancer2", 20))]
    finding = diagnosis.explain(diagnosis.vrrp_owners, directors=both, vip=VIP, instances={
        "balancer1": VrrpInstance("VI_1", virtual_router_id=33, interface="eth1"),
        "balancer2": VrrpInstance("VI_1", virtual_router_id=34, interface="eth1")})
    assert finding.sentence.startswith("balancer1 and balancer2 are both MASTER: they announce virtual_router_id 33 "
                                       "and 34, so neither hears the other")
    assert "ip -o addr show   # on balancer2" in finding.evidence


def test_looking_never_breaks_a_check():
    def broken(**_):
        raise RuntimeError("the guest stopped answering")
    assert diagnosis.explain(broken) is None


def test_health_checks_unanswered_through_lo_empty_the_service():
    empty = LIST.split("  -> 172.28.128.30")[0]
    wide = {f"server{n}": Host(f"server{n}", {"ip -o addr show": addrs("lo 127.0.0.1/8", f"lo {VIP}/24",
                                                                      f"eth1 172.28.128.{n}0/24"),
                                               "ip route get 172.28.128.10": "local 172.28.128.10 dev lo"})
            for n in (3, 4)}
    said = sentence(**lab(list_text=empty, server1=wide["server3"], server2=wide["server4"]))
    assert said.startswith("balancer1's IPVS service for 172.28.128.200:80 has no reals: its health checks get no "
                           "answer from server3, whose replies to 172.28.128.10 are routed through lo — the VIP as /24")
    plain = sentence(**lab(list_text=empty))
    assert plain.startswith("balancer1's IPVS service for 172.28.128.200:80 has no reals (its health checks may")
