"""``corral config path | show`` and ``corral plugins``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from corral.cli.common import Json, console, emit_json, markup, state
from corral.printable import printable

if TYPE_CHECKING:
    from corral.cli import health_view
    from corral.config import Settings

config_app = typer.Typer(
    help="The config file and the effective settings.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@config_app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the config file's path (it need not exist yet)."""
    settings = state(ctx).settings()
    print(printable(str(settings.config_file)))


@config_app.command("show")
def show(ctx: typer.Context, as_json: Json = False) -> None:
    """Print every effective setting and where its value came from; exit 2 if a backend
    section is invalid (printed first, so its source shows where to fix it)."""
    from corral import backends
    from corral.views import config_view

    settings = state(ctx).settings()
    rows = effective(settings)
    if as_json:
        exists = bool(settings.config_file and settings.config_file.exists())
        emit_json(config_view(settings, rows, exists))
    else:
        _print_settings(settings, rows)
    backends.check_settings(settings)  # ConfigError: exit 2, one line naming key and value


def _print_settings(settings: Settings, rows: list[tuple[str, Any, str]]) -> None:
    from rich.table import Table

    exists = settings.config_file is not None and settings.config_file.exists()
    out = console()
    where = markup(str(settings.config_file))
    out.print(f"config file: {where}" + ("" if exists else " [dim](none yet)[/dim]"))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("key", "value", "source"):
        table.add_column(column)
    for key, value, source in rows:
        shown = value if isinstance(value, str) else json.dumps(value)
        style = "dim" if source.startswith("default") else ""
        where = markup(source)
        table.add_row(markup(key), markup(shown), f"[{style}]{where}[/{style}]" if style else where)
    out.print(table)


def effective(settings: Settings) -> list[tuple[str, Any, str]]:
    """(dotted key, value, source) for every setting, the local backend's section included."""
    from corral.config import USER_KEYS, BackendSettings

    rows: list[tuple[str, Any, str]] = []
    for key in USER_KEYS:
        if key != "backends":
            value = getattr(settings, key)
            rows.append(
                (key, str(value) if isinstance(value, Path) else value, settings.source(key))
            )
    sections = dict(settings.backends)
    sections.setdefault("local", BackendSettings())
    for name, section in sorted(sections.items()):
        fields = {
            "type": settings.backend_kind(name),
            "min_interval": section.min_interval,
            "max_interval": section.max_interval,
            **section.options(),
            **_resolved_paths(settings, name),
        }
        for key, value in fields.items():
            dotted = f"backends.{name}.{key}"
            source = settings.source(dotted)
            if key == "type" and source == "default":
                source = "default (the section's name)"
            rows.append((dotted, value, source))
    return rows


def _resolved_paths(settings: Settings, name: str) -> dict[str, Any]:
    """A section's path options as its backend sees them (absolute); nothing if the section
    does not check (``check_settings`` says why, after the listing)."""
    from corral import backends
    from corral.backends.option_paths import path_fields
    from corral.errors import BackendUnavailable, ConfigError

    section = settings.backends.get(name)
    if section is None or not backends.known(settings.backend_kind(name)):
        return {}
    try:
        cls, options = backends.options_of(settings, name)
    except (ConfigError, BackendUnavailable):
        return {}
    return {key: getattr(options, key) for key in path_fields(cls.Options) if key in section.extra}


def plugins(ctx: typer.Context, as_json: Json = False) -> None:
    """List the backends corral can load and their options; check each configured instance's
    settings and show its last known health (exit 2 if a section is invalid)."""
    from corral import backends
    from corral.cli import health_view
    from corral.errors import ConfigError
    from corral.views import plugins_view

    settings = state(ctx).settings()
    kinds = [_kind(kind) for kind in backends.available()]
    facts = health_view.read(settings)
    names = sorted({"local", *settings.backends, *(h.name for h in facts.backends)})
    instances = [_instance(settings, name, facts) for name in names]
    if as_json:
        emit_json(plugins_view(kinds, instances))
    else:
        _print_plugins(kinds, instances, facts)
    invalid = [i["error"] for i in instances if not i["valid"]]
    if invalid:  # after the listing, which shows every section, not only the first bad one
        raise ConfigError("; ".join(invalid))


def _kind(kind: str) -> dict[str, Any]:
    """A backend kind: whether its class loads, and its options with their defaults."""
    from corral import backends
    from corral.errors import BackendUnavailable
    from corral.views import backend_kind_view

    try:
        cls = backends.load(kind)
    except BackendUnavailable as exc:
        return backend_kind_view(kind, None, str(exc))
    return backend_kind_view(kind, cls, None)


def _instance(settings: Settings, name: str, facts: health_view.Facts) -> dict[str, Any]:
    """A backend instance: its settings checked (``valid`` is False only for a bad section:
    a class that cannot load is the installation's problem) and its last known health."""
    from corral import backends
    from corral.errors import BackendUnavailable, ConfigError
    from corral.views import backend_instance_view

    kind = settings.backend_kind(name)
    configured = name in settings.backends
    options: dict[str, Any] | None = None
    valid, error = True, None
    if not backends.known(kind):
        valid = not configured  # a stored job's backend, since removed
        error = (
            f"backends.{name}: unknown backend type {kind!r} "
            f"(available: {', '.join(backends.available())})"
            if configured
            else f"{name}: not configured, and no backend kind of that name"
        )
    else:
        try:
            _, checked = backends.options_of(settings, name)
        except ConfigError as exc:
            valid, error = False, str(exc)
        except BackendUnavailable as exc:
            error = str(exc)
        else:
            options = checked.model_dump(mode="json")
    return backend_instance_view(
        name,
        kind,
        configured=configured,
        options=options,
        valid=valid,
        error=error,
        health=facts.health_json(name),
    )


def _print_plugins(
    kinds: list[dict[str, Any]], instances: list[dict[str, Any]], facts: health_view.Facts
) -> None:
    from corral.cli import health_view

    width = max(len(k["name"]) for k in [*kinds, *instances])
    print("backend kinds:")
    for item in kinds:
        if not item["ok"]:
            print(f"  {item['name']:<{width}}  BROKEN   {printable(item['error'])}")
            continue
        print(f"  {item['name']:<{width}}  ok       {item['class']}")
        defaults = ", ".join(f"{f['name']}={_text(f['default'])}" for f in item["option_fields"])
        print(f"  {'':<{width}}  options  {defaults or 'none'}")
    print("backend instances:")
    for item in instances:
        head = printable(f"  {item['name']:<{width}}  {item['kind']:<{width}}")
        if item["ok"]:
            values = ", ".join(f"{k}={_text(v)}" for k, v in item["options"].items())
            print(f"{head}  ok       {values or 'no options'}")
        else:
            print(f"{head}  {'ok' if item['valid'] else 'INVALID':<7}  {printable(item['error'])}")
        health = facts.health(item["name"])
        if health is not None:
            text = health_view.summary_text(health, facts.stale(health))
            print(f"  {'':<{width}}  {'':<{width}}  health   {text}")


def _text(value: Any) -> str:
    return printable(value if isinstance(value, str) and value else json.dumps(value))
