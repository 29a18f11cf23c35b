"""keepalived's grammar as keepalived reads it (our own configs, one construct each), and
`config_valid`'s reading of keepalived's own --config-test messages (the real keepalived, run in a
network namespace of its own holding one veth eth1: nothing is sent anywhere)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lvs_harness.keepalived import config_test_findings, ipvsadm_commands, parse_config, preprocess

INSTANCE = """vrrp_instance VI_1 {
    state MASTER
    interface eth1
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        10.77.0.100/24 dev eth1
    }
}
"""


def test_fwmark_and_group_services_parse():
    conf = parse_config("""
virtual_server_group WEB {
    10.77.0.100 80
    10.77.0.101 80
}
virtual_server fwmark 7 {
    lb_algo wrr
    lb_kind DR
    real_server 10.77.0.31 {
        weight 3
        TCP_CHECK {
            connect_port 80
        }
    }
}
virtual_server group WEB {
    lb_algo rr
    real_server 10.77.0.32 80 {
    }
}
""")
    fw, group = conf.virtual_servers
    assert (fw.fwmark, fw.address, fw.lb_algo, fw.reals[0].weight, fw.reals[0].port) == (7, "", "wrr", 3, 0)
    assert (group.group, group.reals[0].address) == ("WEB", "10.77.0.32")
    assert ipvsadm_commands(fw) == ["ipvsadm -A -f 7 -s wrr", "ipvsadm -a -f 7 -r 10.77.0.31:0 -g -w 3"]
    assert ipvsadm_commands(group) == []


def test_params_conditionals_includes_and_comments():
    text = (
        "$VIP=10.77.0.100\n@lb1 $PRIO=150\n@^lb1 $PRIO=100\ninclude extra.conf\n"
        "vrrp_instance VI_1 {  # the instance\n    priority $PRIO\n    notify \"/bin/echo a#b!c\"\n"
        "    virtual_ipaddress {\n        ${VIP}/24\n    }\n}\n"
    )
    assert parse_config(text, "lb1").instances[0].priority == 150
    assert parse_config(text, "lb2").instances[0].priority == 100
    assert parse_config(text).instances[0].vips == ["10.77.0.100"]
    included = parse_config(text, "lb1", read=lambda name: "virtual_server 10.77.0.100 80 {\n lb_algo rr\n}\n")
    assert included.virtual_servers[0].lb_algo == "rr"
    assert 'notify "/bin/echo a#b!c"' in preprocess(text)


def test_old_keywords_and_what_keepalived_reads_from_odd_values():
    conf = parse_config(
        INSTANCE.replace("priority 150", "priority 100 / 50")
        + "virtual_server 10.77.0.100 80 {\n lvs_sched rr\n lvs_method DR\n"
        " real_server 10.77.0.31 80 {\n }\n}\n"
    )
    assert conf.instances[0].priority == 100  # keepalived reads "100 / 50" as 100
    assert (conf.virtual_servers[0].lb_algo, conf.virtual_servers[0].lb_kind) == ("rr", "DR")


def test_a_virtual_server_without_its_brace_does_not_crash_the_parser():
    conf = parse_config(
        INSTANCE + "virtual_server 10.77.0.100 80\n    lb_algo rr\n    real_server 10.77.0.31 80 {\n    }\n}\n"
    )
    assert conf.instances[0].vips == ["10.77.0.100"]


def keepalived_says(tmp_path, text: str) -> tuple[int, str]:
    if not shutil.which("keepalived") or not shutil.which("unshare"):
        pytest.skip("keepalived is not installed here (install.sh installs it)")
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    r = subprocess.run(
        [
            "unshare",
            "--net",
            "--",
            "sh",
            "-c",
            f"ip link add eth1 type veth peer name eth1p && keepalived --config-test -f {conf}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize(
    "change, kind, words",
    [
        ("", None, None),
        (
            "    authentication {\n        auth_type PASS\n        auth_pass netology_secret\n    }\n",
            "warning",
            "Truncating auth_pass to 8 characters",
        ),
        ("    track_script {\n        chk\n    }\n", "error", "track script chk not found"),
        ("    lvs_sync_daemon_interface eth1\n", "warning", "deprecated"),
        ("    foo_bar 1\n", "warning", "Unknown keyword 'foo_bar'"),
        ("    virtual_ipaddress {\n", "error", "missing '}'"),
    ],
)
def test_config_valid_reads_what_keepalived_says(tmp_path, change, kind, words):
    text = INSTANCE.replace("    advert_int 1\n", "    advert_int 1\n" + change)
    rc, out = keepalived_says(tmp_path, text)
    errors, warnings = config_test_findings(rc, out)
    if kind is None:
        assert (rc, errors, warnings) == (0, [], []), out
    elif kind == "warning":
        assert errors == [] and any(words in w for w in warnings), (rc, out)
    else:
        assert any(words in e for e in errors), (rc, out)


def test_scripts_without_script_security_are_a_warning(tmp_path):
    text = "vrrp_script chk {\n    script \"/bin/true\"\n}\n" + INSTANCE.replace(
        "    advert_int 1\n", "    advert_int 1\n    track_script {\n        chk\n    }\n"
    )
    rc, out = keepalived_says(tmp_path, text)
    errors, warnings = config_test_findings(rc, out)
    assert rc != 0 and errors == [] and any("script_security" in w for w in warnings), out


def test_an_interface_the_host_lacks_is_an_error(tmp_path):
    rc, out = keepalived_says(
        tmp_path, INSTANCE.replace("interface eth1", "interface eth0").replace("dev eth1", "dev eth0")
    )
    errors, _ = config_test_findings(rc, out)
    assert any("eth0" in e or "Non-existent interface" in e for e in errors), out
