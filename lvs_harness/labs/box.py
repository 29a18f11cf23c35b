"""A Vagrant box for the libvirt provider, built locally from Debian packages (``lvs-harness box build``).

For graders without internet access (and for CI): ``mmdebstrap`` installs Debian from the host's
own apt sources with systemd, a kernel, openssh-server, sudo, ifupdown + DHCP on the first NIC,
keepalived, ipvsadm, nginx-light and curl; a ``vagrant`` user gets Vagrant's insecure key and
password-less sudo. The disk is one ext4 filesystem (no partition table, no boot loader):
libvirt boots the box's own kernel and initrd directly, with ``net.ifnames=0`` so the NICs are
eth0 (management) and eth1 (the lab network), as on the course's VirtualBox boxes. The cache
key hashes every input; a changed input builds a new box.

Example::

    box = ensure_box(progress=print)     # ~2 min the first time; then cached
    box.file                             # /var/cache/lvs-harness/boxes/<key>/lvs-harness.box
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from collections.abc import Callable

from ..errors import LabError
from .image import _du_mb, apt_sources, cache_root, host_codename, run_mmdebstrap

FORMAT = 1
BOX_NAME = "lvs-harness/debian"
PACKAGES = (
    "systemd-sysv",
    "linux-image-amd64",
    "openssh-server",
    "sudo",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "procps",
    "kmod",
    "psmisc",
    "keepalived",
    "ipvsadm",
    "nginx-light",
    "curl",
    "iputils-ping",
    "iputils-arping",
    "netbase",
    "bash",
    "libnss-myhostname",  # the machine's own name resolves whatever a provisioner sets (sudo warns otherwise)
)
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 biosdevname=0 quiet"
VAGRANT_KEYS = (
    "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub",
    "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub",
)


@dataclasses.dataclass(frozen=True)
class Box:
    dir: Path

    @property
    def file(self) -> Path:
        return self.dir / "lvs-harness.box"

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"


def vagrant_public_key() -> str:
    import glob

    for pattern in VAGRANT_KEYS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[-1]).read_text().strip()
    raise LabError("Vagrant's insecure public key was not found: install the Debian package `vagrant`.")


def box_key() -> str:
    codename = host_codename()
    h = hashlib.sha256()
    for part in (
        str(FORMAT),
        codename,
        " ".join(PACKAGES),
        CMDLINE,
        vagrant_public_key(),
        _customize_script(),
        *(Path(f).read_text(errors="replace") for f in apt_sources(codename)),
    ):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def ensure_box(progress: Callable[[str], None], force: bool = False) -> Box:
    """The cached box for the current inputs, built first if missing (or if ``force``)."""
    box = Box(cache_root() / "boxes" / box_key())
    if box.file.exists() and not force:
        return box
    box.dir.mkdir(parents=True, exist_ok=True)
    with open(box.dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if box.file.exists() and not force:
            return box
        build_box(box, progress)
    return box


def _customize_script() -> str:
    """Run in the box's root (chroot) after the packages are in."""
    return r"""set -e
useradd -m -s /bin/bash vagrant 2>/dev/null || true
echo vagrant:vagrant | chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/vagrant && chmod 440 /etc/sudoers.d/vagrant
install -d -m 700 -o vagrant -g vagrant /home/vagrant/.ssh
install -m 600 -o vagrant -g vagrant /tmp/vagrant.pub /home/vagrant/.ssh/authorized_keys
printf 'UseDNS no\n' > /etc/ssh/sshd_config.d/vagrant.conf
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/lvsh-hostkeys.service <<'UNIT'
[Unit]
Description=SSH host keys of this machine
Before=ssh.service
[Service]
Type=oneshot
# ECDSA and Ed25519 only: RSA key generation takes ~15 s of emulated CPU per machine at first boot
ExecStart=/bin/sh -c 'for t in ecdsa ed25519; do f=/etc/ssh/ssh_host_$${t}_key; [ -e $$f ] || ssh-keygen -q -t $$t -N "" -f $$f; done'
[Install]
WantedBy=multi-user.target
UNIT
systemctl enable lvsh-hostkeys.service ssh.service
printf 'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n\nsource /etc/network/interfaces.d/*\n' \
  > /etc/network/interfaces
mkdir -p /etc/network/interfaces.d
printf '/dev/vda / ext4 defaults 0 1\n' > /etc/fstab
echo lvs-box > /etc/hostname
printf '127.0.0.1 localhost\n' > /etc/hosts
# offline graders: apt gives up at once instead of retrying
printf 'Acquire::Retries "0";\nAcquire::http::Timeout "5";\n' > /etc/apt/apt.conf.d/90lvs-harness-offline
systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1 || true
# a small initrd (virtio disk and ext4 only): the default one holds most modules, ~36 MB to unpack emulated
printf 'virtio_pci\nvirtio_blk\next4\n' > /etc/initramfs-tools/modules
echo MODULES=list > /etc/initramfs-tools/conf.d/lvs-harness
update-initramfs -u -k all
"""


def build_box(box: Box, progress: Callable[[str], None]) -> None:
    if os.geteuid() != 0:
        raise LabError("building the Vagrant box needs root (mmdebstrap chroots): run `sudo lvs-harness box build`.")
    for tool, pkg in (("mmdebstrap", "mmdebstrap"), ("mke2fs", "e2fsprogs"), ("qemu-img", "qemu-utils")):
        if not shutil.which(tool):
            raise LabError(f"building the Vagrant box needs {tool}: install the Debian package `{pkg}`.")
    key = vagrant_public_key()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="build-", dir=box.dir) as tmp:
        root = Path(tmp) / "rootfs"
        progress(f"building the Vagrant box with mmdebstrap ({len(PACKAGES)} packages; about two minutes)")
        log = Path(tmp) / "mmdebstrap.log"
        run_mmdebstrap(
            PACKAGES,
            root,
            log,
            progress,
            "the Vagrant box",
            hooks=(f"echo {key!r} > \"$1/tmp/vagrant.pub\"", f"chroot \"$1\" sh -c {_quote(_customize_script())}"),
        )
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise LabError(f"the box has no kernel or initrd in /boot (linux-image-amd64 did not install); see {log}")
        (root / "tmp" / "vagrant.pub").unlink(missing_ok=True)
        work = Path(tmp) / "box"
        work.mkdir()
        shutil.copy(kernels[-1], Path(tmp) / "vmlinuz")
        shutil.copy(initrds[-1], Path(tmp) / "initrd.img")
        size_mb = int(_du_mb(root) * 1.3) + 1024
        raw = Path(tmp) / "box.raw"
        progress(f"writing the box disk ({size_mb} MB ext4 → qcow2)")
        subprocess.run(
            ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "lvs-box", "-d", str(root), str(raw), f"{size_mb}M"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "box.img")], check=True)
        raw.unlink()
        gib = -(-size_mb // 1024)
        (work / "metadata.json").write_text(json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": gib}))
        (work / "Vagrantfile").write_text(box_vagrantfile(box))
        subprocess.run(
            [
                "tar",
                "-C",
                str(work),
                "-cf",
                str(Path(tmp) / "lvs-harness.box"),
                "metadata.json",
                "Vagrantfile",
                "box.img",
            ],
            check=True,
        )
        for name in ("vmlinuz", "initrd.img"):
            os.chmod(Path(tmp) / name, 0o644)
            os.replace(Path(tmp) / name, box.dir / name)
        os.replace(Path(tmp) / "lvs-harness.box", box.file)
    for parent in (box.dir, box.dir.parent, box.dir.parent.parent):
        parent.chmod(0o755)
    for old in box.dir.parent.iterdir():
        if old.is_dir() and old != box.dir and (old / "lvs-harness.box").exists():
            shutil.rmtree(old, ignore_errors=True)
    progress(f"Vagrant box ready in {time.monotonic() - t0:.0f} s: {box.file} ({box.file.stat().st_size // 2**20} MB)")


def box_vagrantfile(box: Box) -> str:
    """Defaults the box brings (a project's Vagrantfile overrides them): direct kernel boot, software
    emulation (no KVM), small VMs, no synced folder."""
    return f"""Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
    lv.kernel = "{box.kernel}"
    lv.initrd = "{box.initrd}"
    lv.cmd_line = "{CMDLINE}"
    lv.memory = 448
    lv.cpus = 1
    lv.disk_bus = "virtio"
    lv.nic_model_type = "virtio"
    lv.graphics_type = "none"
    lv.video_type = "none"
  end
end
"""


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
