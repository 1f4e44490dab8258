from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.errors import InvalidSpec
from corral.spec import JobSpec, load_spec, parse_spec, spec_from_json


def test_minimal_command_spec_defaults() -> None:
    spec = parse_spec({"command": ["echo", "hi"]})
    assert spec.command == ("echo", "hi")
    assert spec.backend == "local"
    assert spec.resources.cpus == 1
    assert spec.max_attempts == 1


def test_spec_is_immutable() -> None:
    spec = parse_spec({"command": ["true"]})
    with pytest.raises(Exception, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "field", "bad"),
    [
        ({"command": ["x"], "resources": {"cpus": 0}}, "resources.cpus", "0"),
        ({"command": ["x"], "resources": {"memory_mb": "lots"}}, "resources.memory_mb", "'lots'"),
        ({"command": ["x"], "resources": {"walltime": "1:xx"}}, "resources.walltime", "'1:xx'"),
        ({"command": ["x"], "max_attempts": -1}, "max_attempts", "-1"),
        ({"command": ["x"], "backend": "No Such"}, "backend", "'No Such'"),
        ({"command": ["x"], "colour": "red"}, "colour", "'red'"),
        ({"command": ["x"], "environment": {"1BAD": "v"}}, "environment.1BAD", ""),
    ],
)
def test_bad_spec_names_field_and_value(data: dict[str, object], field: str, bad: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(data)
    message = str(info.value)
    assert field in message
    assert bad in message
    assert "\n" not in message


def test_command_xor_script() -> None:
    with pytest.raises(InvalidSpec, match="exactly one of 'command'"):
        parse_spec({"command": ["a"], "script": "echo"})
    with pytest.raises(InvalidSpec, match="exactly one of 'command'"):
        parse_spec({"name": "x"})


def test_output_patterns_must_stay_inside_the_job_dir() -> None:
    with pytest.raises(InvalidSpec, match="relative to the job dir"):
        parse_spec({"command": ["a"], "outputs": ["../etc/passwd"]})


@pytest.mark.parametrize(
    ("text", "mb"), [("512M", 512), ("2G", 2048), ("1.5G", 1536), (300, 300), ("1024K", 1)]
)
def test_memory_units(text: object, mb: int) -> None:
    assert (
        parse_spec({"command": ["a"], "resources": {"memory_mb": text}}).resources.memory_mb == mb
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1:30", 90), ("1:00:00", 3600), ("2-00:00:01", 172801), ("30m", 1800), (5, 5)],
)
def test_walltime_formats(text: object, seconds: int) -> None:
    spec = parse_spec({"command": ["a"], "resources": {"walltime": text}})
    assert spec.resources.walltime == seconds


def test_json_round_trip_keeps_everything() -> None:
    spec = parse_spec(
        {
            "name": "sweep",
            "command": ["python", "fit.py"],
            "arguments": ["--x", "{x}"],
            "environment": {"MODE": "fast"},
            "outputs": ["*.csv"],
            "setup": ["module load python"],
            "resources": {"cpus": 2, "memory_mb": "1G", "walltime": "10m"},
            "tags": ["a", "b"],
            "max_attempts": 3,
            "splitter": {"kind": "sweep", "parameters": {"x": ["1", "2"]}},
        }
    )
    assert spec_from_json(spec.to_json()) == spec


def test_load_toml_and_json(tmp_path: Path) -> None:
    toml_file = tmp_path / "job.toml"
    toml_file.write_text('name = "t"\ncommand = ["echo", "x"]\n[resources]\ncpus = 2\n')
    assert load_spec(toml_file).resources.cpus == 2
    json_file = tmp_path / "job.json"
    json_file.write_text(json.dumps({"script": "echo hi"}))
    assert load_spec(json_file).script == "echo hi"


def test_load_errors_are_invalid_spec(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="cannot read job file"):
        load_spec(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ")
    with pytest.raises(InvalidSpec, match="not valid toml"):
        load_spec(broken)


def test_jobspec_constructor_is_the_same_model() -> None:
    assert JobSpec(command=("a",)) == parse_spec({"command": ["a"]})
