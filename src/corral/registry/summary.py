"""Lean, read-only job summaries for listings (``corral ls``, ``corral wait``).

``Registry.select`` builds full ``JobRecord``s and parses every stored spec: right for a few
jobs, far too slow for 100,000. A summary reads only the columns a listing shows, plus the
subjob counts per state of the masters from one ``GROUP BY``, over a plain read-only
``sqlite3`` connection: importing SQLAlchemy alone costs a third of the 0.5 s a cold ``corral ls``
may take. For the same reason a listing is formatted by SQLite itself (``printf`` and
``json_object`` run in C; formatting 100,000 rows in Python takes longer than the query).

A listing filters on the same ``corral.selection.Selection`` every verb takes; its SQL is written
here without SQLAlchemy (``sql_where``) (``tests/cli`` checks that both select the same jobs).

The lease and the backends' health are read in ``corral.registry.status`` (``lease_info``,
``backend_health``, ``down_backends``, re-exported here).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.records import JobId

# (the lease and health readers live in ``status``; their names stay importable from here)
from corral.registry.status import (
    LeaseInfo as LeaseInfo,
)
from corral.registry.status import (
    backend_health as backend_health,
)
from corral.registry.status import (
    decode_calls as decode_calls,
)
from corral.registry.status import (
    down_backends as down_backends,
)
from corral.registry.status import (
    from_latest_monitor as from_latest_monitor,
)
from corral.registry.status import (
    health_of as health_of,
)
from corral.registry.status import (
    lease_info as lease_info,
)
from corral.selection import Selection
from corral.states import FINAL, JobState

TOP = -1  # jobs.sub of a top-level job (corral.registry.schema.TOP, which imports SQLAlchemy)
_STATES = {s.value: s for s in JobState}  # a dict lookup is several times faster than JobState(v)
_CHUNK = 500  # SQLite limits host parameters: long id lists are queried in chunks
_ID_SQL = "CAST(t.job_id AS TEXT) || CASE WHEN t.sub >= 0 THEN '.' || t.sub ELSE '' END"


def sql_where(selection: Selection, now: float) -> tuple[str, list[Any]]:
    """SQL over ``jobs AS t`` and its parameters (top-level rows unless ids name subjobs)."""
    clauses: list[str] = ["t.removing = 0"]  # a tombstone (rm --force, kill pending) is gone
    params: list[Any] = []

    def any_of(template: str, values: Iterable[Any]) -> None:
        values = list(values)
        clauses.append("(" + " OR ".join([template] * len(values)) + ")")
        params.extend(values)

    if selection.ids:
        clauses.append(
            "(" + " OR ".join(["(t.job_id = ? AND t.sub = ?)"] * len(selection.ids)) + ")"
        )
        for job_id in selection.ids:
            params += [job_id.job, TOP if job_id.sub is None else job_id.sub]
    else:
        clauses.append("t.sub = -1")
    if selection.states:
        any_of("t.state = ?", (s.value for s in selection.states))
    if selection.names:
        any_of("t.name GLOB ?", selection.names)
    if selection.tags:
        any_of("instr(t.tags, ?) > 0", (f",{t}," for t in selection.tags))
    if selection.backends:
        any_of("t.backend = ?", selection.backends)
    if selection.older_than is not None:
        clauses.append("t.created_at <= ?")
        params.append(now - selection.older_than)
    if selection.newer_than is not None:
        clauses.append("t.created_at >= ?")
        params.append(now - selection.newer_than)
    return " AND ".join(clauses), params


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One job of a listing. ``counts`` holds subjob states (a plain job counts as itself)."""

    id: JobId
    name: str
    state: JobState
    backend: str
    subjobs: int
    counts: dict[JobState, int]

    @property
    def units(self) -> int:
        """Runnable units: the subjobs of a master, or the job itself."""
        return self.subjobs or 1

    @property
    def done(self) -> int:
        return sum(n for s, n in self.counts.items() if s in FINAL)


def connect(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to the registry, or None if there is none yet (nothing is created)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
    conn.isolation_level = None  # autocommit: every statement sees the latest commit
    return conn


def ensure_schema(path: Path) -> None:
    """Migrate a registry whose tables are missing or old (imports SQLAlchemy and Alembic)."""
    from corral.registry.engine import open_engines

    writer, reader = open_engines(path)
    writer.dispose()
    reader.dispose()


def count_active(conn: sqlite3.Connection) -> int:
    """Runnable jobs not yet final (what a monitor still has to drive)."""
    final = ", ".join(f"'{s.value}'" for s in FINAL)
    query = f"SELECT count(*) FROM jobs WHERE subjobs = 0 AND state NOT IN ({final})"
    return int(conn.execute(query).fetchone()[0])


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: a cheap "anything new?"."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


@dataclass(frozen=True, slots=True)
class Widths:
    """Column widths of a listing."""

    id: int
    name: int
    state: int
    backend: int
    count: int  # digits of the largest subjob count
    cut_names: bool = False  # some name is longer than ``name``


NAME_CAP = 40
DOWN_MARK = " (down)"
"""What ``corral ls`` appends to a backend the monitor sees down."""


def widths(conn: sqlite3.Connection, subjob_ids: bool = False) -> Widths:
    """Widths measured over the whole registry through its indexes (a few ms, where measuring
    the listed rows would cost a scan), so columns also stay put from one ``ls`` to the next."""
    row = conn.execute(
        "SELECT (SELECT max(job_id) FROM jobs), (SELECT max(length(name)) FROM jobs), "
        "(SELECT max(length(backend)) FROM jobs), (SELECT max(sub) FROM jobs)"
    ).fetchone()
    top, name, backend, sub = (n or 0 for n in row)
    # At least as wide as the header; long names are cut so one name cannot widen every line.
    return Widths(
        id=max(len(str(top)) + (len(str(sub)) + 1 if subjob_ids else 0), 2),
        name=min(max(name, 4), NAME_CAP),
        state=10,
        backend=max(backend, 7),
        count=max(len(str(sub + 1)), 4),
        cut_names=name > NAME_CAP,
    )


_AGE = (
    "CASE WHEN t.a < 60 THEN t.a || 's' WHEN t.a < 3600 THEN (t.a / 60) || 'm' "
    "WHEN t.a < 86400 THEN (t.a / 3600) || 'h' ELSE (t.a / 86400) || 'd' END"
)


def listing(
    conn: sqlite3.Connection,
    filt: Selection,
    now: float,
    w: Widths,
    styles: Mapping[str, tuple[str, str]] | None = None,
    down: Collection[str] = (),
) -> str:
    """The lines of ``corral ls`` (under ``listing_header``), formatted by SQLite and returned
    as one string: fetching 100,000 rows one by one costs more than building them.

    For a master, DONE is completed/total subjobs, FAIL counts failed and killed ones, RUN
    running ones and WAIT the rest; a plain job leaves them blank (its STATE says it all).
    The counts come from a correlated subquery, so only masters pay for them. A backend in
    ``down`` (see ``down_backends``) shows as ``slurm (down)``. ``styles`` wraps a state's
    padded text in the caller's (prefix, suffix), e.g. a terminal's colours: presentation
    comes from the caller, as parameters; the SQL only pastes it.
    """
    where, params = sql_where(filt, now)
    backend, backend_params = "t.backend", []
    if down:  # the CASE costs every row a little: only when some backend is down
        backend = f"CASE t.backend {' '.join(['WHEN ? THEN ?'] * len(down))} ELSE t.backend END"
        backend_params = [v for name in sorted(down) for v in (name, name + DOWN_MARK)]
    cw = w.count
    job_id = _ID_SQL if any(i.sub is not None for i in filt.ids) else "t.job_id"
    name = "t.name"
    if w.cut_names:
        cut = f"substr(t.name, 1, {w.name - 1}) || '…'"
        name = f"CASE WHEN length(t.name) > {w.name} THEN {cut} ELSE t.name END"
    state, style_params = _styled_state(styles, w.state)
    counts = (
        f"(SELECT printf('%{cw}d/%-{cw}d  %{cw}d  %{cw}d  %{cw}d', sum(s.state = 'completed'), "
        "count(*), sum(s.state IN ('failed', 'killed')), "
        "sum(s.state IN ('running', 'completing')), "
        "sum(s.state NOT IN ('completed', 'failed', 'killed', 'running', 'completing'))) "
        "FROM jobs AS s WHERE s.job_id = t.job_id AND s.sub >= 0)"
    )
    # Plain columns, no CASE per row where avoidable: each expression costs ~0.01 s per 100,000.
    tags = "substr(t.tags, 2, length(t.tags) - 2)"  # ",a,b," -> "a,b"
    line = (
        f"printf('%-{w.id}s  %!-{w.name}s  %-{w.state}s  %{5 * cw + 7}s  %5s  %-{w.backend}s  "
        f"%s', {job_id}, {name}, {state}, CASE WHEN t.subjobs > 0 THEN {counts} END, {_AGE}, "
        f"{backend}, {tags})"
    )
    # group_concat keeps the order of an ordered subquery (SQLite does not flatten it into an
    # aggregate); tests/cli check the order on a registry whose rows are stored out of order.
    query = (
        "SELECT group_concat(line, char(10)) FROM ("
        f"  SELECT {line} AS line FROM (SELECT job_id, sub, name, state, subjobs, backend, tags, "
        f"  CAST(? - created_at AS INTEGER) AS a FROM jobs AS t WHERE {where}) AS t "
        "  ORDER BY t.job_id, t.sub)"
    )
    # Placeholders in text order: the line's (state styles, backend marks), then the subquery's.
    found = conn.execute(query, [*style_params, *backend_params, now, *params]).fetchone()[0]
    return found or ""


def _styled_state(
    styles: Mapping[str, tuple[str, str]] | None, width: int
) -> tuple[str, list[str]]:
    """The STATE column's SQL and its parameters: the padded state, in the caller's style."""
    if not styles:
        return "t.state", []
    cases = " ".join(["WHEN ? THEN ?"] * len(styles))
    sql = (
        f"CASE t.state {cases} ELSE '' END || printf('%-{width}s', t.state) || "
        f"CASE t.state {cases} ELSE '' END"
    )
    params = [v for k, (pre, _) in styles.items() for v in (k, pre)]
    return sql, params + [v for k, (_, post) in styles.items() for v in (k, post)]


def listing_header(w: Widths) -> str:
    cw = w.count
    return (
        f"{'ID':<{w.id}}  {'NAME':<{w.name}}  {'STATE':<{w.state}}  {'DONE':^{2 * cw + 1}}  "
        f"{'FAIL':>{cw}}  {'RUN':>{cw}}  {'WAIT':>{cw}}  {'AGE':>5}  {'BACKEND':<{w.backend}}  "
        "TAGS"
    )


def listing_json(conn: sqlite3.Connection, filt: Selection, now: float) -> str:
    """The ``jobs`` array of ``corral ls --json`` (schema 1, docs/cli.md), built by SQLite."""
    where, params = sql_where(filt, now)
    # Tags are stored as ",a,b,": escape backslashes and quotes, then split on commas.
    tags = (
        "CASE WHEN t.tags = '' THEN '[]' ELSE '[\"' || replace(replace(replace("
        "trim(t.tags, ','), '\\', '\\\\'), '\"', '\\\"'), ',', '\",\"') || '\"]' END"
    )
    counts = (
        "CASE WHEN t.subjobs > 0 THEN (SELECT json_group_object(state, n) FROM ("
        "SELECT s.state, count(*) AS n FROM jobs AS s WHERE s.job_id = t.job_id "
        "AND s.sub >= 0 GROUP BY s.state)) ELSE json_object(t.state, 1) END"
    )
    row = (
        f"json_object('id', {_ID_SQL}, 'name', t.name, 'state', t.state, "
        f"'backend', t.backend, 'tags', json({tags}), 'subjobs', t.subjobs, "
        f"'counts', json({counts}), 'created_at', t.created_at, 'updated_at', t.updated_at, "
        "'exit_code', t.exit_code, 'signal', t.signal, 'reason', t.reason)"
    )
    query = (
        f"SELECT '[' || coalesce(group_concat(row, ',' || char(10)), '') || ']' FROM ("
        f"SELECT {row} AS row FROM jobs AS t WHERE {where} ORDER BY t.job_id, t.sub)"
    )
    return str(conn.execute(query, params).fetchone()[0])


def summaries(conn: sqlite3.Connection, filt: Selection) -> list[JobSummary]:
    """The matching jobs as structured summaries (for progress displays)."""
    where, params = sql_where(filt, time.time())
    rows = conn.execute(
        f"SELECT t.job_id, t.sub, t.name, t.state, t.backend, t.subjobs FROM jobs AS t "
        f"WHERE {where} ORDER BY t.job_id, t.sub",
        params,
    ).fetchall()
    return _with_counts(conn, rows)


def summaries_of(conn: sqlite3.Connection, ids: Sequence[JobId]) -> list[JobSummary]:
    """These jobs (top-level or subjobs, any number of them), in the given order."""
    found: dict[JobId, JobSummary] = {}
    top = sorted({i.job for i in ids if i.sub is None})
    for i in range(0, len(top), _CHUNK):
        chunk = top[i : i + _CHUNK]
        rows = conn.execute(
            "SELECT t.job_id, t.sub, t.name, t.state, t.backend, t.subjobs FROM jobs AS t "
            f"WHERE t.sub = -1 AND t.job_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
        found.update((s.id, s) for s in _with_counts(conn, rows))
    subs = [i for i in ids if i.sub is not None]
    for i in range(0, len(subs), _CHUNK):
        found.update((s.id, s) for s in summaries(conn, Selection(ids=tuple(subs[i : i + _CHUNK]))))
    return [found[i] for i in ids if i in found]


def _with_counts(conn: sqlite3.Connection, rows: Sequence[Any]) -> list[JobSummary]:
    masters = sorted({r[0] for r in rows if r[5] > 0})
    counts: dict[int, dict[JobState, int]] = {}
    for i in range(0, len(masters), _CHUNK):
        chunk = masters[i : i + _CHUNK]
        for job_id, state, n in conn.execute(
            "SELECT job_id, state, count(*) FROM jobs WHERE sub != -1 AND job_id IN "
            f"({','.join('?' * len(chunk))}) GROUP BY job_id, state",
            chunk,
        ):
            counts.setdefault(job_id, {})[_STATES[state]] = n
    result = []
    for job_id, sub, name, state_text, backend, subjobs in rows:
        state = _STATES[state_text]
        result.append(
            JobSummary(
                id=JobId(job_id, None if sub == TOP else sub),
                name=name,
                state=state,
                backend=backend,
                subjobs=subjobs,
                counts=counts.get(job_id, {}) if subjobs else {state: 1},
            )
        )
    return result
