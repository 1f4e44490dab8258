"""Fixtures shared by the tests on the real Slurm."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slurm.test_integration import Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A ``Harness`` whose submitted jobs are cancelled when the test ends."""
    found = Harness(tmp_path)
    yield found
    if found.ids:
        subprocess.run(["scancel", *found.ids], capture_output=True, check=False, timeout=30)
