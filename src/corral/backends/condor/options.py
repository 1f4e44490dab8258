"""The HTCondor backend's options: a ``[backends.NAME]`` section and a job's ``backend_options``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from corral.backends.base import BlockingOptions, JobOptions

_EXPR = r"^[^\n\r]*$"


class CondorJobOptions(JobOptions):
    """A job's ``backend_options`` on HTCondor."""

    requirements: str | None = Field(None, pattern=_EXPR, max_length=4000)
    """A ClassAd expression ANDed into the job's requirements."""


class CondorOptions(BlockingOptions):
    """A ``[backends.condor]`` section."""

    mode: Literal["spool", "shared"] = "spool"
    """``spool``: inputs uploaded with ``schedd.spool()``, outputs fetched with ``retrieve()``
    (the execute side sees nothing of the submitter's files); ``shared``: jobs run in their
    attempt dirs on a filesystem the execute nodes share, nothing is transferred."""
    schedd: str | None = Field(None, pattern=_EXPR, max_length=300)
    """A remote schedd's name, located through the collector (default: the local schedd)."""
    collector: str | None = Field(None, pattern=_EXPR, max_length=300)
    """The collector (``host[:port]``) that locates ``schedd`` (default: the configured one)."""
    requirements: str | None = Field(None, pattern=_EXPR, max_length=4000)
    lost_after: float = Field(
        60.0, ge=0, le=86400, description="Seconds a job may be in neither queue nor history."
    )
