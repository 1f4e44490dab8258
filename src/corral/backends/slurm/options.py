"""The Slurm backend's options as checked models: names and values, one line per mistake.

The sbatch flags they become are checked by ``render`` (the pure planner, which also rejects a
flag that would override what corral relies on); these models only call it once per section or
job, so a bad value is refused at submit, before anything is stored.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from corral.backends.base import BackendOptions, JobOptions
from corral.backends.slurm import render


class _Sbatch(BaseModel):
    """Options that become sbatch flags; a job's own override the backend's, key by key."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra_sbatch_args: list[str] = Field(default_factory=list)
    array_limit: int | None = Field(None, ge=1, description="At most this many tasks at once.")

    @model_validator(mode="after")
    def _renderable(self) -> Self:
        try:
            render.check_options(self.sbatch(), render.JOB_OPTIONS)
        except render.OptionError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def sbatch(self) -> dict[str, object]:
        """The keys given, as the planner takes them."""
        return self.model_dump(include=set(render.JOB_OPTIONS), exclude_defaults=True)


class SlurmJobOptions(JobOptions, _Sbatch):
    """A job's ``backend_options`` on Slurm."""


class SlurmOptions(BackendOptions, _Sbatch):
    """A ``[backends.slurm]`` section."""

    command_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds per command.")
    lost_after: float = Field(
        300.0, ge=0, description="Seconds a job may be unknown to Slurm before it is failed."
    )
