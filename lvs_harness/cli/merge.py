"""``lvs-harness merge``: the --out folders of sharded runs joined into one gradebook."""

from __future__ import annotations

from pathlib import Path

from ..shards import merge
from ..lms import Roster
from .grade import imports_said, roster_option, similar_said


def cmd_merge(args) -> int:
    entries, imports, similar = merge(args.shards, args.out, Roster.read(args.roster) if args.roster else None)
    print(
        f"merged {len(entries)} submission(s) from {len(args.shards)} shard(s) into {args.out}/ "
        f"(index.html, gradebook.csv, gradebook.json)"
    )
    imports_said(args.out, imports)
    similar_said(args.out, similar)
    return 0


def register(sub) -> None:
    mg = sub.add_parser("merge", help="join the --out folders of sharded grade runs into one gradebook and index")
    mg.add_argument("shards", type=Path, nargs="+", metavar="SHARD_DIR")
    mg.add_argument("--out", type=Path, default=Path("reports"), help="where the merged reports go (default: reports/)")
    roster_option(mg)
    mg.set_defaults(func=cmd_merge)
