from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corral.printable import printable


def test_plain_text_is_unchanged() -> None:
    assert printable("sweep-1 ünïcödé 数据") == "sweep-1 ünïcödé 数据"


def test_escape_sequences_and_controls_are_escaped() -> None:
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("row\nforged") == "row\\nforged"
    assert printable("x\x00y\x7f\x9b") == "x\\x00y\\x7f\\x9b"
    assert printable("evil\u202etxt") == "evil\\u202etxt"


def test_keep_lines_keeps_newlines_and_tabs_only() -> None:
    assert printable("a\n\tb\r\x1b", keep_lines=True) == "a\n\tb\\r\\x1b"


@given(st.text())
def test_result_never_holds_a_control_character(text: str) -> None:
    out = printable(text)
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) < 0xA0 for c in out)
    assert "\u202e" not in out
