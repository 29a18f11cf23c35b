"""``lvs-harness packs``: the installed course packs."""

from __future__ import annotations

from ..packs import PackError, load_pack, pack_names


def cmd_packs(args) -> int:
    eps = pack_names()
    if not eps:
        print("no packs are installed")
        return 0
    for name in eps:
        try:
            pack = load_pack(name)
        except PackError as err:
            print(f"{name:10} (cannot be used: {err})")
            continue
        checks = pack.checks()
        print(
            f"{pack.name:10} {pack.title} — {len(checks)} checks, {sum(c.points for c in checks)} points; "
            f"suite {pack.suite}; reference {pack.reference}"
        )
    return 0


def register(sub) -> None:
    sub.add_parser("packs", help="list the installed course packs").set_defaults(func=cmd_packs)
