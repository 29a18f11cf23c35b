"""``lvs-harness gradescope build|run``: the Gradescope autograder."""

from __future__ import annotations

from pathlib import Path

from ..labs.base import stderr_progress
from ..options import add


def cmd_gradescope_build(args) -> int:
    from ..gradescope import build

    out = build(args.out, pack=args.pack, image=args.image, image_url=args.image_url, progress=stderr_progress)
    print(f"{out}: upload it as the assignment's autograder (Gradescope: Configure Autograder → Zip file upload)")
    return 0


def cmd_gradescope_run(args) -> int:
    from ..gradescope import run

    data = run(args.root, pack=args.pack)
    print(f"{args.root / 'results' / 'results.json'}: score {data.get('score')}")
    return 0


def register(sub) -> None:
    gs = sub.add_parser("gradescope", help="the Gradescope autograder: build its zip, or run it")
    gs_sub = gs.add_subparsers(dest="action", required=True)
    gb = gs_sub.add_parser("build", help="write the autograder zip (setup.sh, run_autograder, lvs-harness, the image)")
    add(gb.add_argument, "--pack")
    gb.add_argument("--out", type=Path, default=Path("autograder.zip"))
    gb.add_argument(
        "--image", type=Path, default=None, help="the guest image to ship (default: this machine's, built if missing)"
    )
    gb.add_argument("--image-url", default=None, help="ship no image: setup.sh fetches it from this URL")
    gb.set_defaults(func=cmd_gradescope_build)
    gr_ = gs_sub.add_parser("run", help="what run_autograder does: grade ROOT/submission into ROOT/results")
    add(gr_.add_argument, "--pack")
    gr_.add_argument("--root", type=Path, default=Path("/autograder"))
    gr_.set_defaults(func=cmd_gradescope_run)
