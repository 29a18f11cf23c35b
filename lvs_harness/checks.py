"""The check model: what a graded check is, read once from its ``check`` marker.

A suite is a pytest module whose tests carry ``@pytest.mark.check(...)``:

- ``id`` (stable, used by gradebooks), ``title``, ``points``;
- ``needs``: checks whose failure means this one cannot be judged (unless the failure's exception
  carries ``blocks_dependents = False``) — a tuple of ids, or
  ``{id: reason}``; a blocked check is reported *failed* with ``not run: <reason>`` and its
  fixtures do not run;
- ``state``: the lab state it must start from (a name the suite's baseline fixture knows,
  e.g. ``"steady"``), or None;
- ``hint`` (what a student should look at when it fails) and ``hidden`` (not shown to students).

The plugin, the results JSON, the report and ``lvs-harness grade`` all read checks through
:class:`Check`, and every "not run" reason is made by :func:`not_run`.

Example::

    @pytest.mark.check(id="failover", points=3, title="the backup takes the VIP",
                       needs={"config_valid": "needs a valid keepalived config"}, state="steady")
    def test_failover(hw, measure): ...

    Check.of(item).needs         # (Need(check='config_valid', reason='needs a valid keepalived config'),)
    [c.id for c in collect(module)]
"""

from __future__ import annotations

import dataclasses

import pytest

from .errors import HarnessError

NOT_RUN = "not run: "
MARKER = "check"


def advice(result: dict, hint: str = "") -> dict[str, str]:
    """What a student is told of a check that did not pass: ``seen`` (what the check saw), ``why``
    (the cause its diagnosis found, if one was) and ``do`` (the diagnosis's fix, else the check's
    ``hint``). ``result``: a check's record (status, reason, measured).

    Example::

        advice({"reason": "web1 drops them: … — add it to lo as /32. Seen: 50 got no HTTP answer",
                "measured": {"diagnosis": "web1 drops them: … — add it to lo as /32",
                             "diagnosis_fix": "add it to lo as /32"}}, hint="curl the VIP")
        # {'seen': '50 got no HTTP answer', 'why': 'web1 drops them: …', 'do': 'add it to lo as /32'}
    """
    reason = result.get("reason") or ""
    measured = result.get("measured") or {}
    sentence, fix = measured.get("diagnosis", ""), measured.get("diagnosis_fix", "")
    if not sentence or not reason.startswith(sentence):
        return {"seen": reason, "why": "", "do": hint}
    seen = reason[len(sentence) :].removeprefix(". Seen: ").strip()
    return {"seen": seen, "why": sentence.removesuffix(f" — {fix}") if fix else sentence, "do": fix or hint}


def not_run(reason: str) -> str:
    """The one wording of a check that was not run, and why: ``not run: <reason>``."""
    return reason if reason.startswith(NOT_RUN) else NOT_RUN + reason


def is_not_run(text: str) -> bool:
    return str(text).startswith(NOT_RUN)


class CheckError(HarnessError):
    """A suite whose checks are declared wrongly (a missing id, an id used twice)."""


@dataclasses.dataclass(frozen=True)
class Need:
    check: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Check:
    id: str
    title: str = ""
    points: int = 0
    needs: tuple[Need, ...] = ()
    state: str | None = None
    hint: str = ""
    hidden: bool = False

    @classmethod
    def from_marker(cls, kwargs: dict, where: str = "") -> Check:
        if not kwargs.get("id"):
            raise CheckError(
                f"{where or 'a check'} has a check marker without an id; give it "
                "@pytest.mark.check(id=…, points=…, title=…)."
            )
        needs = kwargs.get("needs", ())
        pairs = needs.items() if isinstance(needs, dict) else ((n, f"needs check {n} to pass") for n in needs)
        return cls(
            id=str(kwargs["id"]),
            title=str(kwargs.get("title", "")),
            points=int(kwargs.get("points", 0)),
            needs=tuple(Need(n, r) for n, r in pairs),
            state=kwargs.get("state"),
            hint=str(kwargs.get("hint", "")),
            hidden=bool(kwargs.get("hidden", False)),
        )

    @classmethod
    def of(cls, item) -> Check | None:
        """The check a pytest item is (None for a plain test); read once per item."""
        if CHECK_KEY in item.stash:
            return item.stash[CHECK_KEY]
        marker = item.get_closest_marker(MARKER)
        check = cls.from_marker(marker.kwargs, item.nodeid) if marker else None
        item.stash[CHECK_KEY] = check
        return check

    def as_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "points": self.points, "hint": self.hint, "hidden": self.hidden}


CHECK_KEY = pytest.StashKey["Check | None"]()


def collect(module) -> list[Check]:
    """The checks of a suite module, in the order pytest runs them (definition order)."""
    found = []
    for name, fn in vars(module).items():
        if not name.startswith("test_") or not callable(fn):
            continue
        for mark in getattr(fn, "pytestmark", ()):
            if mark.name == MARKER:
                found.append(Check.from_marker(mark.kwargs, f"{module.__name__}.{name}"))
    validate(found, module.__name__)
    return found


def validate(checks: list[Check], where: str) -> None:
    seen = set()
    for c in checks:
        if c.id in seen:
            raise CheckError(f"{where} declares check id {c.id!r} twice; every check needs its own id.")
        seen.add(c.id)


class Outcomes:
    """The dependency engine: which checks failed, and whether a check is blocked by one it needs.

    Example::

        outcomes.record("config_valid", passed=False)
        outcomes.blocked(check)       # Need(check='config_valid', …) when check needs it
    """

    def __init__(self):
        self._passed: dict[str, bool] = {}

    def record(self, check_id: str, passed: bool) -> None:
        self._passed[check_id] = self._passed.get(check_id, True) and passed

    def blocked(self, check: Check) -> Need | None:
        return next((n for n in check.needs if self._passed.get(n.check) is False), None)

    @staticmethod
    def reason(need: Need) -> str:
        return not_run(f"{need.reason} (check {need.check} failed)")


class Dependencies:
    """The pytest side of the dependency engine (registered by the plugin): label each check's
    report, fail a check whose needed check failed before its fixtures run (a blocked check costs
    nothing: its fixtures might otherwise wait for a VIP that never comes), record outcomes."""

    def __init__(self):
        self.outcomes = Outcomes()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        check = Check.of(item)
        if check:
            for key in ("id", "points", "title"):
                item.user_properties.append((f"check_{key}", getattr(check, key)))
            need = self.outcomes.blocked(check)
            if need:
                item.user_properties.append(("check_blocked_by", need.check))
                pytest.fail(self.outcomes.reason(need), pytrace=False)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        check = Check.of(item)
        # a check counts as failed for those that need it when it ran and failed, or was itself
        # not run; not when its setup broke (the lab did not start: the others say so themselves)
        blocked = report.when == "setup" and report.failed and is_not_run(report.longrepr)
        # a failure that says the checks needing this one can still be judged (``blocks_dependents``
        # False on the exception: e.g. a config keepalived warns about but runs) blocks none of them
        soft = call.excinfo is not None and getattr(call.excinfo.value, "blocks_dependents", True) is False
        if check and (report.when == "call" or blocked or (report.when == "teardown" and report.failed)):
            self.outcomes.record(check.id, not report.failed or soft)
