"""keepalived's configuration (a parser, not a probe): enough to derive protocol timings, the
expected IPVS state, and the commands a config makes keepalived run.

Example::

    conf = parse_config(director.read_file("/etc/keepalived/keepalived.conf"))
    inst = conf.instances[0]
    inst.priority, inst.advert_int, inst.master_down_interval   # 150, 1.0, 3.41
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class VrrpInstance:
    name: str
    state: str = "BACKUP"
    interface: str = ""
    virtual_router_id: int = 0
    priority: int = 100
    advert_int: float = 1.0
    virtual_ipaddresses: tuple[str, ...] = ()
    nopreempt: bool = False  # keepalived: a BACKUP with nopreempt never takes the VIP from a master
    preempt_delay: float = 0.0  # seconds a preempting backup waits after start-up

    @property
    def master_down_interval(self) -> float:
        """RFC 5798: 3 × Advertisement_Interval + Skew_Time, Skew_Time = (256 − Priority) / 256 × interval.

        keepalived (VRRPv2 default) uses (256 − priority)/256 s; with advert_int 1 both agree.
        """
        return 3 * self.advert_int + (256 - self.priority) / 256 * self.advert_int

    @property
    def vips(self) -> list[str]:
        """The virtual addresses without prefix or options ("10.77.0.100/24 dev eth1" → 10.77.0.100)."""
        return [v.split()[0].split("/")[0] for v in self.virtual_ipaddresses]


@dataclasses.dataclass(frozen=True)
class HealthCheck:
    """A real_server's checker block (HTTP_GET, TCP_CHECK, …) with the settings that bound how
    long a dead real stays in the table."""

    kind: str
    connect_timeout: float = 5.0  # keepalived's default
    retry: int = 1  # `retry` (older: nb_get_retry); keepalived 2.x default 1
    delay_before_retry: float = 1.0


@dataclasses.dataclass(frozen=True)
class RealServerConf:
    address: str
    port: int
    weight: int = 1
    checks: tuple[str, ...] = ()  # HTTP_GET, TCP_CHECK, …
    checkers: tuple[HealthCheck, ...] = ()


@dataclasses.dataclass(frozen=True)
class VirtualServerConf:
    """A ``virtual_server``: ``address``/``port`` (``virtual_server IP PORT``), or a firewall mark
    (``virtual_server fwmark N``: ``fwmark``, address ""), or a ``virtual_server_group``'s
    members (``virtual_server group NAME``: ``group``, address "")."""

    address: str
    port: int
    lb_algo: str = ""
    lb_kind: str = ""
    protocol: str = "TCP"
    reals: tuple[RealServerConf, ...] = ()
    delay_loop: float = 60.0  # keepalived's default: seconds between checks
    fwmark: int | None = None
    group: str | None = None

    def removal_bound(self, real: RealServerConf) -> float:
        """The longest a dead ``real`` may stay in the IPVS table under its checkers: the check
        interval, then the first try and ``retry`` more, each up to its connect timeout, with
        ``delay_before_retry`` before each retry (the real dies just after a good check)."""
        if not real.checkers:
            return 0.0
        return max(
            self.delay_loop + (1 + c.retry) * c.connect_timeout + c.retry * c.delay_before_retry for c in real.checkers
        )


@dataclasses.dataclass(frozen=True)
class SyncGroup:
    """A ``vrrp_sync_group``: its instances change state together (one FAULT makes all BACKUP)."""

    name: str
    instances: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class KeepalivedConfig:
    instances: tuple[VrrpInstance, ...] = ()
    virtual_servers: tuple[VirtualServerConf, ...] = ()
    sync_groups: tuple[SyncGroup, ...] = ()

    def instance_for(self, vip: str) -> VrrpInstance | None:
        """The vrrp_instance whose virtual_ipaddress holds ``vip``."""
        return next((i for i in self.instances if vip in i.vips), None)

    def group_of(self, instance: str) -> SyncGroup | None:
        return next((g for g in self.sync_groups if instance in g.instances), None)


def preprocess(text: str, config_id: str | None = None, read=None) -> str:
    """The text keepalived's parser sees: ``$NAME=value`` definitions substituted (``$NAME``,
    ``${NAME}``), ``@ID`` lines kept only for the host whose config id (default: its host name) is
    ID and ``@^ID`` lines for every other, ``include FILE`` replaced by ``read(FILE)`` (left out
    without ``read``). Comments (``#``, ``!``) are removed; quoted strings keep theirs.

    Example::

        preprocess("$VIP=10.77.0.100\n@lb1 priority 150\n@^lb1 priority 100\nvip $VIP", "lb1")
        # 'priority 150\nvip 10.77.0.100'
    """
    params: dict[str, str] = {}
    out = []
    for raw in text.splitlines():
        line = _uncomment(raw)
        if not line.strip():
            continue
        m = re.match(r"^\s*@(\^?)(\S+)\s+(.*)$", line)
        if m:
            negated, ident, rest = m[1] == "^", m[2], m[3]
            if (ident == config_id) == negated:
                continue
            line = rest
        m = re.match(r"^\s*\$(\w+)\s*=\s*(.*)$", line)
        if m:
            params[m[1]] = m[2].strip()
            continue
        line = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda v: params.get(v[1] or v[2], v[0]), line)
        m = re.match(r"^\s*include\s+(\S+)", line)
        if m:
            if read is not None:
                included = read(m[1])
                if included:
                    out.append(preprocess(included, config_id, read))
            continue
        out.append(line)
    return "\n".join(out)


def _uncomment(line: str) -> str:
    """``line`` without its comment: from the first ``#`` or ``!`` outside double quotes."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch in "#!" and not quoted:
            return line[:i]
    return line


def _statements(text: str, config_id: str | None = None, read=None) -> list:
    """Nested lists: each statement is [keyword, args…] or [keyword, args…, [block statements]]."""
    tokens = []
    for raw in preprocess(text, config_id, read).splitlines():
        tokens += re.findall(r'"[^"]*"|\{|\}|[^\s{}"]+', raw) + ["\n"]
    return _parse_block(iter(tokens))


def _parse_block(tokens) -> list:
    statements, current = [], []
    for tok in tokens:
        if tok == "\n":
            if current:
                statements.append(current)
                current = []
        elif tok == "{":
            current.append(_parse_block(tokens))
            statements.append(current)
            current = []
        elif tok == "}":
            break
        else:
            current.append(tok)
    if current:
        statements.append(current)
    return statements


def _block(stmt: list) -> list:
    return stmt[-1] if stmt and isinstance(stmt[-1], list) else []


def _first(block: list, key: str, default=None):
    for stmt in block:
        if stmt and stmt[0] == key and len(stmt) > 1 and not isinstance(stmt[1], list):
            return stmt[1]
    return default


def _number(word, default=0, kind=int):
    """``word`` as keepalived would take it (an int, or ``kind``), else ``default``."""
    try:
        return kind(str(word))
    except ValueError:
        return default


def _real(stmt: list) -> RealServerConf:
    """``real_server IP [PORT] { … }``: every sub-block is a health checker (HTTP_GET, TCP_CHECK …)."""
    words = [w for w in stmt[1:] if isinstance(w, str)]
    body = _block(stmt)
    checkers = [c for c in body if isinstance(c[-1], list)]
    return RealServerConf(
        words[0],
        _number(words[1]) if len(words) > 1 else 0,
        _number(_first(body, "weight", 1), 1),
        tuple(c[0] for c in checkers),
        tuple(_checker(c) for c in checkers),
    )


def _virtual_server(stmt: list) -> VirtualServerConf | None:
    words = [w for w in stmt[1:] if isinstance(w, str)]
    body = _block(stmt)
    if not words:
        return None
    fwmark = group = None
    address, port = words[0], _number(words[1]) if len(words) > 1 else 0
    if words[0] == "fwmark" and len(words) > 1:
        fwmark, address, port = _number(words[1]), "", 0
    elif words[0] == "group" and len(words) > 1:
        group, address, port = words[1], "", 0
    reals = tuple(_real(r) for r in body if r[0] == "real_server" and len(r) >= 2 and isinstance(r[1], str))
    return VirtualServerConf(
        address,
        port,
        _first(body, "lb_algo", _first(body, "lvs_sched", "")),
        _first(body, "lb_kind", _first(body, "lvs_method", "")),
        _first(body, "protocol", "TCP"),
        reals,
        _number(_first(body, "delay_loop", 60), 60.0, float),
        fwmark,
        group,
    )


def parse_config(text: str, config_id: str | None = None, read=None) -> KeepalivedConfig:
    """Parse the parts of keepalived.conf the checks need, as keepalived reads the text (see
    :func:`preprocess`: ``$PARAM``, ``@conditional`` lines for ``config_id``, ``include`` through
    ``read``); unknown keywords are ignored, old ones (``lvs_sched``, ``lvs_method``) understood."""
    instances, servers, groups = [], [], []
    for stmt in _statements(text, config_id, read):
        body = _block(stmt)
        if stmt[0] == "vrrp_instance":
            vips = next(
                (
                    tuple(" ".join(w for w in line if isinstance(w, str)) for line in _block(s))
                    for s in body
                    if s[0] == "virtual_ipaddress"
                ),
                (),
            )
            instances.append(
                VrrpInstance(
                    name=stmt[1] if len(stmt) > 1 and isinstance(stmt[1], str) else "",
                    state=str(_first(body, "state", "BACKUP")).upper(),
                    interface=_first(body, "interface", ""),
                    virtual_router_id=_number(_first(body, "virtual_router_id", 0)),
                    priority=_number(_first(body, "priority", 100), 100),
                    advert_int=_number(_first(body, "advert_int", 1), 1.0, float),
                    virtual_ipaddresses=vips,
                    nopreempt=any(s[0] in ("nopreempt", "no_preempt") for s in body),
                    preempt_delay=_number(_first(body, "preempt_delay", 0), 0.0, float),
                )
            )
        elif stmt[0] == "virtual_server":
            vs = _virtual_server(stmt)
            if vs is not None:
                servers.append(vs)
        elif stmt[0] == "vrrp_sync_group" and len(stmt) >= 2:
            members = next(
                (tuple(w for line in _block(s) for w in line if isinstance(w, str)) for s in body if s[0] == "group"),
                (),
            )
            groups.append(SyncGroup(stmt[1] if isinstance(stmt[1], str) else "", members))
    return KeepalivedConfig(tuple(instances), tuple(servers), tuple(groups))


def _checker(stmt: list) -> HealthCheck:
    body = _block(stmt)
    return HealthCheck(
        stmt[0],
        _number(_first(body, "connect_timeout", 5), 5.0, float),
        _number(_first(body, "retry", _first(body, "nb_get_retry", 1)), 1),
        _number(_first(body, "delay_before_retry", 1), 1.0, float),
    )


FORWARD_FLAGS = {"DR": "-g", "NAT": "-m", "TUN": "-i"}
PROTOCOL_FLAGS = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}


def ipvsadm_commands(vs: VirtualServerConf) -> list[str]:
    """The ipvsadm commands that set up what a ``virtual_server`` block describes (without its
    health checks).

    Example::

        ipvsadm_commands(parse_config(text).virtual_servers[0])
        # ['ipvsadm -A -t 10.77.0.100:80 -s rr', 'ipvsadm -a -t 10.77.0.100:80 -r 10.77.0.21:80 -g -w 1', …]
    """
    if vs.group is not None:
        return []  # its members are in the virtual_server_group block
    if vs.fwmark is not None:
        service = f"-f {vs.fwmark}"
    else:
        service = f"{PROTOCOL_FLAGS.get(vs.protocol.upper(), '-t')} {vs.address}:{vs.port}"
    out = [f"ipvsadm -A {service} -s {vs.lb_algo or 'wlc'}"]
    out += [
        f"ipvsadm -a {service} -r {r.address}:{r.port or vs.port} {FORWARD_FLAGS.get(vs.lb_kind.upper(), '-m')} "
        f"-w {r.weight}"
        for r in vs.reals
    ]
    return out


SCRIPT_KEYWORDS = ("script", "misc_path", "quorum_up", "quorum_down")


def script_commands(text: str) -> list[tuple[str, str]]:
    """(keyword, command) for every program the config makes keepalived run: ``notify*``,
    ``vrrp_script``'s ``script``, ``MISC_CHECK``'s ``misc_path``, quorum and FIFO scripts.

    Example::

        script_commands('vrrp_instance V { notify_master "/bin/touch /tmp/x" }')
        # [('notify_master', '"/bin/touch /tmp/x"')]
    """
    found = []

    def walk(block):
        for stmt in block:
            key = stmt[0] if stmt and isinstance(stmt[0], str) else ""
            words = [w for w in stmt[1:] if isinstance(w, str)]
            runs = key.startswith("notify") or key in SCRIPT_KEYWORDS or key.endswith("_script")
            if runs and words and not _block(stmt):  # (`vrrp_script NAME {…}` names a block)
                found.append((key, " ".join(words)))
            walk(_block(stmt))

    walk(_statements(text))
    return found


# keepalived --config-test's messages: what makes keepalived run something other than the text says
CHANGES_BEHAVIOUR = re.compile(
    r"missing '\}'|extra '\{'|Non-existent interface|doesn't exist|Unknown interface|not found, ignoring|"
    r"- ignoring|defaulting to UDP|[Ii]nvalid|cannot|Cannot|unable to|Unable to|No VIP specified|"
    r"has no virtual_router_id|Unknown vrrp_instance|Unknown vrrp_script|out of range|Disabling"
)


def config_test_findings(rc: int, output: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) of ``keepalived --config-test``: errors change what keepalived runs (an
    unbalanced brace, a block or reference it drops, an interface the host lacks, an instance it
    cannot start); warnings are what it recovers from and runs as written (auth_pass truncated to 8
    characters, scripts without script security, unknown or deprecated keywords). keepalived 2.2
    exits non-zero (5, 6) for both, so its messages decide; an exit status other than 0, 5 or 6
    with no message is an error.

    Example::

        config_test_findings(5, "(k.conf: Line 8) Truncating auth_pass to 8 characters")
        # ([], ['Truncating auth_pass to 8 characters'])
    """
    errors: list[str] = []
    warnings: list[str] = []
    for line in output.splitlines():
        message = re.sub(r"^\((?:[^)]*: )?Line \d+\)\s*", "", line.strip()).strip()
        if not message:
            continue
        target = errors if CHANGES_BEHAVIOUR.search(message) else warnings
        if message not in target:
            target.append(message)
    if rc not in (0, 5, 6) and not errors:
        errors.append(f"keepalived --config-test exited {rc}")
    return errors, warnings
