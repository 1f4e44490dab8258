"""The JSON views of ``corral.views``: their keys, in order, and their values (what ``--json``
prints after ``"schema": 1``, documented in docs/cli.md, and what a REST API will serve)."""

from __future__ import annotations

import json
from typing import Any

from corral import Session, Settings, views
from corral.holds import HoldResult
from corral.monitor.loop import BackendStatus
from corral.records import JobId
from corral.spec import parse_spec


def shape(view: dict[str, Any]) -> list[str]:
    json.dumps(view)  # a view is plain JSON
    return list(view)


def test_what_a_verb_did() -> None:
    a, b = JobId(4), JobId(5, 1)
    assert views.submitted_view(a, 3, "local") == {"id": "4", "subjobs": 3, "backend": "local"}
    assert shape(views.submitted_view(a, 0, "x")) == ["id", "subjobs", "backend"]
    assert views.copied_view(b, a) == {"id": "5.1", "source": "4"}
    assert shape(views.copied_view(a, b)) == ["id", "source"]
    assert views.killed_view([a, b]) == {"killed": ["4", "5.1"]}
    assert views.resubmitted_view(iter([b])) == {"resubmitted": ["5.1"]}
    assert views.stopped_view(None) == {"stopped": None}
    assert views.stopped_view(1234) == {"stopped": 1234}
    held = HoldResult(done=[a], refused={b: "running jobs cannot be held"})
    assert views.hold_view("held", held) == {
        "held": ["4"],
        "refused": {"5.1": "running jobs cannot be held"},
    }
    assert shape(views.hold_view("released", HoldResult())) == ["released", "refused"]


def test_removal_and_dry_run(settings: Settings) -> None:
    with Session(settings, monitor="off") as s:
        job = s.submit({"command": ["true"], "name": "x"})
        record = s.get(job)
    removed = views.removal_view([record], dry_run=True)
    assert shape(removed) == ["dry_run", "removed"] and removed["dry_run"] is True
    assert removed["removed"] == [views.removed_view(record)]
    assert shape(removed["removed"][0]) == ["id", "name", "state", "subjobs", "job_dir"]
    assert views.removal_view([], dry_run=False) == {"dry_run": False, "removed": []}
    spec = parse_spec({"command": ["echo", "{n}"], "splitter": {"kind": "args", "args": [["1"]]}})
    sub = parse_spec({"command": ["echo", "1"]})
    dry = views.dry_run_view(spec, [sub], "#!/bin/sh\n")
    assert shape(dry) == ["dry_run", "spec", "subjobs", "script"]
    assert dry["dry_run"] is True and dry["script"] == "#!/bin/sh\n"
    assert dry["spec"]["command"] == ["echo", "{n}"] and dry["subjobs"][0]["command"] == [
        "echo",
        "1",
    ]


def test_foreground_monitor_loops() -> None:
    status = BackendStatus("local", active=2, interval=1.5, polls=3, errors=1, last_error="x")
    shown = views.foreground_view([status])
    assert shape(shown) == ["backends"]
    assert shown["backends"] == [
        {
            "name": "local",
            "active": 2,
            "interval": 1.5,
            "last_poll": None,
            "polls": 3,
            "errors": 1,
            "last_error": "x",
        }
    ]
    assert list(shown["backends"][0]) == [
        "name", "active", "interval", "last_poll", "polls", "errors", "last_error",
    ]  # fmt: skip


def test_settings_and_plugins(settings: Settings) -> None:
    rows = [("autostart", False, "flag"), ("idle_exit", 2.0, "config file")]
    shown = views.config_view(settings, rows, exists=False)
    assert shape(shown) == ["config_file", "config_file_exists", "settings"]
    assert shown["config_file"] == str(settings.config_file) and not shown["config_file_exists"]
    assert shown["settings"] == {
        "autostart": {"value": False, "source": "flag"},
        "idle_exit": {"value": 2.0, "source": "config file"},
    }
    from corral import backends

    local = views.backend_kind_view("local", backends.load("local"), None)
    assert shape(local) == ["name", "ok", "error", "options", "option_fields", "class"]
    assert local["ok"] and "max_cpus" in local["options"]
    assert local["options"] == [f["name"] for f in local["option_fields"]]
    assert shape(local["option_fields"][0]) == ["name", "default", "required", "description"]
    broken = views.backend_kind_view("gone", None, "cannot import gone")
    assert broken == {
        "name": "gone",
        "ok": False,
        "error": "cannot import gone",
        "options": [],
        "option_fields": [],
    }
    instance = views.backend_instance_view(
        "local", "local", configured=False, options={"a": 1}, valid=True, error=None, health=None
    )
    assert instance == {
        "name": "local",
        "kind": "local",
        "configured": False,
        "ok": True,
        "valid": True,
        "error": None,
        "options": {"a": 1},
        "health": None,
    }
    bad = views.backend_instance_view(
        "x", "slurm", configured=True, options=None, valid=False, error="bad", health=None
    )
    assert (bad["ok"], bad["valid"], bad["options"]) == (False, False, None)
    assert views.plugins_view([broken], [bad]) == {"backends": [broken], "instances": [bad]}


def test_show(settings: Settings) -> None:
    with Session(settings, monitor="off") as s:
        job = s.submit({"command": ["true"], "name": "x"})
        record, history = s.get(job), s.history(job)
    shown = views.show_view(record, history, [], {"name": "local"})
    assert shape(shown) == ["job", "spec", "history", "subjobs", "usage_total", "backend_health"]
    assert shown["job"]["id"] == "1" and shown["backend_health"] == {"name": "local"}
    assert [t["new"] for t in shown["history"]] == ["new"]
    assert views.show_view(record, history, [])["backend_health"] is None
