"""The SQLite ``ListingReader`` (see ``corral.registry.summary``): a plain read-only ``sqlite3``
connection (importing SQLAlchemy alone costs a third of what a cold ``corral ls`` may take), and
listings formatted by SQLite itself (``printf``, ``group_concat``, ``json_object``).

A listing filters on the same ``corral.selection.Selection`` every verb takes; its SQL is written
here without SQLAlchemy (``sql_where``; ``tests/cli`` checks that both select the same jobs).

Lines are checked, not trusted: a listing whose text holds a control character, or more lines
than rows, is formatted again with every name, tag and backend passed through
``corral.printable.printable`` (a Python function SQLite calls: slower, and only for registries
holding rows stored before the entry checks refused such text). The check costs a few ms on
100,000 ASCII lines (``bytes.translate``).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from corral.errors import RegistryError
from corral.printable import printable
from corral.records import BackendHealth, JobId
from corral.registry import sqlite_status
from corral.registry.summary import DOWN_MARK, NAME_CAP, JobSummary, LeaseInfo, Widths
from corral.selection import Selection
from corral.states import FINAL, JobState

T = TypeVar("T")

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


class SQLiteReader:
    """A ``ListingReader`` over one registry file."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> SQLiteReader | None:
        """A read-only connection to the registry, or None if there is none (nothing is made)."""
        if not path.exists():
            return None
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=60, check_same_thread=False
        )
        conn.isolation_level = None  # autocommit: every statement sees the latest commit
        # Pages mapped, not copied by read(): a listing reads the whole table.
        conn.execute("PRAGMA mmap_size = 268435456")
        conn.create_function("printable", 1, _printable, deterministic=True)
        conn.create_function("tags_json", 1, _tags_json, deterministic=True)
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a lean read; if the registry predates the current schema, migrate it and retry."""
        try:
            try:
                return query(self._conn)
            except sqlite3.OperationalError:
                ensure_schema(self.path)
                return query(self._conn)
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"cannot read the registry {self.path}: {exc}") from exc

    def widths(self, subjob_ids: bool = False) -> Widths:
        return self._read(lambda c: widths(c, subjob_ids))

    def listing(self, filt: Selection, now: float, w: Widths, down: Collection[str] = ()) -> str:
        text, rows = self._read(lambda c: listing(c, filt, now, w, down))
        if text and not _clean(text, rows):
            text, rows = self._read(lambda c: listing(c, filt, now, w, down, escape=True))
        return text

    def listing_json(self, filt: Selection, now: float) -> str:
        def query(conn: sqlite3.Connection) -> str:
            try:
                return listing_json(conn, filt, now)
            except sqlite3.OperationalError as exc:  # (not a schema to migrate: see `exact`)
                if "JSON" not in str(exc):
                    raise
            return listing_json(conn, filt, now, exact=True)

        return self._read(query)

    def summaries(self, filt: Selection) -> list[JobSummary]:
        return self._read(lambda c: summaries(c, filt))

    def count_active(self) -> int:
        return self._read(count_active)

    def lease_info(self) -> LeaseInfo | None:
        return self._read(sqlite_status.lease_info)

    def backend_health(self) -> list[BackendHealth]:
        return self._read(sqlite_status.backend_health)

    def down_backends(self) -> dict[str, str]:
        return self._read(sqlite_status.down_backends)


def _printable(value: str | None) -> str | None:
    return None if value is None else printable(value)


def _tags_json(value: str) -> str:
    return json.dumps([t for t in value.split(",") if t])


_SHOWN_ASCII = bytes(range(0x20, 0x7F))
_UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)


def _clean(text: str, rows: int) -> bool:
    """One line per row and nothing a terminal would interpret (see ``corral.printable``)."""
    if text.isascii():  # the common case: only newlines may be left once the shown bytes go
        left = text.encode("ascii").translate(None, _SHOWN_ASCII)
        return len(left) == rows - 1 and not left.strip(b"\n")
    return text.count("\n") == rows - 1 and _UNSAFE.search(text) is None


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


def _shown(column: str) -> str:
    """A column as printed: through ``corral.printable.printable`` (the slow, safe path)."""
    return f"printable({column})"


def listing(
    conn: sqlite3.Connection,
    filt: Selection,
    now: float,
    w: Widths,
    down: Collection[str] = (),
    *,
    escape: bool = False,
) -> tuple[str, int]:
    """The lines of ``corral ls`` (under ``listing_header``), formatted by SQLite and returned
    as one string with the number of rows: fetching 100,000 rows one by one costs more than
    building them. With ``escape``, every name, tag and backend goes through ``printable``.

    For a master, DONE is completed/total subjobs, FAIL counts failed and killed ones, RUN
    running ones and WAIT the rest; a plain job leaves them blank (its STATE says it all).
    The counts come from a correlated subquery, so only masters pay for them. A backend in
    ``down`` (see ``down_backends``) shows as ``slurm (down)``. No colours: presentation is
    the caller's (``Widths.state_at``).
    """
    where, params = sql_where(filt, now)
    shown: Callable[[str], str] = _shown if escape else str
    backend, backend_params = shown("t.backend"), []
    if down:  # the CASE costs every row a little: only when some backend is down
        cases = " ".join(["WHEN ? THEN ?"] * len(down))
        backend = f"CASE t.backend {cases} ELSE {backend} END"
        backend_params = [v for n in sorted(down) for v in (n, printable(n) + DOWN_MARK)]
    cw = w.count
    job_id = _ID_SQL if any(i.sub is not None for i in filt.ids) else "t.job_id"
    name = shown("t.name")
    if w.cut_names or escape:  # (an escaped name may be longer than the column)
        cut = f"substr({name}, 1, {w.name - 1}) || '…'"
        name = f"CASE WHEN length({name}) > {w.name} THEN {cut} ELSE {name} END"
    counts = (
        f"(SELECT printf('%{cw}d/%-{cw}d  %{cw}d  %{cw}d  %{cw}d', sum(s.state = 'completed'), "
        "count(*), sum(s.state IN ('failed', 'killed')), "
        "sum(s.state IN ('running', 'completing')), "
        "sum(s.state NOT IN ('completed', 'failed', 'killed', 'running', 'completing'))) "
        "FROM jobs AS s WHERE s.job_id = t.job_id AND s.sub >= 0)"
    )
    # Plain columns, no CASE per row where avoidable: each expression costs ~0.01 s per 100,000.
    tags = shown("substr(t.tags, 2, length(t.tags) - 2)")  # ",a,b," -> "a,b"
    line = (
        f"printf('%-{w.id}s  %!-{w.name}s  %-{w.state}s  %{5 * cw + 7}s  %5s  %-{w.backend}s  "
        f"%s', {job_id}, {name}, t.state, CASE WHEN t.subjobs > 0 THEN {counts} END, {_AGE}, "
        f"{backend}, {tags})"
    )
    # group_concat keeps the order of an ordered subquery (SQLite does not flatten it into an
    # aggregate); tests/cli check the order on a registry whose rows are stored out of order.
    query = (
        "SELECT group_concat(line, char(10)), count(*) FROM ("
        f"  SELECT {line} AS line FROM (SELECT job_id, sub, name, state, subjobs, backend, tags, "
        f"  CAST(? - created_at AS INTEGER) AS a FROM jobs AS t WHERE {where}) AS t "
        "  ORDER BY t.job_id, t.sub)"
    )
    # Placeholders in text order: the line's (backend marks), then the subquery's.
    text, rows = conn.execute(query, [*backend_params, now, *params]).fetchone()
    return text or "", int(rows)


def listing_json(
    conn: sqlite3.Connection, filt: Selection, now: float, *, exact: bool = False
) -> str:
    """The ``jobs`` array of ``corral ls --json`` (schema 1, docs/cli.md), built by SQLite.
    With ``exact`` the tags are encoded by Python (``tags_json``), for stored tags that hold
    control characters, which the fast way cannot escape."""
    where, params = sql_where(filt, now)
    # Tags are stored as ",a,b,": none, one (json_array escapes it), or several: escape
    # backslashes and quotes, then split on commas (json() refuses a control character).
    # A JSON value keeps its type through CASE but not through a subquery: json() restores it.
    many = (
        "'[\"' || replace(replace(replace(trim(t.tags, ','), '\\', '\\\\'), '\"', '\\\"'), "
        "',', '\",\"') || '\"]'"
    )
    tags = (
        "CASE WHEN t.tags = '' THEN json_array() "
        "WHEN instr(substr(t.tags, 2), ',') = length(t.tags) - 1 "
        f"THEN json_array(substr(t.tags, 2, length(t.tags) - 2)) ELSE json({many}) END"
    )
    if exact:
        tags = "json(tags_json(t.tags))"
    counts = (
        "CASE WHEN t.subjobs > 0 THEN json((SELECT json_group_object(state, n) FROM ("
        "SELECT s.state, count(*) AS n FROM jobs AS s WHERE s.job_id = t.job_id "
        "AND s.sub >= 0 GROUP BY s.state))) ELSE json_object(t.state, 1) END"
    )
    job_id = _ID_SQL if any(i.sub is not None for i in filt.ids) else "CAST(t.job_id AS TEXT)"
    row = (
        f"json_object('id', {job_id}, 'name', t.name, 'state', t.state, "
        f"'backend', t.backend, 'tags', {tags}, 'subjobs', t.subjobs, "
        f"'counts', {counts}, 'created_at', t.created_at, 'updated_at', t.updated_at, "
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
