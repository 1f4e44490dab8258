"""Issue 10: ``peek`` and ``follow`` stream in constant memory, honour ``lines`` exactly and
decode UTF-8 across chunk boundaries (``AsyncSession.tail`` / ``follow``, ``jobfiles``)."""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path

import pytest

from corral import Session
from corral.errors import InvalidInput
from corral.jobfiles import CHUNK, tail_offset
from corral.records import JobId


def finished_job(session: Session, data: bytes) -> tuple[JobId, Path]:
    """A completed job whose stdout is then replaced by ``data``."""
    job = session.submit({"command": ["true"]})
    (record,) = session.wait(job, timeout=60)
    path = session.output_path(record, "stdout")
    path.write_bytes(data)
    return job, path


def tail(data: bytes, lines: int) -> bytes:
    handle = io.BytesIO(data)
    return data[tail_offset(handle, lines, len(data)) :]


@pytest.mark.parametrize("ending", [b"", b"\n"])
@pytest.mark.parametrize("width", [1, 100, CHUNK - 1, CHUNK, 3 * CHUNK + 7])
def test_tail_offset_is_exact(width: int, ending: bytes) -> None:
    rows = [bytes([65 + i % 26]) * width for i in range(7)]
    data = b"\n".join(rows) + ending
    for n in range(9):
        want = b"\n".join(rows[-n:]) + ending if n else b""
        assert tail(data, n) == want, (width, n)


def test_tail_offset_edges() -> None:
    assert tail(b"", 5) == b""
    assert tail(b"\n", 1) == b"\n"
    assert tail(b"\n\n\n", 2) == b"\n\n"
    assert tail(b"no newline", 3) == b"no newline"


def test_peek_lines_exactly_past_64_kib(session: Session) -> None:
    """``peek -n 100000`` stopped at 64 KiB and cut the first line."""
    rows = [f"{i:07d}" + "x" * 93 for i in range(100_001)]
    job, _ = finished_job(session, ("\n".join(rows) + "\n").encode())
    text = session.peek(job, lines=100_000)
    assert text.splitlines() == rows[1:]
    assert session.peek(job, lines=100_002).splitlines() == rows
    assert session.peek(job, lines=0) == ""
    assert session.peek(job, lines=1) == rows[-1] + "\n"


def test_long_lines_are_whole(session: Session) -> None:
    rows = ["a" * (5 * CHUNK), "b" * (CHUNK + 1), "c" * 3]
    job, _ = finished_job(session, "\n".join(rows).encode())
    assert session.peek(job, lines=2) == rows[1] + "\n" + rows[2]
    chunks = list(session.tail(job, lines=3))
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= CHUNK  # streamed, not held
    assert "".join(chunks) == "\n".join(rows)


def test_utf8_split_between_chunks_is_one_character(session: Session) -> None:
    text = "é" * (CHUNK // 2) + "€" * CHUNK + "\n"  # chunk boundaries fall inside characters
    job, _ = finished_job(session, text.encode())
    assert "".join(session.tail(job, lines=1)) == text
    assert "".join(session.follow(job)) == text


def test_utf8_split_across_two_writes(session: Session) -> None:
    """A character written in two halves showed as two replacement characters."""
    job = session.submit({"command": ["sh", "-c", r"printf '\303'; sleep 2; printf '\251\n'"]})
    path = session.output_path(session.get(job), "stdout")
    deadline = time.monotonic() + 30
    while (not path.exists() or path.stat().st_size < 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    chunks = list(session.follow(job, poll=0.05))  # the first read sees only the first byte
    assert "".join(chunks) == "é\n"


def test_follow_stops_when_the_job_is_final(session: Session) -> None:
    job = session.submit({"command": ["sh", "-c", "echo one; sleep 1; echo two; exit 3"]})
    started = time.monotonic()
    assert "".join(session.follow(job, poll=0.05)) == "one\ntwo\n"
    assert session.get(job).state.final
    assert time.monotonic() - started < 30
    assert "".join(session.follow(job, lines=1)) == "two\n"  # (already final: the tail, then end)


def test_follow_of_a_200_mb_writer_keeps_memory_flat(session: Session) -> None:
    """``peek -f`` of a job writing 200 MB grew to 417 MB."""
    size = 200_000_000
    line = "y" * 99
    job = session.submit({"command": ["sh", "-c", f"yes {line} | head -c {size}"]})
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in session.follow(job, poll=0.05))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB while following 200 MB"


def test_bad_lines_and_masters(session: Session) -> None:
    job, _ = finished_job(session, b"x\n")
    for lines in (-1, True, 1.5, "3"):
        with pytest.raises(InvalidInput, match="lines"):
            session.peek(job, lines=lines)  # type: ignore[arg-type]
    sweep = session.submit(
        {"command": ["true"], "splitter": {"kind": "sweep", "parameters": {"x": ["1"]}}}
    )
    with pytest.raises(InvalidInput, match="has subjobs"):
        list(session.follow(sweep))
