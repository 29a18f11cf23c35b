"""Gradescope: the autograder zip (``lvs-harness gradescope build``) and what its run_autograder
does (``lvs-harness gradescope run``): grade /autograder/submission with a pack and write
/autograder/results/results.json per Gradescope's autograder specification — never a crash:
a submission with nothing gradable, or a harness that cannot run, still gets a results.json
whose output says what happened.

Gradescope builds its autograder image without privileges, so the guest image cannot be built
there (mmdebstrap needs root): the zip carries a prebuilt image (``--image``, default this
machine's cached one), or setup.sh fetches it from a URL the instructor gives (``--image-url``);
the UML kernel its modules belong to (``linux.uml``) is always in the zip.

Example::

    build(Path("autograder.zip"), pack="my-lab")          # setup.sh, run_autograder, lvs-harness/, rootfs.img
    run(Path("/autograder"), pack="my-lab")               # → /autograder/results/results.json
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

from . import exports
from .errors import HarnessError
from .labs.image import uml_kernel
from .packs import load_pack

EXPECTED = (
    "a markdown write-up (*.md) whose code blocks are the lab's files, each labelled on the line "
    "before it (\"Vagrantfile:\", \"<director> keepalived.conf:\"), or the files themselves "
    "(Vagrantfile, keepalived/<director>.conf)"
)

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, unprivileged, to build the autograder image (lvs-harness {version}).
set -euo pipefail
cd /autograder/source
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv curl
python3 -m venv /autograder/source/venv
/autograder/source/venv/bin/pip install -q ./lvs-harness
{fetch}
# the guest runs as nobody: it must read its image
chmod a+rx /autograder /autograder/source && chmod a+r /autograder/source/rootfs.img
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this per submission; it writes $ROOT/results/results.json whatever happens.
ROOT=${{AUTOGRADER_ROOT:-/autograder}}
export LVS_HARNESS_IMAGE=${{LVS_HARNESS_IMAGE:-$ROOT/source/rootfs.img}}
export LVS_HARNESS_UML_KERNEL=${{LVS_HARNESS_UML_KERNEL:-$ROOT/source/linux.uml}}   # the image's modules are its
PY=${{LVS_HARNESS_PYTHON:-$ROOT/source/venv/bin/python}}
"$PY" -m lvs_harness.cli gradescope run --root "$ROOT" --pack {pack} || {{
  mkdir -p "$ROOT/results"
  [ -s "$ROOT/results/results.json" ] || printf '%s\\n' '{{"score": 0, "output": "The autograder could not run; \
ask your instructor to look at its log.", "tests": []}}' > "$ROOT/results/results.json"
}}
"""


def source_root() -> Path:
    """The source checkout lvs-harness runs from (it goes into the zip)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise HarnessError(
            "`gradescope build` packs lvs-harness from its source checkout, and this installation "
            f"has none beside {Path(__file__).parent}; run it from a clone of the repository."
        )
    return root


def build(
    out: Path, pack: str | None = None, image: Path | None = None, image_url: str | None = None, progress=lambda m: None
) -> Path:
    """Write the autograder zip: setup.sh, run_autograder, lvs-harness's source and the guest image
    (or a setup.sh that fetches it from ``image_url``). Written beside ``out`` and renamed into place."""
    pack_ = load_pack(pack)
    if image is None and not image_url:
        from .labs.image import ensure_image

        image = ensure_image(progress)
    if image is not None and not Path(image).is_file():
        raise HarnessError(
            f"no guest image at {image}; pass --image the rootfs.img `lvs-harness image build` printed, or --image-url."
        )
    from .books import harness_version

    src = source_root()
    sources = [
        src / "pyproject.toml",
        src / "README.md",
        *(p for p in sorted((src / "lvs_harness").rglob("*")) if p.is_file() and "__pycache__" not in p.parts),
    ]
    fetch = (
        f"curl -fsSL {shlex.quote(image_url)} -o /autograder/source/rootfs.img"
        if image_url
        else "test -s /autograder/source/rootfs.img"
    )
    out = Path(out)
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in (
                ("setup.sh", SETUP.format(version=harness_version(), fetch=fetch)),
                ("run_autograder", RUN.format(pack=shlex.quote(pack_.name))),
            ):
                info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
                info.external_attr = 0o755 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, text)
            for path in sources:  # lvs-harness itself, installed by setup.sh
                z.write(path, f"lvs-harness/{path.relative_to(src)}")
            kernel = Path(uml_kernel()[0])  # the image carries this kernel's modules: ship the two together
            info = zipfile.ZipInfo("linux.uml", date_time=time.localtime()[:6])
            info.external_attr = 0o755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, kernel.read_bytes())
            if image is not None:
                progress(f"adding the guest image ({Path(image).stat().st_size // 2**20} MiB)")
                z.write(image, "rootfs.img")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def _gradable(folder: Path) -> bool:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")] if folder.is_dir() else []
    return any(p.suffix.lower() in (".md", ".conf") or p.name == "Vagrantfile" for p in files)


def run(root: Path, pack: str | None = None) -> dict:
    """Grade ``root``/submission and write ``root``/results/results.json; return what was written."""
    root = Path(root)
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    submission = root / "submission"
    t0 = time.monotonic()
    try:
        if not _gradable(submission):
            data = exports.gradescope_nothing(f"the submission holds nothing to grade; hand in {EXPECTED}.")
        else:
            from .books import prepare_out
            from .grading import Grader, RunSpec

            with tempfile.TemporaryDirectory(prefix="lvsh-gradescope-") as tmp:
                out = Path(tmp) / "reports"
                prepare_out(out)
                spec = RunSpec.of(pack, backend="uml", audience="student")
                grader = Grader(out, spec, jobs=1, formats=("gradescope",), progress=lambda m: print(m, flush=True))
                entry = grader.grade([submission])[0]
                data = json.loads((out / entry["submission"] / exports.FILES["gradescope"]).read_text())
                if entry["outcome"] == "refused":
                    data["output"] = f"Your submission could not be graded: {entry['reason']}\n\nHand in {EXPECTED}."
                report = out / entry["report"]
                if report.is_file():
                    shutil.copy(report, root / "results" / "report.html")
    except Exception as err:  # never a crash: Gradescope shows the student the output
        traceback.print_exc()
        data = {
            "score": 0,
            "output": f"The autograder could not grade this submission ({type(err).__name__}: "
            f"{err}); ask your instructor.",
            "tests": [],
        }
    data.setdefault("execution_time", round(time.monotonic() - t0))
    tmp = results.with_name(".results.json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, results)
    return data
