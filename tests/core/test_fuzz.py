"""Issue 10: random specs, ids and selections through the parsers and the sync API.

Every failure must be a ``CorralError`` (never a TypeError, OverflowError, ...), every spec that
is accepted must read back from its stored JSON unchanged, and a refused call must leave the
registry exactly as it was. Derandomised (the same examples on every run, no example database),
so CI is repeatable; at least 1,000 examples per target.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral import Session, Settings, admit
from corral.errors import CorralError
from corral.records import JobId
from corral.selection import Selection
from corral.spec import JobSpec, parse_spec, read_stored_spec
from tests.dbdump import dump

EXAMPLES = 1000
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Text with what breaks things: NUL, controls, lone surrogates (non-UTF-8 argv bytes), commas,
# other scripts' digits; mostly short.
CHARS = st.characters(codec=None, categories=None) | st.sampled_from(
    ["\x00", "\n", "\x1b", ",", "\udcff", "\u0661", "{", "}", "a", "A", "_", "0", "/", "."]
)
TEXT = st.text(CHARS, max_size=12)
NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True) | TEXT
NUMBER = (
    st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from([math.nan, math.inf, 0, 1, 2**63, 10**20, 1e300])
)
SCALAR = st.none() | st.booleans() | NUMBER | TEXT | st.binary(max_size=6)
JUNK = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
TEXTS = st.lists(TEXT, max_size=4)
SIZES = st.sampled_from(["512M", "2G", "1P", "2P", "9" * 30 + "T", "", "lots", "1.5G", "0"])
TIMES = st.sampled_from(["90m", "1:30:00", "400d", "2-00:00:00", "\u0661h", "-1", "99:99"])
RESOURCES = st.fixed_dictionaries(
    {},
    optional={
        "cpus": NUMBER | st.booleans() | TEXT,
        "memory_mb": NUMBER | SIZES | st.booleans(),
        "walltime": NUMBER | TIMES | st.booleans(),
        "gpus": JUNK,
    },
)
SWEEP = st.fixed_dictionaries(
    {"kind": st.just("sweep"), "parameters": st.dictionaries(NAME, TEXTS, max_size=3)}
)
ARGS = st.fixed_dictionaries({"kind": st.just("args"), "args": st.lists(TEXTS, max_size=3)})
FILES = st.fixed_dictionaries({"kind": st.just("files")}, optional={"chunk": NUMBER | JUNK})
FIELDS = {
    "name": TEXT | JUNK,
    "command": st.lists(TEXT, min_size=1, max_size=3) | JUNK,
    "script": TEXT | JUNK,
    "arguments": TEXTS | JUNK,
    "environment": st.dictionaries(NAME, TEXT, max_size=3) | JUNK,
    "working_dir": TEXT | JUNK,
    "input_files": TEXTS | JUNK,
    "outputs": TEXTS | JUNK,
    "setup": TEXTS | JUNK,
    "resources": RESOURCES | JUNK,
    "max_attempts": NUMBER | JUNK,
    "tags": TEXTS | JUNK,
    "backend": st.sampled_from(["local", "sim", "slurm", "nope", "Bad", ""]) | JUNK,
    "backend_options": st.dictionaries(TEXT, JUNK, max_size=3),
    "splitter": SWEEP | ARGS | FILES | JUNK,
}
SPECS = (
    st.fixed_dictionaries(
        {"command": st.just(["echo"])}, optional={k: v for k, v in FIELDS.items() if k != "command"}
    )
    | st.fixed_dictionaries({}, optional={**FIELDS, "junk": JUNK})
    | JUNK
)
IDS = (
    st.integers(min_value=-5, max_value=2**70)
    | TEXT
    | st.from_regex(r"[0-9]{1,25}(\.[0-9]{1,25})?", fullmatch=True)
    | SCALAR
    | st.builds(JobId, st.integers(min_value=-(2**65), max_value=2**65))
)
STATES = st.sampled_from(["new", "running", "failed", "bogus", ""]) | TEXT | JUNK
SELECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "ids": st.lists(IDS, max_size=3).map(tuple) | JUNK,
        "states": st.lists(STATES, max_size=3).map(tuple) | JUNK,
        "names": st.lists(TEXT, max_size=2).map(tuple) | JUNK,
        "tags": st.lists(TEXT, max_size=2).map(tuple) | JUNK,
        "backends": st.lists(TEXT, max_size=2).map(tuple) | JUNK,
        "older_than": NUMBER | JUNK,
        "newer_than": NUMBER | JUNK,
    },
)


def corral_error_or_result(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, CorralError | None]:
    try:
        return call(*args, **kwargs), None
    except CorralError as exc:
        assert "\n" not in str(exc), str(exc)  # one line
        return None, exc


# ------------------------------------------------------------------ pure targets
@FUZZ
@given(SPECS)
def test_parse_spec(data: Any) -> None:
    spec, _ = corral_error_or_result(parse_spec, data)
    if spec is not None:
        assert read_stored_spec(spec.to_json()) == (spec, "")  # stored specs always read back


@FUZZ
@given(IDS)
def test_job_ids(value: Any) -> None:
    job_id, _ = corral_error_or_result(JobId.of, value)
    if job_id is not None:
        assert JobId.parse(str(job_id)) == job_id
    if isinstance(value, str):
        corral_error_or_result(JobId.parse, value)


@FUZZ
@given(SELECTIONS)
def test_selections(fields: dict[str, Any]) -> None:
    corral_error_or_result(Selection, **fields)


# ------------------------------------------------------------------ the sync API
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Session, Settings]]:
    from corral import load_settings

    home = tmp_path_factory.mktemp("fuzz-home")
    config = load_settings(overrides={"autostart": False}, env={"CORRAL_HOME": str(home)})
    with Session(config, monitor="off") as sess:
        sess.submit({"command": ["true"], "tags": ["seed"]})  # something to get, kill, wait
        yield sess, config


CALLS = st.one_of(
    st.tuples(st.just("submit"), SPECS),
    st.tuples(st.just("get"), IDS),
    st.tuples(st.just("kill"), IDS | st.lists(IDS, max_size=3) | SELECTIONS),
    st.tuples(st.just("wait"), IDS | st.lists(IDS, max_size=2), NUMBER | st.none() | JUNK),
    st.tuples(st.just("select"), SELECTIONS),
    st.tuples(st.just("peek"), IDS, NUMBER | JUNK),
)


@FUZZ
@given(CALLS)
def test_session_api(api: tuple[Session, Settings], call: tuple[Any, ...]) -> None:
    sess, config = api
    verb, target, *rest = call
    before = dump(config.registry)
    if verb == "submit":
        result, error = corral_error_or_result(sess.submit, target)
        if error is None:  # (then check_submit passed: the same checks as a dry run)
            assert isinstance(result, JobId)
            admit.check_submit(config, sess.get(result).spec)
    elif verb == "kill" and isinstance(target, dict):
        selection, error = corral_error_or_result(Selection, **target)
        if selection is not None:
            _, error = corral_error_or_result(sess.kill, selection)
    elif verb == "select":
        _, error = corral_error_or_result(sess.select, states=target.get("states", ()))
    elif verb == "peek":
        _, error = corral_error_or_result(sess.peek, target, lines=rest[0])
    elif verb == "wait":
        # (monitor="off": nothing drives the jobs, so this refuses or reports MonitorUnavailable)
        _, error = corral_error_or_result(sess.wait, target, timeout=rest[0])
    else:
        _, error = corral_error_or_result(getattr(sess, verb), target)
    if error is not None:
        assert dump(config.registry) == before, f"{verb} refused ({error}) but changed the registry"


def test_examples_per_target() -> None:
    assert EXAMPLES >= 1000
    assert JobSpec  # (the module imports the models it fuzzes)
