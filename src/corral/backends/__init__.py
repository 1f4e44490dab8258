"""Backends, found by name through the ``corral.backends`` entry-point group (built-ins too).

Discovery is lazy and cached; a plugin that fails to load is remembered with its error so
``corral plugins`` (and error messages) can say why. A plugin whose optional dependencies are not
installed fails with the pip command that installs them.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from corral.errors import BackendUnavailable, InvalidSpec

if TYPE_CHECKING:
    from corral.backends.base import AsyncBackend, BackendBase, BackendConfig, BackendOptions
    from corral.config import Settings
    from corral.spec import JobSpec

GROUP = "corral.backends"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


def known(kind: str) -> bool:
    return kind in _entry_points()


@cache
def load(kind: str) -> type[BackendBase]:
    """The backend class registered as ``kind``; ``BackendUnavailable`` if it cannot load."""
    from corral.backends.base import BackendBase

    points = _entry_points()
    if kind not in points:
        raise BackendUnavailable(
            f"unknown backend {kind!r} (available: {', '.join(sorted(points)) or 'none'})"
        )
    try:
        cls = points[kind].load()
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            f"backend {kind!r} needs {exc.name!r}, which is not installed: "
            f"pip install 'corral[{kind}]'"
        ) from exc
    except Exception as exc:  # a broken plugin must not take corral down with it
        raise BackendUnavailable(f"backend {kind!r} failed to load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BackendBase)):
        raise BackendUnavailable(
            f"backend {kind!r} ({points[kind].value}) does not subclass "
            "corral.backends.base.AsyncBackend or BlockingBackend"
        )
    return cls


def options_of(settings: Settings, name: str) -> tuple[type[BackendBase], BackendOptions]:
    """The class of backend instance ``name`` and its checked options (``ConfigError`` for a
    bad value, ``BackendUnavailable`` if the class cannot load)."""
    cls = load(settings.backend_kind(name))
    config = settings.backend_config(name)
    return cls, cls.check_options(name, config.options, config.bases)


def build(config: BackendConfig) -> AsyncBackend:
    """A backend instance as the monitor drives it: blocking ones behind their own limiter."""
    from corral.backends.base import AsyncBackend, BlockingBackend, ThreadedBackend

    cls = load(config.kind or config.name)
    instance = cls(config)
    if isinstance(instance, BlockingBackend):
        return ThreadedBackend(instance)
    if not isinstance(instance, AsyncBackend):
        raise BackendUnavailable(f"backend {config.name!r} is neither async nor blocking")
    return instance


def check_spec(settings: Settings, spec: JobSpec) -> None:
    """Bad input before anything is stored: an unknown backend (``InvalidSpec``), a bad setting
    of its section (``ConfigError``), a job it cannot run as asked (``InvalidSpec``); a backend
    that cannot load (its extra is missing) is ``BackendUnavailable``."""
    kind = settings.backend_kind(spec.backend)
    if not known(kind):
        names = ", ".join(sorted({*available(), *settings.backends}))
        raise InvalidSpec(f"backend: unknown backend {spec.backend!r} (available: {names})")
    check_settings(settings)  # a broken section is reported now, not when a job first needs it
    cls, options = options_of(settings, spec.backend)
    cls.check_job(spec, options)


def check_settings(settings: Settings) -> None:
    """Every ``[backends.NAME]`` section names a known kind and valid options. Backends that
    cannot load are left to the verbs that use them (``corral plugins`` says why)."""
    from corral.errors import ConfigError

    for name in settings.backends:
        kind = settings.backend_kind(name)
        if not known(kind):
            raise ConfigError(
                f"backends.{name}: unknown backend type {kind!r} "
                f"(available: {', '.join(available())})"
            )
        try:
            options_of(settings, name)
        except BackendUnavailable:
            continue
