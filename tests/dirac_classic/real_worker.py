"""A worker module for the tests against the REAL DIRAC 9.1 client, loaded inside an isolate
worker in the DIRAC venv (never by corral's interpreter): local-mode ``Dirac().submitJob``,
DIRAC's own DiracX client and the legacy ``JobStateUpdateClient`` routed to DiracX.

Needs DIRACSYSCONFIG (scripts/dirac-classic-cfg.sh), and HOME, TMPDIR, X509_USER_PROXY in a
scratch folder; the venv's bin/ on PATH (``dirac-jobexec`` is called by name).
"""

from __future__ import annotations

import base64
import os
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

CORRAL_METHODS = {
    "whoami": "threadsafe",
    "nap": "threadsafe",
    "run_local": "exclusive",  # os.chdir()s the whole process
    "install_token": "threadsafe",
    "dx_submit": "threadsafe",
    "dx_search": "threadsafe",
    "legacy_status": "threadsafe",
}
_lock = threading.Lock()
_ready: list[bool] = []


def _init() -> None:
    with _lock:
        if not _ready:
            import DIRAC  # type: ignore[import-not-found]

            DIRAC.initialize(require_auth=False)
            _ready.append(True)


def whoami() -> dict[str, Any]:
    proxy = os.environ.get("X509_USER_PROXY", "")
    text = Path(proxy).read_text() if proxy and os.path.exists(proxy) else ""
    return {"pid": os.getpid(), "cwd": os.getcwd(), "proxy": text[-60:]}


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def run_local(executable: str, arguments: str, name: str = "corral-test") -> dict[str, Any]:
    """A real, blocking ``Dirac().submitJob(job, mode='local')``: DIRAC's JobWrapper runs the
    job here through ``dirac-jobexec``."""
    _init()
    from DIRAC.Interfaces.API.Dirac import Dirac  # type: ignore[import-not-found]
    from DIRAC.Interfaces.API.Job import Job  # type: ignore[import-not-found]

    job = Job()
    job.setName(name)
    job.setExecutable(executable, arguments=arguments)
    start = os.getcwd()
    result = Dirac().submitJob(job, mode="local")
    os.chdir(start)  # DIRAC leaves the process in the job's folder when the payload fails
    return {"OK": result["OK"], "Message": result.get("Message", ""), "pid": os.getpid()}


def install_token(group: str) -> str:
    """A DiracX token from DIRAC's own legacy-exchange helper, written where DIRAC reads its
    proxy (X509_USER_PROXY); no X.509 material."""
    _init()
    from DIRAC import gConfig
    from DIRAC.Core.Security.DiracX import PEM_BEGIN, PEM_END  # type: ignore[import-not-found]
    from DIRAC.Core.Security.Locations import (  # type: ignore[import-not-found]
        getDefaultProxyLocation,
    )
    from DIRAC.FrameworkSystem.Utilities.diracx import get_token  # type: ignore[import-not-found]
    from diracx.core.models.auth import TokenResponse  # type: ignore[import-not-found]
    from diracx.core.utils import serialize_credentials  # type: ignore[import-not-found]

    properties = set(gConfig.getValue(f"/Registry/Groups/{group}/Properties", []))
    token = get_token("ciuser", group, properties)
    data = base64.b64encode(serialize_credentials(TokenResponse(**token)).encode()).decode()
    path = Path(getDefaultProxyLocation())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{PEM_BEGIN}\n{textwrap.fill(data, width=64)}\n{PEM_END}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return str(path)


def dx_submit(jdls: list[str]) -> list[int]:
    _init()
    from DIRAC.Core.Security.DiracX import DiracXClient  # type: ignore[import-not-found]

    with DiracXClient() as client:
        return [int(job.job_id) for job in client.jobs.submit_jdl_jobs(jdls)]


def dx_search(ids: list[int]) -> dict[str, str]:
    _init()
    from DIRAC.Core.Security.DiracX import DiracXClient  # type: ignore[import-not-found]

    with DiracXClient() as client:
        rows = client.jobs.search(
            parameters=["JobID", "Status"],
            search=[{"parameter": "JobID", "operator": "in", "values": ids}],
        )
    return {str(row["JobID"]): str(row["Status"]) for row in rows}


def legacy_status(job_id: int, status: str, minor: str) -> dict[str, Any]:
    """The legacy ``JobStateUpdateClient`` (FutureClientEnabled: routed to DiracX)."""
    _init()
    from DIRAC.WorkloadManagementSystem.Client.JobStateUpdateClient import (  # type: ignore[import-not-found]
        JobStateUpdateClient,
    )

    result = JobStateUpdateClient().setJobStatus(job_id, status, minor, "corral-test")
    return {"OK": result["OK"], "Message": result.get("Message", "")}
