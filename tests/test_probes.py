"""Probe parsers on real outputs: keepalived logs, ip, arping, keepalived.conf, and the client's request loop."""

from __future__ import annotations

import datetime as dt
import http.server
import re
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from lvs_harness import keepalived
from lvs_harness.probes import arp, client, vrrp
from support import EXAMPLE, example_parts

DATA = Path(__file__).parent / "data"


def test_transitions_from_the_lab_log():
    b1 = vrrp.parse_transitions((DATA / "keepalived" / "balancer1-failover.log").read_text())
    assert [(t.instance, t.state, t.init) for t in b1] == [
        ("VI_1", "BACKUP", True),
        ("VI_1", "MASTER", False),
        ("VI_1", "FAULT", False),
        ("VI_1", "BACKUP", False),
        ("VI_1", "MASTER", False),
    ]
    assert b1[0].time == dt.datetime(2026, 11, 26, 12, 55, 22, 213655)
    b2 = vrrp.parse_transitions((DATA / "keepalived" / "balancer2-failover.log").read_text())
    assert [t.state for t in b2] == ["BACKUP", "MASTER", "BACKUP"]
    # failover: balancer1 FAULT at 26.246 → balancer2 MASTER at 29.235
    assert (b2[1].time - b1[2].time).total_seconds() == pytest.approx(2.989, abs=0.001)


def test_transitions_from_the_example_submissions_syslog():
    if not EXAMPLE.is_file():
        pytest.skip(f"the example submission is not at {EXAMPLE}")
    lines = [ln for ln in EXAMPLE.read_text().splitlines() if "Keepalived_vrrp" in ln]
    got = vrrp.parse_transitions("\n".join(lines), year=2023)
    assert [t.state for t in got][:4] == ["BACKUP", "MASTER", "FAULT", "BACKUP"]
    assert got[0].time == dt.datetime(2023, 5, 25, 12, 31, 18) and got[0].init


def test_addresses_and_vip_holding():
    b1 = vrrp.parse_addresses((DATA / "ip" / "balancer1-addr.txt").read_text())
    assert b1["eth1"][:2] == ["172.28.128.10/24", "172.28.128.200/32"]
    assert vrrp.holds(b1, "172.28.128.200") == ["eth1"]
    s1 = vrrp.parse_addresses((DATA / "ip" / "server1-addr.txt").read_text())
    assert vrrp.holds(s1, "172.28.128.200") == ["lo"] and vrrp.holds(s1, "172.28.128.200", ("eth1",)) == []


def test_arp_replies_and_macs():
    replies = arp.parse_arping((DATA / "ip" / "client-arping-vip-broken-real.txt").read_text())
    assert replies == ["52:7c:fd:16:95:31", "a2:1a:e5:55:0b:0b"]
    assert arp.parse_link_macs((DATA / "ip" / "server2-link.txt").read_text()) == {"eth1": "52:7c:fd:16:95:31"}
    assert arp.parse_link_macs((DATA / "ip" / "balancer1-link.txt").read_text()) == {"eth1": "a2:1a:e5:55:0b:0b"}


def test_keepalived_config_of_the_example_and_the_master_down_interval():
    parts = example_parts()
    b1 = keepalived.parse_config(parts["balancer1"]).instances[0]
    b2 = keepalived.parse_config(parts["balancer2"]).instances[0]
    assert (b1.state, b1.interface, b1.virtual_router_id, b1.priority, b1.vips) == (
        "MASTER",
        "eth1",
        33,
        100,
        ["172.28.128.200"],
    )
    assert (b2.state, b2.priority) == ("BACKUP", 50)
    assert b2.master_down_interval == pytest.approx(3 + 206 / 256)
    assert keepalived.parse_config(parts["balancer1"]).virtual_servers == ()


def test_keepalived_config_virtual_server_one_line_blocks_and_comments():
    conf = keepalived.parse_config(
        "! comment\nvrrp_instance VI_2 {\n state backup # lower case\n priority 90\n advert_int 2\n"
        " virtual_ipaddress { 10.0.0.1 }\n}\nvirtual_server 10.0.0.1 443 { lb_algo wlc\n lb_kind NAT\n"
        " real_server 10.0.0.2 443 { weight 3\n  TCP_CHECK { connect_timeout 2 } }\n}\n"
    )
    inst = conf.instances[0]
    assert (inst.name, inst.state, inst.priority, inst.advert_int, inst.vips) == (
        "VI_2",
        "BACKUP",
        90,
        2.0,
        ["10.0.0.1"],
    )
    assert inst.master_down_interval == pytest.approx(6 + 166 / 256 * 2)
    vs = conf.virtual_servers[0]
    assert (vs.address, vs.port, vs.lb_algo, vs.lb_kind) == ("10.0.0.1", 443, "wlc", "NAT")
    assert [(r.address, r.port, r.weight, r.checks) for r in vs.reals] == [("10.0.0.2", 443, 3, ("TCP_CHECK",))]


@pytest.fixture(params=["HTTP/1.0", "HTTP/1.1", "chunked"])
def local_page(request):
    """A page on loopback that names its server, like the lab's reals: the server closing after
    each answer (HTTP/1.0), keeping the connection for the client to close (HTTP/1.1, as nginx),
    or sending its body in chunks."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0" if request.param == "HTTP/1.0" else "HTTP/1.1"

        def do_GET(self):
            body = b"server1\n"
            self.send_response(200)
            if request.param == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"3\r\nser\r\n5\r\nver1\n\r\n0\r\n\r\n")
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def run_loop(url: str, count: int) -> str:
    """A burst's own loop (a curl per request), run here."""
    script = f"URL={url} TIMEOUT=1; for i in $(seq {count}); do {client.ONE_REQUEST}; done"
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout


def run_lane(url: str, count: int) -> str:
    """A prober lane's own command (one curl for its requests, its output parsed by bash), run here."""
    script = f"{client.PARSE}; {client.curl_command(url, count, 1, per_second=50)} | parse"
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout


def run_burst(url: str, count: int) -> str:
    """A burst's own process (data/http-client.pl), run here."""
    return subprocess.run(
        ["perl", "-", "burst", url, str(count), "1"], input=client.client_script(), capture_output=True, check=True
    ).stdout.decode()


def run_probe(url: str, count: int) -> str:
    """The prober's own process (data/http-client.pl) at 20 requests a second for count / 20 s, run here."""
    return subprocess.run(
        ["perl", "-", "probe", url, "0.05", "0.5", str(count / 20 - 0.01)],
        input=client.client_script(),
        capture_output=True,
        check=True,
    ).stdout.decode()


@pytest.mark.parametrize("run", [run_loop, run_lane, run_burst, run_probe])
def test_request_output_parses(local_page, run):
    answers = client.parse_requests(run(local_page, 3))
    assert [(a.status, a.word, a.curl_rc, a.ok) for a in answers] == [(200, "server1", 0, True)] * 3
    assert all(0 < a.latency < 1 for a in answers) and answers[0].time + answers[0].latency <= answers[1].time
    refused = client.parse_requests(run("http://127.0.0.1:9/", 1))[0]
    assert (refused.status, refused.word, refused.curl_rc, refused.ok) == (0, None, 7, False)
    assert re.fullmatch(r"\d+\.\d+ 7 000 \S+ -", run("http://127.0.0.1:9/", 1).splitlines()[0])


def test_keepalived_script_commands_are_all_found():
    text = textwrap.dedent('''
        global_defs { vrrp_notify_fifo_script /usr/local/bin/fifo.sh }
        vrrp_script chk_nginx {
            script "/bin/sh -c 'pidof nginx'"
            interval 2
        }
        vrrp_instance VI_1 {
            notify_master "/bin/touch /tmp/master"   # becomes master
            notify /etc/keepalived/notify.sh
            track_script {
                chk_nginx
            }
        }
        virtual_server 172.28.128.200 80 {
            quorum_up "/bin/true"
            real_server 172.28.128.30 80 {
                notify_down /bin/down.sh
                MISC_CHECK {
                    misc_path "/usr/bin/curl -s 172.28.128.30"
                }
            }
        }
    ''')
    assert keepalived.script_commands(text) == [
        ("vrrp_notify_fifo_script", "/usr/local/bin/fifo.sh"),
        ("script", "\"/bin/sh -c 'pidof nginx'\""),
        ("notify_master", '"/bin/touch /tmp/master"'),
        ("notify", "/etc/keepalived/notify.sh"),
        ("quorum_up", '"/bin/true"'),
        ("notify_down", "/bin/down.sh"),
        ("misc_path", '"/usr/bin/curl -s 172.28.128.30"'),
    ]


def test_the_example_and_the_reference_run_no_keepalived_scripts():
    parts = example_parts()
    assert keepalived.script_commands(parts["balancer1"]) == []
    assert keepalived.script_commands(parts["balancer2"]) == []


def test_a_split_brain_while_the_machine_starved_the_lab_is_the_machines():
    """An overlap of VIP owners during, or within the master-down interval after, a stretch in which a
    director's heartbeat came a whole advert interval late may be the machine's doing: it is named so."""
    from lvs_harness.probes import vrrp

    mon = vrrp.OwnershipMonitor([], "10.0.0.100")
    mon.beats = {
        "lb1": [i / 10 for i in range(100)] + [13.5 + i / 10 for i in range(100)],
        "lb2": [i / 10 for i in range(230)],
    }
    late = mon.lateness()
    assert late["lb1"] == (3.5, 9.9) and late["lb2"][0] == 0.0
    during = {"start": 14.0, "end": 15.2, "seconds": 1.2, "holders": ["lb1", "lb2"]}
    later = {"start": 20.0, "end": 21.5, "seconds": 1.5, "holders": ["lb1", "lb2"]}
    found = vrrp.starved_episodes(mon, [during, later], before=3.6, threshold=1.0)
    assert [(e["start"], [n for n, _, _ in hit]) for e, hit in found] == [(14.0, ["lb1"])]
    text = vrrp.starved_reason(found, start=0.0)
    assert text.startswith("the machine did not let the lab run on time (lb1's heartbeat came 3.5 s late at 9.9 s")
    assert "graded again" in text


def test_reasons_are_said_in_sentences():
    from lvs_harness.assertions import said, said_reals, said_split, said_statuses
    from lvs_harness.report import for_people

    assert said_statuses({0: 50}) == "statuses of the 50 requests: 50 got no HTTP answer"
    assert said_statuses({0: 25, 200: 25}) == "statuses of the 50 requests: 25 answered 200, 25 got no HTTP answer"
    assert (
        said_split({"netology4": 50}, ["netology3", "netology4"])
        == "answers came from netology4 (50); none from netology3"
    )
    assert (
        said_split({None: 25, "server1": 25}, ["server1", "server2"])
        == "answers came from server1 (25); 25 request(s) got no answer; none from server2"
    )
    assert said_reals([("10.0.0.2", "Route"), ("10.0.0.3", "Route")]) == "10.0.0.2 and 10.0.0.3 by direct routing"
    assert said(["a", "b", "c"]) == "a, b and c" and said([]) == "nobody"
    # pytest's rewriting of a failed `assert x, message` is the log's, not the reason's
    rewritten = (
        "no intended master: the highest priority is shared (priority lb1 100, lb2 100)\n"
        "assert None is not None\n +  where None = <Scenario object at 0x7f765d396b90>.master"
    )
    assert for_people(rewritten) == "no intended master: the highest priority is shared (priority lb1 100, lb2 100)"
    assert for_people("assert 1 == 2\n  -1\n  +2") == "assert 1 == 2"  # no sentence of its own: the first line
    assert for_people("a sentence\nwith a second line") == "a sentence\nwith a second line"
