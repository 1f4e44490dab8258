"""Where a registry lives, as a URL. ``sqlite:///PATH`` (three slashes then a relative path,
four for an absolute one, as SQLAlchemy spells it) is the only scheme built in; a plain path is
a SQLite file. A server database later is one more scheme here and one more module behind
``corral.registry.interface.RegistryStore``, not a rewrite."""

from __future__ import annotations

from pathlib import Path

SCHEMES = ("sqlite",)


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///`` URL names; ``ValueError`` (a config error) for any other."""
    scheme, sep, rest = url.partition("://")
    if scheme not in SCHEMES:
        raise ValueError(
            f"unsupported registry URL scheme {scheme!r} (this corral knows: "
            f"{', '.join(s + ':///PATH' for s in SCHEMES)}, or a plain path)"
        )
    if not sep or not rest.startswith("/") or rest == "/":
        raise ValueError("expected sqlite:///relative/path or sqlite:////absolute/path")
    return Path(rest[1:]).expanduser()


def url_of(path: Path) -> str:
    """The URL of a SQLite registry file (absolute: four slashes)."""
    return f"sqlite:///{path.resolve()}"
