"""Record DiracX 0.7's real answers into tests/dirac/fixtures/ (the parsers' unit tests read them).

Run against a server of scripts/diracx-local.sh with corral's venv:
    source $WORK/env.sh && .venv/bin/python scripts/record-dirac-fixtures.py
It submits a few jobs (JobGroup ``fixture...``), walks them through DIRAC's states with a pilot
token, and saves each answer as {"status", "content_range", "body"}.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

OUT = Path(__file__).resolve().parent.parent / "tests" / "dirac" / "fixtures"
URL = os.environ["DIRACX_URL"]
KEY = os.environ["DIRACX_LEGACY_EXCHANGE_KEY_B64"]
http = httpx.Client(base_url=URL, timeout=60)


def token(group: str) -> str:
    response = http.get(
        "/api/auth/legacy-exchange",
        params={"preferred_username": "ciuser", "scope": f"vo:testvo group:{group}"},
        headers={"Authorization": f"Bearer diracx:legacy:{KEY}"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


USER, PILOT = token("user"), token("pilot")


def save(name: str, response: httpx.Response) -> Any:
    record = {
        "status": response.status_code,
        "content_range": response.headers.get("content-range"),
        "body": response.json(),
    }
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record["body"]


def call(tok: str, method: str, route: str, **kw: Any) -> httpx.Response:
    return http.request(method, route, headers={"Authorization": f"Bearer {tok}"}, **kw)


def walk(job: int, *states: tuple[str, str, str]) -> None:
    now = datetime.now(UTC)
    body = {
        str(job): {
            (now + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"): {
                "Status": s,
                "MinorStatus": m,
                **({"ApplicationStatus": a} if a else {}),
                "Source": "Recorder",
            }
            for i, (s, m, a) in enumerate(states)
        }
    }
    call(PILOT, "PATCH", "/api/jobs/status", json=body).raise_for_status()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    group = uuid.uuid4().hex
    jdls = [
        f'JobName = "corral-fixture-{i}";\nJobGroup = "{group}";\nExecutable = "/bin/true";\n'
        for i in range(7)
    ]
    ids = [j["JobID"] for j in save("submit", call(USER, "POST", "/api/jobs/jdl", json=jdls))]
    queued = ("Checking", "JobSanity", ""), ("Waiting", "Pilot Agent Submission", "")
    matched = (*queued, ("Matched", "Assigned", ""))
    running = (*matched, ("Running", "Application", "Running payload"))
    walk(ids[1], *running)
    walk(ids[2], *running, ("Done", "Execution Complete", "exit code 0"))
    walk(ids[3], *running, ("Failed", "Application Finished With Errors", "exit code 3"))
    walk(ids[4], *running, ("Stalled", "Job stalled: pilot not running", ""))
    walk(ids[5], *running, ("Completed", "Uploading Output Sandbox", ""))
    kill = {
        str(ids[6]): {
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"): {
                "Status": "Killed",
                "MinorStatus": "Marked as killed",
                "Source": "corral",
            }
        }
    }
    save("kill", call(USER, "PATCH", "/api/jobs/status", json=kill))
    unknown = {**kill, "99999999": next(iter(kill.values()))}
    save("kill-unknown-id", call(USER, "PATCH", "/api/jobs/status", json=unknown))
    columns = ["JobID", "Status", "MinorStatus", "ApplicationStatus", "LastUpdateTime"]
    by_id = [{"parameter": "JobID", "operator": "in", "values": ids}]
    body = {"parameters": columns, "search": by_id}
    save("search", call(USER, "POST", "/api/jobs/search", json=body, params={"per_page": 100}))
    page = call(USER, "POST", "/api/jobs/search", json=body, params={"per_page": 3})
    save("search-page-1", page)
    save(
        "search-page-3",
        call(USER, "POST", "/api/jobs/search", json=body, params={"per_page": 3, "page": 3}),
    )
    names = [f"corral-fixture-{i}" for i in (0, 2, 5)] + ["corral-not-there"]
    reconcile = {
        "parameters": ["JobID", "JobName", "JobGroup", "Status"],
        "search": [
            {"parameter": "JobGroup", "operator": "eq", "value": group},
            {"parameter": "JobName", "operator": "in", "values": names},
        ],
    }
    save("reconcile", call(USER, "POST", "/api/jobs/search", json=reconcile))
    print(f"recorded {len(list(OUT.glob('*.json')))} fixtures in {OUT} (jobs {ids})")


if __name__ == "__main__":
    main()
