"""HTTP from the client: N requests with per-request time, status, answering real and latency,
and a background prober (a request every ~100 ms) for measuring failover gaps.

The reals' pages name the real (the lab writes the machine name into index.html unless a
provisioner wrote its own page), so the first word of the body says who answered.

Example::

    answers = http_requests(client, "http://172.28.128.200/", count=50)
    Counter(a.real for a in answers)                  # {'server1': 25, 'server2': 25}
    with Prober(client, "http://172.28.128.200/") as prober:
        director.link_down("eth1"); ...
    failed = [r for r in prober.results if not r.ok]
"""

from __future__ import annotations

import dataclasses
import secrets
import shlex
import time

from . import NAP

# one request, one line: "<epoch start> <curl rc> <http code> <seconds> <first word of the body>".
# bash only, so the sole exec is curl (each exec costs ~20-40 ms in the UML guest).
ONE_REQUEST = (
    "t=$EPOCHREALTIME; out=$(curl -s -m \"$TIMEOUT\" -w $'\\n%{http_code} %{time_total}' \"$URL\"); rc=$?; "
    "last=${out##*$'\\n'}; first=${out%%$'\\n'*}; [ \"$first\" = \"$out\" ] && first=; "
    "set -- $last; first=${first#\"${first%%[![:space:]]*}\"}; "
    "echo \"$t $rc ${1:-000} ${2:-0} ${first%%[[:space:]]*}\""
)
@dataclasses.dataclass(frozen=True)
class Request:
    time: float          # when it was sent (epoch seconds, the client's clock)
    status: int          # HTTP status, 0 when no answer
    real: str | None     # first word of the page: the real that answered
    latency: float       # seconds (curl's time_total)
    curl_rc: int = 0     # curl's exit status: 0 ok, 7 refused, 28 timed out …

    @property
    def ok(self) -> bool:
        return self.curl_rc == 0 and 200 <= self.status < 400


def parse_requests(text: str) -> list[Request]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        out.append(Request(float(fields[0].replace(",", ".")), int(fields[2]), fields[4] if len(fields) > 4 else None,
                           float(fields[3].replace(",", ".")), int(fields[1])))
    return out


def http_requests(client, url: str, count: int = 50, timeout: float = 2.0) -> list[Request]:
    """``count`` sequential requests from ``client`` to ``url``, one result each."""
    script = f"URL={shlex.quote(url)} TIMEOUT={timeout:g}; for i in $(seq {int(count)}); do {ONE_REQUEST}; done"
    r = client.check(f"bash -c {shlex.quote(script)}", timeout=count * (timeout + 2) + 30)
    return parse_requests(r.stdout)


class Prober:
    """A request every ``interval`` seconds from ``client`` until stopped (bounded by ``max_seconds``)."""

    def __init__(self, client, url: str, interval: float = 0.1, timeout: float = 1.0, max_seconds: float = 300):
        self.client = client
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.results: list[Request] = []
        self._name = f"/tmp/lvsh-probe-{secrets.token_hex(4)}"

    def start(self) -> "Prober":
        loop = (f"{NAP}; URL={shlex.quote(self.url)} TIMEOUT={self.timeout:g}; end=$((SECONDS + {int(self.max_seconds)})); "
                f"while [ -e {self._name}.run ] && [ $SECONDS -lt $end ]; do {ONE_REQUEST}; nap {self.interval:g}; "
                f"done >> {self._name}.log; rm -f {self._name}.run; touch {self._name}.done")
        self.client.check(f"touch {self._name}.run && setsid -f bash -c {shlex.quote(loop)} "
                          "</dev/null >/dev/null 2>&1")
        return self

    def stop(self) -> list[Request]:
        self.client.run(f"rm -f {self._name}.run")
        deadline = time.monotonic() + self.timeout + 10
        while not self.client.run(f"test -e {self._name}.done").ok and time.monotonic() < deadline:
            time.sleep(0.1)
        self.results = parse_requests(self.client.run(f"cat {self._name}.log; rm -f {self._name}.*").stdout)
        return self.results

    def __enter__(self) -> "Prober":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
