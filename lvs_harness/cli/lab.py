"""A lab kept running: ``up``, ``status``, ``exec``, ``down``, ``clean``."""

from __future__ import annotations

import argparse
import base64
import shlex
import sys

from ..baseline import await_steady
from ..errors import HarnessError
from ..labs import LabConfig, clean, remote, start_lab
from ..labs.base import stderr_progress
from ..options import add
from ..packs import load_pack
from ..runs import Run, stop_owner


def _live_runs() -> list[Run]:
    return [r for r in Run.all() if r.owner_alive() and (r.dir / remote.SOCKET).exists()]


def _pick_run(run_id: str | None) -> Run:
    if run_id:
        try:
            return Run.load(run_id)
        except OSError:
            raise HarnessError(f"no lab with run id {run_id}; `lvs-harness status` lists them.") from None
    live = _live_runs()
    if len(live) == 1:
        return live[0]
    if not live:
        raise HarnessError("no lab is up; start one with `lvs-harness up`.")
    raise HarnessError(f"{len(live)} labs are up ({', '.join(r.id for r in live)}); choose one with --run ID.")


def cmd_up(args) -> int:
    # a Vagrantfile of your own belongs to no pack unless you name one: it gets no pack's VIP
    pack = load_pack(args.pack) if args.pack or not args.vagrantfile else None
    lab = start_lab(
        LabConfig(
            backend=args.lab,
            provider=args.provider,
            vagrantfile=args.vagrantfile,
            allow_scripts=args.allow_scripts,
            keep=True,
            pack=pack.name if pack else None,
        )
    )
    vip = lab.topology.services[0].vip if lab.topology.services else "<the VIP>"
    client = lab.topology.clients[0].name if lab.topology.clients else "<host>"
    directors = [lab.hosts[d.name] for d in lab.topology.directors]
    ready = True
    for v in dict.fromkeys(s.vip for s in lab.topology.services) if directors else ():
        ok, text = await_steady(directors, v)  # keepalived elects a master after `up` has started it
        print(("" if ok else "still waiting: ") + text)
        ready = ready and ok
    print(
        f"lab {lab.run_id} is {'up' if ready else 'up, but not steady (see above)'}. Try:\n  lvs-harness status\n  lvs-harness exec {client} -- curl -s "
        f"{vip}\n  lvs-harness down" + (f"\n(pack {pack.name})" if pack else "")
    )
    return 0


def cmd_status(args) -> int:
    runs = Run.all()
    if not runs:
        print("no labs")
        return 0
    for run in runs:
        state = "up" if run.owner_alive() else "left behind (run `lvs-harness clean`)"
        print(f"{run.id}  {run.backend:6}  {state}")
        if run.owner_alive() and (run.dir / remote.SOCKET).exists():
            status = remote.request(run, {"op": "status"}, timeout=60)
            print(f"    {status['vagrantfile']}")
            for h in status["hosts"]:
                print(f"    {h['name']:12} {h['role']:9} {', '.join(h['addresses']) or '-'}")
    return 0


def cmd_exec(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise HarnessError("give the command after --, e.g. `lvs-harness exec client -- ip -br addr`.")
    run = _pick_run(args.run)
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    reply = remote.request(
        run,
        {
            "op": "exec",
            "host": args.host,
            "command": shlex.join(command),
            "timeout": args.timeout,
            "input": base64.b64encode(stdin).decode(),
        },
    )
    sys.stdout.write(reply["stdout"])
    sys.stderr.write(reply["stderr"])
    return reply["rc"]


def cmd_down(args) -> int:
    run = _pick_run(args.run)
    if run.owner_alive() and (run.dir / remote.SOCKET).exists():
        remote.stop(run)
    clean(stale_only=False, run_id=run.id)
    print(f"lab {run.id} is down")
    return 0


def cmd_clean(args) -> int:
    if args.all or args.run:
        for run in Run.all():
            if (args.all or run.id == args.run) and run.owner_alive():
                stop_owner(run)
    removed = clean(stale_only=not (args.all or args.run), run_id=args.run, progress=stderr_progress)
    print(f"removed {len(removed)} run(s)" + (f": {', '.join(removed)}" if removed else ""))
    if args.libvirt:
        from ..labs import libvirt_ns

        stopped = libvirt_ns.stop()
        print(f"stopped {', '.join(stopped) or 'no libvirt daemon of lvs-harness'}")
    return 0


def register(sub) -> None:
    up = sub.add_parser("up", help="bring a lab up and keep it running")
    add(up.add_argument, "--lab", "--pack", "--vagrantfile", "--provider", "--allow-scripts")
    up.set_defaults(func=cmd_up)

    sub.add_parser("status", help="list labs and their hosts").set_defaults(func=cmd_status)

    ex = sub.add_parser(
        "exec",
        help="run a command in a lab host: exec HOST -- CMD ARG… (argv passed intact, as "
        "docker exec does; for shell syntax: exec HOST -- sh -c '…')",
    )
    ex.add_argument("--run", help="run id (default: the only lab that is up)")
    ex.add_argument("--timeout", type=float, default=600)
    ex.add_argument("host")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)

    down = sub.add_parser("down", help="tear a lab down")
    down.add_argument("--run", help="run id (default: the only lab that is up)")
    down.set_defaults(func=cmd_down)

    cl = sub.add_parser("clean", help="remove what killed runs left behind (by run id)")
    cl.add_argument("--all", action="store_true", help="also stop labs that are up")
    cl.add_argument("--run", help="only this run id")
    cl.add_argument(
        "--libvirt", action="store_true", help="also stop the libvirt daemons lvs-harness started for the vagrant lab"
    )
    cl.set_defaults(func=cmd_clean)
