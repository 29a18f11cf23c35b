"""``lvs-harness``: build the image, bring a lab up and poke at it, tear it down, clean up, demo.

Example::

    lvs-harness packs                  # the course labs installed
    lvs-harness up                     # the default pack's reference lab, kept running
    lvs-harness exec client -- curl -s 10.77.0.100
    lvs-harness down
"""

from __future__ import annotations

import argparse
import base64
import shlex
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from . import exports
from .baseline import await_steady
from .checks import advice
from .errors import HarnessError
from .grading import DEFAULT_JOBS, DEFAULT_RETRIES, Grader, merge, parse_shard, prepare_out
from .labs import LabConfig, clean, remote, select_backend, start_lab
from .labs.base import provision_budget, stderr_progress
from .labs.image import ensure_image
from .lms import Roster
from .options import add, interrupt
from .packs import PackError, load_pack, pack_names
from .probes import ipvs, vrrp
from .probes.client import http_requests, identify, real_pages
from .runs import Run, stop_owner
from .submission import load_submission, write_folder


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


def cmd_image(args) -> int:
    path = ensure_image(stderr_progress, force=args.force)
    print(path)
    return 0


def cmd_box(args) -> int:
    from .labs.box import ensure_box

    box = ensure_box(stderr_progress, force=args.force)
    print(box.file)
    return 0


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
        from .labs import libvirt_ns

        stopped = libvirt_ns.stop()
        print(f"stopped {', '.join(stopped) or 'no libvirt daemon of lvs-harness'}")
    return 0


def cmd_import(args) -> int:
    sub = load_submission(args.writeup, load_pack(args.pack))
    print("\n".join(sub.summary()))
    out = write_folder(sub, args.out)
    print(f"wrote {out}/ (Vagrantfile, keepalived/<host>.conf, submission.json)")
    return 0


def cmd_grade(args) -> int:
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        raise HarnessError(f"no such submission: {', '.join(missing)}; pass markdown write-ups or submission folders.")
    if args.jobs is not None and args.jobs < 1:
        raise HarnessError("-j must be 1 or more.")
    if args.retries < 0:
        raise HarnessError("--retries must be 0 or more.")
    pack = load_pack(args.pack)  # an unknown pack is refused before anything is written
    shard = parse_shard(args.shard) if args.shard else None
    roster = Roster.read(args.roster) if args.roster else None
    prepare_out(args.out)
    backend, why = select_backend(args.lab)
    stderr_progress(f"lab backend: {backend} ({why})")
    if backend == "uml":
        ensure_image(stderr_progress)  # once, before the labs start side by side
    signal.signal(signal.SIGTERM, interrupt)
    jobs = args.jobs or (1 if backend == "vagrant" else DEFAULT_JOBS)  # five VMs per submission on vagrant
    grader = Grader(
        args.out,
        backend=backend,
        timing=args.timing,
        allow_scripts=args.allow_scripts,
        jobs=jobs,
        provider=args.provider,
        retries=args.retries,
        pack=pack.name,
        formats=tuple(dict.fromkeys(args.format or ())),
        shard=shard,
        resume=args.resume,
        audience=args.audience,
        roster=roster,
    )
    entries = grader.grade(args.submissions)
    crashed = [e["submission"] for e in entries if e["outcome"] == "harness-failed"]
    print(f"\n{'submission':30} {'score':>7}  outcome")
    for e in entries:
        print(f"{e['submission']:30} {e['score']:>3}/{e['max_score']:<3}  {e['outcome']}")
    print(f"\nreports: {args.out / 'index.html'}" + "".join(f"\n  {args.out / e['report']}" for e in entries))
    print(f"gradebook: {args.out / 'gradebook.csv'}, {args.out / 'gradebook.json'}")
    _imports_said(args.out, grader.imports)
    _similar_said(args.out, grader.similar)
    print(grader.gate.summary())
    print(
        f"time budgets: {provision_budget():.0f} s for a lab's provisioners together, {grader.timeout:.0f} s "
        "for a submission's whole run"
    )
    if crashed:
        print(f"lvs-harness: the grading of {', '.join(crashed)} crashed (see their pytest.log)", file=sys.stderr)
    return 1 if crashed else 0


class Spinner:
    """A line that turns while the lab comes up (on a terminal); plain lines otherwise."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream=sys.stderr):
        self.stream, self.tty = stream, stream.isatty()
        self.text, self.t0, self._stop = "starting", time.monotonic(), threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True) if self.tty else None

    def __enter__(self):
        if self._thread:
            self._thread.start()
        return self

    def say(self, message: str) -> None:
        self.text = message.split(": ", 1)[-1]
        if not self.tty:
            print(f"lvs-harness: {self.text}", file=self.stream, flush=True)

    def _spin(self) -> None:
        n = 0
        while not self._stop.wait(0.1):
            n += 1
            self.stream.write(
                f"\r\033[K{self.FRAMES[n % len(self.FRAMES)]} {time.monotonic() - self.t0:4.0f} s  {self.text[:100]}"
            )
            self.stream.flush()

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()
            self.stream.write("\r\033[K")
            self.stream.flush()


def cmd_check(args) -> int:
    """A student's self-check: the pack's visible checks on their write-up, with hints."""
    if not args.submission.exists():
        raise HarnessError(f"no such submission: {args.submission}; pass your markdown write-up or lab folder.")
    pack = load_pack(args.pack)
    prepare_out(args.out)
    backend, _ = select_backend(args.lab)
    if backend == "uml":
        ensure_image(stderr_progress)
    signal.signal(signal.SIGTERM, interrupt)
    with Spinner() as spinner:
        grader = Grader(
            args.out,
            backend=backend,
            jobs=1,
            retries=1,
            pack=pack.name,
            audience="student",
            without_hidden=True,
            progress=spinner.say,
        )
        entry = grader.grade([args.submission])[0]
    hints = {c["id"]: c["hint"] for c in grader.checks}
    print(f"{pack.title}: {args.submission}\n")
    for c in entry["checks"]:
        mark = "✓" if c["status"] == "passed" else ("✗" if c["status"] == "failed" else "!")
        print(f"{mark} {c['id']}: {c['title']}")
        if c["status"] == "passed":
            continue
        said = advice(c, hints.get(c["id"], ""))
        seen = said["seen"].splitlines()[0][:300] if said["seen"] else ""
        lines = (
            [("why: ", said["why"]), ("fix: ", said["do"]), ("seen: ", seen)]
            if said["why"]
            else [("", seen), ("hint: ", said["do"])]
        )
        for label, text in lines:
            if text:
                print(f"    {label}{text}")
    passed = sum(c["status"] == "passed" for c in entry["checks"])
    print(
        f"\n{passed} of {len(entry['checks'])} checks passed, {entry['score']}/{entry['max_score']} points"
        + (f" ({entry['outcome']}: {entry['reason'][:300]})" if entry["outcome"] != "graded" else "")
    )
    print(f"report: {args.out / entry['report']}")
    return 0 if passed == len(entry["checks"]) and entry["outcome"] == "graded" else 1


def cmd_gradescope_build(args) -> int:
    from .gradescope import build

    out = build(args.out, pack=args.pack, image=args.image, image_url=args.image_url, progress=stderr_progress)
    print(f"{out}: upload it as the assignment's autograder (Gradescope: Configure Autograder → Zip file upload)")
    return 0


def cmd_gradescope_run(args) -> int:
    from .gradescope import run

    data = run(args.root, pack=args.pack)
    print(f"{args.root / 'results' / 'results.json'}: score {data.get('score')}")
    return 0


def cmd_merge(args) -> int:
    entries, imports, similar = merge(args.shards, args.out, Roster.read(args.roster) if args.roster else None)
    print(
        f"merged {len(entries)} submission(s) from {len(args.shards)} shard(s) into {args.out}/ "
        f"(index.html, gradebook.csv, gradebook.json)"
    )
    _imports_said(args.out, imports)
    _similar_said(args.out, similar)
    return 0


def _similar_said(out: Path, similar: list[dict] | None) -> None:
    if similar:
        print(
            f"similar work: {len(similar)} pair(s) run configs alike enough to look copied (scores unchanged): "
            + ", ".join(f"{p['a']} ~ {p['b']} {p['score']:.0%}" for p in similar[:10])
            + (" …" if len(similar) > 10 else "")
            + f"; see {out / 'index.html'}"
        )


def _imports_said(out: Path, summary) -> None:
    print(
        f"LMS imports: {out / 'grades.csv'} (Canvas), {out / 'grades-moodle.csv'} (Moodle), "
        f"{out / 'grades-checks.csv'} (points per check)"
    )
    for line in summary.lines():
        print(f"  {line}")


def cmd_demo(args) -> int:
    """Bring a pack's reference lab up, show it balancing and failing over, tear it down."""
    pack = load_pack(args.pack)
    t0 = time.monotonic()
    with start_lab(LabConfig(backend=args.lab, pack=pack.name)) as lab:
        if len(lab.topology.directors) < 2 or not lab.topology.clients or not lab.topology.services:
            raise HarnessError(f"pack {pack.name}'s lab has no two directors, client and virtual service to demo.")
        vip = lab.topology.service.vip
        b1, b2 = (lab.hosts[h.name] for h in lab.topology.directors[:2])
        client = lab.hosts[lab.topology.clients[0].name]
        reals = len(lab.topology.reals)
        iface = vrrp.lab_interface(b1, near=vip)

        def holder():
            return vrrp.vip_owners((b1, b2), vip)

        def wait(cond, limit):
            start = time.monotonic()
            while not cond() and time.monotonic() - start < limit:
                time.sleep(0.1)
            return time.monotonic() - start

        def in_table():
            svc = ipvs.parse_list(b1.run("ipvsadm -Ln").stdout).service(vip, lab.topology.service.port)
            return bool(svc) and len(svc.reals) == reals

        wait(lambda: holder() == [b1.name] and in_table(), 20)
        print(
            f"\nlab {lab.run_id} ({pack.name}, {lab.NAME}) up, VIP {vip} on {', '.join(holder()) or 'nobody'} "
            f"after {time.monotonic() - t0:.1f} s\n"
        )
        print(b1.run("ipvsadm -Ln").stdout)
        url = f"http://{vip}:{lab.topology.service.port}/"
        pages = real_pages([lab.hosts[r.name] for r in lab.topology.reals], lab.topology.service.port)
        counts = Counter(a.real for a in identify(http_requests(client, url, count=50), pages))
        print("50 requests from client:", dict(sorted(counts.items(), key=str)))
        b1.link_down(iface)
        took = wait(lambda: holder() == [b2.name], 15)
        print(f"{iface} down on {b1.name}: VIP on {', '.join(holder()) or 'nobody'} after {took:.1f} s")
        counts = Counter(a.real for a in identify(http_requests(client, url, count=10), pages))
        print("10 requests via the backup:", dict(sorted(counts.items(), key=str)))
        b1.link_up(iface)
        took = wait(lambda: holder() == [b1.name], 15)
        print(f"{iface} up on {b1.name}: VIP back on {', '.join(holder()) or 'nobody'} after {took:.1f} s\n")
    return 0


def _roster_option(parser) -> None:
    parser.add_argument(
        "--roster",
        type=Path,
        metavar="STUDENTS.CSV",
        help="the class list your LMS exports (Canvas: Grades → Export; Moodle: Grades → Export → "
        "Plain text file), or any CSV with a Submission column: matches each submission to its "
        "student in grades.csv and grades-moodle.csv",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvs-harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

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

    sub.add_parser("packs", help="list the installed course packs").set_defaults(func=cmd_packs)

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

    imp = sub.add_parser("import", help="read a submission (write-up or folder) and write its folder form")
    imp.add_argument("writeup", type=Path)
    imp.add_argument("-o", "--out", type=Path, required=True, help="a new (or empty) folder")
    add(imp.add_argument, "--pack")
    imp.set_defaults(func=cmd_import)

    gr = sub.add_parser("grade", help="grade submissions, each in its own lab: reports, gradebook, index")
    gr.add_argument(
        "submissions", type=Path, nargs="+", metavar="SUBMISSION", help="markdown write-ups or submission folders"
    )
    gr.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help=f"labs at once (default {DEFAULT_JOBS}, 1 on --lab vagrant; see bench/grade.py)",
    )
    add(gr.add_argument, "--lab", "--pack", "--provider")
    gr.add_argument("--out", type=Path, default=Path("reports"), help="where reports go (default: reports/)")
    add(gr.add_argument, "--timing", "--allow-scripts")
    gr.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help="grade a submission again in a fresh lab when a check ended in error (the lab or the harness "
        f"failed, not the student's work), up to N more times (default {DEFAULT_RETRIES})",
    )
    gr.add_argument(
        "--format",
        action="append",
        choices=exports.FORMATS,
        metavar="FORMAT",
        help="also write each submission's grade as gradescope (results.gradescope.json), classroom "
        "(classroom.json) or junit (junit.xml) in its report folder; repeatable",
    )
    gr.add_argument(
        "--shard",
        metavar="K/N|auto",
        help="grade only the submissions a stable hash of their name gives to shard K of N (auto: "
        "from GitLab, Slurm or Kubernetes array-job variables); `lvs-harness merge` joins the shards",
    )
    add(gr.add_argument, "--audience")
    gr.add_argument(
        "--resume",
        action="store_true",
        help="skip submissions whose report in --out is complete for the same inputs (content, pack, harness version)",
    )
    _roster_option(gr)
    gr.set_defaults(func=cmd_grade)

    ck = sub.add_parser("check", help="check your own lab before handing it in: the pack's checks with hints")
    ck.add_argument("submission", type=Path, metavar="WRITE-UP-OR-FOLDER")
    add(ck.add_argument, "--pack", "--lab")
    ck.add_argument(
        "--out", type=Path, default=Path("check-report"), help="where the report goes (default: check-report/)"
    )
    ck.set_defaults(func=cmd_check)

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

    mg = sub.add_parser("merge", help="join the --out folders of sharded grade runs into one gradebook and index")
    mg.add_argument("shards", type=Path, nargs="+", metavar="SHARD_DIR")
    mg.add_argument("--out", type=Path, default=Path("reports"), help="where the merged reports go (default: reports/)")
    _roster_option(mg)
    mg.set_defaults(func=cmd_merge)

    demo = sub.add_parser("demo", help="bring the reference lab up, show balancing and failover, tear it down")
    add(demo.add_argument, "--lab", "--pack")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as err:
        print(f"lvs-harness: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lvs-harness: interrupted; the labs it started were removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
