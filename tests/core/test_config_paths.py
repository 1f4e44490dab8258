"""Relative paths in the settings mean the same thing whichever directory reads them.

From a config file: relative to the file's directory. From the environment or an override:
relative to the working directory of the process that loaded them. ``~`` expanded in all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from corral import backends
from corral.config import Settings, load_settings
from corral.errors import ConfigError

CONFIG = """
work_dir = "jobs"
registry = "sqlite:///db/registry.db"
[backends.grid]
type = "dirac"
credentials_path = "tokens/credentials.json"
[backends.classic]
type = "dirac-classic"
python = "venv/bin/python"
environment_script = "diracos/diracosrc"
module_path = ["lib", "/opt/abs"]
proxy = "~/grid/proxy"
"""


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A config file in ``conf/`` and two other directories to read it from."""
    found = {name: tmp_path / name for name in ("conf", "a", "b", "user")}
    for path in found.values():
        path.mkdir()
    (found["conf"] / "config.toml").write_text(CONFIG)
    monkeypatch.setenv("HOME", str(found["user"]))
    return found


def _env(places: dict[str, Path], **extra: str) -> dict[str, str]:
    return {
        "CORRAL_HOME": str(places["conf"] / "home"),
        "CORRAL_CONFIG": str(places["conf"] / "config.toml"),
        **extra,
    }


def _paths(settings: Settings) -> dict[str, Any]:
    """Every path the settings name, as a backend built from them sees it."""
    grid = backends.options_of(settings, "grid")[1]
    classic = backends.options_of(settings, "classic")[1]
    return {
        "work_dir": settings.work_dir,
        "registry": settings.registry,
        "credentials_path": grid.credentials_path,  # type: ignore[attr-defined]
        **{
            key: getattr(classic, key)
            for key in ("python", "environment_script", "module_path", "proxy")
        },
    }


def test_two_working_dirs_read_the_same_paths_from_one_config_file(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    for where in ("a", "b"):
        monkeypatch.chdir(places[where])
        seen.append(_paths(load_settings(env=_env(places))))
    conf = places["conf"]
    assert (
        seen[0]
        == seen[1]
        == {
            "work_dir": conf / "jobs",
            "registry": conf / "db" / "registry.db",
            "credentials_path": str(conf / "tokens" / "credentials.json"),
            "python": str(conf / "venv" / "bin" / "python"),
            "environment_script": str(conf / "diracos" / "diracosrc"),
            "module_path": [str(conf / "lib"), "/opt/abs"],
            "proxy": str(places["user"] / "grid" / "proxy"),
        }
    )


def test_a_bare_program_name_stays_a_name_looked_up_on_path(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(places["a"])
    env = _env(places, CORRAL_BACKENDS__CLASSIC__PYTHON="python3")
    assert _paths(load_settings(env=env))["python"] == "python3"


def test_environment_and_overrides_are_relative_to_the_loading_process(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(places["a"])
    env = _env(
        places,
        CORRAL_WORK_DIR="env-jobs",
        CORRAL_BACKENDS__GRID__CREDENTIALS_PATH="env-creds.json",
    )
    settings = load_settings({"registry": "flag.db", "backends.classic.module_path": ["m"]}, env)
    monkeypatch.chdir(places["b"])  # where the backends are built later changes nothing
    paths = _paths(settings)
    assert paths["work_dir"] == places["a"] / "env-jobs"
    assert paths["credentials_path"] == str(places["a"] / "env-creds.json")
    assert paths["registry"] == places["a"] / "flag.db"
    assert paths["module_path"] == [str(places["a"] / "m")]
    assert paths["python"] == str(places["conf"] / "venv" / "bin" / "python")  # still the file's
    assert settings.cwd == places["a"]


def test_a_relative_config_file_and_home_are_taken_from_the_working_dir(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(places["conf"].parent)
    settings = load_settings(env={"CORRAL_HOME": "a/home", "CORRAL_CONFIG": "conf/config.toml"})
    assert settings.config_file == places["conf"] / "config.toml"
    assert settings.home == places["a"] / "home"
    assert settings.work_dir == places["conf"] / "jobs"


def test_tilde_is_expanded_everywhere(places: dict[str, Path]) -> None:
    (places["conf"] / "config.toml").write_text('work_dir = "~/jobs"\n')
    env = _env(places, CORRAL_REGISTRY="~/r.db")
    settings = load_settings({"home": "~/h"}, env)
    user = places["user"]
    assert (settings.work_dir, settings.registry) == (user / "jobs", user / "r.db")
    assert settings.home == user / "h"
    settings = load_settings(env={"CORRAL_HOME": "~/h2", "CORRAL_CONFIG": "~/none.toml"})
    assert settings.home == user / "h2" and settings.config_file == user / "none.toml"


def test_checks_look_at_the_resolved_path(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file named ``jobs`` in the working dir is not the config's ``jobs``, and vice versa."""
    monkeypatch.chdir(places["a"])
    (places["a"] / "jobs").write_text("not a directory")
    assert load_settings(env=_env(places)).work_dir == places["conf"] / "jobs"
    (places["conf"] / "jobs").write_text("not a directory")
    with pytest.raises(ConfigError, match="config work_dir: expected a directory, but it is a"):
        load_settings(env=_env(places))


def test_settings_built_by_hand_are_made_absolute(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(places["a"])
    settings = Settings(home=Path("h"), work_dir=Path("w"), registry=Path("r.db"))
    assert (settings.home, settings.work_dir, settings.registry) == (
        places["a"] / "h",
        places["a"] / "w",
        places["a"] / "r.db",
    )


def test_a_removed_working_dir_is_a_one_line_error_only_for_relative_paths(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = places["b"] / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    os.rmdir(gone)
    settings = load_settings(env=_env(places))  # the file's paths need no working dir
    assert settings.work_dir == places["conf"] / "jobs" and settings.cwd is None
    with pytest.raises(ConfigError, match="work_dir: a relative path, but the current") as bad:
        load_settings(env=_env(places, CORRAL_WORK_DIR="jobs"))
    assert "\n" not in str(bad.value)
    env = _env(places, CORRAL_BACKENDS__GRID__CREDENTIALS_PATH="c.json")
    with pytest.raises(ConfigError, match=r"backends\.grid\.credentials_path: a relative path"):
        backends.options_of(load_settings(env=env), "grid")


def test_a_relative_input_in_a_removed_working_dir_is_invalid_not_a_crash(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.admit import absolute_paths
    from corral.errors import InvalidSpec
    from corral.spec import parse_spec

    spec = parse_spec({"command": ["true"], "input_files": ["in.txt"], "working_dir": "/w"})
    gone = places["b"] / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    os.rmdir(gone)
    with pytest.raises(InvalidSpec, match=r"input_files: 'in\.txt' is relative, but the current"):
        absolute_paths(spec)
    assert absolute_paths(spec, "/base").input_files == ("/base/in.txt",)
    absolute = parse_spec({"command": ["true"], "input_files": ["/x/in.txt"], "working_dir": "~"})
    assert absolute_paths(absolute).working_dir == str(places["user"])
