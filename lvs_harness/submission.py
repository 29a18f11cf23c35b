"""Student submissions: a folder, or a markdown write-up in any form students hand in, read as the
student's own lab design.

A write-up's blocks (see :mod:`lvs_harness.writeup`: fences however indented or quoted, HTML
``<pre>``, runs of inline `code`, CRLF) are split at shell prompts. keepalived configs, a
Vagrantfile, and the setup commands shown being run on a host are the student's; each config's host
comes from a prompt, the prose before it, a host comment inside it or its ``router_id`` — matched
tolerantly against the names the write-up and its Vagrantfile use ("lb-2" is lb2). Roles
come from function: a host with a keepalived config (or keepalived/ipvsadm commands) is a director,
the IPVS real-server addresses are the reals, a remaining host is the client. A config given for
both directors ("the second differs only by state BACKUP") is derived as the text says. Without a
Vagrantfile the lab is built in the student's terms (:mod:`lvs_harness.design`). Nothing is taken
from a pack's reference lab; every decision is in ``notes``. Linked files are read only inside the
submission's own folder.

Example::

    sub = load_submission(Path("write-up.md"), pack="my-lab")
    sub.keepalived["lb2"].notes       # ['host "lb 2" read as lb2', …]
    sub.summary()                     # what was found, and where
    write_folder(sub, Path("out/"))
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from . import keepalived, writeup
from .design import DR_SETUP, Design
from .errors import HarnessError
from .vagrantfile import read_text

MAX_LINKED = 20  # linked files read with one write-up
MAX_HOSTS = 32  # hosts a write-up's prompts may name (a lab of more is no homework's)


class SubmissionError(HarnessError):
    """A submission that cannot be read as one."""


class NothingToRun(SubmissionError):
    """A write-up from which nothing runnable can be read (e.g. its configs are only in images):
    a verdict of 0 points, not an error of the submission's form."""


@dataclasses.dataclass
class Part:
    text: str
    origin: str  # where it came from: "write-up.md, block 3 (…)"
    from_reference: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)
    derived: bool = False  # made from another host's part, as the write-up's text says


@dataclasses.dataclass
class Command:
    host: str | None  # None: shown without a host ("on the directors" → role)
    command: str
    origin: str
    role: str | None = None  # "director" / "real" when the text says which hosts


HOST_TOKEN = re.compile(
    r"(?<![\w@/.:-])([A-Za-z][A-Za-z0-9_-]*?\d+)(?![\w./-])(?!:\S)"  # web2, lb-1
    r"|\b([A-Za-z]{3,}) ([0-9]{1,2})\b(?![.,]\d)"
)  # Balancer 2
NOT_HOSTS = re.compile(
    r"^(?:eth\d+|enp\w+|ens\d+|eno\d+|lo\d*|vi_\d+|vrrp_?\w*|rh_\d+|vs_?\d+|vsg_\d+|ipv[46]|md5|"
    r"sha\d+|h[1-6]|hw\d*|utf\d+|x86_64|ubuntu\d*|debian\d*|vip\d*|net\d*|step\d*|task\d*|"
    r"vagrant\d*|http\d*|tcp\d*|udp\d*|ipvs\d*|lvs\d*|nat\d*|dr\d*|pass\d*|port\d*|s\d+|"
    r"v\d+|r\d+|e\d+|nginx\d+|keepalived\d*|eth\d+:\d+|br\d+|veth\d*|0s\d)$",
    re.I,
)
IGNORED_HOSTS = {"vagrant", "localhost", "ubuntu", "root", "debian", "user", "admin"}
REPLAYED = re.compile(
    r"^(?:ip\s+(?:-\d\s+)?(?:a|addr|address|r|route)\s+(?:add|replace|append)\b"
    r"|sysctl\s+(?:-\w+\s+)*(?:-w\s+)?net\.\S+=|sysctl\s+-p\b"
    r"|ipvsadm\s+(?:-[AaEeCRZ]\b|--add|--edit|--set|--restore|-R\b)|ipvsadm-restore\b"
    r"|iptables\s+(?:-t\s+\w+\s+)?-[AI]\b|echo\s+\d+\s*>\s*/proc/sys/net/)"
)
DR_COMMAND = re.compile(r"\bdev\s+lo\b|arp_ignore|arp_announce|REDIRECT|lo:\w")
DIRECTOR_COMMAND = re.compile(r"\bkeepalived\b|\bipvsadm\b")
ROLE_WORDS = {
    "real": re.compile(r"реал|real|backend|бэкенд|бекенд|server|сервер|web", re.I),
    "director": re.compile(r"директор|director|балансир|balancer|балансер|lvs|keepalived", re.I),
}
ALL_WORDS = re.compile(
    r"\b(?:both|all|each|every)\b|обоих|оба\b|обе\b|всех|каждом|каждый|на директорах|на реалах|"
    r"на балансировщиках|для обоих",
    re.I,
)
# a director that balances another way: nginx's proxy_pass to an upstream, haproxy's backend servers
OTHER_BALANCERS = {
    "nginx (proxy_pass)": re.compile(r"^\s*proxy_pass\s+http", re.M),
    "haproxy": re.compile(r"^\s*(?:backend|listen)\s+\S+\s*$(?:\n.*)*?^\s*server\s+\S+\s+\d", re.M),
}
ORDINAL = re.compile(
    r"(?:директор|director|балансир\w*|балансер\w*|balancer|лб|lb|lvs|keepalived|нод\w*|node|"
    r"сервер\w*|server|host|хост\w*)\s*[№#-]?\s*(\d{1,2})\b",
    re.I,
)
DERIVE = re.compile(r"\b(state)\s+(MASTER|BACKUP)\b|\b(priority)\s+(\d+)\b", re.I)


def _read_text(path: Path) -> str:
    return read_text(
        path, SubmissionError, "a write-up or lab file", "pass a submission folder or a markdown write-up."
    )


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
            if d <= max_edits and _same_number(word, host) and (d == 0 or len(host) > 4):
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


def host_tokens(text: str) -> list[str]:
    """Words of ``text`` that look like a host name (letters then a number: web2, bal01, lb-1),
    nearest the end first; a spaced number ("Balancer 1") counts too."""
    found = [(m[1] or m[2] + m[3]).lower() for m in HOST_TOKEN.finditer(text)]
    return [t for t in reversed(found) if not NOT_HOSTS.match(t) and t not in IGNORED_HOSTS]


def strip_transcript(text: str) -> tuple[str, list[str]]:
    """Remove shell prompt lines (``root@h:~# cat file``) anywhere in a config; return (text, notes)."""
    kept, notes = [], []
    for line in text.splitlines(keepends=True):
        if writeup.prompt(line) is not None:
            notes.append(f"removed the shell prompt line {line.strip()!r}")
        else:
            kept.append(line)
    return "".join(kept), notes


@dataclasses.dataclass
class Submission:
    name: str
    source: Path
    vagrantfile: Part | None = None
    keepalived: dict[str, Part] = dataclasses.field(default_factory=dict)
    commands: list[Command] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    pack: object = None  # the lvs_harness.packs.Pack it is read for (what the homework requires)
    roles: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # director/real/client -> names
    reals: dict[str, str] = dataclasses.field(default_factory=dict)  # real name -> address ("" unknown)
    design: Design | None = None  # the lab built in the student's terms (no Vagrantfile of theirs)
    vip: str | None = None  # the address the student's keepalived raises

    @property
    def directors(self) -> tuple[str, ...]:
        return tuple(self.roles.get("director") or sorted(self.keepalived))

    def summary(self) -> list[str]:
        lines = [f"{self.name} ({self.source})"]
        if self.vagrantfile:
            lines.append(f"  Vagrantfile: {self.vagrantfile.origin}")
        for host, part in sorted(self.keepalived.items()):
            lines.append(f"  {host} keepalived.conf: {part.origin}")
            lines += [f"    - {n}" for n in part.notes]
        for host, cmds in sorted(self.replayed().items()):
            lines.append(f"  {host}: replays {len(cmds)} setup command(s) shown in the write-up")
        lines += [f"  note: {n}" for n in self.notes]
        return lines

    @property
    def own_vagrantfile(self) -> bool:
        return self.vagrantfile is not None and not self.vagrantfile.from_reference

    def replayed(self) -> dict[str, list[str]]:
        """{host: setup commands shown being run there}, in order: configuration only (addresses,
        sysctls, ipvsadm rules, iptables), never the demonstration's faults and observations."""
        out: dict[str, list[str]] = {}
        for c in self.commands:
            if c.host and REPLAYED.match(c.command):
                out.setdefault(c.host, []).append(c.command)
        return out

    def parts(self) -> list[dict]:
        """Which files of the lab are the student's, for the report."""
        built = "built by lvs-harness in the student's terms (no Vagrantfile was handed in)"
        parts = [
            {
                "part": "Vagrantfile",
                "student": self.own_vagrantfile,
                "source": self.vagrantfile.origin if self.vagrantfile else built,
                "notes": (self.vagrantfile.notes if self.own_vagrantfile else self.design.notes if self.design else []),
            }
        ]
        for host in self.directors:
            part = self.keepalived.get(host)
            if part is not None:
                parts.append(
                    {"part": f"{host} keepalived.conf", "student": True, "source": part.origin, "notes": part.notes}
                )
            else:
                parts.append(
                    {
                        "part": f"{host} keepalived.conf",
                        "student": self.own_vagrantfile,
                        "source": "written by the student's Vagrantfile's provisioner"
                        if self.own_vagrantfile
                        else "none handed in",
                        "notes": [],
                    }
                )
        return parts

    def functions(self) -> list[dict]:
        """What the lab needs, function by function, and where it came from: {"function", "student", "how"}."""
        own = self.own_vagrantfile
        replayed = self.replayed()
        built = self.design.built if self.design else {}
        out = [
            {
                "function": "topology (machines, networks, addresses)",
                "student": own,
                "how": "the student's Vagrantfile"
                if own
                else self.vagrantfile.origin
                if self.vagrantfile
                else f"built to fit the write-up: hosts {', '.join(self.design.hosts)}, VIP {self.design.vip}, "
                f"subnet {self.design.network}"
                if self.design
                else "none",
            }
        ]
        for host in self.directors:
            part = self.keepalived.get(host)
            out.append(
                {
                    "function": f"VRRP on {host} (keepalived vrrp_instance)",
                    "student": part is not None and not part.derived,
                    "how": (
                        part.origin
                        + (
                            " (derived: " + "; ".join(n for n in part.notes if "derived" in n) + ")"
                            if part.derived
                            else ""
                        )
                    )
                    if part
                    else "the student's Vagrantfile",
                }
            )
            conf = keepalived.parse_config(part.text) if part else None
            if conf and conf.virtual_servers:
                ipvs = (True, f"virtual_server in {part.origin}")
            elif any("ipvsadm" in c for c in replayed.get(host, [])):
                ipvs = (True, "ipvsadm commands shown in the write-up, replayed")
            elif built.get(host):
                ipvs = (False, "built to fit (the write-up shows no IPVS setup): " + "; ".join(built[host]))
            else:
                ipvs = (own, "the student's Vagrantfile" if own else "none")
            out.append({"function": f"IPVS service on {host}", "student": ipvs[0], "how": ipvs[1]})
        for host in self.roles.get("real", []):
            if replayed.get(host):
                out.append(
                    {
                        "function": f"real-server setup on {host}",
                        "student": True,
                        "how": "commands shown in the write-up, replayed: " + "; ".join(replayed[host]),
                    }
                )
            elif built.get(host):
                out.append(
                    {
                        "function": f"real-server setup on {host}",
                        "student": False,
                        "how": "built to fit (the write-up shows none for it): " + "; ".join(built[host]),
                    }
                )
            else:
                out.append(
                    {
                        "function": f"real-server setup on {host}",
                        "student": own,
                        "how": "the student's Vagrantfile" if own else "none",
                    }
                )
        return out

    def lab_config(self, config, workdir: Path):
        """``config`` (a :class:`~lvs_harness.labs.LabConfig`) for this submission: its Vagrantfile, else
        the lab built in its terms; its keepalived configs; its replayed commands; roles by function."""
        for line in self.summary():
            config.progress(line)
        generated = False
        if self.vagrantfile is not None and self.vagrantfile.from_reference:
            vagrantfile = Path(self.pack.reference)
            config.progress(f"the lab's topology is the reference's: {self.notes[-1] if self.notes else ''}")
        elif self.own_vagrantfile:
            vagrantfile = workdir / "Vagrantfile"
            vagrantfile.write_text(self.vagrantfile.text)
            if self.source.is_dir() and (self.source / self.vagrantfile.origin).is_file():
                vagrantfile = self.source / self.vagrantfile.origin  # its path: provisioners live beside it
        else:
            vagrantfile = workdir / "Vagrantfile"
            vagrantfile.write_text(self.design.vagrantfile())
            generated = True
            config.progress(
                "the submission has no Vagrantfile: its lab is built in its own terms "
                f"({', '.join(self.design.hosts)}; VIP {self.design.vip})"
            )
        files = {host: {"/etc/keepalived/keepalived.conf": part.text} for host, part in self.keepalived.items()}
        reals = (
            [self.design.addresses[r] for r in self.design.reals]
            if self.design
            else [a for a in self.reals.values() if a]
        )
        roles = {
            **((self.pack.roles or {}) if self.pack else {}),
            "by_function": {"directors": list(self.directors), "reals": reals},
        }
        daemons = None
        if generated and self.pack and self.pack.skeleton_daemons:  # as the course's skeleton: on every host
            extra = tuple(self.pack.skeleton_daemons)
            daemons = {
                role: tuple(dict.fromkeys(extra + tuple(self.pack.daemons.get(role, ()))))
                for role in ("director", "real", "client")
            }
        # the homework's service (its port, forwarding, scheduler) at the student's VIP
        services = (
            tuple(dataclasses.replace(s, vip=self.vip) for s in (self.pack.services if self.pack else ()))
            if self.vip
            else ()
        )
        return dataclasses.replace(
            config,
            vagrantfile=vagrantfile,
            files=files or None,
            roles=roles,
            services=services or config.services,
            commands=self.replayed() or None,
            generated=generated,
            daemons=daemons if daemons else config.daemons,
            pack=self.pack.name if self.pack else config.pack,
        )

    def report_info(self) -> dict:
        """What the report and the gradebook say about the submission."""
        return {
            "source": str(self.source),
            "parts": self.parts(),
            "functions": self.functions(),
            "notes": self.notes,
            "pack": self.pack.name if self.pack else None,
        }


# --- reading ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Found:
    """What a write-up shows, before hosts are resolved."""

    configs: list[tuple[str | None, str, str, list[str]]] = dataclasses.field(default_factory=list)
    commands: list[Command] = dataclasses.field(default_factory=list)
    outputs: list[str] = dataclasses.field(default_factory=list)  # command output (ipvsadm -Ln …)
    vagrantfile: Part | None = None
    prose: list[str] = dataclasses.field(default_factory=list)
    prompt_hosts: list[str] = dataclasses.field(default_factory=list)  # distinct, in order
    images: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    contexts: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # origin -> prose before it


def _is_config(text: str) -> bool:
    return bool(re.search(r"^\s*(?:vrrp_instance|virtual_server)\b", text, re.M))


def _split_configs(text: str) -> list[tuple[str | None, str]]:
    """One text holding several configs, split at host comments (``! lb2``, ``# config of lb2``)
    that start a new config; (host named by the comment or None, text)."""
    out: list[tuple[str | None, list[str]]] = [(None, [])]
    seen_config = False
    for line in text.splitlines(keepends=True):
        m = re.match(r"^\s*[!#]+\s*(.*)$", line)
        names = host_tokens(m[1]) if m and len(m[1]) < 80 else []
        if names and seen_config:
            out.append((names[0], [line]))
            seen_config = False
            continue
        if names and not out[-1][0]:
            out[-1] = (names[0], out[-1][1])
        out[-1][1].append(line)
        if re.match(r"^\s*(?:vrrp_instance|virtual_server)\b", line):
            seen_config = True
    return [(h, "".join(lines)) for h, lines in out if _is_config("".join(lines))]


def _read_writeup(text: str, name: str, found: _Found) -> None:
    blocks = writeup.read_blocks(text)
    found.images += writeup.images(text)
    found.prose += [
        line.strip()
        for line in writeup.normalise(text).split("\n")
        if line.strip() and not line.lstrip().startswith(("```", "~~~", "`"))
    ]
    previous_host = None
    for block in blocks:
        origin = block.origin(name)
        label_text = " ".join(block.context)
        found.contexts[origin] = block.context
        if re.search(r"Vagrant\.configure", block.text):
            if found.vagrantfile:
                found.notes.append(f"{origin} is another Vagrantfile; kept the first ({found.vagrantfile.origin})")
            else:
                found.vagrantfile = Part(block.text, origin)
            continue
        for piece in writeup.pieces(block):
            if piece.command is not None:
                hosts = writeup.expand_hosts(piece.host) if piece.host else [None]
                for host in hosts:
                    if host and not _room_for(found, host.lower()):
                        continue
                    found.commands.append(
                        Command(host and host.lower(), re.sub(r"^sudo\s+(?:-\S+\s+)*", "", piece.command), origin)
                    )
                    if host and host.lower() not in found.prompt_hosts:
                        found.prompt_hosts.append(host.lower())
                previous_host = hosts[-1].lower() if hosts[-1] else previous_host
            body = piece.text
            if piece.file and piece.file.endswith("ipvsadm.rules"):
                role = "director"
                for line in body.splitlines():
                    if re.match(r"^\s*-[AaE]\s", line):
                        found.commands.append(
                            Command(
                                piece.host and piece.host.lower(),
                                "ipvsadm " + line.strip(),
                                origin,
                                role if not piece.host else None,
                            )
                        )
                continue
            if _is_config(body):
                for comment_host, text_part in _split_configs(body):
                    host = piece.host.lower() if piece.host else None
                    notes: list[str] = []
                    how = ""
                    if host is None:
                        names = [t for line in reversed(block.context) for t in host_tokens(line)]
                        if names:
                            host, how = names[0], f"host named before the block: {names[0]}"
                    if host is None and comment_host:
                        host, how = comment_host, f"host named by a comment in the config: {comment_host}"
                    if host is None:
                        rid = re.search(r"^\s*router_id\s+(\S+)", text_part, re.M)
                        names = host_tokens(rid[1]) if rid else []
                        if names:
                            host, how = names[0], f"host named by the config's router_id: {names[0]}"
                    if (
                        host is None
                        and previous_host
                        and re.search(r"keepalived\.conf", blocks[block.n - 2].text if block.n > 1 else "")
                    ):
                        host, how = previous_host, f"host of the prompt before it: {previous_host}"
                    cleaned, stripped = strip_transcript(text_part)
                    if piece.line:
                        stripped.insert(0, f"removed the shell prompt line {piece.line!r}")
                    notes += ([how] if how else []) + stripped
                    for each in writeup.expand_hosts(host) if host else [None]:  # root@lb{1,2}: both
                        found.configs.append((each, cleaned, origin, list(notes)))
                continue
            if piece.command is None and piece.text.strip():
                # a block of commands without prompts: its hosts are the ones the prose before it names
                role = next((r for r, rx in ROLE_WORDS.items() if rx.search(label_text)), None)
                names = host_tokens(label_text)
                for line in piece.text.splitlines():
                    cmd = re.sub(r"^\s*(?:sudo\s+(?:-\S+\s+)*)?", "", line).strip()
                    if REPLAYED.match(cmd):
                        host = names[0] if names and not ALL_WORDS.search(label_text) else None
                        found.commands.append(Command(host, cmd, origin, None if host else role))
            if piece.text.strip():
                found.outputs.append(piece.text)


def _linked(path: Path, text: str, root: Path, found: _Found, seen: set) -> None:
    """Read the files a write-up links to, inside ``root`` only."""
    for label, target in writeup.links(text):
        target = target.split("#")[0]
        if not target or len(seen) >= MAX_LINKED:
            continue
        linked = path.parent / target
        problem = outside_folder(linked, root)
        if problem:
            found.notes.append(f"the link {target!r} ({label}) was not followed: {problem}")
            continue
        if linked in seen or not linked.is_file():
            continue
        seen.add(linked)
        rel = linked.relative_to(root)
        if linked.name == "Vagrantfile" or linked.suffix.lower() in (".md", ".txt", ".conf", ".markdown", ""):
            body = _read_text(linked)
            if linked.name == "Vagrantfile" and "Vagrant.configure" in body:
                found.vagrantfile = found.vagrantfile or Part(body, str(rel), notes=[f"linked from {path.name}"])
            elif linked.suffix.lower() in (".md", ".markdown"):
                _read_writeup(body, str(rel), found)
                _linked(linked, body, root, found, seen)
            elif _is_config(body):
                host = (host_tokens(label) or host_tokens(linked.stem) or [None])[0]
                found.configs.append(
                    (host, strip_transcript(body)[0], str(rel), [f"linked from {path.name} as {label!r}"])
                )


def outside_folder(path: Path, root: Path) -> str | None:
    """Why ``path`` may not be read as part of the submission in ``root`` (None: it may): it leads
    outside the folder (``..``, a symlink), or is not a regular file of it (device, FIFO, socket, a
    hard link to a file elsewhere)."""
    root = root.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return "it cannot be resolved (a symlink loop?)"
    if resolved != root and root not in resolved.parents:
        return "it leads outside the submission folder"
    probe = Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))
    for parent in [probe, *probe.parents]:
        if parent == root or root not in parent.parents:
            break
        if parent.is_symlink():
            return "it is a symbolic link (submissions are read without following links)"
    if not path.exists():
        return None
    st = path.lstat()
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return "it is not a regular file"
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        return "it is a hard link (the file may live outside the submission folder)"
    return None


def _default_stem(pack, role: str, fallback: str) -> str:
    """A name for a host the write-up does not name: the pack's first pattern for the role without
    its wildcard ("web*" → web, numbered web1, web2 …)."""
    patterns = ((pack.roles or {}).get(role) if pack else None) or ()
    stem = re.sub(r"[^\w-]", "", patterns[0]) if patterns else ""
    return stem or fallback


def _context_of(origin: str, found: _Found) -> tuple[str, ...]:
    return found.contexts.get(origin, ())


def _room_for(found: _Found, host: str) -> bool:
    """Whether commands of ``host`` are kept: a write-up names at most MAX_HOSTS hosts (past that,
    one note; the bound keeps a hostile write-up's reading linear)."""
    if host in found.prompt_hosts or len(found.prompt_hosts) < MAX_HOSTS:
        return True
    note = f"the write-up names more than {MAX_HOSTS} hosts in shell prompts; the commands of the others are not used"
    if note not in found.notes:
        found.notes.append(note)
    return False


def _known_names(found: _Found, pack) -> tuple[str, ...]:
    """Names a host may be matched against: the pack's directors, the Vagrantfile's machines, and
    the hosts of the write-up's prompts."""
    names = list(pack.directors) if pack else []
    if found.vagrantfile:
        names += [
            n.lower()
            for n in re.findall(r"[\"']([A-Za-z][\w-]*)[\"']", found.vagrantfile.text)
            if not NOT_HOSTS.match(n) and re.search(r"\d", n)
        ]
    names += found.prompt_hosts
    return tuple(dict.fromkeys(n for n in names if n not in IGNORED_HOSTS))


def _canonical_name(name: str | None, known: tuple[str, ...]) -> str | None:
    if not name:
        return None
    host, _ = match_host(name, known) if known else (None, "")
    return host or name.lower()


def _derive(base: str, changes: list[tuple[str, str]]) -> str:
    text = base
    for key, value in changes:
        text = re.sub(rf"^(\s*{key}\s+)\S+", lambda m: m[1] + value, text, count=1, flags=re.M | re.I)
    return text


def _said_changes(line: str) -> list[tuple[str, str]]:
    """The ``state``/``priority`` values a line of prose gives: [("state", "BACKUP"), ("priority", "50")]."""
    return [(m[1].lower(), m[2]) if m[1] else (m[3].lower(), m[4]) for m in DERIVE.finditer(line)]


def _first_value(text: str, key: str) -> str | None:
    m = re.search(rf"^\s*{key}\s+(\S+)", text, re.M | re.I)
    return m[1] if m else None


def _comment_changes(text: str) -> list[tuple[str, str]]:
    """Values a config's comments give for the other host: ``state MASTER  # second host: BACKUP``."""
    out = []
    for m in re.finditer(
        r"^\s*(state|priority)\s+\S+\s*[#!].*?(?:втор|second|other|backup|друг)\w*\s+\w*\s*:?\s*"
        r"(MASTER|BACKUP|\d+)\s*$",
        text,
        re.M | re.I,
    ):
        out.append((m[1].lower(), m[2]))
    return out


def _real_addresses(found: _Found, configs: dict[str, Part], vip: str) -> list[str]:
    addresses: list[str] = []
    for part in configs.values():
        for vs in keepalived.parse_config(part.text).virtual_servers:
            addresses += [r.address for r in vs.reals]
    for c in found.commands:
        m = re.search(r"ipvsadm\s.*-r\s+(\d+\.\d+\.\d+\.\d+)", c.command)
        if m:
            addresses.append(m[1])
    for out in found.outputs:
        addresses += re.findall(r"->\s+(\d+\.\d+\.\d+\.\d+):\d+\s+(?:Route|Masq|Tunnel|\d)", out)
    return [a for a in dict.fromkeys(addresses) if a != vip]


def _resolve(sub: Submission, found: _Found, pack) -> None:
    known = _known_names(found, pack)
    seen: dict[str | None, str | None] = {}

    def canonical(name: str | None) -> str | None:  # each name matched against the known once
        if name not in seen:
            seen[name] = _canonical_name(name, known)
        return seen[name]

    wanted = len(pack.directors) if pack and pack.directors else 2
    for c in found.commands:
        c.host = canonical(c.host)
    configs: dict[str, Part] = {}
    unnamed: list[tuple[str, str, list[str]]] = []
    for said, text, origin, notes in found.configs:
        host = canonical(said)
        if said and host:
            how = match_host(said, known)[1] if known else ""
            notes = ([how] if how and how != "exact" else []) + list(notes)
        if host is None:
            unnamed.append((text, origin, notes))
            continue
        if host in configs:
            sub.notes.append(
                f"{host} has several keepalived configs in the write-up; the last one ({origin}) is "
                f"its answer, not {configs[host].origin}"
            )
        configs[host] = Part(text, origin, notes=list(notes))
    directors = list(configs)
    for c in found.commands:
        if c.host and c.host not in directors and DIRECTOR_COMMAND.search(c.command):
            directors.append(c.host)
    stems = {re.sub(r"\d+$", "", d) for d in directors}
    for line in found.prose:  # "lb2's config differs by state BACKUP": lb2 is a director too
        if DERIVE.search(line):
            for token in host_tokens(line):
                name = canonical(token)
                if name not in directors and re.sub(r"\d+$", "", name) in stems:
                    directors.append(name)
    distinct = list(dict.fromkeys(text for text, _, _ in unnamed))
    if unnamed and not configs and len(distinct) > 1:
        # several different configs, none naming its host: one per director, in the order shown
        # ("Director 1" / "Балансировщик 2" before a block gives its place)
        taken: set[int] = set()
        for text, origin, notes in unnamed:
            place = next(
                (int(m[1]) for m in (ORDINAL.search(line) for line in reversed(_context_of(origin, found))) if m), None
            )
            if place is None or place in taken:
                place = next(i for i in range(1, 99) if i not in taken)
            taken.add(place)
            pool = tuple(pack.directors) if pack and pack.directors else ()
            name = pool[place - 1] if place <= len(pool) else f"director{place}"
            if name in configs:
                sub.notes.append(
                    f"{name} has several keepalived configs in the write-up; the last one ({origin}) "
                    f"is its answer, not {configs[name].origin}"
                )
            configs[name] = Part(
                text,
                origin,
                notes=list(notes)
                + [f"names no host: the director shown as number {place}, named {name} by lvs-harness"],
            )
            if name not in directors:
                directors.append(name)
    elif unnamed and not configs:
        text, origin, notes = unnamed[-1]
        if len(unnamed) > 1:
            sub.notes.append(f"{len(unnamed)} keepalived configs name no host and are the same; {origin} is the answer")
        while len(directors) < wanted:
            spare = next(
                (d for d in (pack.directors if pack else ()) if d not in directors), f"director{len(directors) + 1}"
            )
            directors.append(spare)
            sub.notes.append(f"the write-up names no director: {spare} is a name lvs-harness gave it")
        first = directors[0]
        configs[first] = Part(text, origin, notes=list(notes) + ["a config shown for the directors, without a host"])
    elif unnamed:
        sub.notes += [
            f"{origin}: a keepalived config for no host the write-up names: not used" for _, origin, _ in unnamed
        ]
    # directors without a config of their own: derived as the text says, else not at all; only the
    # lines that give a state or a priority can say it
    saying = [(line, _said_changes(line)) for line in found.prose if DERIVE.search(line)]
    for host in directors:
        if host in configs or not configs:
            continue
        base_host, base = next(iter(configs.items()))
        changes = []
        for line, said in saying:
            if host in host_tokens(line) or match_host(line, (host,))[0]:
                changes = said
                why = f"derived from {base_host}'s config as the write-up says ({line[:120]!r})"
                break
        if not changes:  # "on the 2nd balancer the same, only state BACKUP": the role, not a name
            for line, found_changes in saying:
                named = [t for t in host_tokens(line) if canonical(t) in directors]
                if (
                    not named
                    and ROLE_WORDS["director"].search(line)
                    and any(v.upper() != str(_first_value(base.text, k)).upper() for k, v in found_changes)
                ):
                    changes = found_changes
                    why = (
                        f"derived from {base_host}'s config as the write-up says of the other director ({line[:120]!r})"
                    )
                    break
        if not changes and _comment_changes(base.text):
            changes = _comment_changes(base.text)
            why = f"derived from {base_host}'s config by its comments for the second host"
        elif not changes:
            why = f"derived from {base_host}'s config: the write-up gives one config for the directors"
        configs[host] = Part(
            _derive(base.text, changes),
            base.origin,
            derived=True,
            notes=[why + (": " + ", ".join(f"{k} {v}" for k, v in changes) if changes else "")],
        )
    if not configs:
        return
    sub.keepalived = configs
    instances = [i for p in configs.values() for i in keepalived.parse_config(p.text).instances if i.vips]
    if not instances:
        raise SubmissionError(
            f"{sub.source}: its keepalived configs raise no virtual address (no "
            "virtual_ipaddress), so there is no VIP to balance; hand in the configs you ran"
        )
    vip_entry = instances[0].virtual_ipaddresses[0].split()[0]
    vip = sub.vip = vip_entry.split("/")[0]
    prefix = int(vip_entry.split("/")[1]) if "/" in vip_entry else 24
    addresses = _real_addresses(found, configs, vip)
    real_hosts = [c.host for c in found.commands if c.host and c.host not in directors and DR_COMMAND.search(c.command)]
    real_hosts = list(dict.fromkeys(real_hosts))
    sub.roles = {"director": directors, "real": [], "client": []}
    if sub.own_vagrantfile:
        addresses += [
            a
            for a in re.findall(r"(?:-r\s+|real_server\s+)(\d+\.\d+\.\d+\.\d+)", sub.vagrantfile.text)
            if a not in addresses and a != vip
        ]
        sub.reals = {f"real at {a}": a for a in addresses}
        # commands shown for a role, or for one real only: each host of that role without commands of its own
        for c in found.commands:
            if not c.host and c.role in ("real", "director") and REPLAYED.match(c.command):
                c.host = f"role:{c.role}"
        shown_reals = [
            h
            for h in dict.fromkeys(
                c.host
                for c in found.commands
                if c.host
                and not c.host.startswith("role:")
                and c.host not in directors
                and DR_COMMAND.search(c.command)
            )
        ]
        if shown_reals and not any(c.host == "role:real" for c in found.commands):
            source = shown_reals[0]
            found.commands += [
                Command("role:real", c.command, f"derived from {source}'s")
                for c in found.commands
                if c.host == source and REPLAYED.match(c.command)
            ]
            sub.notes.append(
                f"the real-server setup shown for {source} is replayed on every real the write-up shows none for"
            )
        sub.commands = [c for c in found.commands if c.host]
        return
    networks = {
        ipaddress.ip_network(f"{e.split()[0].split('/')[0]}/{(e.split()[0].split('/') + ['24'])[1]}", strict=False)
        for i in instances
        for e in i.virtual_ipaddresses
        if re.match(r"\d+\.\d+\.\d+\.\d+", e)
    }
    if len(networks) > 1 and pack:
        # a lab of several networks (e.g. NAT: an outside and an inside) is not built from configs alone
        sub.vagrantfile = Part(
            Path(pack.reference).read_text(), f"the reference ({Path(pack.reference).name})", from_reference=True
        )
        sub.notes.append(
            f"the configs' VIPs span {len(networks)} networks ({', '.join(map(str, sorted(networks)))}): "
            f"the lab's machines and networks are pack {pack.name}'s reference topology, which lvs-harness "
            "does not build from configs alone; everything else is the write-up's"
        )
        sub.reals = {f"real at {a}": a for a in addresses}
        sub.roles = {"director": directors, "real": [], "client": []}
        sub.commands = [c for c in found.commands if c.host]
        return
    design = Design(vip=vip, prefix=prefix if prefix < 32 else 24)
    for host in directors:
        inst = next((i for i in keepalived.parse_config(configs[host].text).instances), None)
        design.directors[host] = inst.interface if inst and inst.interface else "eth1"
    while len(addresses) < (pack.min_reals if pack else 1):
        net = design.network
        spare = next(
            str(a) for a in net.hosts() if str(a) not in addresses and str(a) != vip and int(a) % 256 in range(30, 250)
        )
        addresses.append(spare)
        design.notes.append(f"the write-up names too few real servers: {spare} is one lvs-harness added")
    stem = _default_stem(pack, "real", "real")
    for n, address in enumerate(addresses):
        name = (
            real_hosts[n]
            if n < len(real_hosts)
            else next(
                f"{stem}{k}"
                for k in range(1, 99)
                if f"{stem}{k}" not in design.reals and f"{stem}{k}" not in real_hosts
            )
        )
        design.reals[name] = address
    others = [
        h
        for h in dict.fromkeys(found.prompt_hosts)
        if h not in design.directors and h not in design.reals and h not in IGNORED_HOSTS
    ]
    design.client = next(
        (h for h in others if "client" in h), others[0] if others else _default_stem(pack, "client", "client")
    )
    design.allocate()
    other_balancer = next(
        (name for name, rx in OTHER_BALANCERS.items() if any(rx.search(t) for t in found.outputs)), None
    )
    replayed_ipvs = {c.host for c in found.commands if c.host and REPLAYED.match(c.command) and "ipvsadm" in c.command}
    role_ipvs = [c.command for c in found.commands if not c.host and c.role == "director" and REPLAYED.match(c.command)]
    for host in design.directors:
        servers = keepalived.parse_config(configs[host].text).virtual_servers
        if servers or host in replayed_ipvs:
            continue
        if role_ipvs:
            found.commands += [Command(host, cmd, "shown for the directors") for cmd in role_ipvs]
            continue
        if other_balancer:  # solved another way: not overwritten with an IPVS service of ours
            design.notes.append(
                f"{host}: the write-up balances with {other_balancer}, not IPVS: no IPVS service "
                "is built for it, so the IPVS checks judge what the student set up"
            )
            continue
        service = keepalived.VirtualServerConf(
            vip, 80, "rr", "DR", reals=tuple(keepalived.RealServerConf(a, 80) for a in design.reals.values())
        )
        design.built[host] = keepalived.ipvsadm_commands(service)
    role_real = [c.command for c in found.commands if not c.host and c.role == "real" and REPLAYED.match(c.command)]
    shown = {c.host: [] for c in found.commands}
    for c in found.commands:
        if c.host in design.reals and REPLAYED.match(c.command):
            shown.setdefault(c.host, []).append(c.command)
    template = next((cmds for h, cmds in shown.items() if h in design.reals and cmds), None)
    for host in design.reals:
        own = shown.get(host) or []
        if not own and role_real:
            own = role_real
            found.commands += [Command(host, cmd, "shown for the reals") for cmd in role_real]
        elif not own and template:
            own = template
            source = next(h for h, cmds in shown.items() if cmds is template)
            found.commands += [Command(host, cmd, f"derived from {source}'s") for cmd in template]
            design.notes.append(f"{host}: the real-server setup shown for {source} is derived for it")
        # what the write-up does not show of a DR real is built to fit: the VIP on lo, ARP suppression
        text = "\n".join(own)
        missing = [
            cmd.format(vip=vip)
            for cmd, covered in zip(DR_SETUP, (r"\bdev\s+lo\b|lo:|REDIRECT", r"arp_ignore"))
            if not re.search(covered, text)
        ]
        if missing:
            design.built[host] = missing
            if own:
                design.notes.append(
                    f"{host}: built what the write-up does not show of its real-server setup: " + "; ".join(missing)
                )
    sub.roles = {"director": list(design.directors), "real": list(design.reals), "client": [design.client]}
    sub.reals = dict(design.reals)
    sub.design = design
    sub.commands = [c for c in found.commands if c.host in design.addresses]


def from_writeup(path: Path, pack=None, root: Path | None = None) -> Submission:
    """Read a markdown write-up (and the files it links inside ``root``, default its folder)."""
    text = _read_text(path)
    found = _Found()
    _read_writeup(text, path.name, found)
    _linked(path, text, (root or path.parent), found, {path})
    return _submission(path, path.stem, found, pack)


def _submission(path: Path, name: str, found: _Found, pack) -> Submission:
    sub = Submission(name=name, source=path, vagrantfile=found.vagrantfile, notes=list(found.notes), pack=pack)
    _resolve(sub, found, pack)
    if not sub.keepalived:
        if found.images:
            raise NothingToRun(
                f"nothing to run in {path.name}: no keepalived config is written as text "
                f"(it shows {found.images} image(s)); hand the configs in as text, e.g. in a "
                "```code block``` after the host's name"
            )
        what = (
            "no code blocks"
            if not found.configs and not found.vagrantfile and not found.commands
            else "no keepalived config (vrrp_instance)"
        )
        raise SubmissionError(
            f"{path} has {what}; put each director's keepalived.conf in a ```code block``` "
            "after a line naming its host" + "".join(f"; {note}" for note in sub.notes)
        )
    return sub


def from_folder(path: Path, pack=None) -> Submission:
    """A submission folder: a Vagrantfile, keepalived configs (``keepalived/<host>.conf`` or any file
    holding a vrrp_instance), write-ups (*.md). Nothing outside the folder is read: links out of it,
    devices, FIFOs and hard links are refused by name."""
    root = path.resolve()
    files = []
    for p in sorted(path.rglob("*")):
        if p.name.startswith(".") or p.is_dir() and not p.is_symlink():
            continue
        problem = outside_folder(p, root)
        if problem:
            raise SubmissionError(
                f"{p.relative_to(path)} in the submission cannot be read: {problem}; hand in the file itself"
            )
        if p.is_file():
            files.append(p)
    if not files:
        raise SubmissionError(
            f"{path} is empty; a submission folder holds a Vagrantfile and/or keepalived "
            "configs (keepalived/<director>.conf …), or a write-up (*.md)"
        )
    found = _Found()
    for f in files:
        rel = f.relative_to(path)
        if f.name == "Vagrantfile" and found.vagrantfile is None:
            found.vagrantfile = Part(_read_text(f), str(rel))
        elif f.suffix == ".conf":
            raw = _read_text(f)
            if "keepalived" not in str(rel).lower() and "vrrp_instance" not in raw:
                continue
            host = (host_tokens(rel.stem) or host_tokens(str(rel.with_suffix(""))) or [None])[0]
            text, notes = strip_transcript(raw)
            found.configs.append((host, text, str(rel), notes))
        elif f.suffix == ".sh" and rel.parts[0] == "setup":  # the folder form's replayed commands
            host = f.stem.replace("role-", "role:", 1)
            found.commands += [
                Command(host, line.strip(), str(rel))
                for line in _read_text(f).splitlines()
                if REPLAYED.match(line.strip())
            ]
            if not host.startswith("role:") and host not in found.prompt_hosts:
                found.prompt_hosts.append(host)
    writeups = [f for f in files if f.suffix.lower() == ".md"]
    if writeups and (found.vagrantfile is None or not found.configs):
        text = _read_text(writeups[0])
        _read_writeup(text, str(writeups[0].relative_to(path)), found)
        _linked(writeups[0], text, root, found, {writeups[0]})
    return _submission(path, path.name, found, pack)


def load_submission(path: Path, pack=None) -> Submission:
    """Read a submission (folder or write-up) for ``pack`` (a :class:`~lvs_harness.packs.Pack` or its
    name; default: the default pack) as the student's own lab design. A submission from which
    nothing runnable can be read is refused in one sentence (:class:`NothingToRun` when its configs
    are only in images: a verdict of 0 points)."""
    from .packs import load_pack

    pack = pack if hasattr(pack, "directors") else load_pack(pack)
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise SubmissionError(f"{path} does not exist; pass a submission folder or a markdown write-up")
    sub = from_folder(path, pack) if path.is_dir() else from_writeup(path, pack)
    _refuse_other_pack(sub, pack, path)
    return sub


def _refuse_other_pack(sub: Submission, pack, path: Path) -> None:
    """A write-up written for another installed pack is refused, naming both: its directors carry
    that pack's names and none of this one's, and its configs raise as many VIPs as that pack's lab
    raises (``Pack.vips``), not as many as this one's (names alone decide nothing: students name
    hosts as they like)."""
    from .packs import installed

    mine = set(pack.directors or ())
    named = set(sub.keepalived)
    if not mine or named & mine or not pack.vips:
        return
    vips = {v for p in sub.keepalived.values() for i in keepalived.parse_config(p.text).instances for v in i.vips}
    other = next(
        (
            p
            for p in installed()
            if p.name != pack.name and named and named <= set(p.directors or ()) and len(vips) == p.vips != pack.vips
        ),
        None,
    )
    if other:
        raise SubmissionError(
            f"{path}: its keepalived configs name none of pack {pack.name}'s directors "
            f"({', '.join(pack.directors)}) but pack {other.name}'s, and raise {len(vips)} "
            f"VIP(s) as {other.name}'s lab does, so it was written for {other.name}; grade it "
            f"with the pack it was written for (--pack {other.name}; `lvs-harness packs` lists them)"
        )


def write_folder(sub: Submission, out: Path) -> Path:
    """Write the folder form (the student's Vagrantfile, keepalived/<host>.conf, setup/<host>.sh with
    the commands to replay there, submission.json) to ``out``; ``load_submission(out)`` reads it back.

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
        if sub.own_vagrantfile:
            (tmp / "Vagrantfile").write_text(sub.vagrantfile.text)
            manifest["parts"]["Vagrantfile"] = dataclasses.asdict(sub.vagrantfile) | {"text": None}
        for host, commands in sub.replayed().items():
            (tmp / "setup").mkdir(exist_ok=True)
            (tmp / "setup" / f"{host.replace(':', '-')}.sh").write_text("\n".join(commands) + "\n")
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
