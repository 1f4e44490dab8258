"""Path-valued backend options: ``OptionPath`` and ``OptionCommand`` (re-exported by
``corral.backends.base``).

Checking one expands ``~`` and joins a relative value to the directory its key was set
relative to: the config file's, or the working directory the settings were loaded in for the
environment and flags (``BackendSettings.bases``, handed over as the validation context by
``base.parse_model``). A key with no recorded directory (options built by hand) is relative to
the working directory now. See ``corral.paths``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ValidationInfo

from corral import paths

_UNKNOWN = object()  # a key with no recorded base: options built by hand, not loaded


def _base(info: ValidationInfo) -> Path | None:
    bases = (info.context or {}).get("bases", {})
    base = bases.get(info.field_name, _UNKNOWN)
    return paths.working_dir() if base is _UNKNOWN else base


def _option_path(value: str, info: ValidationInfo) -> str:
    return str(paths.setting(value, _base(info)))


def _option_command(value: str, info: ValidationInfo) -> str:
    if "/" not in value and not value.startswith("~"):
        return value  # a bare name, looked up on PATH when run
    return _option_path(value, info)


OptionPath = Annotated[str, AfterValidator(_option_path)]
"""A path option: ``~`` expanded, then made absolute against the directory of the config file
that set it (the working directory at load for the environment and flags)."""
OptionCommand = Annotated[str, AfterValidator(_option_command)]
"""A program option: a bare name is looked up on PATH; a path is an ``OptionPath``."""


def path_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that hold an ``OptionPath`` or ``OptionCommand`` (also inside a
    list or an optional), for showing their resolved values."""
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if any(map(_marks, info.metadata)) or _holds_path(info.annotation)
    )


def _holds_path(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return any(map(_marks, annotation.__metadata__)) or _holds_path(get_args(annotation)[0])
    return any(_holds_path(arg) for arg in get_args(annotation))


def _marks(metadata: Any) -> bool:
    return isinstance(metadata, AfterValidator) and metadata.func in (
        _option_path,
        _option_command,
    )
