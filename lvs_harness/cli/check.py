"""``lvs-harness check``: a student's self-check, with why and fix for what failed."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from ..checks import advice
from ..errors import HarnessError
from ..books import prepare_out
from ..grading import Grader, RunSpec
from ..labs import select_backend
from ..labs.base import stderr_progress
from ..labs.image import ensure_image
from ..options import add, interrupt
from ..packs import load_pack


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
        spec = RunSpec(pack, backend=backend, audience="student", without_hidden=True)
        grader = Grader(args.out, spec, jobs=1, retries=1, progress=spinner.say)
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


def register(sub) -> None:
    ck = sub.add_parser("check", help="check your own lab before handing it in: the pack's checks with hints")
    ck.add_argument("submission", type=Path, metavar="WRITE-UP-OR-FOLDER")
    add(ck.add_argument, "--pack", "--lab")
    ck.add_argument(
        "--out", type=Path, default=Path("check-report"), help="where the report goes (default: check-report/)"
    )
    ck.set_defaults(func=cmd_check)
