"""Shared fixtures: every test gets its own CORRAL_HOME (hermetic settings and registry)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral import Session, Settings, load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    path.mkdir(mode=0o700)  # a home others can read is warned about (see corral.modes)
    monkeypatch.setenv("CORRAL_HOME", str(path))
    monkeypatch.delenv("CORRAL_FAULT", raising=False)
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    # No daemon hand-over in unit and integration tests unless a test asks for it.
    return load_settings(overrides={"autostart": False}, env={"CORRAL_HOME": str(home)})


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    with Session(settings) as sess:
        yield sess


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text)


def env_with_home(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, CORRAL_HOME=str(home))
    env.update(extra)
    return env
