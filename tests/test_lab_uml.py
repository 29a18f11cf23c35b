"""What only the embedded (uml) lab promises: containment, an untouched image, an intact channel."""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
from pathlib import Path

import pytest

from lvs_harness.labs.confine import landlock_abi

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def guest(lab):
    if lab.NAME != "uml" or not hasattr(lab, "guest"):
        pytest.skip(f"these checks need the uml lab in this process (this run: {lab.NAME}, "
                    f"{'kept by a keeper' if not hasattr(lab, 'guest') else 'in process'})")
    return lab.guest


def test_guest_runs_unprivileged_on_the_host(guest):
    if os.geteuid() != 0:
        pytest.skip("only a root grader can drop the guest to nobody")
    uid = Path(f"/proc/{guest.proc.pid}/status").read_text().split("Uid:")[1].split()[0]
    assert uid == str(pwd.getpwnam("nobody").pw_uid)


def test_root_in_the_guest_cannot_reach_host_files_through_hostfs(guest):
    """hostfs=DIR alone lets `-o /../../..` escape (seen on this machine); Landlock stops it."""
    if not landlock_abi():
        pytest.skip("this kernel has no Landlock; the guest relies on running as nobody only")
    target = Path("/tmp") / f"lvs-harness-escape-{secrets.token_hex(4)}"
    up = "/.." * 12
    script = (
        "mkdir -p /mnt/h /mnt/t /mnt/e; mount -t hostfs none /mnt/h; touch /mnt/h/escape; ls -A /mnt/h; "
        f"mount -t hostfs none /mnt/t -o {up}/tmp && touch /mnt/t/{target.name}; "
        f"mount -t hostfs none /mnt/e -o {up}/etc && cat /mnt/e/hostname /mnt/e/os-release; true"
    )
    r = guest.exec(["sh", "-c", script], None, 30)
    assert r.stdout.strip() == "", f"the guest read host files: {r.stdout[:300]!r}"
    assert "Permission denied" in r.stderr
    assert not target.exists()
    assert not any(guest.run.dir.joinpath("hostfs").iterdir())


def test_cached_image_is_never_written(guest):
    image = Path(guest.image)
    assert oct(image.stat().st_mode & 0o777) == "0o444"
    before = image.stat().st_mtime_ns
    guest.exec(["sh", "-c", "echo changed > /etc/lvs-harness-cow-probe && sync"], None, 30)
    assert image.stat().st_mtime_ns == before


def test_large_outputs_cross_the_channel_intact(guest):
    """Regression: without the glibc tunables, qemu-ga replies lost 16-byte runs (ymm upper halves)."""
    for size in (5000, 70000, 400000):
        r = guest.exec(["sh", "-c", f"head -c {size} /dev/urandom | base64 -w 76 | tee /run/probe | sha256sum"],
                       None, 60)
        data = guest.exec(["cat", "/run/probe"], None, 60).stdout
        assert hashlib.sha256(data.encode()).hexdigest() == r.stdout.split()[0]
    big_input = secrets.token_hex(50000).encode()
    r = guest.exec(["sha256sum"], big_input, 60)
    assert r.stdout.split()[0] == hashlib.sha256(big_input).hexdigest()


def test_starts_from_a_directory_nobody_can_enter(lab_config, tmp_path):
    """Regression: UML inherited a 0700 cwd and its COW setup failed with EINVAL."""
    import subprocess
    import sys
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    code = ("from lvs_harness.labs import LabConfig, start_lab\n"
            "with start_lab(LabConfig(backend='uml', progress=lambda m: None), provision=False) as lab:\n"
            "    print(lab.hosts['client'].check('hostname').stdout)")
    r = subprocess.run([sys.executable, "-c", code], cwd=private, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "client", r.stderr[-2000:]
