"""One typed settings object, built at the edge (CLI, Session) and passed down.

Sources, lowest to highest precedence: defaults, the config file, ``CORRAL_*`` environment
variables, explicit overrides (CLI flags / keyword arguments). ``Settings.sources`` records where
each top-level value came from, for ``corral config show``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir, user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corral.backends.base import BackendConfig
from corral.errors import ConfigError

ENV_PREFIX = "CORRAL_"


class BackendSettings(BaseModel):
    """A ``[backends.NAME]`` section. Keys other than the common ones are backend options,
    checked against the backend's ``OPTIONS`` when it is loaded."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str | None = None
    min_interval: float = Field(default=0.5, gt=0)
    max_interval: float = Field(default=30.0, gt=0)

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path
    work_dir: Path
    registry: Path
    autostart: bool = True
    idle_exit: float = Field(default=60.0, ge=0)
    flush_window: float = Field(default=0.02, ge=0)
    finalisers: int = Field(default=4, ge=1)
    backends: dict[str, BackendSettings] = {}
    sources: dict[str, str] = {}

    @property
    def lock_path(self) -> Path:
        return self.home / "monitor.lock"

    @property
    def log_path(self) -> Path:
        return self.home / "monitor.log"

    def backend_kind(self, name: str) -> str:
        section = self.backends.get(name)
        return (section.type if section and section.type else name)

    def backend_config(self, name: str) -> BackendConfig:
        section = self.backends.get(name) or BackendSettings()
        return BackendConfig(
            name=name,
            work_dir=self.work_dir,
            options=section.options(),
            min_interval=section.min_interval,
            max_interval=section.max_interval,
        )


def default_home(env: Mapping[str, str]) -> Path:
    return Path(env["CORRAL_HOME"]) if env.get("CORRAL_HOME") else Path(user_data_dir("corral"))


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("CORRAL_HOME"):
        return Path(env["CORRAL_HOME"]) / "config.toml"
    return Path(user_config_dir("corral")) / "config.toml"


_ENV_KEYS = ("work_dir", "autostart", "idle_exit", "flush_window", "finalisers")


def load_settings(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Merge defaults, config file, environment and overrides into ``Settings``."""
    env = os.environ if env is None else env
    home = default_home(env)
    data: dict[str, Any] = {"home": home}
    sources = {"home": "env CORRAL_HOME" if env.get("CORRAL_HOME") else "default"}
    path = config_path(env)
    if path.exists():
        try:
            from_file = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        data.update(from_file)
        sources.update({key: f"file {path}" for key in from_file})
    for key in _ENV_KEYS:
        value = env.get(ENV_PREFIX + key.upper())
        if value is not None:
            data[key] = value
            sources[key] = f"env {ENV_PREFIX}{key.upper()}"
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
            sources[key] = "argument"
    home = Path(data["home"])
    data.setdefault("work_dir", home / "jobs")
    data.setdefault("registry", home / "registry.db")
    try:
        return Settings(**data, sources=sources)
    except ValidationError as exc:
        item = exc.errors()[0]
        where = ".".join(str(p) for p in item["loc"])
        raise ConfigError(f"config {where}: {item['msg']} (got {item.get('input')!r})") from exc
