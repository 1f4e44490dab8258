"""``corral ls`` (one line per job, fast on 100,000 jobs) and ``corral show`` (one job in full)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from corral.cli import ls_text
from corral.cli.common import (
    Backends,
    Ids,
    Json,
    Names,
    States,
    Tags,
    ago,
    console,
    emit_json,
    job_filter,
    markup,
    need_registry,
    parse_ids,
    run,
    session,
    state,
    styled,
    when,
    write_text,
)
from corral.cli.ls_text import STATE_COLORS as STATE_COLORS
from corral.cli.ls_text import colour_states as colour_states
from corral.errors import InvalidInput, RegistryError
from corral.records import Usage
from corral.views import outputs_of, show_view

if TYPE_CHECKING:
    from corral.cli import health_view
    from corral.records import JobRecord, Transition
    from corral.registry.status import MonitorStatus
    from corral.session import AsyncSession

OlderThan = Annotated[
    str | None,
    typer.Option(
        "--older-than",
        metavar="AGE",
        help="Only jobs created more than AGE ago (30m, 2h, 7d).",
        show_default=False,
    ),
]
NewerThan = Annotated[
    str | None,
    typer.Option(
        "--newer-than",
        "--since",
        metavar="AGE",
        help="Only jobs created less than AGE ago.",
        show_default=False,
    ),
]


def ls(
    ctx: typer.Context,
    ids: Ids = None,
    states: States = None,
    names: Names = None,
    tags: Tags = None,
    backends: Backends = None,
    older_than: OlderThan = None,
    newer_than: NewerThan = None,
    as_json: Json = False,
) -> None:
    """List jobs, one line each, with subjob counts per state (every match: no limit)."""
    filt = job_filter(ids, states, names, tags, backends, older_than, newer_than)
    parts = ls_text.listing_text(state(ctx).settings().registry, filt, as_json)
    ls_text.write_listing(parts, filt, as_json)


def show(
    ctx: typer.Context,
    job: Annotated[
        str, typer.Argument(metavar="ID", help="A job (42) or a subjob (42.3).", show_default=False)
    ],
    script: Annotated[
        bool,
        typer.Option(
            "--script", help="Print the script that was (or would be) run, and nothing else."
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Everything about one job: spec, state history, backend ids, exit status, output paths."""
    (job_id,) = parse_ids([job])
    settings = state(ctx).settings()
    need_registry(settings, f"no job {job_id}")

    async def gather() -> dict[str, Any]:
        async with session(settings) as sess:
            record = await sess.get(job_id)
            subjobs = await sess.subjobs(job_id) if record.is_master else []
            history = await sess.history(job_id)
            status = None if script else await _status(sess)  # (for the health hints)
            return {"record": record, "history": history, "subjobs": subjobs, "status": status}

    found = run(gather())
    record: JobRecord = found["record"]
    if script:
        write_text(_script(record, found["subjobs"]))
        return
    from corral.cli import health_view

    facts = health_view.facts_of(found["status"])  # (read in the same session)
    if as_json:
        health = facts.health_json(record.backend)
        emit_json(show_view(record, found["history"], found["subjobs"], health))
    else:
        _print_show(record, found["history"], found["subjobs"], facts)


async def _status(sess: AsyncSession) -> MonitorStatus | None:
    """The monitor's status for hints beside the real work: never a reason for it to fail."""
    try:
        return await sess.monitor_status()
    except RegistryError:
        return None


def _waiting(record: JobRecord, facts: health_view.Facts) -> str | None:
    """An active job on a backend the monitor sees down waits for it: say so and why."""
    down = facts.latest_down(record.backend)
    if record.state.final or down is None:
        return None
    note = f"waiting for backend {record.backend}: {down.reason or 'down'}"
    if facts.running is None:
        note += f" (seen {ago(down.updated_at)}; no monitor is running)"
    return note


def _script(record: JobRecord, subjobs: list[JobRecord]) -> str:
    from corral.sandbox import JOB_SCRIPT, SUBMITTED, render_job_script

    if record.is_master:
        if not subjobs:
            raise InvalidInput(f"job {record.id} has no subjobs left")
        first = subjobs[0]
        note = (
            f"# job {record.id} has {len(subjobs)} subjobs; this is {first.id} "
            f"(the others: corral show {record.id}.N --script)\n"
        )
        return note + _script(first, [])
    attempt_dir = record.attempt_dir
    assert attempt_dir is not None
    written = attempt_dir / JOB_SCRIPT
    if written.exists():
        text = f"# {written} (as submitted)\n" + written.read_text()
        batch = attempt_dir / SUBMITTED
        if batch.exists():  # the scheduler's own script, which runs job.sh
            text = f"# {batch.resolve()} (given to the scheduler)\n{batch.read_text()}\n{text}"
        return text
    return f"# not submitted yet: what will run in {attempt_dir}\n" + render_job_script(
        record.spec, attempt_dir
    )


def _print_show(
    record: JobRecord,
    history: list[Transition],
    subjobs: list[JobRecord],
    health: health_view.Facts,
) -> None:
    from rich.table import Table

    out = console()
    counts = ", ".join(f"{n} {s.value}" for s, n in sorted(record.counts.items()))
    kind = f"sweep of {record.subjobs} subjobs: {counts}" if record.is_master else "job"
    out.print(f"[bold]{record.id}[/bold]  {markup(record.name)}  {styled(record.state)}  ({kind})")
    waiting = _waiting(record, health)
    if waiting is not None:
        out.print(f"  [yellow]{markup(waiting)}[/yellow]")
    if record.problem:  # (the spec below is a placeholder: corral.spec.read_stored_spec)
        out.print(f"  [red]problem: {markup(record.problem)}[/red]")
    facts = Table.grid(padding=(0, 2))
    used = Usage.total(s.usage for s in subjobs) if record.is_master else record.usage
    for key, value in [*_facts(record), ("used", used.describe() if used else "-")]:
        facts.add_row(f"  [dim]{key}[/dim]", markup(value))
    out.print(facts)
    out.print("[bold]spec[/bold]")
    spec = Table.grid(padding=(0, 2))
    for key, value in record.spec.model_dump(mode="json", exclude_defaults=True).items():
        spec.add_row(f"  [dim]{markup(key)}[/dim]", _value(value))
    out.print(spec)
    out.print("[bold]history[/bold]")
    events = Table.grid(padding=(0, 2))
    for t in history:
        change = f"{t.old.value if t.old else '-'} -> {styled(t.new)}"
        note = markup(t.reason) if t.applied else f"[dim]ignored: {markup(t.reason)}[/dim]"
        events.add_row(f"  {when(t.at)}", f"#{t.attempt}", change, note)
    out.print(events)
    if subjobs:
        _print_subjobs(subjobs)


def _facts(r: JobRecord) -> list[tuple[str, str]]:
    facts = [
        ("backend", r.backend),
        ("tags", " ".join(r.tags) or "-"),
        ("created", f"{when(r.created_at)} ({ago(r.created_at)})"),
        ("updated", f"{when(r.updated_at)} ({ago(r.updated_at)})"),
    ]
    if not r.is_master:
        status = "-" if r.exit_code is None else f"exit code {r.exit_code}"
        if r.signal:
            status = f"killed by signal {r.signal}"
        facts += [
            ("attempt", f"{r.attempt}  (uuid {r.uuid})"),
            ("native id", r.native_id or "-"),
            ("exit", status),
            ("reason", r.reason or "-"),
        ]
        if r.attempt_dir is not None:
            facts += [
                ("stdout", str(r.attempt_dir / "stdout")),
                ("stderr", str(r.attempt_dir / "stderr")),
            ]
    facts.append(("job dir", str(r.job_dir) if r.job_dir else "-"))
    outputs = outputs_of(r)
    if outputs:
        facts.append(("outputs", f"{r.output_dir}/ " + " ".join(outputs)))
    if r.kill_requested and not r.state.final:
        facts.append(("kill", "requested, waiting for the monitor"))
    return facts


def _value(value: Any) -> str:
    return markup(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _print_subjobs(subjobs: list[JobRecord]) -> None:
    from rich.table import Table

    table = Table(title="subjobs", title_justify="left", box=None, header_style="bold")
    for column in ("id", "state", "exit", "native id", "reason"):
        table.add_column(column)
    for s in subjobs:
        exit_text = "-" if s.exit_code is None else str(s.exit_code)
        table.add_row(
            str(s.id), styled(s.state), exit_text, markup(s.native_id or "-"), markup(s.reason)
        )
    console().print(table)
