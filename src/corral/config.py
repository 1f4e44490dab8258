"""One typed settings object, built at the edge (CLI, Session) and passed down.

Sources, lowest to highest precedence: defaults, the config file, ``CORRAL_*`` environment
variables, explicit overrides (CLI flags / keyword arguments). ``Settings.sources`` records where
every value came from (dotted keys: ``idle_exit``, ``backends.local.max_cpus``), for
``corral config show``.

The config file is TOML: top-level keys are the fields of ``Settings``; each ``[backends.NAME]``
section configures one backend instance (``type`` names its kind when NAME is not a kind, e.g. a
second Slurm cluster). Unknown keys are errors: a backend section accepts the common keys below
plus the options its backend class declares in ``OPTIONS`` (a ``frozenset[str]``).

Where the file is: ``$CORRAL_CONFIG`` if set; else ``$CORRAL_HOME/config.toml`` if
``CORRAL_HOME`` is set (hermetic tests); else ``config.toml`` in the XDG config dir.
Environment: ``CORRAL_<KEY>`` for top-level keys, ``CORRAL_BACKENDS__<NAME>__<KEY>`` for a
backend key. Environment and override values are parsed as TOML values when they parse
(``8``, ``true``, ``["a", "b"]``), as plain strings otherwise.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platformdirs import user_config_dir, user_data_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from corral.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    from corral.backends.base import BackendConfig

ENV_PREFIX = "CORRAL_"
COMMON_BACKEND_KEYS = frozenset({"type", "min_interval", "max_interval"})
_INTERNAL = frozenset({"sources", "config_file"})  # set by load_settings, never by a user


class BackendSettings(BaseModel):
    """A ``[backends.NAME]`` section: the common keys, plus backend options (extra keys, checked
    against the backend's ``OPTIONS`` by ``load_settings``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]*$")
    min_interval: float = Field(default=0.5, gt=0)
    max_interval: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BackendSettings:
        if self.min_interval > self.max_interval:
            raise ValueError(
                f"min_interval ({self.min_interval}) is above max_interval ({self.max_interval})"
            )
        return self

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
    config_file: Path | None = None
    sources: dict[str, str] = {}

    @property
    def lock_path(self) -> Path:
        return self.home / "monitor.lock"

    @property
    def log_path(self) -> Path:
        return self.home / "monitor.log"

    def backend_kind(self, name: str) -> str:
        section = self.backends.get(name)
        return section.type if section and section.type else name

    def backend_config(self, name: str) -> BackendConfig:
        from corral.backends.base import BackendConfig  # asyncio-heavy; `corral ls` never needs it

        section = self.backends.get(name) or BackendSettings()
        return BackendConfig(
            name=name,
            work_dir=self.work_dir,
            options=section.options(),
            min_interval=section.min_interval,
            max_interval=section.max_interval,
        )

    def source(self, key: str) -> str:
        """Where a (dotted) key's value came from: a file, a variable, an argument, or default."""
        return self.sources.get(key, "default")


USER_KEYS = tuple(k for k in Settings.model_fields if k not in _INTERNAL)


def default_home(env: Mapping[str, str]) -> Path:
    return Path(env["CORRAL_HOME"]) if env.get("CORRAL_HOME") else Path(user_data_dir("corral"))


def config_path(env: Mapping[str, str] | None = None, home: Path | str | None = None) -> Path:
    """The config file consulted (it need not exist); ``home`` is an explicit home override."""
    env = os.environ if env is None else env
    if env.get("CORRAL_CONFIG"):
        return Path(env["CORRAL_CONFIG"])
    if home is not None:
        return Path(home) / "config.toml"
    if env.get("CORRAL_HOME"):
        return Path(env["CORRAL_HOME"]) / "config.toml"
    return Path(user_config_dir("corral")) / "config.toml"


def parse_value(text: str) -> Any:
    """A TOML value if ``text`` is one (``8``, ``true``, ``["a"]``), else the string itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


class _Layers:
    """The merged raw data and, for every dotted key, the source that set it last."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def set(self, dotted: str, value: Any, source: str) -> None:
        head, _, rest = dotted.partition(".")
        if head != "backends":
            if head in _INTERNAL or head not in Settings.model_fields:
                raise ConfigError(f"unknown setting {head!r} in {source} (known: {', '.join(USER_KEYS)})")
            if rest:
                raise ConfigError(f"setting {head!r} has no sub-keys (got {dotted!r} in {source})")
            self.data[head] = value
            self.sources[head] = source
            return
        name, _, key = rest.partition(".")
        if not name:
            self._merge_backends(value, source)
        elif not key:
            self._merge_section(name, value, source)
        else:
            self._merge_section(name, {key: value}, source)

    def _merge_backends(self, value: Any, source: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"'backends' must be a table of backend sections (in {source})")
        for name, section in value.items():
            self._merge_section(name, section, source)

    def _merge_section(self, name: str, section: Any, source: str) -> None:
        if not isinstance(section, dict):
            raise ConfigError(f"backends.{name} must be a table (in {source}), got {section!r}")
        merged = self.data.setdefault("backends", {}).setdefault(name, {})
        for key, value in section.items():
            merged[key] = value
            self.sources[f"backends.{name}.{key}"] = source


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _from_env(layers: _Layers, env: Mapping[str, str]) -> None:
    for key in USER_KEYS:
        var = ENV_PREFIX + key.upper()
        if key not in ("home", "backends") and env.get(var) is not None:
            layers.set(key, parse_value(env[var]), f"env {var}")
    for var, text in env.items():
        if var.startswith(ENV_PREFIX + "BACKENDS__"):
            parts = var[len(ENV_PREFIX + "BACKENDS__"):].lower().split("__")
            if len(parts) != 2 or not all(parts):
                raise ConfigError(f"{var}: expected CORRAL_BACKENDS__<NAME>__<KEY>")
            layers.set(f"backends.{parts[0]}.{parts[1]}", parse_value(text), f"env {var}")


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    origin: str = "argument",
) -> Settings:
    """Merge defaults, config file, environment and overrides into ``Settings``.

    ``overrides`` keys may be dotted (``"backends.local.max_cpus"``); ``None`` values are
    skipped. ``origin`` names the overrides in ``sources`` (the CLI passes ``"flag"``).
    """
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    layers = _Layers()
    home_source = "env CORRAL_HOME" if env.get("CORRAL_HOME") else "default"
    layers.set("home", default_home(env), home_source)
    path = config_path(env, overrides.get("home"))
    if path.exists():
        for key, value in _read_file(path).items():
            layers.set(key, value, f"file {path}")
    _from_env(layers, env)
    for key, value in overrides.items():
        layers.set(key, value, origin)
    data = layers.data
    home = Path(data["home"])
    data.setdefault("work_dir", home / "jobs")
    data.setdefault("registry", home / "registry.db")
    for key in ("work_dir", "registry"):
        layers.sources.setdefault(key, "default (under home)")
    settings = _validate(data, layers.sources, path)
    _check_backends(settings)
    return settings


def _validate(data: dict[str, Any], sources: dict[str, str], path: Path) -> Settings:
    try:
        return Settings(**data, config_file=path, sources=sources)
    except ValidationError as exc:
        item = exc.errors()[0]
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        origin = sources.get(where) or sources.get(where.rsplit(".", 1)[0], "")
        got = item.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        raise ConfigError(f"config {where}: {message}{shown}" + (f" from {origin}" if origin else "")) from exc


def _check_backends(settings: Settings) -> None:
    """Every backend section names a known kind and only keys that kind accepts."""
    if not settings.backends:
        return
    from corral import backends  # entry points are scanned only when a section needs checking

    for name, section in settings.backends.items():
        kind = settings.backend_kind(name)
        if kind not in backends.available():
            known = ", ".join(backends.available())
            raise ConfigError(f"backends.{name}: unknown backend type {kind!r} (available: {known})")
        try:
            accepted: frozenset[str] = getattr(backends.load(kind), "OPTIONS", frozenset())
        except BackendUnavailable:
            continue  # a broken plugin is reported when used (and by `corral plugins`)
        for key in section.options():
            if key not in accepted:
                allowed = ", ".join(sorted(COMMON_BACKEND_KEYS | accepted))
                raise ConfigError(
                    f"backends.{name}: unknown key {key!r} for a {kind} backend "
                    f"(from {settings.source(f'backends.{name}.{key}')}; accepted: {allowed})"
                )
