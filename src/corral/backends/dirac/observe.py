"""DiracX answers as observations (pure): search rows, Content-Range, submit results.

DIRAC states and what corral makes of them::

    Submitting Received Checking Staging Waiting Matched  -> submitted
    Running                                                -> running
    Completing Completed                                   -> running (the payload ended, its
                                                              sandbox is on its way: no verdict
                                                              yet, and the exit code comes with
                                                              Done or Failed)
    Done                                                   -> completing, exit 0; completed once the
                                                              output sandbox is downloaded
    Failed, "Application Finished With Errors"             -> completing with the payload's exit
                                                              code (judged after the outputs)
    Failed, anything else                                  -> failed, with DIRAC's reason
    Stalled                                                -> unknown, with the reason
    Killed Deleted                                         -> killed
    Rescheduled                                            -> a requeue back to submitted
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.records import Observation
from corral.states import JobState

COLUMNS = ("JobID", "Status", "MinorStatus", "ApplicationStatus", "LastUpdateTime")
"""The only columns a status search asks for."""
RECONCILE_COLUMNS = ("JobID", "JobName", "JobGroup", "Status")

QUEUED = frozenset({"Submitting", "Received", "Checking", "Staging", "Waiting", "Matched"})
FINAL = frozenset({"Done", "Failed", "Killed", "Deleted"})
APP_ERRORS = "Application Finished With Errors"
_EXIT = re.compile(r"exit(?:\s+code)?\s*[:=]?\s*(-?\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Row:
    """One job as a status search sees it."""

    job_id: str
    status: str
    minor: str = ""
    application: str = ""
    updated: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def detail(self) -> str:
        """DIRAC's own words, kept in the reason that ``ls`` and ``show`` print."""
        parts = [self.status]
        if self.minor:
            parts.append(self.minor)
        if self.application and self.application not in ("Unknown", "None"):
            parts.append(f"app: {self.application}")
        return "DIRAC " + "; ".join(parts)


def parse_rows(payload: Any) -> dict[str, Row]:
    """A search response body (a list of dicts) as rows by job id (as a string)."""
    if not isinstance(payload, list):
        raise ValueError(f"search answered {type(payload).__name__}, not a list")
    rows: dict[str, Row] = {}
    for item in payload:
        job_id = str(item["JobID"])
        rows[job_id] = Row(
            job_id,
            str(item.get("Status") or ""),
            str(item.get("MinorStatus") or ""),
            str(item.get("ApplicationStatus") or ""),
            str(item.get("LastUpdateTime") or ""),
        )
    return rows


_RANGE = re.compile(r"^\s*jobs\s+(\d+)-(\d+)/(\d+|\*)\s*$")


def content_range(header: str | None) -> tuple[int, int, int] | None:
    """``jobs 0-99/142`` -> (0, 99, 142); None when absent or unreadable."""
    match = _RANGE.match(header or "")
    if not match or match.group(3) == "*":
        return None
    first, last, total = match.groups()
    return int(first), int(last), int(total)


def pages(total: int, per_page: int) -> range:
    """The pages (from 1) a search of ``total`` rows at ``per_page`` rows a page has."""
    return range(1, max(1, -(-total // per_page)) + 1)


def exit_code(row: Row) -> int:
    """The payload's exit code of a failed application: DIRAC's search has no column for it, so
    it is read from an ApplicationStatus like ``exit code 3`` when given, else 1."""
    match = _EXIT.search(row.application)
    return int(match.group(1)) if match else 1


def observe(uuid: str, row: Row) -> Observation:
    """What one search row says of one attempt."""
    native, why = row.job_id, row.detail
    if row.status in QUEUED:
        return Observation(uuid, JobState.SUBMITTED, why, native_id=native)
    if row.status == "Running":
        return Observation(uuid, JobState.RUNNING, why, native_id=native)
    if row.status in ("Completing", "Completed"):
        # not completing: the poll loop passes on state changes only, so a later Failed with
        # its exit code would be dropped as "still completing"
        return Observation(uuid, JobState.RUNNING, why, native_id=native)
    if row.status == "Done":
        return Observation.ended(uuid, 0, native_id=native)
    if row.status == "Failed":
        if row.minor == APP_ERRORS:
            return Observation.ended(uuid, exit_code(row), native_id=native)
        return Observation(uuid, JobState.FAILED, why, native_id=native)
    if row.status in ("Killed", "Deleted"):
        return Observation.ended(uuid, None, killed=True, native_id=native)
    if row.status == "Rescheduled":
        return Observation(uuid, JobState.SUBMITTED, why, native_id=native, requeue=True)
    if row.status == "Stalled":
        return Observation(uuid, JobState.UNKNOWN, why, native_id=native)
    return Observation(uuid, JobState.UNKNOWN, f"unknown DIRAC status: {why}", native_id=native)


def missing(uuid: str, job_id: str) -> Observation:
    return Observation(uuid, JobState.UNKNOWN, f"DiracX does not know job {job_id}")


def submitted_ids(payload: Any, expected: int) -> list[str]:
    """The job ids a ``POST /api/jobs/jdl`` answered, in the order of the JDLs sent."""
    if not isinstance(payload, list) or len(payload) != expected:
        raise ValueError(f"submit answered {payload!r:.200}, expected {expected} results")
    return [str(item["JobID"]) for item in payload]


def by_label(payload: Any, group: str, labels: Iterable[str]) -> dict[str, str]:
    """A reconcile search's rows as ``{JobName: JobID}`` for the wanted labels of ``group``
    (the lowest id when, against every rule, a label was submitted twice)."""
    wanted = set(labels)
    found: dict[str, str] = {}
    for item in payload if isinstance(payload, list) else []:
        name, job_id = str(item.get("JobName")), str(item["JobID"])
        ours = name in wanted and str(item.get("JobGroup")) == group
        if ours and (name not in found or int(job_id) < int(found[name])):
            found[name] = job_id
    return found


def killable(ids: Sequence[str], known: Mapping[str, Row]) -> list[str]:
    """Ids worth a kill: known to the last search and not final (with a user token, one unknown
    or foreign id makes the whole PATCH answer 403, and nothing is killed)."""
    return [i for i in ids if i in known and not known[i].final]
