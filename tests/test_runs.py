"""Run bookkeeping: records, stale detection, and killing only what carries a run's id."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lvs_harness import runs
from lvs_harness.labs import clean


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LVS_HARNESS_STATE", str(tmp_path / "state"))
    return tmp_path / "state"


def test_run_record_round_trip(state):
    run = runs.Run.create("uml")
    run.add("dir", path="/dev/shm/x")
    loaded = runs.Run.load(run.id)
    assert loaded.backend == "uml" and loaded.resources == [{"kind": "dir", "path": "/dev/shm/x"}]
    assert loaded.owner_alive()
    assert [r.id for r in runs.Run.all()] == [run.id]
    assert len(run.id) == 6 and (state / run.id / "run.json").is_file()


def test_a_dead_owner_makes_a_run_stale_and_clean_removes_it(state):
    run = runs.Run.create("uml")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    run.set(owner={"pid": child.pid, "start": "0"})  # now owned by a process that is gone
    assert not runs.Run.load(run.id).owner_alive()
    live = runs.Run.create("uml")
    assert clean(stale_only=True) == [run.id]
    assert not (state / run.id).exists() and (state / live.id).exists()


def test_kill_marked_only_touches_processes_with_the_run_id(state):
    env = dict(os.environ)
    mine = subprocess.Popen(["sleep", "60"], env={**env, runs.MARKER: "abc123"})
    other = subprocess.Popen(["sleep", "60"], env={**env, runs.MARKER: "abc1234"})
    plain = subprocess.Popen(["sleep", "60"])
    try:
        assert runs.pids_with_marker("abc123") == [mine.pid]
        assert runs.kill_marked("abc123") == [mine.pid]
        assert mine.wait(5) == -9
        assert other.poll() is None and plain.poll() is None
    finally:
        for p in (mine, other, plain):
            p.kill()
            p.wait()
