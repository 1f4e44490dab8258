"""The pure parts of the HTCondor backend on recorded real ads (scripts/record-condor-fixtures.py)
and on the submit description it renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.backends.condor import observe, render
from corral.backends.condor.backend import CondorBackend
from corral.errors import InvalidSpec
from corral.records import Attempt, JobId, Usage
from corral.spec import JobSpec
from corral.states import JobState, decide
from tests.condor.helpers import fixture

ADS = fixture("ads.json")


def _attempt(state: JobState = JobState.SUBMITTED, spec: JobSpec | None = None) -> Attempt:
    spec = spec or JobSpec(command=("true",))
    return Attempt(JobId(1), "u1", 1, spec, Path("/tmp/a/attempt-1"), state, "7.0")


def test_recorded_ads_map_to_observations() -> None:
    idle = observe.observe(_attempt(), ADS["idle"])
    assert (idle.state, idle.held) == (JobState.SUBMITTED, "")
    held = observe.observe(_attempt(), ADS["held_user"])
    assert held.state == JobState.SUBMITTED and not held.requeue
    assert held.reason == "held: wait (by user condorci)" and held.held == "wait (by user condorci)"
    ended = observe.observe(_attempt(JobState.RUNNING), ADS["exit3"])
    # (the recording's old-style arguments made sh exit 2: a real completed ad all the same)
    assert (ended.state, ended.exit_code) == (JobState.COMPLETING, 2)


def test_a_job_vacated_back_to_idle_is_a_requeue() -> None:
    """Recorded: a running job vacated (condor_vacate_job) waits for a slot again."""
    ad = ADS["vacated"]
    assert (ad["JobStatus"], ad["NumJobStarts"]) == (observe.IDLE, 1)
    seen = observe.observe(_attempt(JobState.RUNNING), ad)
    assert (seen.state, seen.requeue, seen.held) == (JobState.SUBMITTED, True, "")
    assert seen.reason == "requeued (evicted, idle again)"
    decision = decide(JobState.RUNNING, seen.state, requeue=seen.requeue)
    assert decision.steps == (JobState.SUBMITTED,)
    # started before the monitor saw it running (or before it restarted): still a requeue
    assert observe.observe(_attempt(JobState.SUBMITTED), ad).requeue
    # seen running by the monitor: a requeue even with no start count in the ad
    unsure = observe.observe(_attempt(JobState.RUNNING), {**ad, "NumJobStarts": None})
    assert unsure.requeue and unsure.reason.startswith("requeued")
    fresh = observe.observe(_attempt(), ADS["idle"])
    assert (fresh.requeue, fresh.reason) == (False, "idle")
    said = observe.observe(_attempt(JobState.RUNNING), {**ad, "VacateReason": "preempted\n"})
    assert said.reason == "requeued (preempted)"


def test_hold_codes_follow_the_rules() -> None:
    base = {"ClusterId": 7, "ProcId": 0, "JobStatus": observe.HELD, "HoldReason": "x"}
    spooling = observe.observe(_attempt(), {**base, "HoldReasonCode": 16})
    assert (spooling.state, spooling.reason) == (JobState.SUBMITTED, "held: spooling")
    for code in (6, 7, 14):
        ad = {**base, "HoldReasonCode": code}
        assert observe.observe(_attempt(), ad).state == JobState.FAILED
        assert observe.must_remove(ad)
    evicted = observe.observe(_attempt(JobState.RUNNING), {**base, "HoldReasonCode": 1})
    assert evicted.requeue and evicted.state == JobState.SUBMITTED and evicted.held == "x"
    ran = {**base, "HoldReasonCode": 3, "NumJobStarts": 1}
    assert observe.observe(_attempt(), ran).requeue
    assert not observe.must_remove({**base, "HoldReasonCode": 1})


def test_why_a_hold_or_release_did_not_take() -> None:
    assert observe.not_held_why({"JobStatus": observe.RUNNING}) == "running jobs cannot be held"
    assert observe.not_held_why(None) == "not in the HTCondor queue"
    spool = {"JobStatus": observe.HELD, "HoldReasonCode": 16}
    assert "not releasable" in observe.not_released_why(spool)


def test_a_sweep_renders_one_cluster_with_itemdata() -> None:
    attempts = [
        Attempt(JobId(1, i), f"u{i}", 1, JobSpec(command=("true",)), Path(f"/w/{i}"), JobState.NEW)
        for i in range(3)
    ]
    (group,) = render.plan(attempts, None)
    desc = render.description(group, "r" * 32, "spool")
    assert (
        desc["+CorralLabel"] == '"$(corral_label)"' and desc["transfer_output_files"] == "sandbox"
    )
    rows = render.itemdata(group, "spool")
    assert [r["corral_label"] for r in rows] == [a.label for a in attempts]
    assert group.native_ids(9) == {"u0": "9.0", "u1": "9.1", "u2": "9.2"}
    assert render.ids_constraint(["9.1", "9.0", "10.0"]) == (
        "(ClusterId == 9 && member(ProcId, {0, 1})) || (ClusterId == 10 && member(ProcId, {0}))"
    )
    assert render.unsafe_path(Path("/w/a,b")) and not render.unsafe_path(Path("/w/ab"))


def test_the_spool_script_runs_in_the_scratch_dir() -> None:
    spec = JobSpec(command=("echo", "a b"), environment_file="/h/env/abc")
    text = render.render_script(spec)
    assert ". ./abc" in text and "cd sandbox || exit 127" in text
    assert text.rstrip().endswith("exec echo 'a b'")


def test_usage_comes_from_the_completed_ad_and_hostile_values_are_dropped() -> None:
    done = {"ClusterId": 7, "ProcId": 0, "JobStatus": observe.COMPLETED, "ExitCode": 0}
    used = {
        "RemoteUserCpu": 1.5,
        "RemoteSysCpu": 0.25,
        "ResidentSetSize": 2048,
        "RemoteWallClockTime": 3.0,
        "LastRemoteHost": "slot1@node7",
    }
    obs = observe.observe(_attempt(JobState.RUNNING), {**done, **used})
    assert obs.usage == Usage(1.75, 2048 * 1024, 3.0, "node7")
    hostile = {"RemoteUserCpu": True, "ResidentSetSize": -1, "RemoteWallClockTime": "3"}
    assert observe.observe(_attempt(JobState.RUNNING), {**done, **hostile}).usage is None
    assert observe.observe(_attempt(JobState.RUNNING), done).usage is None


def test_gpus_are_requested_and_mpi_layouts_refused() -> None:
    spec = JobSpec(command=("true",), resources={"gpus": 2})
    (group,) = render.plan([_attempt(spec=spec)], None)
    assert render.description(group, "r" * 32, "spool")["request_gpus"] == "2"
    plain = render.plan([_attempt()], None)[0]
    assert "request_gpus" not in render.description(plain, "r" * 32, "spool")
    options = CondorBackend.check_options("condor", {})
    CondorBackend.check_job(spec, options)
    for resources in ({"nodes": 2}, {"tasks_per_node": 4}):
        mpi = JobSpec(command=("true",), resources=resources)
        with pytest.raises(InvalidSpec, match="parallel universe"):
            CondorBackend.check_job(mpi, options)
