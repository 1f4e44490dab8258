"""Issue 10: everything corral prints has the control characters of what it quotes escaped
(``corral.printable``): a job's spec, reasons, native ids, a backend's reason, the last
monitor's error, settings and error messages cannot clear the screen or forge lines."""

from __future__ import annotations

import re
import time
from pathlib import Path

from corral.registry import Registry
from corral.registry.driver import sqlite3
from corral.spec import JobSpec
from tests.cli.conftest import Result, run_corral
from tests.cli.test_peek import on_a_terminal

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\u202e\r\x08"
# What may reach a terminal: printable text, newlines (and a table's spaces).
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(result: Result) -> Result:
    for name, text in (("stdout", result.out), ("stderr", result.err)):
        found = UNSAFE.search(text)
        assert found is None, f"{name} holds {found.group()!r}: {text!r}"
    return result


def hostile_home(home: Path) -> Path:
    (home / "config.toml").write_text("autostart = false\n")
    registry = Registry(home / "registry.db", home / "jobs")
    try:
        registry.add(
            JobSpec(
                command=("echo", HOSTILE),
                name="x\u202ey",
                environment={"V": HOSTILE},
                backend_options={HOSTILE: HOSTILE},
            ),
            [],
        )
    finally:
        registry.close()
    conn = sqlite3.connect(home / "registry.db")
    try:
        with conn:
            conn.execute("UPDATE jobs SET reason = ?, native_id = ?", (HOSTILE, HOSTILE))
            conn.execute("UPDATE transitions SET reason = ?", (HOSTILE,))
            now = time.time()
            conn.execute(
                "INSERT INTO backend_status (name, kind, state, reason, since, active, interval,"
                " polls, errors, consecutive_errors, calls, updated_at)"
                " VALUES ('local', 'local', 'down', ?, ?, 1, 1.0, 0, 0, 0, '{}', ?)",
                (HOSTILE, now, now),
            )
            conn.execute("DELETE FROM lease")
            conn.execute(
                "INSERT INTO lease (id, epoch, pid, released, last_error, last_error_at)"
                " VALUES (1, 1, 1, 1, ?, ?)",
                (HOSTILE, now),
            )
    finally:
        conn.close()
    return home


def test_show_escapes_what_it_quotes(cli_home: Path) -> None:
    home = hostile_home(cli_home)
    shown = safe(run_corral(home, "show", "1"))
    assert shown.code == 0, shown
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\u202e\\r\\x08" in shown.out
    assert "x\\u202ey" in shown.out
    assert safe(run_corral(home, "show", "1", "--json")).code == 0
    script = on_a_terminal(home, "show", "1", "--script")
    assert UNSAFE.search(script.replace("\t", " ")) is None, script
    assert "\\x1b[2J" in script
    assert "\x1b[2J" in run_corral(home, "show", "1", "--script").out  # piped: as it is


def test_health_and_last_error_are_escaped(cli_home: Path) -> None:
    home = hostile_home(cli_home)
    status = safe(run_corral(home, "monitor", "--status"))
    assert status.code == 0, status
    assert "\\x1b[2J" in status.out
    assert safe(run_corral(home, "plugins")).code == 0
    assert safe(run_corral(home, "submit", "--", "true")).code == 0  # warns: backend down


def test_errors_and_settings_are_escaped(cli_home: Path) -> None:
    home = hostile_home(cli_home)
    for argv in (
        ["show", f"1{HOSTILE}"],
        ["submit", f"job{HOSTILE}.toml"],
        ["ls", "--state", HOSTILE],
        ["--set", f"{HOSTILE}=1", "ls"],
        ["--set", f"idle_exit={HOSTILE}", "ls"],
        ["submit", "-O", f"{HOSTILE}=1", "--", "true"],
        ["submit", "-b", HOSTILE, "--", "true"],
    ):
        failed = safe(run_corral(home, *argv))
        assert failed.code == 2, (argv, failed)
        assert failed.err.count("\n") == 1 and "\\x1b" in failed.err, failed.err
    shown = safe(run_corral(home, "config", "show", env={"CORRAL_WORK_DIR": f"/tmp/{HOSTILE}"}))
    assert "\\x1b[2J" in shown.out


def test_dry_run_and_rm_escape(cli_home: Path) -> None:
    home = hostile_home(cli_home)
    dry = on_a_terminal(home, "submit", "--dry-run", "--", "echo", HOSTILE)
    assert UNSAFE.search(dry.replace("\t", " ")) is None, dry
    assert "\\x1b[2J" in dry, dry
    assert safe(run_corral(home, "rm", "--force", "1")).code == 0
