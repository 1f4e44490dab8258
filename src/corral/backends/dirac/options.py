"""The DIRAC backend's options as checked models.

Login needs no config: the server comes from ``DIRACX_URL`` and the tokens from the credentials
file ``dirac login`` writes (``DIRACX_CREDENTIALS_PATH``, else
``~/.cache/diracx/credentials.json``), as DiracX's own client reads them; ``url`` and
``credentials_path`` override both.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from corral.backends.base import BackendOptions, JobOptions, OptionPath

_TAG = r"^[A-Za-z0-9_.:\-]+$"


def _one_or_many(value: object) -> object:
    """``-O site=LCG.CERN.cern`` gives one string: a list of one."""
    return [value] if isinstance(value, str) else value


Names = Annotated[list[Annotated[str, Field(pattern=_TAG)]], BeforeValidator(_one_or_many)]


class _Placement(BaseModel):
    """Where a job may run: JDL attributes, a job's own replace the section's, key by key."""

    site: Names = Field(default_factory=list, description="JDL Site (any of these).")
    banned_sites: Names = Field(default_factory=list, description="JDL BannedSite.")
    tags: Names = Field(default_factory=list, description="JDL Tags.")
    platform: str | None = Field(None, pattern=_TAG, description="JDL Platform.")
    cpu_time: int | None = Field(
        None, ge=1, le=10_000_000, description="JDL CPUTime (seconds); default: walltime."
    )


class DiracJobOptions(JobOptions, _Placement):
    """A job's ``backend_options`` on DIRAC."""


class DiracOptions(BackendOptions, _Placement):
    """A ``[backends.NAME]`` section of type ``dirac``."""

    url: str | None = Field(None, description="DiracX server; default: $DIRACX_URL.")
    credentials_path: OptionPath | None = Field(
        None, description="Token file; default: $DIRACX_CREDENTIALS_PATH or dirac login's."
    )
    client_id: str = Field("myDIRACClientID", min_length=1, description="OAuth client id.")
    submit_chunk: int = Field(20, ge=1, le=20, description="JDLs per submit call (server: 20).")
    submit_concurrency: int = Field(4, ge=1, le=64, description="Submit calls in flight.")
    page_size: int = Field(10_000, ge=1, le=10_000, description="Rows per search page.")
    fetch_concurrency: int = Field(4, ge=1, le=64, description="Sandbox downloads at once.")
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds per HTTP call.")
    window_overlap: float = Field(
        2.0, ge=1, le=3600, description="Seconds the LastUpdateTime window overlaps the last."
    )


def placement(section: _Placement, job: DiracJobOptions) -> _Placement:
    """The section's placement with the job's own keys on top."""
    merged = section.model_dump(include=set(_Placement.model_fields), exclude_unset=True)
    merged.update(job.model_dump(include=set(_Placement.model_fields), exclude_unset=True))
    return _Placement.model_validate(merged)
