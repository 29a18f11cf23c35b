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


CAPTURE = "d=$(mktemp -d)"  # how diagnosis.capture_adverts starts its command
LISTENING = "tcpdump: listening on eth1, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"


class Host:
    """A lab host that answers each command from a table (prefix → output); a capture ends as the
    real one does: the adverts on stdout, tcpdump's banner on stderr."""

    def __init__(self, name: str, answers: dict[str, str]):
        self.name, self.answers = name, answers

    def run(self, command: str, **_) -> CommandResult:
        for prefix, out in self.answers.items():
            if command.startswith(prefix):
                if isinstance(out, list):  # answered in turn (the last answer stays)
                    out = out.pop(0) if len(out) > 1 else out[0]
                if prefix == CAPTURE:
                    return CommandResult(command, 0, out, LISTENING, 0.0)
                return CommandResult(command, 0, out, "", 0.0)
        return CommandResult(command, 1, "", "not recorded", 0.0)

    check = run


def addrs(*lines: str) -> str:
    return "".join(
        f"{n}: {iface}    inet {a} scope global {iface}\\       valid_lft forever\n"
        for n, (iface, a) in enumerate((line.split() for line in lines), 1)
    )


def real(name: str, rip: str, vip_line: str | None = f"lo {VIP}/32", route: str = f"{CLIENT} from {VIP} dev eth1"):
    return Host(
        name,
        {
            "ip -o addr show": addrs("lo 127.0.0.1/8", *([vip_line] if vip_line else []), f"eth1 {rip}/24"),
            f"ip route get {CLIENT}": route,
        },
    )


def lab(list_text: str = LIST, **reals):
    holder = Host(
        "balancer1", {"ipvsadm -Ln": list_text, "ip -o addr show": addrs("eth1 172.28.128.10/24", f"eth1 {VIP}/32")}
    )
    servers = [
        reals.get("server1") or real("server1", "172.28.128.30"),
        reals.get("server2") or real("server2", "172.28.128.40"),
    ]
    return dict(client_ip=CLIENT, holder=holder, reals=servers, vip=VIP, port=80, directors=[holder])


def sentence(**kw) -> str | None:
    finding = diagnosis.explain(diagnosis.dr_path, **kw)
    return finding.sentence if finding else None


def test_a_working_path_has_no_diagnosis():
    assert sentence(**lab(), by_real={"server1": 25, "server2": 25}) is None


def test_no_ipvs_service_on_the_holder():
    said = sentence(**lab(list_text=LIST.split("TCP ")[0]))
    assert said.startswith("balancer1 holds the VIP 172.28.128.200 but has no IPVS service for 172.28.128.200:80")
    backup = lab(list_text=LIST.split("TCP ")[0])
    backup["holder"].answers["ip -o addr show"] = addrs("eth1 172.28.128.20/24")
    assert sentence(**backup).startswith(
        "balancer1 has no IPVS service for 172.28.128.200:80, so holding the VIP it "
        "forwards nothing — define the virtual_server"
    )


def test_a_real_without_the_vip_drops_the_requests():
    said = sentence(**lab(server1=real("server1", "172.28.128.30", vip_line=None)))
    assert said.startswith(
        "server1 receives the client's requests for 172.28.128.200 from balancer1 but drops them: "
        "the VIP is not one of its addresses — add it to lo as /32"
    )


def test_the_vip_as_slash_24_on_lo_routes_the_answer_into_lo():
    wide = real("server2", "172.28.128.40", vip_line=f"lo {VIP}/24", route=f"local {CLIENT} from {VIP} dev lo")
    assert sentence(**lab(server2=wide)) == (
        "server2 answers, but its reply to 172.28.128.50 is routed through lo: the VIP as /24 on lo makes the whole "
        "lab network local there — use /32"
    )
    assert diagnosis.dr_real(real=wide, vip=VIP, client_ip=CLIENT, interface="eth1").cause.startswith(
        "server2 answers, but its reply"
    )


def test_masquerading_while_the_reals_answer_the_client_directly():
    masq = LIST.replace("Route", "Masq  ")
    said = sentence(
        **lab(list_text=masq, server1=real("server1", "172.28.128.30", route=f"{CLIENT} dev eth1 src 172.28.128.30"))
    )
    assert said.startswith(
        "IPVS rewrites requests to the real's address (masquerading) but server1 answers the "
        "client directly, not through balancer1 — use direct routing (-g)"
    )


def test_a_persistent_service_sends_one_client_to_one_real():
    persistent = LIST.replace("172.28.128.200:80 rr", "172.28.128.200:80 rr persistent 9600")
    assert sentence(**lab(list_text=persistent), by_real={"server1": 50}).startswith(
        "all 50 requests went to server1: the service is persistent (persistence_timeout 9600)"
    )


def director(name: str, octet: int, *extra: str, adverts: str = "", log: str = "") -> Host:
    host = Host(name, {"ip -o addr show": addrs(f"eth1 172.28.128.{octet}/24", *extra), CAPTURE: adverts})
    host.log = lambda service: log
    return host


def advert(src: str, vrid: int, prio: int, addrs: str = VIP, auth: str = "authtype none", tail: str = "") -> str:
    """A VRRP advert as ``tcpdump -n -v`` prints it (two lines)."""
    return (
        f"20:38:08.216712 IP (tos 0xc0, ttl 255, id 5, offset 0, flags [none], proto VRRP (112), length 40)\n"
        f"    {src} > 224.0.0.18: VRRPv2, Advertisement, vrid {vrid}, prio {prio}, {auth}, intvl 1s, length 20, "
        f"addrs: {addrs}{tail}\n"
    )


def vrrp_sentence(directors, expected=None, **instances) -> str | None:
    finding = diagnosis.explain(
        diagnosis.vrrp_path,
        directors=directors,
        vip=VIP,
        expected=expected,
        lab_if={d.name: "eth1" for d in directors},
        instances=instances,
    )
    return finding.sentence if finding else None


def test_adverts_as_tcpdump_prints_them():
    text = (
        advert("172.28.128.10", 51, 150)
        + advert("172.28.128.20", 52, 100, "172.28.128.201,172.28.128.202")
        + advert("172.28.128.20", 52, 100, "", auth="authtype simple", tail=' auth "secret"')
    )
    assert diagnosis.parse_adverts(text) == [
        diagnosis.Advert("172.28.128.10", 51, 150, (VIP,), "none"),
        diagnosis.Advert("172.28.128.20", 52, 100, ("172.28.128.201", "172.28.128.202"), "none"),
        diagnosis.Advert("172.28.128.20", 52, 100, (), 'simple secret'),
    ]


def test_two_masters_that_announce_different_router_ids():
    heard = advert("172.28.128.10", 51, 150) + advert("172.28.128.20", 52, 100)
    both = [director("balancer1", 10, f"eth1 {VIP}/32", adverts=heard), director("balancer2", 20, f"eth1 {VIP}/32")]
    said = vrrp_sentence(
        both,
        both[0],
        balancer1=VrrpInstance("VI_1", virtual_router_id=33),
        balancer2=VrrpInstance("VI_1", virtual_router_id=34),
    )
    assert said.startswith(
        "balancer1 and balancer2 are both MASTER: they announce virtual_router_id 51 and 52, so "
        "neither hears the other — use one virtual_router_id"
    )  # the adverts, not the configs
    # no capture (no tcpdump there): what keepalived runs
    blind = [director("balancer1", 10, f"eth1 {VIP}/32"), director("balancer2", 20, f"eth1 {VIP}/32")]
    for d in blind:
        del d.answers[CAPTURE]
    assert "virtual_router_id 33 and 34" in vrrp_sentence(
        blind,
        None,
        balancer1=VrrpInstance("VI_1", virtual_router_id=33),
        balancer2=VrrpInstance("VI_1", virtual_router_id=34),
    )
    alone = [director("balancer1", 10, f"eth1 {VIP}/32"), director("balancer2", 20)]
    assert vrrp_sentence(alone, None) is None and vrrp_sentence(alone, alone[0]) is None


def test_a_master_that_announces_another_address_or_none():
    wrong = [
        director("balancer1", 10),
        director("balancer2", 20, "eth1 172.28.128.201/32", adverts=advert("172.28.128.20", 51, 100, "172.28.128.201")),
    ]
    assert vrrp_sentence(wrong, wrong[1]) == (
        "balancer2 is MASTER (it announces virtual_router_id 51) but its adverts carry 172.28.128.201, not "
        "172.28.128.200: its virtual_ipaddress names another address — put 172.28.128.200 in virtual_ipaddress on "
        "every director"
    )
    log = (
        "2026-12-06 20:01:02.106455 Sun Dec  6 20:01:02 2026: (VI_1) No VIP specified; at least one is sensible\n"
        "2026-12-06T20:01:02.125807+0000 balancer1 Keepalived_vrrp[88]: (VI_1) No VIP specified; at least one is "
        "sensible\n"
    )
    none = [director("balancer1", 10, adverts=advert("172.28.128.10", 51, 150, ""), log=log), director("balancer2", 20)]
    assert vrrp_sentence(none, none[0]).startswith(
        "balancer1 is MASTER (it announces virtual_router_id 51) but announces no address: keepalived runs its "
        "instance without a virtual_ipaddress (its log: (VI_1) No VIP specified; at least one is sensible) — fix the "
        "virtual_ipaddress block"
    )


def test_a_masters_advert_missed_by_one_window_is_listened_for_again():
    """balancer1 announces no address and balancer2 (hearing no valid advert) holds the VIP; one
    capture caught balancer2's advert only, keepalived's log says balancer1 is MASTER: listen again."""
    log = "2026-12-06 20:01:03.5 Sun Dec  6 20:01:03 2026: (VI_1) Entering MASTER STATE\n"
    lab_ = [
        director(
            "balancer1", 10, adverts=[advert("172.28.128.20", 51, 100), advert("172.28.128.10", 51, 150, "")], log=log
        ),
        director("balancer2", 20, f"eth1 {VIP}/32"),
    ]
    assert vrrp_sentence(lab_, lab_[0], balancer1=VrrpInstance("VI_1", virtual_router_id=51, priority=150)).startswith(
        "balancer1 is MASTER (it announces virtual_router_id 51) but announces no address"
    )


def test_a_director_whose_instance_has_no_address_never_holds_the_vip():
    """Not heard at all (keepalived sends no adverts for it here), but its own log says why."""
    log = "2026-12-06 20:01:02.1 Sun Dec  6 20:01:02 2026: (VI_1) No VIP specified; at least one is sensible\n"
    lab_ = [
        director("balancer1", 10, adverts=advert("172.28.128.20", 51, 100), log=log),
        director("balancer2", 20, f"eth1 {VIP}/32"),
    ]
    assert vrrp_sentence(lab_, lab_[0], balancer1=VrrpInstance("VI_1", virtual_router_id=51, priority=150)) == (
        "balancer1 never holds 172.28.128.200: keepalived runs its instance without a virtual_ipaddress (its log: "
        "(VI_1) No VIP specified; at least one is sensible) — fix the virtual_ipaddress block in its configuration "
        "(see config_valid)"
    )


def test_a_master_that_does_not_come_back():
    heard = advert("172.28.128.20", 51, 100)
    lab_ = [director("balancer1", 10, adverts=heard), director("balancer2", 20, f"eth1 {VIP}/32")]
    assert vrrp_sentence(lab_, lab_[0], balancer1=VrrpInstance("VI_1", virtual_router_id=51, priority=100)) == (
        "balancer2 keeps announcing priority 100 and balancer1's is 100: a backup takes the VIP only from a lower "
        "priority — give balancer1 a higher priority than balancer2"
    )
    assert vrrp_sentence(
        lab_, lab_[0], balancer1=VrrpInstance("VI_1", virtual_router_id=51, priority=150, nopreempt=True)
    ).startswith(
        "balancer1 (priority 150) hears balancer2's adverts at priority 100 but stays BACKUP: it is set nopreempt"
    )
    silent = [director("balancer1", 10), director("balancer2", 20)]
    assert vrrp_sentence(silent, silent[0], balancer1=VrrpInstance("VI_1")).startswith(
        "no director announces VRRP on balancer1's eth1"
    )
    del silent[0].answers[CAPTURE]  # nothing could be captured: nothing is claimed
    assert vrrp_sentence(silent, silent[0], balancer1=VrrpInstance("VI_1")) is None


def test_a_real_that_answers_arp_for_the_vip():
    leaky = Host(
        "server2",
        {
            "ip -o addr show": addrs("lo 127.0.0.1/8", f"lo {VIP}/32", "eth1 172.28.128.40/24"),
            "sysctl -n": "0\n0\n0\n0\n",
        },
    )
    assert diagnosis.arp_leak(real=leaky, vip=VIP, interface="eth1").sentence == (
        "server2 answers the client's ARP for 172.28.128.200: the VIP is one of its addresses and its ARP suppression "
        "is off on eth1 (arp_ignore 0, arp_announce 0) — set net.ipv4.conf.all.arp_ignore=1 and "
        "net.ipv4.conf.all.arp_announce=2 on it"
    )
    leaky.answers["sysctl -n"] = "1\n0\n2\n0\n"  # all=1/2, eth1=0/0: the kernel takes the larger
    assert diagnosis.arp_leak(real=leaky, vip=VIP, interface="eth1") is None


def test_a_split_that_follows_or_ignores_the_weights():
    wrr = LIST.replace("172.28.128.200:80 rr", "172.28.128.200:80 wrr").replace("Route   1", "Route   3", 1)
    assert sentence(**lab(list_text=wrr), by_real={"server1": 37, "server2": 13}) == (
        "the split follows the weights: the scheduler is wrr and the reals' weights are 3 (server1) and 1 (server2) "
        "— use lb_algo rr (round robin ignores weights), or equal weights"
    )
    assert sentence(**lab(list_text=wrr), by_real={"server1": 25, "server2": 25}) is None
    rr = LIST.replace("Route   1", "Route   3", 1)
    assert sentence(
        **lab(list_text=rr),
        by_real={"server1": 25, "server2": 25},
        want="weighted",
        weights={"server1": 3, "server2": 1},
    ).startswith("the split ignores the weights: the scheduler is rr")
    assert sentence(
        **lab(), by_real={"server1": 50}, want="weighted", weights={"server1": 1, "server2": 1, "server3": 1}
    ).startswith("server3 is not in the IPVS service for 172.28.128.200:80, so it gets no requests")


def test_looking_never_breaks_a_check():
    def broken(**_):
        raise RuntimeError("the guest stopped answering")

    assert diagnosis.explain(broken) is None
    measured = {}
    assert diagnosis.diagnose(lambda k, v: measured.__setitem__(k, v), broken) is None
    assert measured["diagnosis_error"] == "RuntimeError: the guest stopped answering" and "diagnosis" not in measured


def test_health_checks_unanswered_through_lo_empty_the_service():
    empty = LIST.split("  -> 172.28.128.30")[0]
    wide = {
        f"server{n}": Host(
            f"server{n}",
            {
                "ip -o addr show": addrs("lo 127.0.0.1/8", f"lo {VIP}/24", f"eth1 172.28.128.{n}0/24"),
                "ip route get 172.28.128.10": "local 172.28.128.10 dev lo",
            },
        )
        for n in (3, 4)
    }
    said = sentence(**lab(list_text=empty, server1=wide["server3"], server2=wide["server4"]))
    assert said.startswith(
        "balancer1's IPVS service for 172.28.128.200:80 has no reals: its health checks get no "
        "answer from server3, whose replies to 172.28.128.10 are routed through lo: the VIP as /24"
    )
    plain = sentence(**lab(list_text=empty))
    assert plain.startswith("balancer1's IPVS service for 172.28.128.200:80 has no reals (its health checks may")
