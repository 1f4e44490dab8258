"""The Grid Engine parsers on output recorded from SGE 8.1.9 (scripts/record-sge-fixtures.sh)."""

from __future__ import annotations

import pytest

from corral.backends.sge import parse
from tests.sge.helpers import fixture


def test_qsub_prints_the_job_id_of_an_array_or_a_plain_job() -> None:
    assert parse.parse_qsub(fixture("qsub-array.txt")).isdigit()
    assert parse.parse_qsub("52.1-50:1\n") == "52"
    assert parse.parse_qsub(fixture("qsub-plain.txt")) == fixture("qsub-plain.txt").strip()
    with pytest.raises(ValueError, match="no job id"):
        parse.parse_qsub("Unable to run job: denied\n")


@pytest.mark.parametrize(
    ("text", "tasks"),
    [("3", [3]), ("3,4", [3, 4]), ("1-3:1", [1, 2, 3]), ("1-7:3", [1, 4, 7]), ("x", [])],
)
def test_task_ranges_expand(text: str, tasks: list[int]) -> None:
    assert parse.expand_tasks(text) == tasks


def test_qstat_xml_lists_running_tasks_pending_ranges_held_and_error_jobs() -> None:
    rows = parse.parse_qstat(fixture("qstat-mixed.xml"))
    array = parse.parse_qsub(fixture("qsub-array.txt"))
    plain = parse.parse_qsub(fixture("qsub-plain.txt"))
    assert rows[f"{array}.3"].state == "r"
    assert rows[f"{array}.4"].name == "rec-array"
    assert rows[plain].state == "qw"
    by_name = {row.name: row for row in rows.values()}
    assert by_name["rec-eqw"].state == "Eqw"
    held = sorted(n for n, row in rows.items() if row.name == "rec-held")
    assert len(held) == 3 and all(rows[n].state == "hqw" for n in held)
    assert all(n.endswith((".1", ".2", ".3")) for n in held)
    with pytest.raises(ValueError, match="no valid XML"):
        parse.parse_qstat("<job_info>")


def test_qstat_j_gives_the_error_reason_of_a_job_in_error() -> None:
    text = fixture("qstat-j-eqw.txt")
    errors = parse.parse_errors(text)
    job = next(line.split()[1] for line in text.splitlines() if line.startswith("job_number"))
    assert "can't open output file" in errors[job]
    assert errors[f"{job}.1"] == errors[job]
    assert not errors[job].startswith("12/")  # the time stamp is left out


def test_qacct_has_one_record_per_task_with_exit_status_and_usage() -> None:
    rows = parse.parse_qacct(fixture("qacct-array.txt"))
    array = parse.parse_qsub(fixture("qsub-array.txt"))
    assert {n: r.exit_status for n, r in rows.items()} == {
        f"{array}.{t}": t % 3 for t in range(1, 5)
    }
    usage = rows[f"{array}.1"].usage
    assert usage.host == "localhost" and usage.wall_seconds is not None
    assert usage.wall_seconds >= 2 and usage.cpu_seconds is not None
    assert usage.max_rss_bytes is not None and usage.max_rss_bytes > 1024 * 1024


def test_qacct_of_a_deleted_job_and_of_one_that_used_memory() -> None:
    (deleted,) = parse.parse_qacct(fixture("qacct-deleted.txt")).values()
    assert deleted.exit_status == 137 and deleted.failed.startswith("100")
    (mem,) = parse.parse_qacct(fixture("qacct-mem.txt")).values()
    assert mem.exit_status == 0 and "." not in mem.native_id  # a plain job: taskid undefined
    assert mem.usage.max_rss_bytes is not None
    assert 100 * 1024 * 1024 < mem.usage.max_rss_bytes < 200 * 1024 * 1024  # 100 MiB + python
    assert parse.parse_qacct(fixture("qacct-unknown.txt")) == {}


def test_unknown_jobs_are_benign_for_qdel_and_task_lists_are_compressed() -> None:
    assert parse.unknown_only(fixture("qdel-unknown.txt"))
    assert not parse.unknown_only("error: unable to contact qmaster\n")
    assert parse.is_transient("error: unable to contact qmaster using port 6444")
    assert parse.job_task_list(["5.1", "5.2", "5.3", "7", "5.6", "8.2"]) == [
        "7",
        "5.1-3",
        "5.6",
        "8.2",
    ]
