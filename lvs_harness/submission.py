"""Student submissions: a folder, or a markdown write-up whose code blocks are the lab's files.

A write-up's fenced blocks are attributed by the text just before them ("Vagrantfile:",
"lb1 keepalived.conf:") and by their content (``Vagrant.configure``, ``vrrp_instance``).
The directors a keepalived.conf may be for are the pack's; their names are matched
tolerantly (a misspelling, "Lb 2"), shell-transcript residue is removed (a first line like
``root@lb1:/home/vagrant# cat …``, which keepalived would reject), and every decision is
recorded in ``notes``. Parts a submission lacks come from the pack's reference lab, marked as such.

Example::

    sub = load_submission(Path("write-up.md"), pack="my-lab")     # a pack whose directors are lb1, lb2
    sub.vagrantfile.origin            # 'write-up.md, block 1 ("Vagrantfile:")'
    sub.keepalived["lb2"].notes       # ['host "lb 2" read as lb2', …]
    write_folder(sub, Path("out/"))
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from . import keepalived
from .errors import HarnessError
from .vagrantfile import read_text

PROMPT = re.compile(r"^\s*(?:\S+@)?(?P<host>[\w.-]+):[^\n#$]*[#$] ")
FENCE = re.compile(r"^(?P<fence>```|~~~)[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)


class SubmissionError(HarnessError):
    """A submission that cannot be read as one."""


@dataclasses.dataclass
class Part:
    text: str
    origin: str                     # where it came from: "write-up.md, block 3 (…)" or "reference"
    from_reference: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Submission:
    name: str
    source: Path
    vagrantfile: Part | None = None
    keepalived: dict[str, Part] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    pack: object = None             # the lvs_harness.packs.Pack it is read for (its directors, its reference)

    @property
    def directors(self) -> tuple[str, ...]:
        return tuple(self.pack.directors) if self.pack else tuple(sorted(self.keepalived))

    def summary(self) -> list[str]:
        lines = [f"{self.name} ({self.source})"]
        if self.vagrantfile:
            lines.append(f"  Vagrantfile: {self.vagrantfile.origin}")
        for host, part in sorted(self.keepalived.items()):
            lines.append(f"  {host} keepalived.conf: {part.origin}")
            lines += [f"    - {n}" for n in part.notes]
        lines += [f"  note: {n}" for n in self.notes]
        return lines

    @property
    def own_vagrantfile(self) -> bool:
        return self.vagrantfile is not None and not self.vagrantfile.from_reference

    def parts(self) -> list[dict]:
        """Which files of the lab are the student's and which the reference's, for the report."""
        own = self.own_vagrantfile
        reference = f"the reference ({Path(self.pack.reference).name})" if self.pack else "the reference"
        parts = [{"part": "Vagrantfile", "student": own,
                  "source": self.vagrantfile.origin if own else reference,
                  "notes": self.vagrantfile.notes if own else []}]
        for host in self.directors:
            part = self.keepalived.get(host)
            if part is not None:
                parts.append({"part": f"{host} keepalived.conf", "student": not part.from_reference,
                              "source": part.origin, "notes": part.notes})
            else:
                parts.append({"part": f"{host} keepalived.conf", "student": own,
                              "source": "written by the " + ("student's" if own else "reference")
                                        + " Vagrantfile's provisioner", "notes": []})
        return parts

    def keeps_reference_ipvs(self) -> tuple[str, ...]:
        """Directors whose handed-in keepalived.conf defines no IPVS service while the lab is the
        reference's: the reference's provisioning supplies that function (its ``virtual_server``,
        as ipvsadm rules), since the homework needs it and the student did not hand it in."""
        if self.own_vagrantfile:
            return ()
        return tuple(host for host, part in self.keepalived.items()
                     if not part.from_reference and not keepalived.parse_config(part.text).virtual_servers)

    def functions(self) -> list[dict]:
        """What the lab needs, function by function, and whether the student's files or the
        reference supplied it: {"function", "student": bool, "how"}."""
        own = self.own_vagrantfile
        where = "the student's Vagrantfile" if own else "the reference Vagrantfile"
        out = [{"function": "topology (machines, networks, addresses)", "student": own, "how": where},
               {"function": self.pack.real_setup if self.pack else "real-server setup", "student": own,
                "how": f"{where}'s provisioners"}]
        kept = self.keeps_reference_ipvs()
        for host in self.directors:
            part = self.keepalived.get(host)
            conf = keepalived.parse_config(part.text) if part is not None else None
            student_conf = part is not None and not part.from_reference
            out.append({"function": f"VRRP on {host} (keepalived vrrp_instance)",
                        "student": bool(student_conf and conf.instances) or (part is None and own),
                        "how": part.origin if student_conf else f"{where}'s provisioning"})
            if student_conf and conf.virtual_servers:
                ipvs = (True, f"virtual_server in {part.origin}")
            elif host in kept:
                ipvs = (False, "the reference's virtual_server, added as ipvsadm rules (the handed-in "
                               "keepalived.conf defines none)")
            else:
                ipvs = (own, f"{where}'s provisioning")
            out.append({"function": f"IPVS service on {host}", "student": ipvs[0], "how": ipvs[1]})
        return out

    def lab_config(self, config, workdir: Path):
        """``config`` (a :class:`~lvs_harness.labs.LabConfig`) for this submission: its Vagrantfile
        (else the reference's), its keepalived configs, and what the reference must supply."""
        for line in self.summary():
            config.progress(line)
        vagrantfile = None
        if self.vagrantfile:
            vagrantfile = workdir / "Vagrantfile"
            vagrantfile.write_text(self.vagrantfile.text)
            if self.source.is_dir() and (self.source / self.vagrantfile.origin).is_file():
                vagrantfile = self.source / self.vagrantfile.origin   # its path: provisioners live beside it
        else:
            config.progress("the submission has no Vagrantfile: using the reference's")
        files = {host: {"/etc/keepalived/keepalived.conf": part.text} for host, part in self.keepalived.items()}
        for host in self.keeps_reference_ipvs():
            config.progress(f"{host}'s keepalived.conf defines no IPVS service: keeping the reference's")
        return dataclasses.replace(config, vagrantfile=vagrantfile or config.vagrantfile, files=files or None,
                                   keep_ipvs=self.keeps_reference_ipvs(),
                                   pack=self.pack.name if self.pack else config.pack)

    def report_info(self) -> dict:
        """What the report and the gradebook say about the submission."""
        return {"source": str(self.source), "parts": self.parts(), "functions": self.functions(),
                "notes": self.notes, "pack": self.pack.name if self.pack else None}


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def match_host(text: str, hosts: tuple[str, ...], max_edits: int = 2) -> tuple[str | None, str]:
    """The host a piece of text names, tolerating misspellings and a spaced number ("Balancer 2");
    (host or None, how it was matched).

    Example::

        match_host("lb-2 keepalived.conf", ("lb1", "lb2"))     # ('lb2', 'host "lb-2" read as lb2')
    """
    lowered = text.lower()
    words = [(w, w) for w in re.findall(r"[A-Za-z][\w-]*\d*", lowered)]
    words += [(m[1] + m[2], m[0]) for m in re.finditer(r"([a-z][a-z-]*?)[ _-]+(\d+)\b", lowered)]
    best: list[tuple[int, str, str]] = []
    for word, said in words:
        for host in hosts:
            d = edit_distance(word, host)
            if d <= max_edits and _same_number(word, host):
                best.append((d, host, said))
    if not best:
        return None, ""
    best.sort()
    d, host, said = best[0]
    if any(h != host and dd == d for dd, h, _ in best):
        return None, f"ambiguous: {sorted({h for dd, h, _ in best if dd == d})}"
    if said == host:
        return host, "exact"
    return host, f'host "{said}" read as {host}' + (f' ({d} edit{"s" if d > 1 else ""})' if d else "")


def _same_number(word: str, host: str) -> bool:
    """director1 must not match director2: the trailing numbers must agree."""
    return re.sub(r"\D", "", word) == re.sub(r"\D", "", host)


def strip_transcript(text: str) -> tuple[str, list[str]]:
    """Remove a leading shell prompt line (``root@h:~# cat file``); return (text, notes)."""
    lines = text.splitlines(keepends=True)
    if lines and PROMPT.match(lines[0]):
        return "".join(lines[1:]), [f"removed the shell prompt line {lines[0].strip()!r}"]
    return text, []


def _read_text(path: Path) -> str:
    return read_text(path, SubmissionError, "a write-up or lab file",
                     "pass a submission folder or a markdown write-up.")


def _label(text: str, start: int) -> str:
    """The nearest non-empty line before a fenced block."""
    for line in reversed(text[:start].splitlines()):
        if line.strip():
            return line.strip()
    return ""


def from_writeup(path: Path, hosts: tuple[str, ...]) -> Submission:
    text = _read_text(path)
    sub = Submission(name=path.stem, source=path)
    blocks = list(FENCE.finditer(text))
    if not blocks:
        raise SubmissionError(f"{path} has no fenced code blocks (```); put the Vagrantfile and each "
                              "keepalived.conf in its own block, labelled on the line before")
    for n, m in enumerate(blocks, 1):
        label, body = _label(text, m.start()), m["body"]
        origin = f"{path.name}, block {n} ({label!r})"
        cleaned, notes = strip_transcript(body)
        if "vagrant.configure" in body.lower() or "vagrantfile" in label.lower() and "configure" in body.lower():
            if sub.vagrantfile:
                sub.notes.append(f"block {n} is another Vagrantfile; kept the first ({sub.vagrantfile.origin})")
            else:
                sub.vagrantfile = Part(cleaned, origin, notes=notes)
            continue
        if "vrrp_instance" not in body and "virtual_server" not in body:
            continue   # logs, command output, demonstrations
        prompt = PROMPT.match(body.splitlines()[0]) if body.strip() else None
        host, how = match_host(label, hosts)
        if host is None and prompt:
            host, how = match_host(prompt["host"], hosts)
            how = how and f"from the shell prompt: {how}"
        if host is None:
            sub.notes.append(f"block {n} ({label!r}) is a keepalived config for no known host "
                             f"({', '.join(hosts)}){'; ' + how if how else ''}: not used")
            continue
        if host in sub.keepalived:
            sub.notes.append(f"block {n} is another keepalived.conf for {host}; kept the first")
            continue
        sub.keepalived[host] = Part(cleaned, origin, notes=([how] if how != "exact" else []) + notes)
    return sub


def from_folder(path: Path, hosts: tuple[str, ...]) -> Submission:
    files = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise SubmissionError(f"{path} is empty; a submission folder holds a Vagrantfile and/or keepalived "
                              "configs (keepalived/<director>.conf …), or a write-up (*.md)")
    sub = Submission(name=path.name, source=path)
    for f in files:
        rel = f.relative_to(path)
        if f.name == "Vagrantfile" and sub.vagrantfile is None:
            sub.vagrantfile = Part(_read_text(f), str(rel))
        elif f.suffix == ".conf":
            raw = _read_text(f)
            if "keepalived" not in str(rel).lower() and "vrrp_instance" not in raw:
                continue
            host, how = match_host(str(rel.with_suffix("")), hosts)
            if host and host not in sub.keepalived:
                text, notes = strip_transcript(raw)
                sub.keepalived[host] = Part(text, str(rel), notes=([how] if how != "exact" else []) + notes)
            elif not host:
                sub.notes.append(f"{rel}: a keepalived config for no known host ({', '.join(hosts)}): not used")
    writeups = [f for f in files if f.suffix.lower() == ".md"]
    if writeups and (sub.vagrantfile is None or not sub.keepalived):
        from_md = from_writeup(writeups[0], hosts)
        sub.vagrantfile = sub.vagrantfile or from_md.vagrantfile
        for host, part in from_md.keepalived.items():
            sub.keepalived.setdefault(host, part)
        sub.notes += from_md.notes
    return sub


def load_submission(path: Path, pack=None, reference: dict | None = None) -> Submission:
    """Read a submission (folder or write-up) for ``pack`` (a :class:`~lvs_harness.packs.Pack` or
    its name; default: the default pack); fill what it lacks from ``reference`` ({"Vagrantfile":
    text, host: keepalived text}), marking those parts as the reference's. A submission whose
    keepalived configs name none of the pack's directors, and whose Vagrantfile (if any) does not
    name them either, was written for another pack: it is refused with the pack's names."""
    from .packs import load_pack
    pack = pack if hasattr(pack, "directors") else load_pack(pack)
    hosts = tuple(pack.directors)
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path} does not exist; pass a submission folder or a markdown write-up")
    sub = from_folder(path, hosts) if path.is_dir() else from_writeup(path, hosts)
    sub.pack = pack
    unmatched = [n for n in sub.notes if "for no known host" in n]
    named = sub.vagrantfile is not None and any(match_host(sub.vagrantfile.text, (h,))[0] for h in hosts)
    if unmatched and not sub.keepalived and not named:
        raise SubmissionError(f"{path}: its keepalived configs name none of pack {pack.name}'s directors "
                              f"({', '.join(hosts)}), so it was not written for this pack; grade it with the pack "
                              "it was written for (--pack; `lvs-harness packs` lists them)")
    if sub.vagrantfile is None and not sub.keepalived:
        raise SubmissionError(f"{path} holds neither a Vagrantfile nor a keepalived config"
                              + "".join(f"; {note}" for note in sub.notes))
    for key, text in (reference or {}).items():
        if key == "Vagrantfile" and sub.vagrantfile is None:
            sub.vagrantfile = Part(text, "reference", from_reference=True)
        elif key != "Vagrantfile" and key not in sub.keepalived:
            sub.keepalived[key] = Part(text, "reference", from_reference=True)
    return sub


def write_folder(sub: Submission, out: Path) -> Path:
    """Write the folder form (Vagrantfile, keepalived/<host>.conf, submission.json) to ``out``.

    Refuses a non-empty ``out``; writes into a temporary sibling and renames it into place,
    so a failure leaves nothing half-written.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SubmissionError(f"{out} exists and is not empty; choose a new folder (nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        manifest = {"name": sub.name, "source": str(sub.source), "notes": sub.notes, "parts": {}}
        if sub.vagrantfile:
            (tmp / "Vagrantfile").write_text(sub.vagrantfile.text)
            manifest["parts"]["Vagrantfile"] = dataclasses.asdict(sub.vagrantfile) | {"text": None}
        for host, part in sub.keepalived.items():
            (tmp / "keepalived").mkdir(exist_ok=True)
            (tmp / "keepalived" / f"{host}.conf").write_text(part.text)
            manifest["parts"][f"keepalived/{host}.conf"] = dataclasses.asdict(part) | {"text": None}
        (tmp / "submission.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
