"""MkDocs hooks: pages made at build time from the code and the repository, so they cannot drift.

- ``reference/cli.md``: every command's ``--help``, from :func:`lvs_harness.cli.build_parser`;
- each pack's page: its checks (id, points, title, hint), from the pack's own markers, where the
  page says ``<!-- checks: PACK -->``;
- a repository file shown whole, where a page says ``<!-- include: PATH -->`` (the tutorial's
  pack: the same files the tests run);
- the reference pages: the docstrings' Sphinx roles shown as plain code;
- ``benchmarks.md`` and ``changelog.md``: ``bench/RESULTS.md`` and ``CHANGELOG.md``, which stay
  where their readers (benchmark scripts, release notes) look for them.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
COPIES = {"benchmarks.md": ROOT / "bench" / "RESULTS.md", "changelog.md": ROOT / "CHANGELOG.md"}


def cli_reference() -> str:
    from lvs_harness.cli import build_parser

    parser = build_parser()
    parser.prog = "lvs-harness"
    out = ["# Command-line options", "", "Generated from the parser at build time (`lvs-harness COMMAND --help`).", ""]
    out += ["```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:  # argparse keeps its subparsers here; there is no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [f"## {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        for name2, sub2 in inner.choices.items():
                            out += [f"### {name} {name2}", "", "```text", sub2.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def checks_table(pack_name: str) -> str:
    from lvs_harness.packs import load_pack

    rows = ["| check | points | what it judges | a student's hint |", "|---|---|---|---|"]
    for c in load_pack(pack_name).checks():
        title, hint = (text.replace("|", "\\|") for text in (c.title, c.hint))
        rows.append(f"| `{c.id}` | {c.points} | {title} | {hint} |")
    return "\n".join(rows)


LANGUAGES = {".py": "python", ".md": "markdown", "": "ruby"}  # "": a Vagrantfile


def included(path: str) -> str:
    file = ROOT / path
    fence = "````"  # a write-up holds ``` fences of its own
    return f"`{path}`:\n\n{fence}{LANGUAGES.get(file.suffix, '')}\n{file.read_text().rstrip()}\n{fence}"


def on_page_markdown(markdown, page, config, files):
    markdown = re.sub(r"<!-- checks: (\S+) -->", lambda m: checks_table(m[1]), markdown)
    return re.sub(r"<!-- include: (\S+) -->", lambda m: included(m[1]), markdown)


def on_files(files, config):
    for uri, source in COPIES.items():
        files.append(File.generated(config, uri, content=source.read_text()))
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    return files


def on_page_content(html, page, config, files):
    """The docstrings' Sphinx roles (``:func:`x```, rendered by mkdocstrings as ``:func:<code>x</code>``)
    read as plain code, and their ``Example::`` as ``Example:``."""
    html = re.sub(r":(?:func|class|meth|mod|data|attr|exc):(<code>)", r"\1", html)
    return re.sub(r"(Example[^<:]*)::(</p>)", r"\1:\2", html)
