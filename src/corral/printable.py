"""Text that came from a job, a user or a backend, made safe to print on a terminal.

A job name, a tag, a backend's reason or a job's output may hold ESC sequences (which can clear
the screen or forge rows in a table), other C0/C1 control characters, DEL, or Unicode
bidirectional overrides (which reorder what is shown). ``printable`` escapes all of them as
``\\xNN`` / ``\\u....`` so the text shows as written and nothing is interpreted. Newlines and tabs
are escaped too by default (a table row is one line); ``keep_lines`` keeps them for multi-line
output such as ``peek``.
"""

from __future__ import annotations

_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)

_ESCAPES: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    **{c: f"\\u{c:04x}" for c in (*_BIDI, 0x2028, 0x2029, 0xFEFF)},
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
_ESCAPES_KEEP_LINES = {c: e for c, e in _ESCAPES.items() if c not in (ord("\n"), ord("\t"))}


def printable(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with every control or reordering character escaped (see the module docstring)."""
    if text.isprintable():  # the common case, checked in C
        return text
    return text.translate(_ESCAPES_KEEP_LINES if keep_lines else _ESCAPES)
