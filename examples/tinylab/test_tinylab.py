"""tinylab's checks: pytest tests carrying ``@pytest.mark.check`` (a stable id, points, a title
and a hint for students), using the harness's fixtures and assertions."""

import pytest
from lvs_harness.assertions import assert_vip_on
from lvs_harness.probes import ipvs
from lvs_harness.probes.client import http_requests, identify, real_pages


@pytest.mark.check(
    id="answers",
    points=2,
    title="five requests to the VIP are answered by web1 through lb1",
    hint="Is the VIP on lb1, and is web1 the real of its virtual_server?",
)
def test_answers(lab, directors, reals, client, measure):
    service = lab.topology.service  # read from lb1's keepalived.conf
    director = directors[0]
    assert_vip_on(director, service.vip)
    before = ipvs.read_stats(director)
    answers = identify(
        http_requests(client, f"http://{service.vip}:{service.port}/", count=5), real_pages(reals, service.port)
    )
    measure("by_real", {a.real: sum(b.real == a.real for b in answers) for a in answers})
    assert [a.real for a in answers] == ["web1"] * 5, [(a.status, a.real) for a in answers]
    after = ipvs.read_stats_settled(director)
    counted = sum(s.conns for s in after) - sum(s.conns for s in before)
    assert counted == 5, f"IPVS on {director.name} counted {counted} connections for 5 requests"
