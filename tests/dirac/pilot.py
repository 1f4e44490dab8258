"""A test pilot: plays DIRAC's pilots and JobWrapper against a real DiracX 0.7, within what 0.7
allows a pilot.

- It finds Received jobs with a USER token (a pilot token gets 403 on search).
- No route returns a job's JDL, so it reads the payload out of band: the ticket ``dirac.jdl``
  the submitter left in the attempt dir named by the job's JobName, found under ``--root``.
  It downloads the JDL's input sandbox by its pfn with the user token (0.7 never assigns a JDL's
  InputSandbox to the job, so no worker-node delivery of it is tested here).
- It runs the payload locally in a scratch dir with a clean environment plus the JDL's own,
  watches for a kill (the job's status turned Killed: the payload is terminated), uploads the
  output sandbox (created with the user token) and, with the PILOT token, assigns it and
  reports Running, then Done or Failed ("Application Finished With Errors", ApplicationStatus
  ``exit code N``).

Jobs whose JDL asks for site ``Test.NoPilot.org`` are left alone (tests that need jobs to stay
queued). Usage: ``python -m tests.dirac.pilot --root DIR`` with DIRACX_URL and
DIRACX_LEGACY_EXCHANGE_KEY_B64 in the environment; it runs until killed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from corral.backends.dirac import jdl

NO_PILOT = "Test.NoPilot.org"


def legacy_token(http: httpx.Client, group: str) -> str:
    key = os.environ["DIRACX_LEGACY_EXCHANGE_KEY_B64"]
    response = http.get(
        "/api/auth/legacy-exchange",
        params={"preferred_username": "ciuser", "scope": f"vo:testvo group:{group}"},
        headers={"Authorization": f"Bearer diracx:legacy:{key}"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def stamps(n: int) -> list[str]:
    now = datetime.now(UTC)
    return [(now + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for i in range(n)]


@dataclass
class Running:
    job_id: str
    proc: subprocess.Popen[bytes]
    scratch: Path
    outputs: list[str]


class Pilot:
    def __init__(self, url: str, root: Path) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.bare = httpx.Client(timeout=60)
        self.root = root
        self.tokens = {
            "user": legacy_token(self.http, "user"),
            "pilot": legacy_token(self.http, "pilot"),
        }
        self.tickets: dict[str, Path] = {}
        self.scanned = 0.0
        self.ignored: set[str] = set()
        self.running: dict[str, Running] = {}

    def call(self, group: str, method: str, route: str, **kw: Any) -> httpx.Response:
        for _ in range(2):
            headers = {"Authorization": f"Bearer {self.tokens[group]}"}
            response = self.http.request(method, route, headers=headers, **kw)
            if response.status_code != 401:
                return response
            self.tokens[group] = legacy_token(self.http, group)
        return response

    def search(self, search: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
        body = {"parameters": columns, "search": search}
        response = self.call(
            "user", "POST", "/api/jobs/search", json=body, params={"per_page": 10000}
        )
        response.raise_for_status()
        return list(response.json())

    def status(self, job_id: str, *updates: dict[str, str]) -> None:
        body = {job_id: dict(zip(stamps(len(updates)), updates, strict=True))}
        self.call("pilot", "PATCH", "/api/jobs/status", json=body).raise_for_status()

    def ticket(self, name: str) -> Path | None:
        if name not in self.tickets and time.monotonic() - self.scanned > 0.3:
            self.scanned = time.monotonic()
            for path in self.root.glob("**/attempt-*/dirac.jdl"):
                attrs = jdl.parse(path.read_text())
                self.tickets[str(attrs.get("JobName"))] = path
        return self.tickets.get(name)

    def start(self, job_id: str, name: str) -> None:
        path = self.ticket(name)
        if path is None:
            return
        attrs = jdl.parse(path.read_text())
        if NO_PILOT in (attrs.get("Site") or []):
            self.ignored.add(job_id)
            return
        scratch = Path(tempfile.mkdtemp(prefix=f"pilot-{job_id}-"))
        for pfn in attrs.get("InputSandbox") or []:
            assert isinstance(pfn, str)
            url = self.call(
                "user", "GET", "/api/jobs/sandbox", params={"pfn": pfn.split("|", 1)[-1]}
            ).json()["url"]
            data = self.bare.get(url).content
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(scratch, filter="data")
        executable = str(attrs["Executable"])
        if not executable.startswith("/") and (scratch / executable).exists():
            executable = str(scratch / executable)
        argv = [executable, *shlex.split(str(attrs.get("Arguments", "")))]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), **jdl.environment(attrs)}
        self.status(
            job_id,
            {"Status": "Checking", "MinorStatus": "JobSanity", "Source": "TestPilot"},
            {"Status": "Waiting", "MinorStatus": "Pilot Agent Submission", "Source": "TestPilot"},
            {"Status": "Matched", "MinorStatus": "Assigned", "Source": "TestPilot"},
            {"Status": "Running", "MinorStatus": "Application", "Source": "JobWrapper"},
        )
        with (scratch / "stdout").open("wb") as out, (scratch / "stderr").open("wb") as err:
            proc = subprocess.Popen(
                argv, cwd=scratch, env=env, stdout=out, stderr=err, start_new_session=True
            )
        outputs = [str(p) for p in attrs.get("OutputSandbox") or []]
        self.running[job_id] = Running(job_id, proc, scratch, outputs)

    def finish(self, run: Running, code: int) -> None:
        files = {}
        for pattern in run.outputs:
            for path in run.scratch.glob(pattern):
                if path.is_file():
                    files[str(path.relative_to(run.scratch))] = path.read_bytes()
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:bz2") as tar:
            for name, data in sorted(files.items()):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        data = raw.getvalue()
        slot = self.call(
            "user",
            "POST",
            "/api/jobs/sandbox",
            json={
                "checksum_algorithm": "sha256",
                "checksum": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "format": "tar.bz2",
            },
        ).json()
        if slot.get("url"):
            self.bare.post(
                slot["url"], data=slot["fields"], files={"file": ("out.tar.bz2", data)}
            ).raise_for_status()
        self.call(
            "pilot", "PATCH", f"/api/jobs/{run.job_id}/sandbox/output", json=slot["pfn"]
        ).raise_for_status()
        if code == 0:
            self.status(
                run.job_id,
                {
                    "Status": "Done",
                    "MinorStatus": "Execution Complete",
                    "ApplicationStatus": "exit code 0",
                    "Source": "JobWrapper",
                },
            )
        else:
            self.status(
                run.job_id,
                {
                    "Status": "Failed",
                    "MinorStatus": "Application Finished With Errors",
                    "ApplicationStatus": f"exit code {code}",
                    "Source": "JobWrapper",
                },
            )
        shutil.rmtree(run.scratch, ignore_errors=True)

    def cycle(self) -> None:
        waiting = self.search(
            [{"parameter": "Status", "operator": "eq", "value": "Received"}],
            ["JobID", "JobName"],
        )
        for row in waiting:
            job_id, name = str(row["JobID"]), str(row.get("JobName"))
            if job_id not in self.running and job_id not in self.ignored:
                self.start(job_id, name)
        if not self.running:
            return
        rows = self.search(
            [{"parameter": "JobID", "operator": "in", "values": [int(i) for i in self.running]}],
            ["JobID", "Status"],
        )
        states = {str(r["JobID"]): r["Status"] for r in rows}
        for job_id, run in list(self.running.items()):
            if states.get(job_id) in ("Killed", "Deleted", None):
                os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait()
                shutil.rmtree(run.scratch, ignore_errors=True)
                del self.running[job_id]
            elif run.proc.poll() is not None:
                del self.running[job_id]
                self.finish(run, run.proc.returncode)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    pilot = Pilot(os.environ["DIRACX_URL"], args.root)
    print(json.dumps({"pilot": "ready", "root": str(args.root)}), flush=True)
    while True:
        try:
            pilot.cycle()
        except (httpx.HTTPError, OSError, KeyError, ValueError) as exc:
            # the server restarts mid-test on purpose: keep playing
            print(f"pilot cycle failed: {exc!r}", file=sys.stderr, flush=True)
            time.sleep(1.0)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
