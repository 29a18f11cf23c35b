"""Markdown write-ups as students hand them in: every block of code, wherever and however it is written.

A block is a fenced code block (``` or ~~~, indented inside a list item, inside a blockquote, with
content on its opening line), an HTML ``<pre>`` block, or a run of lines each written as inline
`code`. Line ends are normalised (CRLF, CR). Each block keeps the prose just before it (its
``context``, nearest line last), where students name the host it belongs to. A block's text is then
split into pieces at shell prompts (``root@lb1:~# cat /etc/keepalived/keepalived.conf`` starts a
piece holding that file of lb1; the lines after any other prompt are that command's output).

Example::

    blocks = read_blocks(Path("write-up.md").read_text())
    blocks[0].context[-1], blocks[0].kind      # ('Конфиг lb1:', 'fence')
    [(p.host, p.file, p.command) for p in pieces(blocks[0])]
    # [('lb1', '/etc/keepalived/keepalived.conf', 'cat /etc/keepalived/keepalived.conf')]
"""

from __future__ import annotations

import dataclasses
import html
import re

# a shell prompt: user@host:path$ , host:path# , [user@host path]# ; or a bare "$ " / "# " before a command
PROMPT = re.compile(
    r"^\s*(?:(?:#\s*)?\[?(?:[\w.-]+)@(?P<host>[\w.{},-]+)(?::[^\n#$\]]*|\s+[^\n#$\]]*)\]?|"
    r"(?P<host2>[\w.{},-]+):[^\n#$ ]*)\s?[#$]\s?(?P<command>.*)$"
)  # also "# root@h:~# cmd"
COMMAND_WORDS = (
    "cat",
    "sudo",
    "ip",
    "ipvsadm",
    "sysctl",
    "systemctl",
    "service",
    "echo",
    "iptables",
    "vim",
    "vi",
    "nano",
    "keepalived",
    "curl",
    "apt",
    "apt-get",
    "hostnamectl",
    "less",
    "tail",
    "ping",
    "arping",
)
BARE_PROMPT = re.compile(r"^\s*[$#]\s+(?P<command>(?:%s)\b.*)$" % "|".join(re.escape(w) for w in COMMAND_WORDS))
EDITORS = re.compile(r"^(?:sudo\s+)?(?:cat|vim?|nano|less|more|mcedit|tee)\s+(?:-\S+\s+)*(?P<file>/?[\w./-]+)\s*$")
FENCE_OPEN = re.compile(r"^(?P<prefix>[ \t]*(?:>[ \t]?)*[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
INLINE_LINE = re.compile(r"^\s*(?:[-*+]\s+|\d+[.)]\s+)?`(?P<code>[^`]*)`\s*(?:<br\s*/?>)?\s*$")
PRE = re.compile(r"<pre[^>]*>(?P<body>.*?)</pre>", re.S | re.I)
IMAGE = re.compile(r"!\[[^\]]*\]\([^)]+\)|<img\s[^>]*>", re.I)
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


@dataclasses.dataclass
class Block:
    n: int  # 1-based, in the order of the text
    text: str
    kind: str  # fence, html, inline
    line: int  # where it starts (1-based)
    info: str = ""  # a fence's language word
    context: tuple[str, ...] = ()  # the prose lines before it (up to three, nearest last)

    @property
    def label(self) -> str:
        return self.context[-1] if self.context else ""

    def origin(self, name: str) -> str:
        return f"{name}, block {self.n} ({self.label!r})"


@dataclasses.dataclass
class Piece:
    """Part of a block: the lines after a prompt (``command`` run on ``host``; ``file`` when the
    command shows or edits a file), or the lines before any prompt (no command)."""

    text: str
    host: str | None = None
    command: str | None = None
    file: str | None = None
    line: str = ""  # the prompt line itself


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _strip_prefix(line: str, prefix: str) -> str | None:
    """``line`` without the indentation and blockquote markers of its fence (None: it is outside)."""
    quotes = prefix.count(">")
    indent = len(prefix.split(">")[0].expandtabs(4)) if quotes else len(prefix.expandtabs(4))
    out = line
    for _ in range(quotes):
        m = re.match(r"^[ \t]*>[ \t]?", out)
        if not m:
            return None if out.strip() else ""
        out = out[m.end() :]
    if not quotes:
        lead = len(out) - len(out.lstrip(" \t"))
        out = out[min(lead, indent) :]
    return out


def _context(lines: list[str], upto: int, floor: int) -> tuple[str, ...]:
    found = []
    for i in range(upto - 1, floor - 1, -1):
        line = re.sub(r"<[^>]+>", " ", lines[i]).strip()
        if line and not IMAGE.fullmatch(line):
            found.append(re.sub(r"^[>\s]*(?:[-*+]\s+|\d+[.)]\s+|#+\s*)?", "", line))
            if len(found) == 3:
                break
    return tuple(reversed(found))


def read_blocks(text: str) -> list[Block]:
    """Every block of code in a markdown (or HTML) write-up, in order."""
    lines = normalise(text).split("\n")
    found: list[tuple[int, str, str, str]] = []  # (start line index, kind, text, info)
    outside = list(lines)  # the lines that are not in a fence
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if not m or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        prefix, fence, info = m["prefix"], m["fence"], m["info"].strip()
        body, j = [], i + 1
        while j < len(lines):
            inner = _strip_prefix(lines[j], prefix)
            if inner is None:
                break
            if re.match(r"^[ \t]*%s%s*[ \t]*$" % (re.escape(fence[0]), re.escape(fence[0]) * (len(fence) - 1)), inner):
                break
            body.append(inner)
            j += 1
        lang = ""
        if info and not re.fullmatch(r"[\w+#.-]*", info):  # content on the opening line: ```global_defs {
            body.insert(0, info)
        else:
            lang = info
        found.append((i, "fence", "\n".join(body) + ("\n" if body else ""), lang))
        for k in range(i, min(j + 1, len(lines))):
            outside[k] = ""
        i = j + 1
    prose = "\n".join(outside)
    for m in PRE.finditer(prose):
        start = prose.count("\n", 0, m.start())
        body = html.unescape(re.sub(r"<[^>]+>", "", m["body"])).strip("\n") + "\n"
        found.append((start, "html", body, ""))
        for k in range(start, prose.count("\n", 0, m.end()) + 1):
            outside[k] = ""
    i = 0
    while i < len(outside):  # runs of inline `code` lines (blank lines between them allowed)
        run, j, last = [], i, i
        while j < len(outside):
            m = INLINE_LINE.match(outside[j])
            if m:
                run.append(m["code"])
                last = j
            elif outside[j].strip():
                break
            j += 1
        if len(run) >= 3:
            found.append((i, "inline", "\n".join(run) + "\n", ""))
            for k in range(i, last + 1):
                outside[k] = ""
            i = last + 1
        else:  # a start inside this short run finds a shorter one: go on after it (linear in the text)
            i = max(i + 1, j)
    found.sort()
    blocks = []
    previous_end = 0
    for n, (start, kind, body, info) in enumerate(found, 1):
        blocks.append(Block(n, body, kind, start + 1, info, _context(outside, start, previous_end)))
        previous_end = start + 1
    return blocks


def images(text: str) -> int:
    """How many images a write-up shows."""
    return len(IMAGE.findall(normalise(text)))


def links(text: str) -> list[tuple[str, str]]:
    """(text, target) of every markdown link that is not an image and not a web address."""
    return [
        (m["text"], m["target"])
        for m in LINK.finditer(normalise(text))
        if not re.match(r"^(?:[a-z][\w+.-]*:|#|//)", m["target"], re.I)
    ]


def prompt(line: str) -> tuple[str | None, str] | None:
    """(host or None, command) when ``line`` is a shell prompt with a command, else None."""
    m = PROMPT.match(line)
    if m and (m["host"] or m["host2"]):
        host = m["host"] or m["host2"]
        if host.lower() in ("http", "https") or re.fullmatch(r"[\d.]+", host):
            return None
        return host, m["command"].strip()
    m = BARE_PROMPT.match(line)
    if m:
        return None, m["command"].strip()
    return None


def pieces(block: Block) -> list[Piece]:
    """``block`` split at its shell prompts (see :class:`Piece`)."""
    out = [Piece("")]
    for line in block.text.splitlines():
        p = prompt(line)
        if p is None:
            out[-1].text += line + "\n"
            continue
        host, command = p
        if host is None and out[-1].host is not None:
            host = out[-1].host
        m = EDITORS.match(command)
        out.append(Piece("", host, command, m["file"] if m else None, line.strip()))
    return [p for p in out if p.text.strip() or p.command]


def expand_hosts(name: str) -> list[str]:
    """``lb{1,2}`` → ['lb1', 'lb2'] (a shell brace list in a prompt)."""
    m = re.match(r"^(.*)\{([^{}]*)\}(.*)$", name)
    if not m:
        return [name]
    return [f"{m[1]}{alt}{m[3]}" for alt in m[2].split(",")]
