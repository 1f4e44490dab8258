"""Helpers for the dirac-classic tests: the separate DIRAC venv (scripts/dirac-classic-venv.sh)
and backend sections whose workers run it, with the fake ``Dirac`` or the real one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent
VENV = Path(os.environ.get("CORRAL_DIRAC_CLASSIC_VENV", "/tmp/corral-dirac-classic"))
PYTHON = VENV / "bin" / "python"

DIRAC_CLASSIC = [
    pytest.mark.dirac_classic,
    pytest.mark.skipif(
        not PYTHON.exists() and not os.environ.get("CORRAL_REQUIRE_DIRAC_CLASSIC"),
        reason="no DIRAC venv here (scripts/dirac-classic-venv.sh builds it; "
        "CORRAL_REQUIRE_DIRAC_CLASSIC=1 turns this skip into a failure)",
    ),
]


def fake_section(name: str = "diracc", extra: str = "") -> str:
    """A ``dirac-classic`` section whose workers load the fake ``Dirac`` (no DIRAC server)."""
    return (
        f"[backends.{name}]\n"
        'type = "dirac-classic"\n'
        f'python = "{PYTHON}"\n'
        'dirac_api = "fake_dirac:Dirac"\n'
        'initialize = "none"\n'
        f'module_path = ["{HERE}"]\n'
        "min_interval = 0.1\nmax_interval = 1.0\n" + extra
    )
