"""A fake of DIRAC 9.1's ``Dirac`` API class for the calls that need a full classic DIRAC server
(wms submit, status, kill, sandbox download, select), loaded INSIDE a dirac-classic worker in
the DIRAC venv. It has the real class's signatures (``test_fake.py`` checks them with
``inspect.signature``), answers with DIRAC's own ``S_OK``/``S_ERROR``, parses JDL with DIRAC's
own ClassAd parser, and runs each job on this machine in a job dir under ``$FAKE_DIRAC_STATE``
(default ``$CORRAL_HOME/fake-dirac``), detached in a session of its own, so jobs outlive the
worker that submitted them and every worker of the pool sees the same jobs.

Faults, by file in the state dir: ``status.error`` (getJobStatus answers S_ERROR with its
text), ``status.raise`` (raises NotImplementedError, as FutureClientEnabled calls do),
``status.sleep`` (sleeps that many seconds first).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from DIRAC import S_ERROR, S_OK  # type: ignore[import-not-found]
from DIRAC.Core.Utilities.ClassAd.ClassAdLight import ClassAd  # type: ignore[import-not-found]


def _state() -> Path:
    root = os.environ.get("FAKE_DIRAC_STATE") or os.path.join(os.environ["CORRAL_HOME"], "fake")
    path = Path(root)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


def _next_id(state: Path) -> int:
    with open(state / "counter.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = state / "counter"
        value = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(value))
        return value


def _ids(job_id: Any) -> list[int]:
    return [int(i) for i in (job_id if isinstance(job_id, list | tuple) else [job_id])]


class Dirac:
    def __init__(self, useCertificates: bool = False, vo: str | None = None) -> None:
        self.state = _state()

    def _dir(self, job_id: int) -> Path:
        return self.state / "jobs" / str(job_id)

    def _meta(self, job_id: int) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self._dir(job_id) / "meta.json").read_text())
        except FileNotFoundError:
            return None
        return data

    def submitJob(self, job: Any, mode: str = "wms") -> Any:
        if mode != "wms" or not isinstance(job, str):
            return S_ERROR("the fake takes JDL strings in wms mode")
        ad = ClassAd(job if job.lstrip().startswith("[") else f"[{job}]")
        if not ad.isOK():
            return S_ERROR("JDL syntax error")
        job_id = _next_id(self.state)
        folder = self._dir(job_id)
        folder.mkdir()
        for path in ad.getListFromExpression("InputSandbox"):
            shutil.copy2(path, folder / os.path.basename(path))
        meta = {
            "JobID": job_id,
            "JobName": ad.getAttributeString("JobName"),
            "JobGroup": ad.getAttributeString("JobGroup"),
            "OutputSandbox": ad.getListFromExpression("OutputSandbox"),
        }
        (folder / "meta.json").write_text(json.dumps(meta))
        self._run(folder, ad)
        return S_OK(job_id)

    def _run(self, folder: Path, ad: Any) -> None:
        executable = ad.getAttributeString("Executable")
        if "/" not in executable and (folder / executable).exists():
            executable = "./" + executable
        argv = [executable, *shlex.split(ad.getAttributeString("Arguments") or "")]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}
        env.update(p.split("=", 1) for p in ad.getListFromExpression("Environment") if "=" in p)
        script = f"{shlex.join(argv)} > stdout 2> stderr; echo $? > .exit"
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script], cwd=folder, env=env, start_new_session=True
        )
        (folder / ".pid").write_text(str(proc.pid))
        threading.Thread(target=proc.wait, daemon=True).start()  # reaped: no zombie

    def _status(self, job_id: int) -> dict[str, str]:
        folder = self._dir(job_id)
        if (folder / ".killed").exists():
            return {"Status": "Killed", "MinorStatus": "Marked for termination"}
        exit_file = folder / ".exit"
        text = exit_file.read_text().strip() if exit_file.exists() else ""
        if not text:
            return {"Status": "Running", "MinorStatus": "Application", "ApplicationStatus": ""}
        if text == "0":
            return {"Status": "Done", "MinorStatus": "Execution Complete"}
        return {
            "Status": "Failed",
            "MinorStatus": "Application Finished With Errors",
            "ApplicationStatus": f"exit code {text}",
        }

    def getJobStatus(self, jobID: Any) -> Any:
        if (self.state / "status.sleep").exists():
            time.sleep(float((self.state / "status.sleep").read_text()))
        if (self.state / "status.raise").exists():
            raise NotImplementedError("no DiracX client for JobMonitoring")
        if (self.state / "status.error").exists():
            return S_ERROR((self.state / "status.error").read_text().strip())
        answer = {}
        for job_id in _ids(jobID):
            if self._meta(job_id) is not None:
                answer[job_id] = {**self._status(job_id), "Site": "DIRAC.Fake.local"}
        return S_OK(answer)

    def killJob(self, jobID: Any) -> Any:
        ids = _ids(jobID)
        unknown = [i for i in ids if self._meta(i) is None]
        if unknown:
            return S_ERROR(f"No such jobs: {unknown}")
        for job_id in ids:
            if self._status(job_id)["Status"] in ("Running", "Received"):
                (self._dir(job_id) / ".killed").touch()
                pid = int((self._dir(job_id) / ".pid").read_text())
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        return S_OK(ids)

    def getOutputSandbox(
        self,
        jobID: Any,
        outputDir: str | None = None,
        oversized: bool = True,
        noJobDir: bool = False,
        unpack: bool = True,
    ) -> Any:
        job_id = int(jobID)
        meta = self._meta(job_id)
        if meta is None or self._status(job_id)["Status"] not in ("Done", "Failed"):
            return S_ERROR(f"No output sandbox registered for job {job_id}")
        target = Path(outputDir or os.getcwd())
        if not noJobDir:
            target = target / str(job_id)
        target.mkdir(parents=True, exist_ok=True)
        for name in meta["OutputSandbox"]:
            source = self._dir(job_id) / name
            if source.is_file():
                shutil.copy2(source, target / name)
        return S_OK([])

    def selectJobs(
        self,
        status: str | None = None,
        minorStatus: str | None = None,
        applicationStatus: str | None = None,
        site: str | None = None,
        owner: str | None = None,
        ownerGroup: str | None = None,
        jobGroup: str | None = None,
        date: str | None = None,
        printErrors: bool = True,
    ) -> Any:
        found = []
        for folder in (self.state / "jobs").iterdir():
            meta = self._meta(int(folder.name))
            if meta and (jobGroup is None or meta["JobGroup"] == jobGroup):
                found.append(int(folder.name))
        return S_OK(sorted(found))

    def getJobAttributes(self, jobID: Any, printOutput: bool = False) -> Any:
        meta = self._meta(int(jobID))
        if meta is None:
            return S_ERROR(f"No such job {jobID}")
        return S_OK({**meta, "Status": self._status(int(jobID))["Status"]})
