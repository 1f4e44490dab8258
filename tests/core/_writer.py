"""A writer process for the concurrency test: M read-modify-write transactions on the registry."""

import sys
from pathlib import Path

from corral.registry import Registry
from corral.spec import parse_spec

home, count, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
registry = Registry(home / "registry.db", home / "jobs")
spec = parse_spec({"command": ["true"], "tags": [tag]})
for _ in range(count):
    registry.add(spec, [])  # reads max(job_id), then inserts max+1: a read-modify-write
registry.close()
