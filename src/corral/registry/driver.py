"""The one SQLite library every registry connection in this process goes through.

``sqlean`` (the ``sqlean-py`` wheel: the standard ``sqlite3`` module built against a current
SQLite, a dependency on Linux x86-64) when it is installed, else the standard library's module,
which links the system's SQLite (3.40 on Debian 12). The newer library formats a 100,000-job
``corral ls`` in about a third fewer instructions (``printf`` and the JSON functions were
rewritten since 3.40; measured with callgrind on ``bench/ls_100k.py``'s registry).

Every module that opens or catches SQLite errors imports ``sqlite3`` from here, never the
standard one, and SQLAlchemy's engine is given this module: two SQLite libraries in one
process must never open the same file, because POSIX locks belong to the process, so one
library closing its descriptor drops the locks the other still counts on.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # (both have the standard module's interface; mypy checks against it)
    import sqlite3
else:
    try:
        import sqlean as sqlite3
    except ImportError:  # (no wheel for this platform: the system's SQLite)
        import sqlite3

__all__ = ["sqlite3"]
