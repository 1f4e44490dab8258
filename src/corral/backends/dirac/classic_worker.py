"""The worker module of the ``dirac-classic`` transport: runs inside a ``corral.isolate`` worker
under the DIRAC installation's own Python, so it imports nothing of corral, and corral's own
interpreter never imports it (nor DIRAC).

One ``Dirac`` object per worker process (not one per call), made on first use. Every function
returns DIRAC's own ``S_OK``/``S_ERROR`` dict (``{"OK": ..., "Value"/"Message": ...}``); an
exception (with FutureClientEnabled some calls raise ``NotImplementedError`` or even
``AttributeError``) travels back as error data through the worker, never as a crash.

Set by the host, in the worker's environment:
    CORRAL_DIRAC_API    ``module:Class`` of the API class (``DIRAC.Interfaces.API.Dirac:Dirac``;
                        a VO's subclass such as LHCbDIRAC's, or a test's fake)
    CORRAL_DIRAC_INIT   ``initialize`` (default: ``DIRAC.initialize()``), ``no-auth``
                        (``initialize(require_auth=False)``) or ``none``
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

CORRAL_METHODS = {
    "ping": "threadsafe",
    "submit": "threadsafe",  # wms mode: WMSClient uploads the sandbox, no chdir
    "status": "threadsafe",
    "kill": "threadsafe",
    "reconcile": "threadsafe",
    "output": "exclusive",  # getOutputSandbox chdirs the process
}

_lock = threading.Lock()
_api: list[Any] = []


def _initialize() -> None:
    mode = os.environ.get("CORRAL_DIRAC_INIT", "initialize")
    if mode == "none":
        return
    import DIRAC  # type: ignore[import-not-found]  # the foreign side's own package

    if mode == "no-auth":
        DIRAC.initialize(require_auth=False)
    else:
        DIRAC.initialize()


def _dirac() -> Any:
    with _lock:
        if not _api:
            _initialize()
            module, _, name = os.environ.get(
                "CORRAL_DIRAC_API", "DIRAC.Interfaces.API.Dirac:Dirac"
            ).partition(":")
            _api.append(getattr(importlib.import_module(module), name)())
        return _api[0]


def ping() -> dict[str, Any]:
    return {"OK": True, "Value": {"pid": os.getpid()}}


def submit(jdl: str) -> Any:
    """One JDL: ``S_OK(job id)``."""
    return _dirac().submitJob(jdl)


def status(ids: list[int]) -> Any:
    """All tracked jobs in one call: ``S_OK({id: {"Status", "MinorStatus", ...}})``."""
    return _dirac().getJobStatus(ids)


def kill(ids: list[int]) -> Any:
    return _dirac().killJob(ids)


def output(job_id: int, directory: str) -> Any:
    """The output sandbox, unpacked into ``directory`` (which must not exist yet)."""
    return _dirac().getOutputSandbox(job_id, outputDir=directory, noJobDir=True)


def reconcile(group: str, labels: list[str], since: str) -> dict[str, Any]:
    """``S_OK({JobName: JobID})`` of this group's jobs updated since ``since`` (YYYY-MM-DD)
    whose JobName is one of ``labels`` (the lowest id if, against every rule, one was sent
    twice)."""
    dirac = _dirac()
    found = dirac.selectJobs(jobGroup=group, date=since, printErrors=False)
    if not found["OK"]:
        return dict(found)
    wanted, named = set(labels), dict[str, int]()
    for job_id in found["Value"] or []:
        attributes = dirac.getJobAttributes(int(job_id))
        if not attributes["OK"]:
            return dict(attributes)
        name = attributes["Value"].get("JobName")
        if name in wanted and (name not in named or int(job_id) < named[name]):
            named[name] = int(job_id)
    return {"OK": True, "Value": named}
