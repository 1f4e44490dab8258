"""The Grid Engine backend's options as checked models: names and values, one line per mistake.

The qsub flags they become are checked by ``render`` (which also refuses a flag that would
override what corral relies on); a bad value is refused at submit, before anything is stored.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from corral.backends.base import BackendOptions, JobOptions
from corral.backends.sge import render
from corral.spec import Resources


class _Qsub(BaseModel):
    """Options that become qsub flags; a job's own override the backend's, key by key."""

    queue: str | None = Field(None, description="Cluster queue (-q).")
    project: str | None = Field(None, description="Project (-P).")
    pe: str | None = Field(
        None, description="Parallel environment for jobs of several slots (-pe PE SLOTS)."
    )
    gpu_resource: str | None = Field(
        None, description="The site's GPU consumable: gpus = N becomes -l NAME=N."
    )
    extra_qsub_args: list[str] = Field(default_factory=list)
    array_limit: int | None = Field(None, ge=1, description="At most this many tasks at once.")

    @model_validator(mode="after")
    def _renderable(self) -> Self:
        try:
            render.qsub_options(self.qsub(), {}, Resources())
        except render.OptionError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def qsub(self) -> dict[str, object]:
        """The keys given, as the planner takes them."""
        return self.model_dump(include=set(render.JOB_OPTIONS), exclude_defaults=True)


class SgeJobOptions(JobOptions, _Qsub):
    """A job's ``backend_options`` on Grid Engine."""


class SgeOptions(BackendOptions, _Qsub):
    """A ``[backends.sge]`` section."""

    command_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds per command.")
    lost_after: float = Field(
        300.0, ge=0, description="Seconds a job may be unknown to Grid Engine before it fails."
    )
