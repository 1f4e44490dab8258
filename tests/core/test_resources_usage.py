"""GPUs and MPI layouts in the spec, rendered or refused by each backend; what attempts used,
stored, shown and summed per sweep."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from corral import JobState, Session, backends, load_settings
from corral.backends.base import BackendBase, refuse_resources
from corral.backends.runfiles import parse_times, usage_of
from corral.backends.sge import render as sge_render
from corral.backends.slurm import render as slurm_render
from corral.errors import InvalidSpec
from corral.records import Usage
from corral.spec import JobSpec, Resources, parse_spec
from tests.cli.conftest import run_corral


def test_resources_are_validated_once_with_bounds() -> None:
    spec = parse_spec(
        {"command": ["true"], "resources": {"gpus": 2, "nodes": 4, "tasks_per_node": 8}}
    )
    assert (spec.resources.gpus, spec.resources.nodes, spec.resources.tasks_per_node) == (2, 4, 8)
    for bad in ({"gpus": -1}, {"gpus": 5000}, {"nodes": 0}, {"tasks_per_node": True}):
        with pytest.raises(InvalidSpec, match="resources"):
            parse_spec({"command": ["true"], "resources": bad})
    with pytest.raises(InvalidSpec, match="CPUs, above"):
        parse_spec({"command": ["true"], "resources": {"cpus": 1000, "nodes": 100_000}})


def test_slurm_renders_gpus_nodes_and_tasks_per_node() -> None:
    flags = slurm_render.resource_flags(Resources(cpus=2, gpus=1, nodes=3, tasks_per_node=4))
    assert flags == ["--cpus-per-task=2", "--nodes=3", "--ntasks-per-node=4", "--gres=gpu:1"]


def test_sge_needs_a_parallel_environment_for_slots_and_a_resource_for_gpus() -> None:
    layout = Resources(cpus=2, nodes=2, tasks_per_node=2, memory_mb=800, walltime=60)
    with pytest.raises(sge_render.OptionError, match="parallel environment"):
        sge_render.qsub_options({}, {}, layout)
    flags = sge_render.qsub_options({"pe": "mpi"}, {}, layout).flags
    assert flags == ("-pe", "mpi", "8", "-l", "h_rt=60", "-l", "h_vmem=100M")
    with pytest.raises(sge_render.OptionError, match="gpu_resource"):
        sge_render.qsub_options({}, {}, Resources(gpus=1))
    assert sge_render.qsub_options({"gpu_resource": "gpu"}, {}, Resources(gpus=2)).flags == (
        "-l",
        "gpu=2",
    )


def test_a_backend_refuses_at_submit_what_it_cannot_honour(home: Path) -> None:
    class Plain(BackendBase):
        pass

    refuse_resources(Plain, JobSpec(command=("true",)))
    with pytest.raises(InvalidSpec, match=r"resources\.nodes: the plain backend cannot honour"):
        refuse_resources(Plain, JobSpec(command=("true",), resources={"nodes": 2}))
    (home / "config.toml").write_text("autostart = false\n")
    (home / "spec.json").write_text(
        json.dumps({"command": ["true"], "resources": {"tasks_per_node": 4}})
    )
    result = run_corral(home, "submit", str(home / "spec.json"))
    assert result.code == 2, result
    assert "resources.tasks_per_node: the local backend cannot honour" in result.err


def test_usage_from_the_wrapper_and_its_sum() -> None:
    assert parse_times("0m0.000000s 0m0.001000s\n1m0.250000s 0m0.500000s\n") == 60.75
    assert parse_times("garbage") is None
    usage = usage_of("0m0s 0m0s\n0m1.5s 0m0.5s\n", 10.0, 12.5, "node1")
    assert usage == Usage(2.0, None, 2.5, "node1")
    total = Usage.total([usage, Usage(1.0, 100, 1.0, "node1"), None])
    assert total == Usage(3.0, 100, 3.5, "node1")
    assert Usage.total([None]) is None
    assert Usage.from_json(usage.to_json()) == usage
    assert Usage.from_json({"cpu_seconds": "x", "host": 3}) == Usage()


def test_local_jobs_record_usage_shown_by_show_and_summed_per_sweep(home: Path) -> None:
    (home / "config.toml").write_text("[backends.local]\nmin_interval = 0.1\nmax_interval = 1.0\n")
    burn = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"
    with Session(load_settings()) as session:
        job = session.submit(
            {
                "command": ["sh", "-c", burn],
                "splitter": {"kind": "sweep", "parameters": {"i": ["1", "2"]}},
            }
        )
        (master,) = session.wait(job, timeout=60)
        assert master.state == JobState.COMPLETED
        subs = session.subjobs(job)
    for sub in subs:
        assert sub.usage is not None and sub.usage.cpu_seconds is not None, sub
        assert sub.usage.wall_seconds is not None and sub.usage.host
    data = json.loads(run_corral(home, "show", str(job), "--json").out)
    total = data["usage_total"]
    assert total["cpu_seconds"] == pytest.approx(
        sum(s["usage"]["cpu_seconds"] for s in data["subjobs"]), abs=0.01
    )
    text = run_corral(home, "show", str(job)).out
    assert "used" in text and "cpu " in text


def test_local_gpus_are_assigned_so_that_no_two_jobs_share_a_device(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text(
        '[backends.local]\nmax_cpus = 8\ngpus = ["0", "1", "2"]\n'
        "min_interval = 0.1\nmax_interval = 1.0\n"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "submitter's own")  # captured, then overridden
    script = 'echo "$CUDA_VISIBLE_DEVICES" > devices.txt; date +%s.%N >> devices.txt; sleep 1'
    with Session(load_settings()) as session:
        with pytest.raises(InvalidSpec, match="asks for 4 GPUs; the local backend has 3"):
            session.submit({"command": ["true"], "resources": {"gpus": 4}})
        job = session.submit(
            {
                "command": ["sh", "-c", script],
                "resources": {"gpus": 2},
                "outputs": ["devices.txt"],
                "splitter": {"kind": "sweep", "parameters": {"i": ["1", "2", "3"]}},
            }
        )
        plain = session.submit({"command": ["sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES]"']})
        (master, other) = session.wait([job, plain], timeout=60)
        assert master.state == JobState.COMPLETED
        subs = session.subjobs(job)
    seen = []
    for sub in subs:
        assert sub.output_dir is not None
        devices, started = (sub.output_dir / "devices.txt").read_text().split()
        seen.append((float(started), devices))
        assert len(devices.split(",")) == 2 and set(devices.split(",")) <= {"0", "1", "2"}
    starts = sorted(seen)
    for (t1, _), (t2, _) in itertools.pairwise(starts):
        assert t2 - t1 > 0.9  # 2 of 3 devices each: never two at once
    assert other.attempt_dir is not None
    assert (other.attempt_dir / "stdout").read_text() == "[submitter's own]\n"


ASKED = {"gpus": 1, "nodes": 2, "tasks_per_node": 2}


@pytest.mark.parametrize("kind", sorted(backends._entry_points()))
@pytest.mark.parametrize("resource", sorted(ASKED))
def test_no_backend_silently_ignores_a_resource(kind: str, resource: str) -> None:
    """Every registered backend either declares a resource in ``honours`` or refuses a job
    asking for it at submit: none may accept it and then not give it (the class of a bug the
    condor backend had, whose own ``check_job`` skipped the refusal)."""
    cls = backends.load(kind)
    spec = JobSpec(command=("true",), resources={resource: ASKED[resource]})
    options = cls.Options.model_construct()  # defaults: no section needed to check a job
    if resource in cls.honours:
        return
    with pytest.raises(InvalidSpec, match=resource):
        cls.check_job(spec, options)
