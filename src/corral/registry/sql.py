"""Dialect-neutral SQL constructs of the registry's queries; each dialect module compiles them
(``corral.registry.sqlite_dialect`` for SQLite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType


class Glob(FunctionElement[Any]):
    """``column`` matches the shell pattern ``pattern`` (``*``, ``?``, ``[...]``; case
    sensitive): ``GLOB`` on SQLite. (Typed NullType, not Boolean: a Boolean would be compared
    with ``= 1`` on SQLite, which keeps the name index from serving a prefix pattern.)"""

    type = NullType()
    inherit_cache = True
    name = "glob"


def glob(column: ColumnElement[Any], pattern: str) -> Glob:
    return Glob(column, pattern)
