"""The UML guest's root filesystem image: built once from Debian packages, cached by its inputs.

``mmdebstrap`` installs the packages from the host's own apt sources (no mirror name is
ever written by lvs-harness), the kernel modules come from the host's ``user-mode-linux``
package, and ``mke2fs -d`` turns the tree into an ext4 image without loop mounts. The
cache key hashes everything that goes in, so a changed input builds a new image; a run
never writes to the cached image (it boots with a copy-on-write file).

Example::

    image = ensure_image(progress=print)   # builds on first use, ~40-70 s
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from collections.abc import Callable

from ..errors import LabError

FORMAT = 8  # bump whenever _customize() changes what goes into the image
PACKAGES = (
    "mount",
    "iproute2",
    "procps",
    "kmod",
    "util-linux",
    "psmisc",
    "keepalived",
    "ipvsadm",
    "nginx-light",
    "curl",
    "iputils-ping",
    "iputils-arping",
    "net-tools",
    "tcpdump",
    "sudo",
    "ruby",
    "qemu-guest-agent",
    "tini",
    "iptables",  # students make reals ready for DR with an iptables REDIRECT too
)
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
UML_KERNEL = "/usr/bin/linux.uml"
UML_MODULES = "/usr/lib/uml/modules"
AGENT = "/usr/local/lib/lvs-harness/host-agent"  # in the image: the command channel's agent (see channel.py)


def cache_root() -> Path:
    if os.environ.get("LVS_HARNESS_CACHE"):
        return Path(os.environ["LVS_HARNESS_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/lvs-harness")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lvs-harness"


def uml_kernel() -> tuple[str, str]:
    """(kernel binary, module version) of the host's user-mode-linux package; with
    ``LVS_HARNESS_UML_KERNEL`` set (beside ``LVS_HARNESS_IMAGE``, e.g. in a Gradescope autograder),
    that kernel — the one the shipped image's modules were built for."""
    given = os.environ.get("LVS_HARNESS_UML_KERNEL")
    if given:
        if not os.access(given, os.X_OK):
            raise LabError(
                f"LVS_HARNESS_UML_KERNEL names {given}, which is not an executable UML kernel; "
                "unset it, or point it at the linux.uml the image was built with."
            )
        return given, "shipped"
    versions = sorted(os.listdir(UML_MODULES)) if os.path.isdir(UML_MODULES) else []
    if not os.access(UML_KERNEL, os.X_OK) or not versions:
        raise LabError(
            "the uml lab needs User-Mode Linux: install the Debian package `user-mode-linux` "
            "(sudo apt-get install user-mode-linux)."
        )
    return UML_KERNEL, versions[-1]


def init_script() -> str:
    return resources.files("lvs_harness.data").joinpath("guest-init").read_text()


def agent_source() -> str:
    return resources.files("lvs_harness.data").joinpath("host-agent.c").read_text()


def host_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise LabError(
        "cannot tell this system's release from /etc/os-release; the uml lab image is "
        "built with mmdebstrap on Debian or Ubuntu."
    )


def apt_sources(codename: str) -> list[str]:
    """The host's own apt source files that serve ``codename`` (passed to mmdebstrap as mirrors)."""
    files = [
        f
        for f in [
            "/etc/apt/sources.list",
            *sorted(glob.glob("/etc/apt/sources.list.d/*.list")),
            *sorted(glob.glob("/etc/apt/sources.list.d/*.sources")),
        ]
        if os.path.isfile(f)
    ]
    chosen = []
    for f in files:
        text = Path(f).read_text(errors="replace")
        active = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if any(codename in ln.split() or ln.startswith("Suites:") and codename in ln for ln in active):
            chosen.append(f)
    if not chosen:
        raise LabError(
            f"no apt source of this machine serves {codename!r}; configure apt so that "
            "`apt-get update` works, then retry."
        )
    return chosen


def image_key() -> str:
    _, kver = uml_kernel()
    codename = host_codename()
    h = hashlib.sha256()
    for part in (
        str(FORMAT),
        codename,
        kver,
        " ".join(PACKAGES),
        " ".join(DPKG_EXCLUDES),
        init_script(),
        agent_source(),
        *(Path(f).read_text(errors="replace") for f in apt_sources(codename)),
    ):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def image_path() -> Path:
    return cache_root() / "images" / image_key() / "rootfs.img"


def ensure_image(progress: Callable[[str], None], force: bool = False) -> Path:
    """The cached image for the current inputs, built first if missing (or if ``force``); with
    ``LVS_HARNESS_IMAGE`` set, that prebuilt image (e.g. shipped in a Gradescope autograder zip,
    where no image can be built), never rebuilt."""
    given = os.environ.get("LVS_HARNESS_IMAGE")
    if given:
        if not Path(given).is_file():
            raise LabError(
                f"LVS_HARNESS_IMAGE names {given}, which does not exist; point it at a rootfs.img "
                "made by `lvs-harness image build`, or unset it."
            )
        return Path(given)
    path = image_path()
    if path.exists() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; others wait and reuse it
        if path.exists() and not force:
            return path
        build_image(path, progress)
    return path


def build_image(dest: Path, progress: Callable[[str], None]) -> None:
    if os.geteuid() != 0:
        raise LabError(
            "building the lab image needs root (mmdebstrap creates device nodes and "
            "chroots): run `sudo lvs-harness image build` once."
        )
    for tool, pkg in (("mmdebstrap", "mmdebstrap"), ("mke2fs", "e2fsprogs"), ("gcc", "gcc")):
        if not shutil.which(tool):
            raise LabError(f"building the lab image needs {tool}: install the Debian package `{pkg}`.")
    _, kver = uml_kernel()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="build-", dir=dest.parent) as tmp:
        root = Path(tmp) / "rootfs"
        progress(f"building the lab image with mmdebstrap ({len(PACKAGES)} packages; about a minute)")
        run_mmdebstrap(PACKAGES, root, Path(tmp) / "mmdebstrap.log", progress, "the lab image")
        _customize(root, kver)
        size_mb = int(_du_mb(root) * 1.25) + 384
        img = Path(tmp) / "rootfs.img"
        progress(f"writing the ext4 image ({size_mb} MB sparse)")
        subprocess.run(
            ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "lvs-harness", "-d", str(root), str(img), f"{size_mb}M"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        os.chmod(img, 0o444)
        dest.parent.chmod(0o755)
        for parent in (dest.parent.parent, dest.parent.parent.parent):
            parent.chmod(0o755)
        os.replace(img, dest)
    for old in dest.parent.parent.iterdir():  # images built from older inputs
        if old.is_dir() and old != dest.parent and (old / "rootfs.img").exists():
            shutil.rmtree(old, ignore_errors=True)
    progress(f"lab image ready in {time.monotonic() - t0:.0f} s: {dest}")


def run_mmdebstrap(
    packages, root: Path, log: Path, progress: Callable[[str], None], what: str, hooks: tuple[str, ...] = ()
) -> None:
    """Install ``packages`` into ``root`` with mmdebstrap from this machine's apt sources (docs left
    out), then run ``hooks`` (``--customize-hook``s); its whole output goes to ``log``, its main
    steps to ``progress``; on failure, an error with its last lines."""
    codename = host_codename()
    cmd = [
        "mmdebstrap",
        "--variant=apt",
        "--include=" + ",".join(packages),
        *(f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES),
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        *(f"--customize-hook={h}" for h in hooks),
        codename,
        str(root),
        *apt_sources(codename),
    ]
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            fh.write(line)
            if line.startswith("I: ") and any(
                w in line for w in ("downloading", "extracting", "installing", "success")
            ):
                progress(f"  {line[3:].strip()} ({time.monotonic() - t0:.0f} s)")
        rc = proc.wait()
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise LabError(
            f"mmdebstrap failed ({rc}) building {what}; check that `apt-get update` works on this "
            f"machine. Last lines:\n{tail}"
        )


def _customize(root: Path, kver: str) -> None:
    init = root / "sbin" / "lvsh-init"
    init.write_text(init_script())
    init.chmod(0o755)
    shutil.copytree(f"{UML_MODULES}/{kver}", root / "lib" / "modules" / kver, dirs_exist_ok=True)
    subprocess.run(["chroot", str(root), "depmod", kver], check=True)
    (root / "etc" / "fstab").write_text("# lvs-harness guest: mounts are made by /sbin/lvsh-init\n")
    (root / "etc" / "hostname").write_text("lvs-harness-guest\n")
    (root / "etc" / "keepalived").mkdir(exist_ok=True)
    # the guest has no network: apt sources would only cost every `apt update` in a student's
    # provisioner its failing fetches (0.5 s of CPU each, measured; 0.2 s without); apt's caches
    # are built once here from what is installed, not by each apt call in each host
    (root / "etc" / "apt" / "sources.list").write_text(
        "# lvs-harness lab: no network, so no sources; the packages are in the image\n"
    )
    for f in (root / "etc" / "apt" / "sources.list.d").glob("*"):
        f.unlink()
    subprocess.run(["chroot", str(root), "apt-cache", "gencaches"], check=True, stdout=subprocess.DEVNULL)
    # iptables through the legacy x_tables: this UML kernel has no nft nat chain (nft_chain_nat)
    for tool in ("iptables", "ip6tables"):
        subprocess.run(
            ["chroot", str(root), "update-alternatives", "--set", tool, f"/usr/sbin/{tool}-legacy"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    # sudo drops the environment, and with it GLIBC_TUNABLES (see uml.GUEST_GLIBC_TUNABLES): a
    # provisioner's `sudo systemctl restart keepalived` would start keepalived with the string
    # functions whose registers UML does not keep
    (root / "etc" / "sudoers.d" / "lvs-harness").write_text('Defaults env_keep += "GLIBC_TUNABLES"\n')
    (root / "etc" / "sudoers.d" / "lvs-harness").chmod(0o440)
    # the command agent, built here against this release's glibc (the image's own)
    compile_agent(root / AGENT.lstrip("/"))


def host_agent() -> str:
    """The agent compiled for this machine (the netns lab's hosts' init), cached by its source."""
    path = cache_root() / "agent" / hashlib.sha256(agent_source().encode()).hexdigest()[:16] / "host-agent"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        compile_agent(path.with_suffix(".new"))
        os.replace(path.with_suffix(".new"), path)
    return str(path)


def compile_agent(dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "host-agent.c").write_text(agent_source())
        r = subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(dest), str(Path(tmp) / "host-agent.c")], capture_output=True, text=True
        )
    if r.returncode != 0:
        raise LabError(
            f"could not compile the lab's command agent (gcc exited {r.returncode}); install the "
            f"Debian packages gcc and libc6-dev. gcc said:\n{r.stderr[-1500:]}"
        )


def _du_mb(path: Path) -> int:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])
