"""``lvs-harness import``: a submission read and written in its folder form."""

from __future__ import annotations

from pathlib import Path

from ..options import add
from ..packs import load_pack
from ..submission import load_submission, write_folder


def cmd_import(args) -> int:
    sub = load_submission(args.writeup, load_pack(args.pack))
    print("\n".join(sub.summary()))
    out = write_folder(sub, args.out)
    print(f"wrote {out}/ (Vagrantfile, keepalived/<host>.conf, submission.json)")
    return 0


def register(sub) -> None:
    imp = sub.add_parser("import", help="read a submission (write-up or folder) and write its folder form")
    imp.add_argument("writeup", type=Path)
    imp.add_argument("-o", "--out", type=Path, required=True, help="a new (or empty) folder")
    add(imp.add_argument, "--pack")
    imp.set_defaults(func=cmd_import)
