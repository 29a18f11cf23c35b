"""``lvs-harness``: build the image, bring a lab up and poke at it, tear it down, clean up, demo.

Example::

    lvs-harness packs                  # the course labs installed
    lvs-harness up                     # the default pack's reference lab, kept running
    lvs-harness exec client -- curl -s 10.77.0.100
    lvs-harness down
"""

from __future__ import annotations

import argparse
import sys

from ..errors import HarnessError
from . import check, demo, grade, gradescope, image, import_, lab, merge, packs

# the commands, in the order `lvs-harness --help` lists them: one module each (or a few that share a lab)
COMMANDS = (image, packs, lab, import_, grade, check, gradescope, merge, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvs-harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS:
        command.register(sub)
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
