"""One classification of errors; exit codes (and later HTTP statuses) map from it."""

from __future__ import annotations

import pytest

from corral.api import SessionStopped
from corral.cli.errors import WaitTimeout, exit_code
from corral.errors import (
    BackendUnavailable,
    ConfigError,
    CorralError,
    InvalidSpec,
    Kind,
    LeaseLost,
    MonitorNotStopped,
    MonitorUnavailable,
    NotFound,
    StateConflict,
    StorageFull,
    WriteConflict,
    classify,
)


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (InvalidSpec("x"), "bad_input", 2),
        (ConfigError("x"), "bad_input", 2),
        (NotFound("x"), "not_found", 2),
        (StateConflict("x"), "conflict", 2),
        (MonitorUnavailable("x"), "unavailable", 3),
        (MonitorNotStopped("x"), "unavailable", 3),
        (LeaseLost("x"), "unavailable", 3),
        (StorageFull("x"), "unavailable", 3),
        (WriteConflict("x"), "unavailable", 3),
        (BackendUnavailable("x"), "unavailable", 3),
        (SessionStopped("x"), "unavailable", 3),
        (WaitTimeout("x"), "timeout", 4),
        (CorralError("x"), "bad_input", 2),
        (ValueError("x"), "internal", 70),
    ],
)
def test_each_error_has_one_kind_and_its_exit_code(
    error: BaseException, kind: Kind, code: int
) -> None:
    assert classify(error) == kind
    assert exit_code(error) == code
