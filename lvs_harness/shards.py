"""A cohort graded in shards (CI matrix jobs, a Slurm array, a Kubernetes indexed Job) and merged:
which shard a submission belongs to, ``--shard`` read from the array-job variables, what a grade
depends on (for ``--resume``), and the shards' books joined into one.

Example::

    parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"})   # (4, 4)
    merge([Path("shard-1"), Path("shard-2")], Path("reports"))
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from . import lms, similarity
from .books import harness_version, prepare_out, write_books
from .errors import HarnessError
from .packs import load_pack


def inputs_of(path: Path, pack: str) -> dict:
    """What a grade depends on: the submission's content (a digest of its file, or of every file
    in its folder), the pack and the harness version."""
    digest = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        digest.update(f.read_bytes() + b"\0")
    return {"sha256": digest.hexdigest(), "pack": pack, "harness": harness_version()}


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) a submission belongs to: a stable hash of its report name."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % count + 1


SHARD_FORM = (
    "--shard takes K/N with 1 ≤ K ≤ N (e.g. 2/4), or auto with GitLab's CI_NODE_INDEX and "
    "CI_NODE_TOTAL, Slurm's SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, or a Kubernetes "
    "indexed Job's JOB_COMPLETION_INDEX with LVS_HARNESS_SHARDS (the count) set"
)


def parse_shard(spec: str, env: dict | None = None) -> tuple[int, int]:
    """``K/N`` → (K, N); ``auto`` reads the array-job variables of GitLab (1-based index), Slurm
    (task id from SLURM_ARRAY_TASK_MIN, else 0-based) or a Kubernetes indexed Job (0-based)."""
    env = os.environ if env is None else env
    try:
        if spec == "auto":
            if env.get("CI_NODE_INDEX") and env.get("CI_NODE_TOTAL"):
                k, n = int(env["CI_NODE_INDEX"]), int(env["CI_NODE_TOTAL"])
            elif env.get("SLURM_ARRAY_TASK_ID") and env.get("SLURM_ARRAY_TASK_COUNT"):
                k = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0")) + 1
                n = int(env["SLURM_ARRAY_TASK_COUNT"])
            elif env.get("JOB_COMPLETION_INDEX") and env.get("LVS_HARNESS_SHARDS"):
                k, n = int(env["JOB_COMPLETION_INDEX"]) + 1, int(env["LVS_HARNESS_SHARDS"])
            else:
                raise HarnessError(f"--shard auto found none of the array-job variables; {SHARD_FORM}.")
        else:
            k_text, n_text = spec.split("/")
            k, n = int(k_text), int(n_text)
    except ValueError:
        raise HarnessError(f"--shard {spec!r} is not a shard; {SHARD_FORM}.") from None
    if n < 1 or not 1 <= k <= n:
        raise HarnessError(f"--shard {spec!r} gives shard {k} of {n}; {SHARD_FORM}.")
    return k, n


def merge(
    folders: list[Path], out: Path, roster: lms.Roster | None = None
) -> tuple[list[dict], lms.Summary, list[dict] | None]:
    """Merge the outputs of shards into ``out``: the same gradebook, LMS CSV and index an
    unsharded run writes, and every submission's folder. Shards of different packs or harness
    versions, or a submission graded twice from different inputs, are refused (nothing written)."""
    books = []
    for folder in folders:
        try:
            books.append((folder, json.loads((Path(folder) / "gradebook.json").read_text())))
        except (OSError, ValueError):
            raise HarnessError(
                f"{folder} holds no readable gradebook.json; pass the --out folders of "
                "`lvs-harness grade --shard` runs."
            ) from None
    if not books:
        raise HarnessError("merge needs the output folders of one or more shards.")
    for key, what in (("pack", "packs"), ("harness", "harness versions")):
        seen = {b.get(key) for _, b in books}
        if len(seen) > 1:
            raise HarnessError(
                f"the shards were graded with different {what} ("
                + ", ".join(f"{f}: {b.get(key)}" for f, b in books)
                + "); merge shards of one run."
            )
    entries: dict[str, tuple[Path, dict]] = {}
    for folder, book in books:
        for e in book["submissions"]:
            if e["submission"] in entries:
                first, other = entries[e["submission"]]
                if other.get("inputs") != e.get("inputs"):
                    raise HarnessError(
                        f"submission {e['submission']} was graded from different inputs in {first} "
                        f"and {folder}; grade it again in one shard."
                    )
                continue
            entries[e["submission"]] = (Path(folder), e)
    pack = load_pack(books[0][1]["pack"])
    prepare_out(out)
    for name, (folder, _) in sorted(entries.items()):
        if (folder / name).is_dir() and (folder / name).resolve() != (out / name).resolve():
            shutil.rmtree(out / name, ignore_errors=True)
            shutil.copytree(folder / name, out / name)
    merged = [e for _, (_, e) in sorted(entries.items())]
    similar = similarity.pairs(merged) if len(merged) > 1 else None
    return merged, write_books(out, pack, books[0][1]["checks"], merged, roster=roster, similar=similar), similar
