"""The code's style is checked as CI checks it: ``ruff check`` (the rules in pyproject.toml) and
``ruff format --check`` on the whole repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(args):
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *args, str(REPO)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
