"""The guest image and the vagrant box: ``lvs-harness image build``, ``lvs-harness box build``."""

from __future__ import annotations

from ..labs.base import stderr_progress
from ..labs.image import ensure_image


def cmd_image(args) -> int:
    path = ensure_image(stderr_progress, force=args.force)
    print(path)
    return 0


def cmd_box(args) -> int:
    from ..labs.box import ensure_box

    box = ensure_box(stderr_progress, force=args.force)
    print(box.file)
    return 0


def register(sub) -> None:
    image = sub.add_parser("image", help="the embedded lab's guest image")
    image_sub = image.add_subparsers(dest="action", required=True)
    build = image_sub.add_parser("build", help="build (or reuse) the cached image")
    build.add_argument("--force", action="store_true", help="rebuild even if a cached image exists")
    build.set_defaults(func=cmd_image)

    box = sub.add_parser("box", help="the vagrant lab's local libvirt box")
    box_sub = box.add_subparsers(dest="action", required=True)
    bbuild = box_sub.add_parser(
        "build", help="build (or reuse) the cached box (Debian, from this machine's apt sources)"
    )
    bbuild.add_argument("--force", action="store_true", help="rebuild even if a cached box exists")
    bbuild.set_defaults(func=cmd_box)
