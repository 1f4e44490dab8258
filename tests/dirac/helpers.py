"""Helpers for the DIRAC tests: recorded fixtures, the real servers of scripts/test-dirac.sh,
and attempts prepared like the monitor does."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from corral import sandbox
from corral.records import Attempt, JobId
from corral.spec import parse_spec
from corral.states import JobState

FIXTURES = Path(__file__).parent / "fixtures"
NO_PILOT = "Test.NoPilot.org"
"""A site the test pilot leaves alone: jobs that must stay queued ask for it."""

DIRAC = [
    pytest.mark.dirac,
    pytest.mark.skipif(
        not os.environ.get("DIRACX_URL") and not os.environ.get("CORRAL_REQUIRE_DIRAC"),
        reason="no DiracX here (scripts/test-dirac.sh starts one; CORRAL_REQUIRE_DIRAC=1 "
        "turns this skip into a failure)",
    ),
]
"""Marks of the tests that need the real DiracX: they skip only where it is absent and
CORRAL_REQUIRE_DIRAC is not set (scripts/test-dirac.sh sets it)."""


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def run_dir() -> Path:
    return Path(os.environ["CORRAL_DIRAC_RUN"])


def scripts() -> Path:
    return Path(os.environ["CORRAL_DIRAC_SCRIPTS"])


def attempt(
    root: Path, key: int, spec: dict[str, Any], *, state: JobState = JobState.SUBMITTING
) -> Attempt:
    parsed = parse_spec({"backend": "dirac", **spec})
    attempt_dir = root / f"job-{key}" / "attempt-1"
    sandbox.prepare(parsed, attempt_dir)
    return Attempt(JobId(key), str(uuid.uuid4()), 1, parsed, attempt_dir, state)


def with_id(att: Attempt, native_id: str, state: JobState = JobState.SUBMITTED) -> Attempt:
    return Attempt(att.id, att.uuid, att.attempt, att.spec, att.attempt_dir, state, native_id)
