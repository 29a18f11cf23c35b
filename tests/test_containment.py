"""Untrusted submissions: their Vagrantfile code and keepalived scripts never run on the grading host.

On the uml lab they run inside the guest (and the test proves they did run there); the netns
lab (this machine's kernel) refuses them unless --allow-scripts is given.
"""

from __future__ import annotations

import os
import re
import secrets
import textwrap
from pathlib import Path

import pytest

from lvs_harness.errors import LabError
from lvs_harness.labs import LabConfig, reference_vagrantfile, start_lab
from lvs_harness.labs.local import sandbox_run
from lvs_harness.vagrantfile import load_topology
from lvs_harness.runs import Run
from support import wait_until

pytestmark = pytest.mark.lab
RUN_NETNS = re.compile(r"lvsh-[0-9a-f]{6}-")  # a run's namespaces (lvsh-vagrant is libvirt's, shared)


def hostile_keepalived(mark: str) -> str:
    return textwrap.dedent(f'''
        vrrp_script chk {{
            script "/bin/sh -c 'touch {mark}-check'"
            interval 1
        }}
        vrrp_instance VI_1 {{
            state MASTER
            interface eth1
            virtual_router_id 38
            priority 150
            advert_int 1
            notify_master "/bin/sh -c 'touch {mark}-notify'"
            track_script {{
                chk
            }}
            virtual_ipaddress {{
                172.28.128.200/32 dev eth1
            }}
        }}
    ''')


def hostile_vagrantfile(mark: str) -> str:
    # plain Ruby at the top of the file, as a student (or an attacker) could write it
    return (
        f'File.write("{mark}-ruby", "x") rescue nil\nsystem("touch {mark}-system")\n'
        f'`touch {mark}-backticks` rescue nil\n' + reference_vagrantfile().read_text()
    )


@pytest.fixture
def mark():
    path = f"/tmp/lvsh-escape-{secrets.token_hex(4)}"
    yield path
    for suffix in ("ruby", "system", "backticks", "check", "notify"):
        Path(f"{path}-{suffix}").unlink(missing_ok=True)


def host_files(mark: str) -> list[str]:
    return sorted(str(p) for p in Path("/tmp").glob(f"{Path(mark).name}-*"))


def test_uml_runs_submission_code_inside_the_guest_only(tmp_path, mark):
    vf = tmp_path / "Vagrantfile"
    vf.write_text(hostile_vagrantfile(mark))
    files = {"balancer1": {"/etc/keepalived/keepalived.conf": hostile_keepalived(mark)}}
    with start_lab(LabConfig(backend="uml", vagrantfile=vf, files=files)) as lab:
        b1 = lab.hosts["balancer1"]
        # the scripts did run: in balancer1, inside the guest
        wait_until(
            lambda: b1.run(f"test -e {mark}-notify && test -e {mark}-check").ok,
            timeout=20,
            what="keepalived's notify_master and vrrp_script ran in balancer1",
        )
        assert host_files(mark) == [], "a submission's command created a file on the grading host"
    assert host_files(mark) == []


def test_netns_refuses_keepalived_scripts_without_allow_scripts(mark):
    before = {r.id for r in Run.all()}
    files = {"balancer1": {"/etc/keepalived/keepalived.conf": hostile_keepalived(mark)}}
    with pytest.raises(LabError) as err:
        start_lab(LabConfig(backend="netns", files=files))
    text = str(err.value)
    assert "as root on this machine" in text and "--allow-scripts" in text
    assert f"balancer1: notify_master \"/bin/sh -c 'touch {mark}-notify'\"" in text
    assert f"balancer1: script \"/bin/sh -c 'touch {mark}-check'\"" in text
    assert {r.id for r in Run.all()} == before, "a refused lab left a run behind"
    if os.path.isdir("/run/netns"):
        assert [
            n
            for n in os.listdir("/run/netns")
            if RUN_NETNS.match(n) and not any(n.startswith(f"lvsh-{r}-") for r in before)
        ] == []
    assert host_files(mark) == []


def test_netns_refuses_a_submissions_vagrantfile_code(tmp_path, mark):
    vf = tmp_path / "Vagrantfile"
    vf.write_text(hostile_vagrantfile(mark))
    with pytest.raises(LabError, match="would run the provisioners"):
        start_lab(LabConfig(backend="netns", vagrantfile=vf))
    assert host_files(mark) == []


def test_netns_evaluates_vagrantfile_code_in_a_sandbox(tmp_path, mark):
    vf = tmp_path / "Vagrantfile"
    vf.write_text(hostile_vagrantfile(mark))
    topology = load_topology(vf, sandbox_run)  # what the netns lab does with --allow-scripts
    assert "balancer1" in topology.names
    assert host_files(mark) == []
