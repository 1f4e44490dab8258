"""Record real HTCondor job ads for the parser tests (tests/condor/fixtures/ads.json).

Run as root with the pool of scripts/start-htcondor.sh up: submits an idle job (a requirement
no slot meets for a minute), holds it, a job that exits 3, one killed by a signal, a running job
vacated back to idle (kept there by a requirement no slot meets for a minute), and records
their ads (the projection the backend asks for) from the queue and the history."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import htcondor2  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from corral.backends.condor import observe, render  # noqa: E402

schedd = htcondor2.Schedd()
later = int(time.time()) + 60
jobs = {
    "idle": {"executable": "/bin/true", "requirements": f"time() > {later}"},
    "held_user": {"executable": "/bin/true", "requirements": f"time() > {later}"},
    "exit3": {"executable": "/bin/sh", "arguments": "-c 'exit 3'"},
    "signal9": {"executable": "/bin/sh", "arguments": "-c 'kill -9 $$'"},
    "vacated": {"executable": "/bin/sleep", "arguments": "300"},
}
clusters = {}
for name, desc in jobs.items():
    desc = {**desc, "initialdir": "/tmp", f"+{render.LABEL}": f'"record-{name}"'}
    clusters[name] = schedd.submit(htcondor2.Submit(desc)).cluster()
schedd.act(htcondor2.JobAction.Hold, f"ClusterId == {clusters['held_user']}", reason=("wait", 0))
time.sleep(25)
vacated = f"ClusterId == {clusters['vacated']}"
schedd.edit(vacated, "Requirements", f"time() > {int(time.time()) + 60}")  # (not back at once)
schedd.act(htcondor2.JobAction.Vacate, vacated)
for _ in range(60):
    if schedd.query(vacated, ["JobStatus"])[0].get("JobStatus") == observe.IDLE:
        break
    time.sleep(0.5)
ads = {}
for name, cluster in clusters.items():
    found = schedd.query(f"ClusterId == {cluster}", render.PROJECTION) or schedd.history(
        f"ClusterId == {cluster}", render.PROJECTION, match=1
    )
    ads[name] = observe.plain(found[0]) if found else None
schedd.act(htcondor2.JobAction.Remove, f"ClusterId >= {min(clusters.values())}", reason=("done", 0))
out = Path(__file__).resolve().parents[1] / "tests/condor/fixtures/ads.json"
out.write_text(json.dumps(ads, indent=1, sort_keys=True) + "\n")
print(out)
