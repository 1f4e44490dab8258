"""What ``corral ls`` reads from a SQLite registry, over a plain read-only ``sqlite3``
connection: the lean half of ``corral.registry.sqlite_summary`` (which adds the structured
reads), importing neither SQLAlchemy nor dataclasses, so a cold ``corral ls`` stays cheap.

Listings are formatted by SQLite itself (``printf``, ``group_concat``, ``json_object``: fetching
100,000 rows into Python costs more than building them) and come back as UTF-8 ``bytes``
(``CAST(... AS BLOB)``), written to stdout without being decoded and encoded again. They read
the covering index ``ix_jobs_listing`` (migration 0006) and never the table, whose rows also
hold every job's spec; on an older registry the same queries read the table.

A listing filters on the ``corral.selection.Selection`` every verb takes (None: every top-level
job); its SQL is written here without SQLAlchemy (``sql_where``; ``tests/cli`` checks that both
select the same jobs).

Lines are checked, not trusted: a listing whose text holds a control character, or more lines
than rows, is formatted again with every name, tag and backend passed through
``corral.printable.printable`` (a Python function SQLite calls: slower, and only for registries
holding rows stored before the entry checks refused such text). The check costs a few ms on
100,000 ASCII lines (``bytes.translate``).
"""

from __future__ import annotations

from corral.printable import printable
from corral.registry.driver import sqlite3
from corral.registry.listing_shape import DOWN_MARK, NAME_CAP, Widths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable
    from pathlib import Path
    from typing import Any, TypeVar

    from corral.selection import Selection

    T = TypeVar("T")

Span = tuple[int, int]  # job numbers lo <= job_id < hi
TOP = -1  # jobs.sub of a top-level job (corral.registry.schema.TOP, which imports SQLAlchemy)
_ID_SQL = "CAST(t.job_id AS TEXT) || CASE WHEN t.sub >= 0 THEN '.' || t.sub ELSE '' END"


def connect(path: Path) -> sqlite3.Connection:
    """A read-only autocommit connection (every statement sees the latest commit)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
    conn.isolation_level = None
    # Pages mapped, not copied by read(): a listing reads a whole index.
    conn.execute("PRAGMA mmap_size = 268435456")
    conn.create_function("printable", 1, _printable, deterministic=True)
    conn.create_function("tags_json", 1, _tags_json, deterministic=True)
    return conn


def _printable(value: str | None) -> str | None:
    return None if value is None else printable(value)


def _tags_json(value: str) -> str:
    import json  # (only for stored tags with control characters)

    # Escaped as SQLite's JSON functions escape (controls, quotes, backslashes; the rest as it
    # is), so a listing reads the same whichever way its tags went, on any SQLite version.
    return json.dumps([t for t in value.split(",") if t], ensure_ascii=False)


def sql_where(
    selection: Selection | None, now: float, span: Span | None = None
) -> tuple[str, list[Any]]:
    """SQL over ``jobs AS t`` and its parameters (top-level rows unless ids name subjobs;
    with ``span``, only job numbers ``lo <= job_id < hi``)."""
    clauses: list[str] = ["t.removing = 0"]  # a tombstone (rm --force, kill pending) is gone
    params: list[Any] = []
    if span is not None:
        clauses.append("t.job_id >= ? AND t.job_id < ?")
        params.extend(span)

    def any_of(template: str, values: Iterable[Any]) -> None:
        values = list(values)
        clauses.append("(" + " OR ".join([template] * len(values)) + ")")
        params.extend(values)

    if selection is not None and selection.ids:
        clauses.append(
            "(" + " OR ".join(["(t.job_id = ? AND t.sub = ?)"] * len(selection.ids)) + ")"
        )
        for job_id in selection.ids:
            params += [job_id.job, TOP if job_id.sub is None else job_id.sub]
    else:
        clauses.append("t.sub = -1")
    if selection is None:
        return " AND ".join(clauses), params
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


def subjob_ids(selection: Selection | None) -> bool:
    """Whether the selection names subjobs (their ids are shown as ``42.3``)."""
    return selection is not None and any(i.sub is not None for i in selection.ids)


def widths(conn: sqlite3.Connection, subjob_ids: bool = False) -> Widths:
    """Widths measured over the whole registry through its indexes (a few index steps, where
    measuring the listed rows would cost a scan), so columns also stay put from one ``ls`` to
    the next."""
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


def id_range(conn: sqlite3.Connection) -> Span:
    """The job numbers in the registry, ``(lowest, highest + 1)`` (``(0, 0)`` when empty)."""
    low, high = conn.execute("SELECT min(job_id), max(job_id) FROM jobs").fetchone()
    return (0, 0) if low is None else (int(low), int(high) + 1)


def missing_schema(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return text.startswith("no such table") or text.startswith("no such column")


def down_backends(conn: sqlite3.Connection) -> dict[str, str]:
    """``{name: reason}`` of the backends the latest monitor last saw down (one query on a
    table of a few rows, cheap enough for ``corral ls``). Rows older than the last lease
    acquisition were written by an earlier monitor and say nothing about now."""
    try:
        rows = conn.execute(
            "SELECT name, reason FROM backend_status WHERE state = 'down' AND updated_at >= "
            "coalesce((SELECT acquired_at FROM lease WHERE id = 1), 0) ORDER BY name"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if not missing_schema(exc):
            raise
        return {}
    return {name: reason for name, reason in rows}


_AGE = (  # the commonest (oldest) first: each test re-evaluates the age
    "CASE WHEN t.a >= 86400 THEN (t.a / 86400) || 'd' WHEN t.a >= 3600 THEN (t.a / 3600) || 'h' "
    "WHEN t.a >= 60 THEN (t.a / 60) || 'm' ELSE t.a || 's' END"
)


def _shown(column: str) -> str:
    """A column as printed: through ``corral.printable.printable`` (the slow, safe path)."""
    return f"printable({column})"


def _counts(cw: int) -> str:
    """A master's DONE/total FAIL RUN WAIT, from its subjobs (``ix_jobs_units`` covers them)."""
    return (
        f"(SELECT printf('%{cw}d/%-{cw}d  %{cw}d  %{cw}d  %{cw}d', sum(s.state = 'completed'), "
        "count(*), sum(s.state IN ('failed', 'killed')), "
        "sum(s.state IN ('running', 'completing')), "
        "sum(s.state NOT IN ('completed', 'failed', 'killed', 'running', 'completing'))) "
        "FROM jobs AS s WHERE s.job_id = t.job_id AND s.sub >= 0)"
    )


def _backend(shown: Callable[[str], str], down: Collection[str]) -> tuple[str, list[str]]:
    """BACKEND, with ``slurm (down)`` for a backend in ``down``, and its parameters."""
    if not down:  # the CASE costs every row a little: only when some backend is down
        return shown("t.backend"), []
    cases = " ".join(["WHEN ? THEN ?"] * len(down))
    params = [v for n in sorted(down) for v in (n, printable(n) + DOWN_MARK)]
    return f"CASE t.backend {cases} ELSE {shown('t.backend')} END", params


def listing(
    conn: sqlite3.Connection,
    filt: Selection | None,
    now: float,
    w: Widths,
    down: Collection[str] = (),
    *,
    escape: bool = False,
    span: Span | None = None,
) -> tuple[bytes, int]:
    """The lines of ``corral ls`` (under ``listing_header``), formatted by SQLite and returned
    as one UTF-8 string with the number of rows. With ``escape``, every name, tag and backend
    goes through ``printable``.

    For a master, DONE is completed/total subjobs, FAIL counts failed and killed ones, RUN
    running ones and WAIT the rest; a plain job leaves them blank (its STATE says it all).
    The counts come from a correlated subquery, so only masters pay for them. A backend in
    ``down`` (see ``down_backends``) shows as ``slurm (down)``. No colours: presentation is
    the caller's (``Widths.state_at``).
    """
    where, params = sql_where(filt, now, span)
    shown: Callable[[str], str] = _shown if escape else str
    backend, backend_params = _backend(shown, down)
    cw = w.count
    job_id = _ID_SQL if subjob_ids(filt) else "t.job_id"
    name = shown("t.name")
    if w.cut_names or escape:  # (an escaped name may be longer than the column)
        cut = f"substr({name}, 1, {w.name - 1}) || '…'"
        name = f"CASE WHEN length({name}) > {w.name} THEN {cut} ELSE {name} END"
    # Plain columns, no CASE per row where avoidable: each expression costs ~0.01 s per 100,000.
    # A plain job's blank counts are spaces in its format (one conversion less per line).
    tags = shown("substr(t.tags, 2, length(t.tags) - 2)")  # ",a,b," -> "a,b"
    head, tail = f"%-{w.id}s  %!-{w.name}s  %-{w.state}s  ", f"  %5s  %-{w.backend}s  %s"
    rest = f"{_AGE}, {backend}, {tags}"
    line = (
        f"CASE WHEN t.subjobs > 0 THEN printf('{head}%{5 * cw + 7}s{tail}', {job_id}, {name}, "
        f"t.state, {_counts(cw)}, {rest}) ELSE printf('{head}{' ' * (5 * cw + 7)}{tail}', "
        f"{job_id}, {name}, t.state, {rest}) END"
    )
    # group_concat keeps the order of an ordered subquery (SQLite does not flatten it into an
    # aggregate); tests/cli check the order on a registry whose rows are stored out of order.
    query = (
        "SELECT CAST(group_concat(line, char(10)) AS BLOB), count(*) FROM ("
        f"  SELECT {line} AS line FROM (SELECT job_id, sub, name, state, subjobs, backend, tags, "
        f"  CAST(? - created_at AS INTEGER) AS a FROM jobs AS t WHERE {where}) AS t "
        "  ORDER BY t.job_id, t.sub)"
    )
    # Placeholders in text order: the line's (backend marks, twice), then the subquery's.
    text, rows = conn.execute(query, [*backend_params * 2, now, *params]).fetchone()
    return text or b"", int(rows)


_SHOWN_ASCII = bytes(range(0x20, 0x7F))
_UNSAFE = "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]"


def clean(text: bytes, rows: int) -> bool:
    """One line per row and nothing a terminal would interpret (see ``corral.printable``)."""
    if text.isascii():  # the common case: only newlines may be left once the shown bytes go
        left = text.translate(None, _SHOWN_ASCII)
        return len(left) == rows - 1 and not left.strip(b"\n")
    import re

    decoded = text.decode()
    return decoded.count("\n") == rows - 1 and re.search(_UNSAFE, decoded) is None


def listing_json(
    conn: sqlite3.Connection,
    filt: Selection | None,
    now: float,
    *,
    exact: bool = False,
    span: Span | None = None,
) -> bytes:
    """The items of the ``jobs`` array of ``corral ls --json`` (schema 1, docs/cli.md), one a
    line, comma-separated, built by SQLite, as UTF-8 (without the brackets). With ``exact`` the
    tags are encoded by Python (``tags_json``), for stored tags that hold control characters,
    which the fast way cannot escape on SQLite 3.40 (its ``json()`` refuses them; 3.50
    escapes them, as ``tags_json`` does)."""
    where, params = sql_where(filt, now, span)
    # Tags are stored as ",a,b,": none, one (json_array escapes it), or several: escape
    # backslashes and quotes, then split on commas (3.40's json() refuses a control character).
    # A JSON value keeps its type through CASE but not through a subquery: json() restores it.
    many = (
        "'[\"' || replace(replace(replace(trim(t.tags, ','), '\\', '\\\\'), '\"', '\\\"'), "
        "',', '\",\"') || '\"]'"
    )
    tags = (  # (one tag: no third comma; GLOB is the cheapest test of that)
        "CASE WHEN t.tags = '' THEN json_array() WHEN t.tags NOT GLOB ',*,*,' "
        f"THEN json_array(substr(t.tags, 2, length(t.tags) - 2)) ELSE json({many}) END"
    )
    if exact:
        tags = "json(tags_json(t.tags))"
    counts = (
        "CASE WHEN t.subjobs > 0 THEN json((SELECT json_group_object(state, n) FROM ("
        "SELECT s.state, count(*) AS n FROM jobs AS s WHERE s.job_id = t.job_id "
        "AND s.sub >= 0 GROUP BY s.state))) ELSE json_object(t.state, 1) END"
    )
    job_id = _ID_SQL if subjob_ids(filt) else "CAST(t.job_id AS TEXT)"
    row = (
        f"json_object('id', {job_id}, 'name', t.name, 'state', t.state, "
        f"'backend', t.backend, 'tags', {tags}, 'subjobs', t.subjobs, "
        f"'counts', {counts}, 'created_at', t.created_at, 'updated_at', t.updated_at, "
        "'exit_code', t.exit_code, 'signal', t.signal, 'reason', t.reason)"
    )
    query = (
        "SELECT CAST(coalesce(group_concat(row, ',' || char(10)), '') AS BLOB) "
        f"FROM (SELECT {row} AS row FROM jobs AS t WHERE {where} ORDER BY t.job_id, t.sub)"
    )
    return bytes(conn.execute(query, params).fetchone()[0])
