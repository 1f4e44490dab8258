"""Marks of the Grid Engine tests; the attempt helpers are the Slurm tests' (nothing in them is
Slurm's but the backend name, which the backend under test ignores)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SGE = [
    pytest.mark.sge,
    pytest.mark.skipif(
        shutil.which("qsub") is None and not os.environ.get("CORRAL_REQUIRE_SGE"),
        reason="no Grid Engine here (scripts/test-sge.sh starts one; CORRAL_REQUIRE_SGE=1 "
        "turns this skip into a failure)",
    ),
]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()
