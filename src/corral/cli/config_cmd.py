"""``corral config path | show`` and ``corral plugins``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from corral.cli.common import Json, console, emit_json, state

if TYPE_CHECKING:
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
    print(settings.config_file)


@config_app.command("show")
def show(ctx: typer.Context, as_json: Json = False) -> None:
    """Print every effective setting and where its value came from."""
    settings = state(ctx).settings()
    rows = effective(settings)
    if as_json:
        emit_json(
            {
                "config_file": str(settings.config_file),
                "config_file_exists": bool(settings.config_file and settings.config_file.exists()),
                "settings": {k: {"value": v, "source": src} for k, v, src in rows},
            }
        )
        return
    from rich.markup import escape
    from rich.table import Table

    exists = settings.config_file is not None and settings.config_file.exists()
    out = console()
    out.print(f"config file: {settings.config_file}" + ("" if exists else " [dim](none yet)[/dim]"))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("key", "value", "source"):
        table.add_column(column)
    for key, value, source in rows:
        shown = value if isinstance(value, str) else json.dumps(value)
        style = "dim" if source.startswith("default") else ""
        table.add_row(
            key, escape(shown), f"[{style}]{escape(source)}[/{style}]" if style else escape(source)
        )
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
        }
        for key, value in fields.items():
            dotted = f"backends.{name}.{key}"
            source = settings.source(dotted)
            if key == "type" and source == "default":
                source = "default (the section's name)"
            rows.append((dotted, value, source))
    return rows


def plugins(as_json: Json = False) -> None:
    """List the backends corral can load, their options, and why one failed to load."""
    from corral import backends
    from corral.errors import BackendUnavailable

    found: list[dict[str, Any]] = []
    for kind in backends.available():
        try:
            cls = backends.load(kind)
        except BackendUnavailable as exc:
            found.append({"name": kind, "ok": False, "error": str(exc), "options": []})
            continue
        options = sorted(getattr(cls, "OPTIONS", frozenset()))
        found.append(
            {
                "name": kind,
                "ok": True,
                "error": None,
                "options": options,
                "class": f"{cls.__module__}.{cls.__qualname__}",
            }
        )
    if as_json:
        emit_json({"backends": found})
        return
    for item in found:
        if item["ok"]:
            accepted = ", ".join(item["options"]) or "none"
            print(f"{item['name']:<10} ok       {item['class']}  (options: {accepted})")
        else:
            print(f"{item['name']:<10} BROKEN   {item['error']}")
