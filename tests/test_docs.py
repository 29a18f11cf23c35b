"""The documentation builds as CI builds it: ``mkdocs build --strict`` (a broken link, a missing
page or a docstring mkdocstrings cannot read fails), with the generated pages in it: the CLI
reference from the parser, each pack's checks from its markers, the benchmark results."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lvs_harness.packs import load_pack

REPO = Path(__file__).resolve().parents[1]


def test_the_docs_build_strictly_with_their_generated_pages(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    site = tmp_path / "site"
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "usage: lvs-harness grade" in cli and "--roster" in cli
    for name in ("hw38", "lvs-nat"):
        page = (site / "packs" / name / "index.html").read_text()
        assert all(f"<td><code>{c.id}</code></td>" in page for c in load_pack(name).checks()), name
    assert "lab_config" in (site / "reference" / "fixtures" / "index.html").read_text()
    assert "Benchmark results" in (site / "benchmarks" / "index.html").read_text()
    assert "config_valid_check" in (site / "reference" / "suite" / "index.html").read_text()
    assert "RunSpec" in (site / "reference" / "grading" / "index.html").read_text()
    for page in (site / "reference").glob("*/index.html"):  # the docstrings' Sphinx roles read as code
        assert not re.search(r":(func|class|meth|mod|data):<code>", page.read_text()), page


def test_the_readme_is_short_and_keeps_the_quick_start():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "sudo .venv/bin/python -m pytest" in readme and "lvs-harness grade examples/hw38-writeup.md" in readme
