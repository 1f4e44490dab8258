"""Planning batches and rendering the batch script; the wrapper runs here under plain sh with
the environment Slurm would give it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from corral.backends.runfiles import read_run_files
from corral.backends.slurm import render
from corral.spec import JobSpec, Resources
from tests.slurm.helpers import attempt, sweep


def test_time_limit() -> None:
    assert render.time_limit(90) == "0-00:01:30"
    assert render.time_limit(86400 + 3600 + 61) == "1-01:01:01"


def test_resources_become_sbatch_flags() -> None:
    flags = render.resource_flags(Resources(cpus=4, memory_mb=2048, walltime=3600))
    assert flags == ["--cpus-per-task=4", "--mem=2048M", "--time=0-01:00:00"]
    assert render.resource_flags(Resources()) == ["--cpus-per-task=1"]


def test_job_options_override_the_backends_and_extra_args_add_up() -> None:
    backend = {
        "partition": "short",
        "account": "physics",
        "extra_sbatch_args": ["--nice=10"],
        "array_limit": 50,
    }
    job = {"partition": "long", "qos": "high", "extra_sbatch_args": ["--gres=gpu:1"]}
    options = render.sbatch_options(backend, job, Resources())
    assert options.flags == (
        "--cpus-per-task=1",
        "--partition=long",
        "--account=physics",
        "--qos=high",
        "--nice=10",
        "--gres=gpu:1",
    )
    assert options.array_limit == 50


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"partition": "a\nb"}, "single-line"),
        ({"extra_sbatch_args": "--nice"}, "list of strings"),
        ({"extra_sbatch_args": ["--job-name=x"]}, "override what corral sets"),
        ({"extra_sbatch_args": ["-Jx"]}, "override what corral sets"),
        ({"extra_sbatch_args": ["--output=/tmp/x"]}, "override what corral sets"),
        ({"array_limit": 0}, "positive integer"),
        ({"array_limit": True}, "positive integer"),
        ({"colour": "blue"}, "unknown slurm backend option 'colour'"),
    ],
)
def test_bad_options_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(render.OptionError, match=message):
        render.check_options(options)


def test_a_sweep_is_one_batch_and_max_array_size_splits_it(tmp_path: Path) -> None:
    points = sweep(tmp_path, 7)
    batches, rejected = render.plan(points, {}, max_array_size=1001)
    assert rejected == {} and len(batches) == 1
    assert batches[0].attempts == tuple(points) and batches[0].label == points[0].label
    split, _ = render.plan(points, {}, max_array_size=3)
    assert [len(b.attempts) for b in split] == [3, 3, 1]
    assert not split[2].is_array
    ids = render.native_ids(split[0], "77")
    assert [ids[a.uuid] for a in points[:3]] == ["77_0", "77_1", "77_2"]
    assert render.native_ids(split[2], "78") == {points[6].uuid: "78"}


def test_batches_group_by_sbatch_options(tmp_path: Path) -> None:
    small = [attempt(tmp_path, JobSpec(command=("true",))) for _ in range(2)]
    big = attempt(tmp_path, JobSpec(command=("true",), resources=Resources(cpus=2)))
    other = attempt(tmp_path, JobSpec(command=("true",), backend_options={"partition": "p2"}))
    bad = attempt(tmp_path, JobSpec(command=("true",), backend_options={"queue": "x"}))
    batches, rejected = render.plan([small[0], big, small[1], other, bad], {}, 1001)
    assert [b.attempts for b in batches] == [tuple(small), (big,), (other,)]
    assert list(rejected) == [bad.uuid] and "'queue'" in rejected[bad.uuid]


def test_the_batch_script(tmp_path: Path) -> None:
    points = sweep(tmp_path, 3, resources=Resources(memory_mb=100, walltime=120))
    (batch,), _ = render.plan(
        points, {"array_limit": 2, "extra_sbatch_args": ["--comment=a b"]}, 1001
    )
    script = render.render_script(batch)
    assert script.startswith("#!/bin/sh\n")
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert render.sbatch_argv(batch) == [
        "sbatch",
        "--parsable",
        f"--job-name={points[0].label}",
        "--output=/dev/null",
        "--array=0-2%2",
        str(batch.dir / render.SCRIPT),
    ]
    assert f"#   sbatch --job-name={points[0].label} --output=/dev/null --array=0-2%2" in script
    assert directives == [
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=100M",
        "#SBATCH --time=0-00:02:00",
        '#SBATCH "--comment=a b"',
    ]
    assert render.render_tasks(batch).splitlines() == [str(p.attempt_dir) for p in points]
    single, _ = render.plan(points[:1], {}, 1001)
    assert "--array" not in " ".join(render.sbatch_argv(single[0]))


def test_chunk_ids() -> None:
    ids = [f"{1000 + i}_{i}" for i in range(30)]
    chunks = render.chunk_ids(ids, limit=50)
    assert [x for chunk in chunks for x in chunk] == ids
    assert all(len(",".join(chunk)) < 50 for chunk in chunks)
    assert render.chunk_ids([]) == []


def _write_batch(tmp_path: Path, count: int) -> tuple[render.Batch, Path]:
    (batch,), _ = render.plan(sweep(tmp_path, count), {}, 1001)
    script = batch.dir / render.SCRIPT
    script.write_text(render.render_script(batch))
    (batch.dir / render.TASKS).write_text(render.render_tasks(batch))
    return batch, script


def _slurm_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    return {**env, "SLURM_JOB_ID": "91", "SLURMD_NODENAME": "node7", **extra}


def test_the_wrapper_runs_its_task_and_records_start_and_exit(tmp_path: Path) -> None:
    batch, script = _write_batch(tmp_path, 3)
    env = _slurm_env(SLURM_ARRAY_JOB_ID="90", SLURM_ARRAY_TASK_ID="2", SLURM_RESTART_COUNT="1")
    done = subprocess.run(["sh", str(script)], env=env, cwd=tmp_path, timeout=10, check=False)
    target = batch.attempts[2].attempt_dir
    assert done.returncode == 2  # point 2 exits 2 % 3
    assert (target / "stdout").read_text() == "point=2 arg=2\n"
    files = read_run_files(target)
    assert (files.run, files.native_id) == (1, "90_2")
    assert files.exit is not None and (files.exit.code, files.exit.terminated) == (2, False)
    assert not (batch.attempts[1].attempt_dir / "stdout").exists()


def test_the_wrapper_of_a_single_job_uses_the_job_id(tmp_path: Path) -> None:
    batch, script = _write_batch(tmp_path, 1)
    subprocess.run(["sh", str(script)], env=_slurm_env(), cwd=tmp_path, timeout=10, check=False)
    files = read_run_files(batch.dir)
    assert (files.run, files.native_id) == (0, "91")
    assert files.exit is not None and files.exit.clean


def test_the_wrapper_flags_an_end_caused_by_slurms_term(tmp_path: Path) -> None:
    job = attempt(tmp_path, JobSpec(command=("sleep", "30")))
    (batch,), _ = render.plan([job], {}, 1001)
    script = batch.dir / render.SCRIPT
    script.write_text(render.render_script(batch))
    (batch.dir / render.TASKS).write_text(render.render_tasks(batch))
    proc = subprocess.Popen(
        ["sh", str(script)], env=_slurm_env(), cwd=tmp_path, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while read_run_files(job.attempt_dir).run is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)  # what slurmstepd does: TERM to every process
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    files = read_run_files(job.attempt_dir)
    assert files.exit is not None and files.exit.terminated and not files.exit.clean
