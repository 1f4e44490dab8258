"""The parsers on output recorded from the real Slurm 22.05 (see fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.backends.slurm import parse
from corral.records import Usage
from tests.slurm.helpers import fixture


def by_name(rows: dict[str, parse.QueueRow] | dict[str, parse.AcctRow]) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for row in rows.values():
        names.setdefault(row.name, set()).add(row.state)
    return names


def test_the_recorder_uses_the_parsers_format_strings() -> None:
    script = (Path(__file__).parents[2] / "scripts" / "record-slurm-fixtures.sh").read_text()
    assert f"SQUEUE_FORMAT='{parse.SQUEUE_FORMAT}'" in script
    assert f"SACCT_FIELDS='{parse.SACCT_FIELDS}'" in script


@pytest.mark.parametrize(("name", "accounting"), [("acct", True), ("noacct", False)])
def test_cluster_info_from_scontrol_show_config(name: str, accounting: bool) -> None:
    config = parse.parse_config(fixture(f"scontrol-show-config.{name}.out"))
    assert config["ClusterName"] == "ci"
    info = parse.cluster_info(config)
    # the test cluster requeues jobs that exit 99 (RequeueExit=99 in scripts/start-slurm.sh)
    assert info == parse.ClusterInfo(1001, accounting, "22.05.8", requeue_exits=frozenset({99}))


def test_requeue_exit_codes() -> None:
    assert parse.exit_codes("99,100-102") == {99, 100, 101, 102}
    assert parse.exit_codes("(null)") == parse.exit_codes("") == frozenset()
    config = {"RequeueExit": "(null)", "RequeueExitHold": "7"}
    assert parse.cluster_info(config).requeue_exits == {7}


def test_cluster_info_defaults_when_keys_are_missing() -> None:
    assert parse.cluster_info({}) == parse.ClusterInfo(1001, accounting=False)


def test_sbatch_parsable_output() -> None:
    assert parse.parse_sbatch(fixture("sbatch.single.out")).isdigit()
    assert parse.parse_sbatch(fixture("sbatch.array.out")).isdigit()
    assert parse.parse_sbatch("4242;cluster2\n") == "4242"
    with pytest.raises(ValueError, match="no job id"):
        parse.parse_sbatch("sbatch: something else\n")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-partition", "Batch job submission failed: Invalid partition name specified"),
        ("bad-memory", "Requested node configuration is not available"),
        ("bad-array", "Invalid job array specification"),
    ],
)
def test_sbatch_refusals_are_permanent(name: str, message: str) -> None:
    assert fixture(f"sbatch.{name}.rc").strip() == "1"
    stderr = fixture(f"sbatch.{name}.err")
    assert not parse.is_transient(stderr)
    assert message in parse.error_line(stderr)
    assert not parse.error_line(stderr).startswith("sbatch:")


def test_controller_trouble_is_transient() -> None:
    # synthetic: a controller that does not answer cannot be recorded on demand
    stderr = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n"
    assert parse.is_transient(stderr)
    assert parse.is_transient("squeue: error: Unable to contact slurm controller (connect failure)")


def test_squeue_rows_of_every_recorded_state() -> None:
    rows = parse.parse_squeue(fixture("squeue.states.out"))
    states = by_name(rows)
    assert states["fx-array"] == {"COMPLETED", "FAILED"}
    assert states["fx-limited"] == {"RUNNING", "PENDING"}
    assert states["fx-timeout"] == {"TIMEOUT"}
    assert states["fx-cancelled-pending"] == {"CANCELLED"}
    assert states["fx-requeued"] == {"PENDING"}
    reasons = {row.name: row.reason for row in rows.values() if row.state == "PENDING"}
    assert reasons == {
        "fx-limited": "JobArrayTaskLimit",
        "fx-dependency": "Dependency",
        "fx-requeued": "BeginTime",
        "fx-resources": "Resources",
        "fx-held": "JobHeldUser",
    }
    array_tasks = sorted(n for n, row in rows.items() if row.name == "fx-array")
    assert [parse.task_index(n) for n in array_tasks] == [0, 1, 2, 3, 4]


def test_squeue_without_array_flag_aggregates_pending_tasks_and_we_expand_them() -> None:
    aggregated = parse.parse_squeue(fixture("squeue.aggregated.out"))
    expanded = parse.parse_squeue(fixture("squeue.states.out"))
    assert aggregated.keys() == expanded.keys()


def test_squeue_after_one_scancel_and_by_name() -> None:
    cancelled = by_name(parse.parse_squeue(fixture("squeue.cancelled.out")))
    assert cancelled["fx-running"] == cancelled["fx-held"] == {"CANCELLED"}
    assert cancelled["fx-limited"] == {"CANCELLED"}
    names = by_name(parse.parse_squeue(fixture("squeue.names.out")))
    assert set(names) == {"fx-array", "fx-limited", "fx-single"}


def test_squeue_all_ids_unknown() -> None:
    # one unknown id: squeue asks for that job alone and exits 1
    assert parse.squeue_all_unknown(
        int(fixture("squeue.unknown-one.rc")), fixture("squeue.unknown-one.err")
    )
    # several: squeue filters on the client side and prints nothing
    assert fixture("squeue.unknown-many.out") == ""
    assert not parse.squeue_all_unknown(1, "squeue: error: Socket timed out")


def test_sacct_rows_and_exit_codes() -> None:
    rows = parse.parse_sacct(fixture("sacct.states.out"))
    failed = [row for row in rows.values() if row.name == "fx-array" and row.state == "FAILED"]
    assert {(row.exit_code, row.signal) for row in failed} == {(3, 0)}
    assert by_name(rows)["fx-timeout"] == {"TIMEOUT"}
    assert by_name(rows)["fx-cancelled-pending"] == {"CANCELLED"}
    (pending_cancel,) = [r for r in rows.values() if r.name == "fx-cancelled-pending"]
    assert pending_cancel.detail == "by 0"


def test_sacct_expands_tasks_cancelled_before_they_started() -> None:
    rows = parse.parse_sacct(fixture("sacct.cancelled.out"))
    limited = sorted(n for n, row in rows.items() if row.name == "fx-limited")
    assert [parse.task_index(n) for n in limited] == [0, 1, 2]
    assert by_name(rows)["fx-limited"] == {"CANCELLED"}


def test_node_failure_recorded() -> None:
    queue = parse.parse_squeue(fixture("squeue.node-fail.out"))
    assert by_name(queue) == {"fx-node-fail": {"NODE_FAIL"}, "fx-node-fail-requeue": {"PENDING"}}
    acct = parse.parse_sacct(fixture("sacct.node-fail.out"))
    (failed,) = [n for n, row in queue.items() if row.name == "fx-node-fail"]
    assert acct[failed].state == "NODE_FAIL"  # sacct sometimes names it "allocation"


def test_sacct_without_accounting_and_unknown_ids() -> None:
    assert fixture("sacct.noacct.rc").strip() == "1"
    assert "accounting storage is disabled" in fixture("sacct.noacct.err")
    assert parse.parse_sacct(fixture("sacct.unknown.out")) == {}


def test_synthetic_sacct_states() -> None:
    rows = parse.parse_sacct(fixture("synthetic.sacct.out"))
    assert rows["501"].state == "OUT_OF_MEMORY"
    assert (rows["512"].exit_code, rows["512"].signal) == (0, 9)
    assert sorted(n for n in rows if n.startswith("513_")) == ["513_0", "513_1", "513_2", "513_5"]
    assert rows["513_5"].detail == "by 1000"


def test_scancel_of_finished_jobs_is_quiet() -> None:
    assert fixture("scancel.finished.out") == "" and not fixture("scancel.finished.err")
    assert not parse.scancel_failed(
        "scancel: error: Kill job error on job id 5: Job/step already completing or completed"
    )
    assert parse.scancel_failed(
        "scancel: error: Kill job error on job id 5: Access/permission denied"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", ["7"]),
        ("7_3", ["7_3"]),
        ("7_[1-2]", ["7_1", "7_2"]),
        ("7_[0,4-5%2]", ["7_0", "7_4", "7_5"]),
    ],
)
def test_expand_native_id(text: str, expected: list[str]) -> None:
    assert parse.expand_native_id(text) == expected


def test_compress_ids_gives_one_argument_per_slurm_job() -> None:
    ids = ["5_1", "5_2", "5_3", "7", "5_7", "9_0", "5_8"]
    assert parse.compress_ids(ids) == ["7", "5_[1-3,7-8]", "9_[0]"]
    assert parse.compress_ids([]) == []


def test_arrays_cancelled_before_any_task_started() -> None:
    queue = parse.parse_squeue(fixture("squeue.never-started.out"))
    acct = parse.parse_sacct(fixture("sacct.never-started.out"))
    names = {row.name for row in acct.values()}
    assert names == {"fx-array-never-started", "fx-array-never-started-2"}
    for rows in (queue, acct):
        tasks = [n for n, row in rows.items() if row.name == "fx-array-never-started"]
        assert len(tasks) == 4 and {rows[n].state for n in tasks} == {"CANCELLED"}
    # a live controller also showed such an array as one row with the bare job id
    bare = parse.parse_squeue("64|CANCELLED|corral-x|None\n")
    assert parse.lookup(bare, "64_3") == bare["64"]
    assert parse.lookup(bare, "65") is None
    assert parse.job_ids(["64_1", "64_3", "65", "66_0"]) == ["64", "65", "66"]


def test_sacct_usage_joins_the_batch_steps_peak_memory() -> None:
    # recorded from the test Slurm (jobacct_gather/linux, fake GPUs): sacct -n -P -j 1
    # --format=SACCT_FIELDS for `sbatch --gres=gpu:1 --ntasks-per-node=2` of a 50 MiB python
    (row,) = parse.parse_sacct(fixture("sacct.usage.out")).values()
    assert row.native_id == "1" and row.state == "COMPLETED"
    assert row.usage == Usage(0.184, 66208 * 1024, 1.0, "localhost")
    old = parse.parse_sacct("5|COMPLETED|0:0|corral-x\n")  # recorded before usage was asked for
    assert old["5"].usage is None


def test_scontrol_names_the_jobs_it_could_not_act_on() -> None:
    # recorded from `scontrol uhold 1 2 3_1 99999` on Slurm 22.05 (scripts/start-slurm.sh)
    stderr = (
        "Invalid job id specified for job 99999\nslurm_suspend error: Invalid job id specified\n"
    )
    assert parse.per_job_errors(stderr) == {"99999": "Invalid job id specified"}
    assert parse.per_job_errors("") == {}
