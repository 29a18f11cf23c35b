"""tinylab's checks: pytest tests carrying ``@pytest.mark.check`` (a stable id, points, a title
and a hint for students), built on the suite kit (``lvs_harness.suite``) as the course's own packs
are: the lab as the checks see it, the baseline fixture, the shared ``config_valid`` check and a
failed check's diagnosis."""

import pytest
from lvs_harness.diagnosis import led
from lvs_harness.probes import ipvs
from lvs_harness.suite import NEEDS_CONFIG, VrrpLab, baseline_fixture, config_valid_check, scenario, why_path


@pytest.fixture(scope="module")
def tiny(lab, directors, reals, client, timing):
    """The lab as the checks see it: its one director, the real, the client, the VIP and port read
    from lb1's keepalived.conf, the VIP's owners watched."""
    yield from scenario(VrrpLab, "the tiny lab", lab, directors, reals, client, timing, directors_needed=1)


baseline = baseline_fixture("tiny")  # brings the lab to a check's `state` before it runs


# the shared check that keepalived runs lb1's configuration as written
test_config_valid = config_valid_check("tiny")


@pytest.mark.check(
    id="answers",
    points=2,
    needs=NEEDS_CONFIG,
    state="steady",
    title="five requests to the VIP are answered by web1 through lb1",
    hint="Is the VIP on lb1, and is web1 the real of its virtual_server?",
)
def test_answers(tiny, measure):
    director = tiny.holder  # the baseline made it so: lb1 holds the VIP as the check begins
    before = ipvs.read_stats(director)
    answers = tiny.requests(5)
    measure("by_real", {a.real: sum(b.real == a.real for b in answers) for a in answers})
    # on failure the reason starts with why: the request's path looked at on the lab
    assert [a.real for a in answers] == ["web1"] * 5, (
        led(why_path(tiny, measure))
        + "answered by "
        + ", ".join(a.real or f"no real (HTTP status {a.status or 'none'})" for a in answers)
    )
    after = ipvs.read_stats_settled(director)
    counted = sum(s.conns for s in after) - sum(s.conns for s in before)
    assert counted == 5, f"IPVS on {director.name} counted {counted} connections for 5 requests"
