"""One typed settings object, built at the edge (CLI, Session) and passed down.

Sources, lowest to highest precedence: defaults, the config file, ``CORRAL_*`` environment
variables, explicit overrides (CLI flags / keyword arguments). ``Settings.sources`` records where
every value came from (dotted keys: ``idle_exit``, ``backends.local.max_cpus``), for
``corral config show``.

The config file is TOML: top-level keys are the fields of ``Settings``; each ``[backends.NAME]``
section configures one backend instance (``type`` names its kind when NAME is not a kind, e.g. a
second Slurm cluster). Unknown keys are errors. A backend section accepts the common keys below
plus the options its backend class declares in its ``Options`` model; those are checked (names
and values) by ``corral.backends.check_settings`` in the verbs that use a backend (submit,
monitor, plugins, config show), so a read-only verb never imports a backend or pydantic.

Where the file is: ``$CORRAL_CONFIG`` if set; else ``$CORRAL_HOME/config.toml`` if
``CORRAL_HOME`` is set (hermetic tests); else ``config.toml`` in the XDG config dir.
Environment: ``CORRAL_<KEY>`` for top-level keys, ``CORRAL_BACKENDS__<NAME>__<KEY>`` for a
backend key. Environment and override values are parsed as TOML values when they parse
(``8``, ``true``, ``["a", "b"]``), as plain strings otherwise.

Relative paths (``corral.paths``): a value from the file is relative to the file's directory,
one from the environment or an override to the working directory of the process loading the
settings; ``~`` is expanded in all. Top-level paths are made absolute here; for a backend
section the directory each key is relative to is kept (``BackendSettings.bases``) and applied
by its ``Options`` model's path fields (``corral.backends.base.OptionPath``) when checked.

The settings are plain frozen dataclasses checked by hand, not pydantic models: every CLI
command loads them, and pydantic's import and model build cost 0.1 s of the 0.5 s a cold
``corral ls`` may take.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral import paths
from corral.errors import ConfigError

if TYPE_CHECKING:
    from corral.backends.base import BackendConfig

ENV_PREFIX = "CORRAL_"
COMMON_BACKEND_KEYS = frozenset({"type", "min_interval", "max_interval"})
_INTERNAL = frozenset({"sources", "config_file", "cwd"})  # set by load_settings, never by a user
_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """A ``[backends.NAME]`` section: the common keys, plus backend options (``extra``),
    checked against the backend's ``Options`` model by ``corral.backends.check_settings``."""

    type: str | None = None
    min_interval: float = 0.5
    max_interval: float = 30.0
    extra: Mapping[str, Any] = field(default_factory=dict)
    bases: Mapping[str, Path | None] = field(default_factory=dict)
    """For each key of ``extra``: the directory a relative path there is relative to (the
    config file's, or the working directory at load for the environment and overrides; None
    if that directory was gone)."""

    def options(self) -> dict[str, Any]:
        return dict(self.extra)


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    work_dir: Path
    registry: Path
    autostart: bool = True
    idle_exit: float = 60.0
    flush_window: float = 0.02
    """Seconds the monitor gathers a burst: state changes into one registry transaction, and
    submits and kills from this process into one backend cycle."""
    finalisers: int = 4
    max_subjobs: int = 50_000
    """The most subjobs one submit may make (checked before they are made)."""
    backends: Mapping[str, BackendSettings] = field(default_factory=dict)
    config_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    """The working directory the settings were loaded in (what relative paths from the
    environment and overrides were resolved against); the daemon is started there."""

    def __post_init__(self) -> None:
        # Settings built by hand (the API) get their relative paths resolved now, as loaded ones
        for key in ("home", "work_dir", "registry"):
            value = getattr(self, key)
            if not value.is_absolute():
                base = self.cwd or paths.working_dir()
                object.__setattr__(self, key, paths.resolve(value, base, key))

    @property
    def lock_path(self) -> Path:
        """The monitor lock of this registry (one monitor per registry): ``monitor.lock`` in
        the home for the home's own registry, ``monitor-<digest>.lock`` for one set apart."""
        return self.home / f"monitor{self._registry_tag}.lock"

    @property
    def log_path(self) -> Path:
        return self.home / f"monitor{self._registry_tag}.log"

    @property
    def _registry_tag(self) -> str:
        if self.registry == self.home / "registry.db":
            return ""
        import hashlib  # (a registry set apart from the home: rare)

        return "-" + hashlib.sha256(os.fsencode(self.registry)).hexdigest()[:12]

    def backend_kind(self, name: str) -> str:
        section = self.backends.get(name)
        return section.type if section and section.type else name

    def backend_config(self, name: str, registry_uuid: str = "") -> BackendConfig:
        from corral.backends.base import BackendConfig  # asyncio-heavy; `corral ls` never needs it

        section = self.backends.get(name) or BackendSettings()
        return BackendConfig(
            name=name,
            kind=self.backend_kind(name),
            work_dir=self.work_dir,
            options=section.options(),
            bases=section.bases,
            min_interval=section.min_interval,
            max_interval=section.max_interval,
            registry_uuid=registry_uuid,
        )

    def source(self, key: str) -> str:
        """Where a (dotted) key's value came from: a file, a variable, a flag, or default."""
        return self.sources.get(key, "default")


USER_KEYS = tuple(f.name for f in fields(Settings) if f.name not in _INTERNAL)


# ---------------------------------------------------------------- value checks
def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    words = {
        "true": True,
        "yes": True,
        "on": True,
        "1": True,
        "false": False,
        "no": False,
        "off": False,
        "0": False,
    }
    if isinstance(value, str | int) and str(value).lower() in words:
        return words[str(value).lower()]
    raise ValueError("expected true or false")


def _number(low: float, high: float, *, above: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        # (NaN compares false with every bound: test that it is inside, not that it is outside)
        if not (low < value if above else low <= value) or not value <= high:
            raise ValueError(f"expected a number {'>' if above else '>='} {low:g} and <= {high:g}")
        return float(value)

    return check


def _count(high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise ValueError(f"expected a whole number >= 1 and <= {high:,}")
        return value

    return check


_DAY = 86400.0


_PATHS: dict[str, Callable[[Any, Path | None], Path]] = {
    "home": paths.directory,
    "work_dir": paths.directory,
    "registry": paths.registry,
}
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "autostart": _bool,
    "idle_exit": _number(0, 365 * _DAY),
    "flush_window": _number(0, 60),
    "finalisers": _count(1024),
    "max_subjobs": _count(10_000_000),
}


def default_home(env: Mapping[str, str]) -> Path:
    """``$CORRAL_HOME`` as given (checked and resolved as any setting), else the XDG data dir."""
    if env.get("CORRAL_HOME"):
        return Path(env["CORRAL_HOME"])
    from platformdirs import user_data_dir

    return Path(user_data_dir("corral"))


def config_path(env: Mapping[str, str] | None = None, home: Path | str | None = None) -> Path:
    """The config file consulted (it need not exist), absolute; ``home`` is an explicit home
    override. Relative names are relative to the working directory, ``~`` is expanded."""
    env = os.environ if env is None else env
    if env.get("CORRAL_CONFIG"):
        return paths.absolute(env["CORRAL_CONFIG"])
    if home is not None:
        return paths.absolute(home) / "config.toml"
    if env.get("CORRAL_HOME"):
        return paths.absolute(env["CORRAL_HOME"]) / "config.toml"
    from platformdirs import user_config_dir

    return paths.absolute(user_config_dir("corral")) / "config.toml"


def parse_value(text: str) -> Any:
    """A TOML value if ``text`` is one (``8``, ``true``, ``["a"]``), else the string itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# ---------------------------------------------------------------- merging the sources
class _Layers:
    """The merged raw data and, for every dotted key, the source that set it last and the
    directory a relative path there is relative to (``base``: see ``corral.paths``)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.backends: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str] = {}
        self.bases: dict[str, Path | None] = {}
        self.base: Path | None = None
        """The base of the values being set now."""

    def set(self, dotted: str, value: Any, source: str) -> None:
        head, _, rest = dotted.partition(".")
        if head == "backends":
            name, _, key = rest.partition(".")
            if not name:
                self._merge_backends(value, source)
            else:
                self._merge_section(name, {key: value} if key else value, source)
            return
        if head not in _CHECKS and head not in _PATHS:
            raise ConfigError(
                f"unknown setting {head!r} (from {source}; known: {', '.join(USER_KEYS)})"
            )
        if rest:
            raise ConfigError(f"setting {head!r} has no sub-keys (got {dotted!r} from {source})")
        self.data[head] = value
        self.sources[head] = source
        self.bases[head] = self.base

    def _merge_backends(self, value: Any, source: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"'backends' must be a table of backend sections (from {source})")
        for name, section in value.items():
            self._merge_section(name, section, source)

    def _merge_section(self, name: str, section: Any, source: str) -> None:
        if not isinstance(section, dict):
            raise ConfigError(f"backends.{name} must be a table (from {source}), got {section!r}")
        merged = self.backends.setdefault(name, {})
        for key, value in section.items():
            merged[key] = value
            self.sources[f"backends.{name}.{key}"] = source
            self.bases[f"backends.{name}.{key}"] = self.base


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
    prefix = ENV_PREFIX + "BACKENDS__"
    for var, text in env.items():
        if var.startswith(prefix):
            parts = var[len(prefix) :].lower().split("__")
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
    skipped. ``origin`` names the overrides in ``sources`` (the CLI passes ``"flag --set"``).
    """
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    layers = _Layers()
    cwd = layers.base = paths.working_dir()
    layers.set(
        "home", default_home(env), "env CORRAL_HOME" if env.get("CORRAL_HOME") else "default"
    )
    path = config_path(env, overrides.get("home"))
    if path.exists():
        layers.base = path.parent  # (absolute: config_path made it so)
        for key, value in _read_file(path).items():
            layers.set(key, value, f"file {path}")
        layers.base = cwd
    _from_env(layers, env)
    for key, value in overrides.items():
        layers.set(key, value, origin)
    values = {key: _checked(key, raw, layers) for key, raw in layers.data.items()}
    home = values["home"]
    for key, default in (("work_dir", home / "jobs"), ("registry", home / "registry.db")):
        if key not in values:
            values[key] = default
            layers.sources[key] = "default (under home)"
    sections = {name: _section(name, raw, layers) for name, raw in layers.backends.items()}
    return Settings(**values, backends=sections, config_file=path, sources=layers.sources, cwd=cwd)


def _checked(key: str, value: Any, layers: _Layers) -> Any:
    try:
        if key in _PATHS:
            return _PATHS[key](value, layers.bases[key])
        return _CHECKS[key](value)
    except ValueError as exc:
        where = layers.sources[key]
        raise ConfigError(f"config {key}: {exc}, got {value!r} (from {where})") from exc


def _section(name: str, raw: Mapping[str, Any], layers: _Layers) -> BackendSettings:
    sources = layers.sources

    def check(key: str, test: Callable[[Any], Any], default: Any) -> Any:
        if key not in raw:
            return default
        try:
            return test(raw[key])
        except ValueError as exc:
            where = f"backends.{name}.{key}"
            raise ConfigError(
                f"config {where}: {exc}, got {raw[key]!r} (from {sources[where]})"
            ) from exc

    def kind(value: Any) -> str:
        if not isinstance(value, str) or not _KIND.match(value):
            raise ValueError("expected a backend type like 'slurm'")
        return value

    section = BackendSettings(
        type=check("type", kind, None),
        min_interval=check("min_interval", _number(0, _DAY, above=True), 0.5),
        max_interval=check("max_interval", _number(0, _DAY, above=True), 30.0),
        extra={k: v for k, v in raw.items() if k not in COMMON_BACKEND_KEYS},
        bases={
            k: layers.bases[f"backends.{name}.{k}"] for k in raw if k not in COMMON_BACKEND_KEYS
        },
    )
    if section.min_interval > section.max_interval:
        raise ConfigError(
            f"config backends.{name}: min_interval ({section.min_interval:g}) is "
            f"above max_interval ({section.max_interval:g})"
        )
    return section
