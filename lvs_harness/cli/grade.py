"""``lvs-harness grade``: submissions graded, each in its own lab, into reports and books."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from .. import exports
from ..errors import HarnessError
from ..books import prepare_out
from ..grading import DEFAULT_JOBS, DEFAULT_RETRIES, Grader, RunSpec
from ..shards import parse_shard
from ..labs import select_backend
from ..labs.base import provision_budget, stderr_progress
from ..labs.image import ensure_image
from ..lms import Roster
from ..options import add, interrupt
from ..packs import load_pack


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
    spec = RunSpec(
        pack,
        backend=backend,
        timing=args.timing,
        provider=args.provider,
        allow_scripts=args.allow_scripts,
        audience=args.audience,
    )
    formats = tuple(dict.fromkeys(args.format or ()))
    grader = Grader(args.out, spec, jobs=jobs, retries=args.retries, formats=formats, roster=roster)
    entries = grader.grade(args.submissions, shard=shard, resume=args.resume)
    crashed = [e["submission"] for e in entries if e["outcome"] == "harness-failed"]
    print(f"\n{'submission':30} {'score':>7}  outcome")
    for e in entries:
        print(f"{e['submission']:30} {e['score']:>3}/{e['max_score']:<3}  {e['outcome']}")
    print(f"\nreports: {args.out / 'index.html'}" + "".join(f"\n  {args.out / e['report']}" for e in entries))
    print(f"gradebook: {args.out / 'gradebook.csv'}, {args.out / 'gradebook.json'}")
    imports_said(args.out, grader.imports)
    similar_said(args.out, grader.similar)
    print(grader.gate.summary())
    print(
        f"time budgets: {provision_budget():.0f} s for a lab's provisioners together, {grader.timeout:.0f} s "
        "for a submission's whole run"
    )
    if crashed:
        print(f"lvs-harness: the grading of {', '.join(crashed)} crashed (see their pytest.log)", file=sys.stderr)
    return 1 if crashed else 0


def similar_said(out: Path, similar: list[dict] | None) -> None:
    if similar:
        print(
            f"similar work: {len(similar)} pair(s) run configs alike enough to look copied (scores unchanged): "
            + ", ".join(f"{p['a']} ~ {p['b']} {p['score']:.0%}" for p in similar[:10])
            + (" …" if len(similar) > 10 else "")
            + f"; see {out / 'index.html'}"
        )


def imports_said(out: Path, summary) -> None:
    print(
        f"LMS imports: {out / 'grades.csv'} (Canvas), {out / 'grades-moodle.csv'} (Moodle), "
        f"{out / 'grades-checks.csv'} (points per check)"
    )
    for line in summary.lines():
        print(f"  {line}")


def roster_option(parser) -> None:
    parser.add_argument(
        "--roster",
        type=Path,
        metavar="STUDENTS.CSV",
        help="the class list your LMS exports (Canvas: Grades → Export; Moodle: Grades → Export → "
        "Plain text file), or any CSV with a Submission column: matches each submission to its "
        "student in grades.csv and grades-moodle.csv",
    )


def register(sub) -> None:
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
    roster_option(gr)
    gr.set_defaults(func=cmd_grade)
