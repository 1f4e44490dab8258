"""Settings: file, environment and flags merged into one object, each value with its source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.config import config_path, load_settings
from corral.errors import ConfigError
from tests.cli.conftest import run_corral, stop_monitor


def test_sources_and_precedence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        "idle_exit = 5\nfinalisers = 2\n[backends.local]\nmax_cpus = 3\nmax_interval = 9\n"
        "[backends.big]\ntype = 'slurm'\npartition = 'long'\n"
    )
    env = {
        "CORRAL_HOME": str(home),
        "CORRAL_FINALISERS": "6",
        "CORRAL_BACKENDS__LOCAL__MAX_CPUS": "4",
    }
    settings = load_settings({"idle_exit": 7, "autostart": None}, env, origin="flag")
    assert (settings.idle_exit, settings.finalisers, settings.autostart) == (7.0, 6, True)
    assert settings.source("idle_exit") == "flag"
    assert settings.source("finalisers") == "env CORRAL_FINALISERS"
    assert settings.source("autostart") == "default"
    assert settings.source("backends.local.max_interval") == f"file {home / 'config.toml'}"
    assert settings.backends["local"].options() == {"max_cpus": 4}
    assert settings.source("backends.local.max_cpus") == "env CORRAL_BACKENDS__LOCAL__MAX_CPUS"
    assert settings.backend_kind("big") == "slurm"
    config = settings.backend_config("big")
    assert config.options == {"partition": "long"} and config.max_interval == 30.0
    assert settings.work_dir == home / "jobs" and settings.registry == home / "registry.db"
    assert settings.config_file == home / "config.toml"


def test_config_file_location(tmp_path: Path) -> None:
    assert config_path({"CORRAL_HOME": str(tmp_path)}) == tmp_path / "config.toml"
    assert config_path({"CORRAL_HOME": str(tmp_path), "CORRAL_CONFIG": "/etc/c.toml"}) == Path(
        "/etc/c.toml"
    )
    assert config_path({}, home=tmp_path / "x") == tmp_path / "x" / "config.toml"
    assert config_path({}).name == "config.toml"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"finalisers": 0}, "finalisers: expected a whole number >= 1"),
        ({"autostart": "sometimes"}, "autostart: expected true or false"),
        ({"idle_exit": True}, "idle_exit: expected a number"),
        ({"backends.local.min_interval": 0}, "backends.local.min_interval: expected a number > 0"),
        ({"backends.local": 3}, "backends.local must be a table"),
        ({"idle_exit.x": 3}, "has no sub-keys"),
        ({"sources": {}}, "unknown setting 'sources'"),
    ],
)
def test_invalid_values_name_the_key_and_source(
    tmp_path: Path, overrides: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        load_settings(overrides, {"CORRAL_HOME": str(tmp_path)}, origin="flag")
    assert "\n" not in str(caught.value)


def test_config_commands(cli_home: Path) -> None:
    path = run_corral(cli_home, "config", "path")
    assert path.code == 0 and path.out.strip() == str(cli_home / "config.toml")
    shown = run_corral(
        cli_home,
        "--set",
        "backends.local.kill_grace=2",
        "config",
        "show",
        "--json",
        env={"CORRAL_FLUSH_WINDOW": "0.05"},
    ).json()
    settings = shown["settings"]
    assert shown["config_file_exists"] and shown["schema"] == 1
    assert settings["idle_exit"] == {"value": 2.0, "source": f"file {cli_home / 'config.toml'}"}
    assert settings["flush_window"] == {"value": 0.05, "source": "env CORRAL_FLUSH_WINDOW"}
    assert settings["backends.local.kill_grace"]["value"] == 2
    assert settings["backends.local.kill_grace"]["source"].startswith("flag")
    assert settings["autostart"] == {"value": True, "source": "default"}
    human = run_corral(cli_home, "config", "show").out
    assert "env CORRAL_HOME" in human and "backends.local.max_cpus" in human
    plugins = run_corral(cli_home, "plugins", "--json").json()["backends"]
    local = next(p for p in plugins if p["name"] == "local")
    assert local["ok"] and "max_cpus" in local["options"]


def test_the_background_monitor_reads_the_same_config(tmp_path: Path) -> None:
    """Without CORRAL_HOME the config lives in the XDG config dir; the daemon, started with
    CORRAL_HOME set to the data dir, must still read that file: max_cpus = 1 serialises jobs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"))
    (tmp_path / "config" / "corral").mkdir(parents=True)
    (tmp_path / "config" / "corral" / "config.toml").write_text(
        "idle_exit = 2\n[backends.local]\nmax_cpus = 1\n"
    )
    home = tmp_path / "data" / "corral"

    def corral(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "corral.cli", *args],
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
        )

    try:
        assert corral("submit", "--wait", "--sweep", "n=1,2", "--", "sleep", "1").returncode == 0
        runs = []
        for sub in ("1.0", "1.1"):
            history = json.loads(corral("show", sub, "--json").stdout)["history"]
            times = {h["new"]: h["at"] for h in history if h["applied"]}
            runs.append((times["running"], times["completing"]))
        first, second = sorted(runs)
        assert second[0] >= first[1] - 0.05, runs  # one cpu: the second starts after the first
    finally:
        stop_monitor(home)


def test_config_show_prints_paths_resolved_against_the_config_file(
    cli_home: Path, tmp_path: Path
) -> None:
    (cli_home / "config.toml").write_text(
        'work_dir = "jobs-rel"\n[backends.grid]\ntype = "dirac"\n'
        'credentials_path = "tokens.json"\n[backends.classic]\ntype = "dirac-classic"\n'
        'module_path = ["lib"]\npython = "python3"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = run_corral(cli_home, "config", "show", "--json", cwd=elsewhere)
    assert shown.code == 0, shown
    settings = shown.json()["settings"]
    assert settings["work_dir"]["value"] == str(cli_home / "jobs-rel")
    assert settings["backends.grid.credentials_path"]["value"] == str(cli_home / "tokens.json")
    assert settings["backends.classic.module_path"]["value"] == [str(cli_home / "lib")]
    assert settings["backends.classic.python"]["value"] == "python3"
    human = run_corral(cli_home, "config", "show", cwd=elsewhere, env={"COLUMNS": "400"})
    assert str(cli_home / "tokens.json") in human.out
