"""Issue 10: every input is checked where it enters (the spec model, ids, selections, settings,
the API), with a one-line ``CorralError`` naming the field. Pure tests, no processes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from corral import admit
from corral.config import Settings, load_settings
from corral.errors import ConfigError, CorralError, InvalidInput, InvalidSpec, WaitTimeout
from corral.records import JobId
from corral.selection import Selection
from corral.spec import JobSpec, load_spec, parse_spec, read_stored_spec
from corral.splitters import iter_split, range_values


def spec(**fields: Any) -> dict[str, Any]:
    return {"command": ["echo"], **fields}


def refused(data: Any, *words: str) -> str:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(data)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def sweep(**parameters: list[str]) -> dict[str, Any]:
    return {"kind": "sweep", "parameters": parameters}


# ------------------------------------------------------------------ text
@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"command": ["echo", "a\x00b"]}, "command.1"),  # sh would drop the NUL: echox
        ({"command": ["echo", "\udcff"]}, "command.1"),  # a non-UTF-8 argv byte
        ({"arguments": ["\x00"]}, "arguments.0"),
        ({"environment": {"A": "x\x00"}}, "environment.A"),
        ({"name": "a\udc80"}, "name"),
        ({"tags": ["t\udc80"]}, "tags.0"),
        ({"input_files": ["/tmp/a\x00"]}, "input_files.0"),
        ({"outputs": ["o\x00"]}, "outputs.0"),
        ({"setup": ["echo \x00"]}, "setup.0"),
        ({"working_dir": "/tmp/\x00"}, "working_dir"),
        ({"backend_options": {"k": "v\x00"}}, "backend_options.k"),
        ({"backend_options": {"k\x00": "v"}}, "backend_options"),
        ({"backend_options": {"k": ["a", "\udcff"]}}, "backend_options.k"),
        ({"splitter": sweep(x=["1", "\x00"])}, "splitter.sweep.parameters.x.1"),
        ({"splitter": {"kind": "args", "args": [["\x00"]]}}, "splitter.args"),
    ],
)
def test_text_is_utf8_without_nul(fields: dict[str, Any], where: str) -> None:
    refused(spec(**fields), where)


def test_script_text_is_checked() -> None:
    refused({"script": "echo \x00"}, "script", "NUL")
    refused({"script": ""}, "script")


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize(
    ("resources", "where"),
    [
        ({"walltime": True}, "walltime"),  # was taken as 1 s
        ({"cpus": True}, "cpus"),
        ({"memory_mb": False}, "memory_mb"),
        ({"cpus": 0}, "cpus"),
        ({"cpus": 100_001}, "cpus"),
        ({"memory_mb": 1024**3 + 1}, "memory_mb"),
        ({"memory_mb": "2P"}, "memory_mb"),
        ({"memory_mb": "9" * 400}, "memory_mb"),  # float('9'*400) is inf
        ({"memory_mb": math.nan}, "memory_mb"),
        ({"walltime": 366 * 86400}, "walltime"),
        ({"walltime": "400d"}, "walltime"),
        ({"walltime": "9" * 5000 + "s"}, "walltime"),
        ({"walltime": "\u0661h"}, "walltime"),  # an Arabic-Indic digit
        ({"walltime": math.inf}, "walltime"),
    ],
)
def test_resources_in_sane_bounds(resources: dict[str, Any], where: str) -> None:
    refused(spec(resources=resources), f"resources.{where}")


def test_bounds_accept_their_limits() -> None:
    limits = {"cpus": 100_000, "memory_mb": "1P", "walltime": "365d"}
    assert parse_spec(spec(resources=limits)).resources.memory_mb == 1024**3


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, {"a": 1}, [1], None]
)
def test_backend_option_values(value: Any) -> None:
    # `-O x=nan` was stored as null and then failed validation on every read
    refused(spec(backend_options={"x": value}), "backend_options.x")


def test_booleans_are_not_counts() -> None:
    refused(spec(max_attempts=True), "max_attempts")
    refused(spec(splitter={"kind": "files", "chunk": True}, input_files=["/a"]), "chunk")


# ------------------------------------------------------------------ commands, outputs, tags
def test_command_and_outputs_not_empty() -> None:
    refused(spec(command=[""]), "command")
    refused(spec(command=["  "]), "command")
    refused(spec(command=[]), "command")
    refused(spec(outputs=[""]), "outputs.0")
    assert parse_spec(spec(command=["echo", ""])).command == ("echo", "")  # an empty argument


@pytest.mark.parametrize("tag", ["a,b", "a\nb", "\x1b[2J", "x\x7f", "", "\x85"])
def test_tags_without_separators_or_controls(tag: str) -> None:
    refused(spec(tags=[tag]), "tags.0")


def test_long_input_file_name() -> None:
    refused(spec(input_files=["/tmp/" + "a" * 300]), "input_files.0", "255")
    refused(spec(input_files=["/" + "a/" * 2100]), "input_files.0", "4095")


# ------------------------------------------------------------------ sweeps
@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"a": ["1"], "A": ["2"]}, "both export $A"),
        ({"path": ["1"]}, "$PATH"),
        ({"home": ["1"]}, "$HOME"),
        ({"Shell": ["1"]}, "$SHELL"),
        ({"ld_preload": ["1"]}, "$LD_PRELOAD"),
        ({"corral_x": ["1"]}, "$CORRAL_X"),
        ({"SLURM_JOB_ID": ["1"]}, "$SLURM_JOB_ID"),
        ({"tmpdir": ["1"]}, "$TMPDIR"),
        ({"x": []}, "no values"),
        ({"x": [""]}, "non-empty"),
        ({"x": ["1", "2", "1"]}, "'1' is given twice"),
        ({}, "at least one parameter"),
    ],
)
def test_sweep_parameters(parameters: dict[str, list[str]], words: str) -> None:
    refused(spec(splitter=sweep(**parameters)), words)


def test_sweep_parameter_never_replaces_environment() -> None:
    refused(spec(environment={"SEED": "1"}, splitter=sweep(seed=["2"])), "SEED")


def test_json_duplicate_keys_refused(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"command": ["echo"], "name": "a", "name": "b"}')
    with pytest.raises(InvalidSpec, match="'name' is given twice"):
        load_spec(path)
    path.write_text('{"command": ["echo"], "environment": {"A": "1", "A": "2"}}')
    with pytest.raises(InvalidSpec, match="given twice"):
        load_spec(path)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("job.json", b'{"command": ["echo", "\xff"]}', "not UTF-8"),
        ("job.toml", b'command = ["echo", "\xff"]', "not UTF-8"),
        ("job.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("job.toml", b"x = " + b"[" * 100_000 + b"]" * 100_000, "not valid toml"),
        ("job.json", b'{"command": ["echo"], "resources": {"cpus": NaN}}', "NaN"),
        ("job.toml", b'command = ["echo"]\ncommand = ["ls"]\n', "not valid toml"),
    ],
)
def test_job_file_problems(tmp_path: Path, name: str, content: bytes, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidSpec, match=words):
        load_spec(path)


def test_parse_spec_of_junk() -> None:
    for junk in (None, 5, "command", ["echo"]):
        refused(junk, "expected a mapping")


# ------------------------------------------------------------------ the subjob cap
def big_sweep(points: int) -> JobSpec:
    return parse_spec(spec(splitter=sweep(a=[str(i) for i in range(points)])))


def test_cap_refused_before_memory_is_spent(settings: Settings) -> None:
    huge = parse_spec(
        spec(splitter=sweep(a=[str(i) for i in range(1000)], b=[str(i) for i in range(1000)]))
    )
    assert huge.subjob_count == 10**6
    started = time.monotonic()
    with pytest.raises(InvalidSpec, match=r"1,000,000 subjobs, more than max_subjobs \(50,000\)"):
        admit.check_size(settings, huge)
    assert time.monotonic() - started < 0.5


def test_range_refused_before_it_is_made() -> None:
    with pytest.raises(InvalidInput, match="more than max_subjobs"):
        range_values(0, 10**20, 1, 50_000)
    assert list(range_values(0, 10, 5, 3)) == [0, 5, 10]
    with pytest.raises(InvalidInput, match="a range goes up"):
        range_values(5, 1, 1, 10)


def test_cap_size_sweep_is_checked_without_making_subjobs(settings: Settings) -> None:
    # (the speed itself is measured in bench/validate_sweep.py, not asserted here)
    job = big_sweep(settings.max_subjobs)
    admit.check_submit(settings, job)
    first = next(iter_split(job))
    assert first.environment == {"A": "0"}


def test_max_subjobs_setting(home: Path) -> None:
    assert load_settings(env={"CORRAL_HOME": str(home)}).max_subjobs == 50_000
    env = {"CORRAL_HOME": str(home), "CORRAL_MAX_SUBJOBS": "10"}
    assert load_settings(env=env).max_subjobs == 10
    with pytest.raises(ConfigError, match="max_subjobs"):
        load_settings(overrides={"max_subjobs": 0}, env={"CORRAL_HOME": str(home)})


def test_environment_keys_we_set_are_refused(settings: Settings) -> None:
    for key in ("CORRAL_HOME", "SLURM_JOB_ID", "corral_x"):
        with pytest.raises(InvalidSpec, match="environment"):
            admit.check_submit(settings, parse_spec(spec(environment={key: "1"})))


def test_missing_input_refused(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="no such file"):
        admit.check_submit(settings, parse_spec(spec(input_files=[str(tmp_path / "nope")])))


def test_unknown_local_job_option_refused(settings: Settings) -> None:
    with pytest.raises(InvalidSpec, match=r"backend_options\.partition: unknown option"):
        admit.check_submit(settings, parse_spec(spec(backend_options={"partition": "x"})))


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"idle_exit": math.nan}, "idle_exit"),
        ({"idle_exit": math.inf}, "idle_exit"),
        ({"idle_exit": 1e300}, "idle_exit"),
        ({"flush_window": -1}, "flush_window"),
        ({"finalisers": 10**9}, "finalisers"),
        ({"backends.local.min_interval": math.nan}, "min_interval"),
        ({"work_dir": "/tmp/\x00"}, "work_dir"),
    ],
)
def test_settings_values(home: Path, overrides: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(overrides=overrides, env={"CORRAL_HOME": str(home)})


def test_home_pointing_at_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="home: expected a directory"):
        load_settings(overrides={"home": tmp_path / "file"}, env={})


def test_env_values_checked(home: Path) -> None:
    env = {"CORRAL_HOME": str(home), "CORRAL_IDLE_EXIT": "nan"}
    with pytest.raises(ConfigError, match="idle_exit"):
        load_settings(env=env)


def test_backend_section_values_checked(home: Path) -> None:
    from corral import backends

    for value in (math.nan, "a\x00"):
        settings = load_settings(
            overrides={"backends.local.kill_grace": value}, env={"CORRAL_HOME": str(home)}
        )
        with pytest.raises(ConfigError, match="kill_grace"):
            backends.check_settings(settings)


# ------------------------------------------------------------------ ids and selections
@pytest.mark.parametrize(
    "text",
    [
        "\u0661",
        "²",
        "1.\u0661",
        str(2**63),
        str(2**70),
        "9" * 5000,
        "-1",
        "+1",
        "1_0",
        "",
        ".",
        "1.",
        "a",
    ],
)
def test_job_id_parse(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a job id"):
        JobId.parse(text)


def test_job_id_range() -> None:
    assert JobId.parse(str(2**63 - 1)) == JobId(2**63 - 1)
    assert JobId.parse(" 42.3 ") == JobId(42, 3)


@pytest.mark.parametrize("value", [2**70, -1, 1.5, None, True, b"1", [1], JobId(2**64)])
def test_job_id_of(value: Any) -> None:
    with pytest.raises(InvalidInput):
        JobId.of(value)


@pytest.mark.parametrize(
    "fields",
    [
        {"states": ("bogus",)},
        {"states": "failed"},
        {"ids": (2**70,)},
        {"ids": ("x",)},
        {"tags": ("\x00",)},
        {"names": (1,)},
        {"older_than": math.nan},
        {"newer_than": -1},
        {"older_than": "1d"},
    ],
)
def test_selection_checked(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Selection(**fields)


def test_selection_takes_state_names() -> None:
    assert Selection(states=["failed"]).states[0].value == "failed"  # type: ignore[arg-type]


# ------------------------------------------------------------------ stored specs
def test_stored_spec_that_no_longer_validates() -> None:
    stored = json.dumps({"command": ["echo"], "backend": "sim", "backend_options": {"x": None}})
    placeholder, problem = read_stored_spec(stored)
    assert problem.startswith("stored invalid job spec: backend_options.x")
    assert placeholder.backend == "sim"  # a kill still reaches the right backend
    assert read_stored_spec("not json")[1].startswith("stored invalid job spec")
    good = JobSpec(command=("echo",))
    assert read_stored_spec(good.to_json()) == (good, "")


def test_wait_timeout_is_both() -> None:
    assert issubclass(WaitTimeout, CorralError)
    assert issubclass(WaitTimeout, TimeoutError)
