"""Helpers for the HTCondor tests: the marks of tests that need the real pool, and HTCondor's
own word on how often each label ran (queue + history)."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CONDOR = [
    pytest.mark.condor,
    pytest.mark.skipif(
        shutil.which("condor_q") is None and not os.environ.get("CORRAL_REQUIRE_CONDOR"),
        reason="no HTCondor pool here (scripts/test-condor.sh starts one; "
        "CORRAL_REQUIRE_CONDOR=1 turns this skip into a failure)",
    ),
]


def fixture(name: str) -> Any:
    """A recorded fixture (JSON: job ads as plain dicts)."""
    return json.loads((FIXTURES / name).read_text())


def runs_by_label(labels: Iterable[str]) -> Counter[str]:
    """How many procs of each label HTCondor started (queue and history, NumJobStarts)."""
    import htcondor2  # type: ignore[import-untyped]

    from corral.backends.condor import render

    wanted = set(labels)
    if not wanted:
        return Counter()
    schedd = htcondor2.Schedd()
    where = render.labels_constraint("", wanted)
    fields = ["ClusterId", "ProcId", "NumJobStarts", render.LABEL]
    ads = {}
    for ad in [*schedd.query(where, fields), *schedd.history(where, fields, match=-1)]:
        ads.setdefault((ad.get("ClusterId"), ad.get("ProcId")), ad)
    runs: Counter[str] = Counter()
    for ad in ads.values():
        starts = ad.get("NumJobStarts")
        runs[str(ad.get(render.LABEL))] += starts if isinstance(starts, int) else 0
    return runs
