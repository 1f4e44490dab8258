"""Compare-and-set writes stay correct when writers cannot take the write lock up front.

Four processes open the registry with deferred ``BEGIN`` (as a database without ``BEGIN
IMMEDIATE`` would behave: read first, write later) and race to resubmit and kill the same jobs
again and again. Every resubmit reads a job's attempt and writes attempt + 1; a lost update
would give two attempts the same number or a transition out of a state the job was not in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from corral.records import JobId
from corral.registry import Registry
from corral.registry.driver import sqlite3
from corral.spec import JobSpec

WRITERS = 4
ROUNDS = 25
JOBS = 10

_WRITER = """
import sys
from pathlib import Path
from corral.records import JobId
from corral.registry.store import Registry
reg = Registry(Path(sys.argv[1]), Path(sys.argv[2]), deferred_writes=True)
ids = [JobId(i) for i in range(1, int(sys.argv[3]) + 1)]
for _ in range(int(sys.argv[4])):
    reg.resubmit(ids)
    reg.request_kill(ids)
reg.close()
"""


def test_racing_deferred_writers_lose_no_update(tmp_path: Path) -> None:
    path, work = tmp_path / "registry.db", tmp_path / "jobs"
    reg = Registry(path, work)
    try:
        for _ in range(JOBS):
            reg.add(JobSpec(command=("true",)), [])
        reg.request_kill([JobId(i) for i in range(1, JOBS + 1)])  # new: killed at once
    finally:
        reg.close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(work), str(JOBS), str(ROUNDS)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WRITERS)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    with sqlite3.connect(path) as conn:
        for pk, attempt, state in conn.execute("SELECT pk, attempt, state FROM jobs"):
            assert state == "killed"
            archived = [
                a for (a,) in conn.execute("SELECT attempt FROM attempts WHERE job_pk = ?", (pk,))
            ]
            assert sorted(archived) == list(range(1, attempt))  # each number once, none lost
            steps = conn.execute(
                "SELECT attempt, old_state, new_state FROM transitions WHERE job_pk = ? "
                "AND applied ORDER BY seq",
                (pk,),
            ).fetchall()
            # created, killed, then (killed -> new, new -> killed) once per attempt after it
            assert steps[:2] == [(1, None, "new"), (1, "new", "killed")]
            for n, (renew, kill) in enumerate(zip(steps[2::2], steps[3::2], strict=True), 2):
                assert renew == (n, "killed", "new") and kill == (n, "new", "killed")
            assert len(steps) == 2 * attempt
            assert attempt > 1  # the race really happened: jobs were resubmitted
