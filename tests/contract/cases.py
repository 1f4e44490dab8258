"""The backends the contract suite runs over. A backend joins by adding one case to ``CASES``.

A case knows its config section, how to make a job that runs for a while, exits with a given
code and writes a declared output, a job the backend refuses at its submit call, how to make the
backend unable to start, and how to prove that every job ran exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.backends.sim import sim_state
from corral.records import JobRecord
from tests.condor.helpers import CONDOR, runs_by_label
from tests.dirac.helpers import DIRAC
from tests.dirac_classic.helpers import DIRAC_CLASSIC, fake_section
from tests.dirac_classic.helpers import PYTHON as CLASSIC_PYTHON
from tests.sge.helpers import SGE
from tests.slurm.helpers import SLURM


@dataclass(frozen=True)
class BackendCase:
    id: str
    backend: str
    config: str
    marks: Sequence[Any] = ()
    breakable: bool = True

    def job(
        self, key: int, *, code: int = 0, seconds: float = 0.5, witness: Path
    ) -> dict[str, Any]:
        """Job ``key``: appends ``key`` to ``witness``, writes ``out.txt``, runs ``seconds``,
        exits ``code``."""
        script = (
            f'echo {key} >> {witness}; echo "out {key}" > out.txt; sleep {seconds}; exit {code}'
        )
        return {
            "name": f"contract-{key}",
            "command": ["sh", "-c", script],
            "backend": self.backend,
            "outputs": ["out.txt"],
        }

    def refused(self) -> dict[str, Any]:
        """A job this backend's submit call refuses (checks at the CLI may refuse it sooner)."""
        raise NotImplementedError

    def break_start(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> None:
        """Make the backend unable to start (only called when ``breakable``)."""
        raise NotImplementedError

    def ran_once(self, work_dir: Path, witness: Path, jobs: Sequence[JobRecord]) -> None:
        lines = witness.read_text().split() if witness.exists() else []
        keys = sorted(job.name.removeprefix("contract-") for job in jobs)
        assert sorted(lines) == keys, Counter(lines)


@dataclass(frozen=True)
class LocalCase(BackendCase):
    def refused(self) -> dict[str, Any]:
        return {"command": ["true"], "backend": self.backend, "resources": {"cpus": 64}}


@dataclass(frozen=True)
class SlurmCase(BackendCase):
    def refused(self) -> dict[str, Any]:
        return {
            "command": ["true"],
            "backend": self.backend,
            "backend_options": {"partition": "no-such-partition"},
        }

    def break_start(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> None:
        bin_dir = tmp_path / "no-slurm-bin"
        bin_dir.mkdir()
        monkeypatch.setenv("PATH", str(bin_dir))


@dataclass(frozen=True)
class SgeCase(SlurmCase):
    def refused(self) -> dict[str, Any]:
        return {
            "command": ["true"],
            "backend": self.backend,
            "backend_options": {"queue": "no-such-queue"},
        }


@dataclass(frozen=True)
class SimCase(BackendCase):
    """Sim jobs run no process: run time and exit code are job options, and the witness is
    what the sim backend keeps on disk of the jobs it accepted."""

    def job(
        self, key: int, *, code: int = 0, seconds: float = 0.5, witness: Path
    ) -> dict[str, Any]:
        spec = super().job(key, code=code, seconds=seconds, witness=witness)
        spec["backend_options"] = {"run_time": seconds, "exit_code": code}
        return spec

    def refused(self) -> dict[str, Any]:
        return {
            "command": ["true"],
            "backend": self.backend,
            "backend_options": {"refuse": "no such queue"},
        }

    def break_start(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> None:
        config = home / "config.toml"
        config.write_text(config.read_text() + 'unavailable = "simulated outage"\n')

    def ran_once(self, work_dir: Path, witness: Path, jobs: Sequence[JobRecord]) -> None:
        # The sim keeps one record per uuid it accepted (a repeated submit is found, never
        # recorded twice): each job is there, under the native id the registry adopted.
        accepted = sim_state(work_dir, self.backend).jobs
        assert {job.uuid: job.native_id for job in jobs} == {
            job.uuid: accepted[job.uuid].native_id for job in jobs if job.uuid in accepted
        }


@dataclass(frozen=True)
class DiracCase(BackendCase):
    """Jobs run on this machine by the test pilot that scripts/test-dirac.sh starts, so the
    witness file works; outputs come back through the output sandbox."""

    def refused(self) -> dict[str, Any]:
        # a platform no JDL can name: past the CLI's checks, the backend's submit refuses it
        return {
            "command": ["true"],
            "backend": self.backend,
            "backend_options": {"platform": "not a platform!"},
        }

    def break_start(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> None:
        monkeypatch.setenv("DIRACX_CREDENTIALS_PATH", str(tmp_path / "never-logged-in.json"))


@dataclass(frozen=True)
class DiracClassicCase(DiracCase):
    """The classic DIRAC API through isolated workers in the DIRAC venv, with the fake ``Dirac``
    (tests/dirac_classic/fake_dirac.py: it runs jobs on this machine, so the witness works)."""

    def break_start(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> None:
        config = home / "config.toml"  # the DIRAC installation's Python is gone
        config.write_text(config.read_text().replace(str(CLASSIC_PYTHON), str(tmp_path / "no")))


class CondorCase(BackendCase):
    """Jobs run as the pool's own user in HTCondor's scratch dir (spool mode), which cannot
    write the test's witness file: HTCondor's own count of starts per label is the witness."""

    def job(
        self, key: int, *, code: int = 0, seconds: float = 0.5, witness: Path
    ) -> dict[str, Any]:
        spec = super().job(key, code=code, seconds=seconds, witness=witness)
        spec["command"] = ["sh", "-c", f'echo "out {key}" > out.txt; sleep {seconds}; exit {code}']
        return spec

    def refused(self) -> dict[str, Any]:
        # a requirements expression HTCondor cannot parse: it never makes a job ad of it
        return {
            "command": ["true"],
            "backend": self.backend,
            "backend_options": {"requirements": "TARGET.Foo == (("},
        }

    def break_start(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> None:
        config = home / "config.toml"
        config.write_text(config.read_text() + 'collector = "127.0.0.1:1"\nschedd = "none"\n')

    def ran_once(self, work_dir: Path, witness: Path, jobs: Sequence[JobRecord]) -> None:
        runs = runs_by_label(f"corral-{job.uuid}" for job in jobs)
        assert all(runs[f"corral-{job.uuid}"] == 1 for job in jobs), runs


_FAST = "min_interval = 0.1\nmax_interval = 1.0\n"
CASES: list[BackendCase] = [
    LocalCase("local", "local", f"[backends.local]\nmax_cpus = 4\n{_FAST}", breakable=False),
    SlurmCase(
        "slurm", "slurm", "[backends.slurm]\nmin_interval = 0.2\nmax_interval = 2.0\n", SLURM
    ),
    SgeCase("sge", "sge", "[backends.sge]\nmin_interval = 0.2\nmax_interval = 2.0\n", SGE),
    DiracCase(
        "dirac", "dirac", "[backends.dirac]\nmin_interval = 0.2\nmax_interval = 2.0\n", DIRAC
    ),
    DiracClassicCase("dirac-classic", "diracc", fake_section(), DIRAC_CLASSIC),
    CondorCase(
        "condor", "condor", "[backends.condor]\nmin_interval = 0.2\nmax_interval = 2.0\n", CONDOR
    ),
    SimCase("sim-async", "sim", f"[backends.sim]\n{_FAST}queue_time = 0.05\n"),
    SimCase(
        "sim-blocking",
        "simb",
        f'[backends.simb]\ntype = "sim-blocking"\nthreads = 2\n{_FAST}queue_time = 0.05\n',
    ),
]
PARAMS = [pytest.param(case, id=case.id, marks=list(case.marks)) for case in CASES]
