"""``corral demo``: a real 3 x 4 parameter sweep on the local backend, followed to the end.

Each subjob estimates pi by Monte Carlo for one (samples, seed) point and writes
``result.json``; corral stages the script in, collects ``result.json`` into the subjob's
``output/`` dir, and the results table is read back from those files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from corral.cli.common import console, run, session, state
from corral.cli.errors import JOB_FAILED

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.records import JobId, JobRecord

SAMPLES = ("20000", "200000", "2000000")
SEEDS = ("1", "2", "3", "4")
SCRIPT_NAME = "montecarlo_pi.py"
SCRIPT = '''"""Estimate pi from random points in the unit square: the corral demo's job."""
import json
import math
import random
import sys
import time

samples, seed = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
start = time.perf_counter()
inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
estimate = 4 * inside / samples
result = {"samples": samples, "seed": seed, "pi": estimate, "error": abs(estimate - math.pi),
          "seconds": round(time.perf_counter() - start, 3)}
with open("result.json", "w") as handle:
    json.dump(result, handle)
print(f"samples={samples} seed={seed} pi={estimate:.6f}")
'''


def demo(ctx: typer.Context) -> None:
    """Submit a real 3 x 4 sweep to the local backend, follow it, and tabulate its outputs."""
    from corral.cli.follow import wait_for

    settings = state(ctx).settings()
    out = console()
    out.print(
        "[bold]corral demo[/bold]: a 3 x 4 parameter sweep on the local backend. Each job "
        "estimates pi from SAMPLES random points with a SEED and writes result.json."
    )
    script = _write_script(settings)
    job_id = run(_submit(settings, script))
    out.print(
        f"submitted job [bold]{job_id}[/bold]: 12 subjobs "
        f"(samples {', '.join(SAMPLES)} x seed {', '.join(SEEDS)}); a background monitor "
        "runs them, so closing this terminal would not stop them"
    )
    code = wait_for(settings, [job_id], timeout=None, log_changes=True)
    subjobs = run(_subjobs(settings, job_id))
    _results(subjobs)
    call = _how_to_call(settings)
    out.print("\nlook around:")
    for verb in ("ls", f"show {job_id}", f"peek {job_id}.0", "monitor --status"):
        out.print(f"  {call} {verb}", markup=False)
    if code:
        raise typer.Exit(JOB_FAILED)


def _how_to_call(settings: Settings) -> str:
    """The command line that reaches this registry again, as the user can type it."""
    program = sys.argv[0]
    if program.endswith("__main__.py"):
        program = f"{sys.executable} -m corral.cli"
    elif (found := shutil.which("corral")) and Path(found).resolve() == Path(program).resolve():
        program = "corral"
    elif Path(program).is_absolute() and Path(program).is_relative_to(Path.cwd()):
        program = str(Path(program).relative_to(Path.cwd()))
    home = f"CORRAL_HOME={settings.home} " if os.environ.get("CORRAL_HOME") else ""
    return home + program


def _write_script(settings: Settings) -> Path:
    folder = settings.home / "demo"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / SCRIPT_NAME
    path.write_text(SCRIPT)
    return path


async def _submit(settings: Settings, script: Path) -> JobId:
    spec: dict[str, Any] = {
        "name": "demo-pi",
        "command": [sys.executable, SCRIPT_NAME, "{samples}", "{seed}"],
        "input_files": [str(script)],
        "outputs": ["result.json"],
        "tags": ["demo"],
        "splitter": {"kind": "sweep", "parameters": {"samples": SAMPLES, "seed": SEEDS}},
    }
    async with session(settings, "daemon") as sess:
        return await sess.submit(spec)


async def _subjobs(settings: Settings, job_id: JobId) -> list[JobRecord]:
    async with session(settings) as sess:
        return await sess.subjobs(job_id)


def _read_result(record: JobRecord) -> dict[str, Any] | None:
    if record.output_dir is None:
        return None
    try:
        data = json.loads((record.output_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _results(subjobs: list[JobRecord]) -> None:
    """The table, from each subjob's collected ``output/result.json``."""
    from rich.table import Table

    found = {
        (str(r.spec.environment.get("SAMPLES")), str(r.spec.environment.get("SEED"))): (
            r,
            _read_result(r),
        )
        for r in subjobs
    }
    table = Table(
        title="pi estimates, read from each subjob's output/result.json", header_style="bold"
    )
    table.add_column("samples", justify="right")
    for seed in SEEDS:
        table.add_column(f"seed {seed}", justify="right")
    table.add_column("mean |error|", justify="right")
    for samples in SAMPLES:
        cells, errors = [], []
        for seed in SEEDS:
            record, result = found.get((samples, seed), (None, None))
            if result is None:
                cells.append(f"[red]{record.state.value if record else 'missing'}[/red]")
                continue
            cells.append(f"{result['pi']:.5f}")
            errors.append(float(result["error"]))
        mean = f"{sum(errors) / len(errors):.5f}" if errors else "-"
        table.add_row(f"{int(samples):,}", *cells, mean)
    console().print(table)
    first = next((r for r in subjobs if r.output_dir is not None), None)
    if first is not None:
        console().print(
            f"[dim]files: {first.output_dir}/result.json and the other subjobs' output/ dirs[/dim]"
        )
