"""Packs and the generic core: the core names no homework, packs resolve what a lab is, and the
services, sync groups, weights and "which real answered" are read from real captured outputs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from lvs_harness import keepalived, services
from lvs_harness.assertions import split_tolerance
from lvs_harness.labs import LabConfig
from lvs_harness.packs import installed, load_pack, pack_of_module
from lvs_harness.probes import ipvs
from lvs_harness.probes.client import Request, distinct, identify
from lvs_harness.topology import VirtualService

PACKAGE = Path(__file__).resolve().parents[1] / "lvs_harness"
DATA = Path(__file__).parent / "data"
# what only the hw3.8 pack may say: its name, its hosts, the misspelling it tolerates, its network
HW38_WORDS = ("hw3.8", "hw38", "balancer1", "balancer2", "balanser", "server1", "server2", "172.28.128")


def _strings_outside_docstrings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_the_core_names_no_homework():
    """Outside lvs_harness/packs/, no string in the code (docstrings aside) names hw3.8, its
    hosts or its addresses."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "packs" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for line, text in _strings_outside_docstrings(path):
            hits = [w for w in HW38_WORDS if w in text.lower()]
            if hits:
                found.append(f"{path.relative_to(PACKAGE)}:{line}: {text[:80]!r}")
    assert not found, found


def test_installed_packs_and_their_checks():
    assert [p.name for p in installed()] == ["hw38", "lvs-nat"]
    hw38, nat = load_pack("hw38"), load_pack("lvs-nat")
    assert (len(hw38.checks()), sum(c.points for c in hw38.checks())) == (13, 24)
    assert [c.id for c in nat.checks()] == [
        "config_valid",
        "sync_group",
        "vips_on_master",
        "reals_via_gateway",
        "ipvs_nat_service",
        "wrr_split",
        "health_check",
        "failover",
        "no_split_brain",
    ]
    assert sum(c.points for c in nat.checks()) == 20 and all(c.hint for c in nat.checks())
    assert pack_of_module("lvs_harness.packs.lvs_nat.test_lvs_nat") == "lvs-nat"
    assert pack_of_module("test_my_own_lab") is None
    assert load_pack() is hw38  # the default


def test_a_lab_config_takes_only_its_own_packs_data(tmp_path):
    hw38 = LabConfig()  # the default pack's reference lab
    assert hw38.vagrantfile_file == load_pack("hw38").reference and hw38.service_list[0].vip == "172.28.128.200"
    nat = LabConfig(pack="lvs-nat")
    assert nat.vagrantfile_file.parent.name == "lvs_nat" and nat.service_list == ()  # read from the lab
    mine = LabConfig(vagrantfile=tmp_path / "Vagrantfile")  # a lab author's own lab: no pack's VIP
    assert mine.service_list == () and mine.role_patterns is None and mine.daemon_map["real"] == ("nginx",)
    named = LabConfig(vagrantfile=tmp_path / "Vagrantfile", services=(VirtualService("10.77.0.100"),))
    assert named.service_list[0].vip == "10.77.0.100"


def test_services_sync_groups_and_health_bounds_from_a_real_config():
    """lvs-nat's director1 keepalived.conf as its reference provisioning wrote it in the lab."""
    conf = keepalived.parse_config((DATA / "keepalived" / "lvs-nat-director1.conf").read_text())
    assert [g.instances for g in conf.sync_groups] == [("VI_EXT", "VI_INT")]
    assert conf.group_of("VI_INT").name == "VG_NAT" and conf.instance_for("10.70.2.254").name == "VI_INT"
    [svc] = services.from_config(conf, "director1")
    assert (svc.vip, svc.port, svc.forward, svc.scheduler, svc.instance) == ("10.70.1.100", 80, "Masq", "wrr", "VI_EXT")
    assert svc.weights == (("10.70.2.21", 3), ("10.70.2.22", 2), ("10.70.2.23", 1))
    vs = conf.virtual_servers[0]
    check = vs.reals[2].checkers[0]
    assert (check.kind, check.connect_timeout, check.retry, check.delay_before_retry) == ("HTTP_GET", 1.0, 1, 1.0)
    assert vs.removal_bound(vs.reals[2]) == 2 + 2 * 1 + 1  # delay_loop + (1 + retry) × timeout + retry × delay


def test_services_from_a_real_ipvs_table_when_keepalived_names_none():
    table = ipvs.parse_list((DATA / "ipvsadm" / "nat-wrr.txt").read_text())
    conf = keepalived.parse_config("vrrp_instance VI_EXT {\n virtual_ipaddress {\n  10.70.1.100/24 dev eth1\n }\n}\n")
    [svc] = services.from_table(table, "director1", conf)
    assert (svc.vip, svc.forward, svc.scheduler, svc.instance) == ("10.70.1.100", "Masq", "wrr", "VI_EXT")
    assert dict(svc.weights) == {"10.70.2.21": 3, "10.70.2.22": 2, "10.70.2.23": 1}


def test_which_real_answered_is_its_own_page_whatever_it_says():
    pages = {"web1": "Hello from web1", "web2": "Hello from web2"}
    answers = [
        Request(0.0, 200, "Hello", 0.01, 0, "Hello from web2"),
        Request(1.0, 200, "Hello", 0.01, 0, "other"),
        Request(2.0, 0, None, 2.0, 28, None),
    ]
    assert answers[0].real is None and answers[0].word == "Hello"  # not told before identify
    assert [a.real for a in identify(answers, pages)] == ["web2", None, None]
    assert distinct(pages) and not distinct({"web1": "Welcome", "web2": "Welcome"})
    assert [a.real for a in identify(answers[:1], {"web1": "Hello from web2", "web2": "Hello from web2"})] == [None]


@pytest.mark.parametrize("requests, tolerance", [(6, 1), (50, 2), (60, 3), (200, 10)])
def test_split_tolerance_grows_with_the_request_count(requests, tolerance):
    assert split_tolerance(requests) == tolerance


def test_a_failure_that_does_not_block_lets_the_checks_that_need_it_run(tmp_path):
    """`needs`: a failed check blocks the checks needing it ("not run: …"), unless its exception says
    they can still be judged (blocks_dependents = False, as config_valid does when keepalived runs the
    config anyway)."""
    (tmp_path / "test_needs.py").write_text(
        "import pytest\n\n"
        "class Soft(AssertionError):\n    blocks_dependents = False\n\n"
        "@pytest.mark.check(id='hard', points=1, title='hard')\ndef test_hard():\n    assert False, 'broken'\n\n"
        "@pytest.mark.check(id='soft', points=1, title='soft')\ndef test_soft():\n    raise Soft('warned')\n\n"
        "@pytest.mark.check(id='after_hard', points=1, title='a', needs=('hard',))\ndef test_after_hard():\n    pass\n\n"
        "@pytest.mark.check(id='after_soft', points=1, title='b', needs=('soft',))\ndef test_after_soft():\n    pass\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "test_needs.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "PASSED test_needs.py::test_after_soft" in r.stdout, r.stdout
    assert "ERROR test_needs.py::test_after_hard - Failed: not run: needs check hard to p" in r.stdout, r.stdout
