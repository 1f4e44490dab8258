"""The Grid Engine planner, job script and observations (pure, plus the script run by sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from corral.backends.runfiles import ExitRecord, RunFiles, read_run_files
from corral.backends.sge import observe, parse, render
from corral.records import Usage
from corral.spec import JobSpec
from corral.states import JobState
from tests.sge.helpers import fixture
from tests.slurm.helpers import attempt, sweep, with_state


def test_a_sweep_is_one_array_and_a_single_job_is_plain(tmp_path: Path) -> None:
    points = sweep(tmp_path, 5)
    (batch,), refused = render.plan(points, {})
    assert not refused and batch.is_array
    argv = render.qsub_argv(batch)
    assert argv[argv.index("-t") + 1] == "1-5" and argv[argv.index("-N") + 1] == batch.label
    assert render.native_ids(batch, "9") == {p.uuid: f"9.{i}" for i, p in enumerate(points, 1)}
    (single,), _ = render.plan(points[:1], {})
    assert "-t" not in render.qsub_argv(single)
    split, _ = render.plan(points, {}, max_size=2)
    assert [len(b.attempts) for b in split] == [2, 2, 1]


def test_options_that_would_break_corral_are_refused(tmp_path: Path) -> None:
    bad = attempt(tmp_path, JobSpec(command=("true",), backend_options={"extra_qsub_args": ["-N"]}))
    wide = attempt(tmp_path, JobSpec(command=("true",), resources={"cpus": 4}))
    batches, refused = render.plan([bad, wide], {})
    assert not batches
    assert "would override" in refused[bad.uuid] and "parallel environment" in refused[wide.uuid]


def test_the_script_runs_the_task_of_its_array_index_and_records_the_run(tmp_path: Path) -> None:
    points = sweep(tmp_path, 3)
    (batch,), _ = render.plan(points, {})
    (batch.dir / render.SCRIPT).write_text(render.render_script(batch))
    (batch.dir / render.TASKS).write_text(render.render_tasks(batch))
    env = {**os.environ, "SGE_TASK_ID": "2", "JOB_ID": "77", "HOSTNAME": "node9"}
    done = subprocess.run(["sh", str(batch.dir / render.SCRIPT)], env=env, check=False)
    assert done.returncode == 1  # point 1 exits 1 % 3
    files = read_run_files(points[1].attempt_dir)
    assert files.native_id == "77.2" and files.exit == ExitRecord(1, False, files.exit.at)
    assert (
        files.host == "node9" and files.usage is not None and files.usage.wall_seconds is not None
    )
    assert read_run_files(points[0].attempt_dir).run is None


def test_queue_states_map_to_observations(tmp_path: Path) -> None:
    item = with_state(attempt(tmp_path), JobState.SUBMITTED, "5.1")
    none = RunFiles()

    def seen(state: str, error: str = "") -> tuple[JobState, str, str]:
        obs = observe.from_queue(item, parse.QueueRow("5.1", state, "x"), none, error)
        return obs.state, obs.reason, obs.held

    assert seen("qw") == (JobState.SUBMITTED, "pending (qw)", "")
    assert seen("hqw") == (JobState.SUBMITTED, "held: hold (hqw)", "hold (hqw)")
    assert seen("Eqw", "can't open output file") == (
        JobState.FAILED,
        "held: can't open output file",
        "",
    )
    assert seen("r")[0] == seen("t")[0] == seen("dr")[0] == JobState.RUNNING
    assert seen("Rq")[1] == "requeued (Rq)"


def test_accounting_maps_to_observations(tmp_path: Path) -> None:
    (deleted,) = parse.parse_qacct(fixture("qacct-deleted.txt")).values()
    item = with_state(attempt(tmp_path), JobState.RUNNING, deleted.native_id)
    obs = observe.from_acct(item, deleted, RunFiles())
    assert (obs.state, obs.exit_code, obs.signal) == (JobState.COMPLETING, 137, 9)
    assert obs.usage == deleted.usage
    timed = attempt(tmp_path, JobSpec(command=("true",), resources={"walltime": 3}))
    obs = observe.from_acct(with_state(timed, JobState.RUNNING, "5"), deleted, RunFiles())
    assert (obs.state, obs.reason) == (JobState.FAILED, "walltime exceeded")
    broken = parse.AcctRow("5", "x", 0, "26 : opening input/output file", Usage())
    obs = observe.from_acct(item, broken, RunFiles())
    assert obs.state == JobState.FAILED and "opening input/output file" in obs.reason


def test_every_run_of_a_rescheduled_job_has_its_own_number(tmp_path: Path) -> None:
    # Grid Engine's RESTARTED is 1 for every rerun: were it the run number, a job rescheduled
    # twice would start run 1 again next to the killed run 1's exit, and the monitor would take
    # that stale exit for the running job's end
    (point,) = sweep(tmp_path, 1)
    (batch,), _ = render.plan([point], {})
    (batch.dir / render.SCRIPT).write_text(render.render_script(batch))
    (batch.dir / render.TASKS).write_text(render.render_tasks(batch))
    for restarted in ("0", "1", "1"):
        env = {**os.environ, "JOB_ID": "78", "RESTARTED": restarted}
        subprocess.run(["sh", str(batch.dir / render.SCRIPT)], env=env, check=False)
    assert read_run_files(point.attempt_dir).run == 2
    assert all((point.attempt_dir / f"run-exit.{run}").exists() for run in range(3))


def test_exits_99_and_100_are_grid_engines_to_judge(tmp_path: Path) -> None:
    # 99: Grid Engine runs the job again; 100: it puts the job in error state. Neither ends the
    # job, so the fast path must not take the wrapper's record of it for the job's end.
    item = with_state(attempt(tmp_path, prepare=False), JobState.RUNNING, "5")
    for code in (99, 100):
        assert observe.ended(item, RunFiles(0, "5", 1.0, ExitRecord(code, False, 2.0))) is None
    obs = observe.ended(item, RunFiles(0, "5", 1.0, ExitRecord(98, False, 2.0)))
    assert obs is not None and obs.exit_code == 98
