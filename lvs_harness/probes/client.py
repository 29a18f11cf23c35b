"""HTTP from the client: N requests with per-request time, status, answering real and latency,
and a background prober (~30 requests a second by default) for measuring failover gaps.

A burst is one process (``data/http-client.pl``) making every request on a new connection that it
closes first once the answer is in — as a student's `for i in {1..50}; do curl …; done` does, but
without curl's start-up (~150 ms a request in the UML guest). One curl for all requests with
``Connection: close`` (the server closing first, so the client may reuse a source port IPVS still
holds) was tried and, once in 45 graded runs, IPVS counted 48 connections for 50 answered
requests — a verdict must not depend on how the harness makes its traffic. The prober is the
same script starting a request every ``interval`` seconds, overlapping, so one that hangs until
its timeout in an outage does not delay the next: the outage is measured to ``interval``'s
resolution (its traffic is only judged answered or not). A client without perl's Time::HiRes
gets a curl per request, and ``lanes`` paced curls for the prober.

Which real answered is told by the page: :func:`real_pages` fetches each real's own page on
the real itself, and :func:`identify` matches every answer's whole body against them — whatever
the pages say ("Hello from web1", a shared header). Where two reals serve the same page, the
body cannot tell them apart: ``real`` stays None and :func:`distinct` says so (count the
connections in IPVS instead). The lab writes the machine name into index.html unless a
provisioner wrote a page of its own.

Example::

    pages = real_pages(reals, port=80)                # {'web1': 'Hello from web1', 'web2': 'Hello from web2'}
    answers = identify(http_requests(client, "http://10.77.0.100/", count=50), pages)
    Counter(a.real for a in answers)                  # {'web1': 25, 'web2': 25}
    with Prober(client, "http://10.77.0.100/") as prober:
        director.link_down("eth1"); ...
    prober.outage()                                   # (start, seconds) of the longest client-visible gap
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import shlex
import time
from importlib import resources

from . import NAP, scratch

MARK = "@@lvsh"
# one request of a burst, one line in PARSE's format (bash only: the sole exec is curl)
ONE_REQUEST = (
    "out=$(curl -s -m \"$TIMEOUT\" -w $'\\n%{http_code} %{time_total}' \"$URL\"); rc=$?; "
    "last=${out##*$'\\n'}; first=${out%%$'\\n'*}; [ \"$first\" = \"$out\" ] && first=; "
    "set -- $last; first=${first#\"${first%%[![:space:]]*}\"}; first=${first%%[[:space:]]*}; "
    "body=${out%$'\\n'*}; [ \"$body\" = \"$out\" ] && body=; "
    "echo \"$EPOCHREALTIME $rc ${1:-000} ${2:-0} ${first:--}${body:+ ${body//[[:space:]]/ }}\""
)
# Reads curl's output (each body, then the -w line) and prints one line per request:
# "<epoch at its end> <curl rc> <http code> <time_total> <first word of the body>". bash builtins
# only: the sole exec is curl (each exec costs ~20-40 ms in the UML guest).
PARSE = (
    'parse() { local first= line; while IFS= read -r line; do '
    f'if [[ $line == "{MARK} "* ]]; then echo "$EPOCHREALTIME ${{line#{MARK} }} ${{first:--}}"; first=; '
    'elif [[ -z $first && -n ${line//[[:space:]]/} ]]; then first=${line#"${line%%[![:space:]]*}"}; '
    'first=${first%%[[:space:]]*}; fi; done; }'
)


def curl_command(url: str, count: int, timeout: float, per_second: float | None = None) -> str:
    """One curl that makes ``count`` requests to ``url`` in turn, each on a new connection, at most
    ``per_second`` of them a second; unbuffered (stdbuf), so each line leaves as its request ends."""
    glob = f"{url}{'&' if '?' in url else '?'}lvsh=[1-{int(count)}]"  # curl's URL globbing
    rate = f"--rate {max(1, round(per_second * 3600))}/h " if per_second else ""  # curl takes whole numbers
    return (
        f"stdbuf -o0 curl -s -m {timeout:g} -H 'Connection: close' {rate}"
        f"-w '\\n{MARK} %{{exitcode}} %{{http_code}} %{{time_total}}\\n' {shlex.quote(glob)}"
    )


@dataclasses.dataclass(frozen=True)
class Request:
    time: float  # when it was sent (epoch seconds, the client's clock)
    status: int  # HTTP status, 0 when no answer
    word: str | None  # the page's first word (None: no answer)
    latency: float  # seconds (curl's time_total)
    curl_rc: int = 0  # curl's exit status: 0 ok, 7 refused, 28 timed out …
    page: str | None = None  # the body, whitespace collapsed (bursts only)
    real: str | None = None  # the real that answered, by its own page (set by identify)

    @property
    def ok(self) -> bool:
        return self.curl_rc == 0 and 200 <= self.status < 400


def parse_requests(text: str) -> list[Request]:
    """The lines :data:`PARSE` prints → requests, in the order they were sent."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        end, latency = float(fields[0].replace(",", ".")), float(fields[3].replace(",", "."))
        word = fields[4] if len(fields) > 4 and fields[4] != "-" else None
        page = " ".join(fields[5:]) if len(fields) > 5 else None
        out.append(Request(round(end - latency, 6), int(fields[2]), word, latency, int(fields[1]), page))
    return sorted(out, key=lambda r: r.time)


# the shell test that picks http-client.pl over curl in the client
HAS_PERL = "perl -MTime::HiRes -e1 2>/dev/null"


@functools.cache
def client_script() -> bytes:
    """``data/http-client.pl``: bursts and the prober, one perl process each (read on its stdin)."""
    return resources.files("lvs_harness.data").joinpath("http-client.pl").read_bytes()


def http_requests(client, url: str, count: int = 50, timeout: float = 2.0) -> list[Request]:
    """``count`` sequential requests from ``client`` to ``url``, each on a new connection the client
    closes; one result each. One process makes them all (``data/http-client.pl``, perl), else —
    a client without perl's Time::HiRes — a curl each. Once 3 connects in a row got no answer within
    ``timeout``, the rest wait 0.5 s each: their SYNs still reach the director (IPVS counts them),
    and a lab that answers nothing costs 50 × 0.5 s, not 50 × 2 s.

    Example::

        answers = http_requests(lab.hosts["client"], "http://10.77.0.100/", count=10)
        [a.status for a in answers]          # [200, 200, …]
    """
    curls = f"URL={shlex.quote(url)} TIMEOUT={timeout:g}; for i in $(seq {int(count)}); do {ONE_REQUEST}; done"
    args = f"{shlex.quote(url)} {int(count)} {timeout:g}"
    r = client.check(
        f"if {HAS_PERL}; then exec perl - burst {args}; else exec bash -c {shlex.quote(curls)} </dev/null; fi",
        input=client_script(),
        timeout=count * (timeout + 2) + 30,
    )
    return parse_requests(r.stdout)


def normalize(page: str) -> str:
    return " ".join(page.split())


def real_pages(reals, port: int = 80, path: str = "/") -> dict[str, str]:
    """Each real's own page ({name: body, whitespace collapsed}), fetched on the real itself
    (its loopback, else its own addresses): what an answer from it looks like."""
    script = (
        f"for a in 127.0.0.1 $(ip -o -4 addr show scope global | awk '{{print $4}}' | cut -d/ -f1); do "
        f"curl -s -f -m 3 http://$a:{int(port)}{shlex.quote(path)} && exit 0; done; exit 1"
    )
    pages = {}
    for r in reals:
        res = r.run(script, timeout=30)
        if res.ok:
            pages[r.name] = normalize(res.stdout)
    return pages


def distinct(pages: dict[str, str]) -> bool:
    """Do the reals' pages tell them apart (every real's page is its own)?"""
    return len(set(pages.values())) == len(pages) > 0


def identify(answers: list[Request], pages: dict[str, str]) -> list[Request]:
    """``answers`` with ``real`` set from the body: the real whose own page it is, None when no
    real's page matches or two reals serve the same page."""
    owners: dict[str, list[str]] = {}
    for name, page in pages.items():
        owners.setdefault(page, []).append(name)
    return [
        dataclasses.replace(
            a, real=(owners.get(a.page) or [None, None])[0] if len(owners.get(a.page) or ()) == 1 else None
        )
        for a in answers
    ]


class Prober:
    """A request every ``interval`` seconds from ``client`` until stopped (bounded by ``max_seconds``),
    each on a new connection and overlapping (one that hangs does not delay the next): one process
    (``data/http-client.pl``), else — a client without perl's Time::HiRes — ``lanes`` curls, each at
    one request per ``lanes × interval`` s, started ``interval`` apart.

    Example::

        with Prober(lab.hosts["client"], "http://10.77.0.100/") as prober:
            director.link_down("eth1"); ...
        prober.outage(), prober.rate        # ((start, 2.61), 33.3)
    """

    def __init__(
        self,
        client,
        url: str,
        interval: float = 0.03,
        timeout: float = 0.5,
        max_seconds: float = 300,
        lanes: int | None = None,
    ):
        self.client = client
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.max_seconds = max_seconds
        # enough lanes that one hung for its whole timeout is back before its turn comes again
        self.lanes = lanes or max(1, int(round((timeout + interval) / interval)))
        self.results: list[Request] = []
        self.kind = ""  # "perl" (one process) or "curl" (lanes), once started
        self._name = f"{scratch(client)}/lvsh-probe-{secrets.token_hex(4)}"
        self._full_from = 0.0  # the client's clock when every lane was running

    def start(self) -> Prober:
        n = self._name
        args = f"{shlex.quote(self.url)} {self.interval:g} {self.timeout:g} {int(self.max_seconds)}"
        perl = f"setsid -f sh -c 'echo $$ > {n}.pids; exec perl - probe {args} >> {n}.log 2>{n}.err' >/dev/null 2>&1"
        period = self.lanes * self.interval
        count = int(self.max_seconds / period) + 1
        lane = f"{{ {curl_command(self.url, count, self.timeout, 1 / period)} & echo $! >> {n}.pids; wait; }} | parse"
        loop = (
            f"{NAP}; {PARSE}; for k in $(seq {self.lanes}); do {lane} >> {n}.log & nap {self.interval:g}; "
            f"done; wait; touch {n}.done"
        )
        curls = f"setsid -f bash -c {shlex.quote(loop)} </dev/null >/dev/null 2>&1"
        self.kind = self.client.check(
            f"if {HAS_PERL}; then echo perl; {perl}; else echo curl; {curls}; fi", input=client_script()
        ).stdout.strip()
        self._pids()  # at full rate before the caller breaks anything
        self._full_from = float(self.client.check("date +%s.%N").stdout)
        return self

    def _pids(self) -> list[str]:
        """The prober's pid, or the lanes' curl pids once every lane has started (bounded wait)."""
        want = 1 if self.kind == "perl" else self.lanes
        deadline = time.monotonic() + 10
        while True:
            pids = self.client.run(f"cat {self._name}.pids 2>/dev/null").stdout.split()
            if len(pids) >= want or time.monotonic() > deadline:
                return pids
            time.sleep(0.05)

    def stop(self) -> list[Request]:
        pids = self._pids()  # the prober's or the curls', by the pids recorded
        if self.kind == "perl":
            # it ends at SIGTERM between requests; in-flight ones are not reported (as a killed curl's)
            self.client.run(
                f"p={' '.join(pids) or 0}; kill $p 2>/dev/null; for i in $(seq 100); do "
                "kill -0 $p 2>/dev/null || break; sleep 0.05; done; kill -9 $p 2>/dev/null; true"
            )
        else:
            deadline = time.monotonic() + self.timeout + 5
            self.client.run(f"kill {' '.join(pids)} 2>/dev/null" if pids else "true")
            while not self.client.run(f"test -e {self._name}.done").ok and time.monotonic() < deadline:
                time.sleep(0.05)
        self.results = parse_requests(self.client.run(f"cat {self._name}.log; rm -f {self._name}.*").stdout)
        return self.results

    @property
    def rate(self) -> float:
        """Requests a second the prober reached once all its lanes ran (it may fall short of
        1/interval on a slow machine: it says what it got)."""
        steady = [r for r in self.results if r.time >= self._full_from]
        if len(steady) < 2:
            return 0.0
        return (len(steady) - 1) / ((steady[-1].time - steady[0].time) or 1.0)

    def outage(self) -> tuple[float, float] | None:
        """(start, seconds) of the longest run of failed requests, from the first failed request's
        start to the next answered one's (resolution: the interval between requests), or None."""
        best, start = None, None
        for r in self.results:
            if not r.ok and start is None:
                start = r.time
            elif r.ok and start is not None:
                if best is None or r.time - start > best[1]:
                    best = (start, r.time - start)
                start = None
        if start is not None and (best is None or self.results[-1].time - start > best[1]):
            best = (start, self.results[-1].time - start)
        return best

    def __enter__(self) -> Prober:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
