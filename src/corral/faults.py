"""Crash points for the crash tests: ``CORRAL_FAULT=<name>`` makes the process SIGKILL itself
when it reaches ``point(name)``. Costs one environment lookup when unset."""

from __future__ import annotations

import os
import signal

ENV = "CORRAL_FAULT"


def point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
