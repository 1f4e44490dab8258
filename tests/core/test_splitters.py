from __future__ import annotations

import pytest

from corral.errors import InvalidSpec
from corral.spec import parse_spec
from corral.splitters import split


def test_no_splitter_means_no_subjobs() -> None:
    assert split(parse_spec({"command": ["a"]})) == []


def test_argument_list_splitter_appends_each_list() -> None:
    spec = parse_spec(
        {
            "command": ["prog"],
            "arguments": ["-v"],
            "splitter": {"kind": "args", "args": [["1"], ["2", "3"]]},
        }
    )
    subs = split(spec)
    assert [s.arguments for s in subs] == [("-v", "1"), ("-v", "2", "3")]
    assert all(s.splitter is None for s in subs)


def test_sweep_is_a_cartesian_product_substituted_in_args_and_env() -> None:
    spec = parse_spec(
        {
            "command": ["fit", "--alpha={alpha}"],
            "arguments": ["{beta}", "{not_a_param}", "awk '{print $1}'"],
            "environment": {"TAG": "a{alpha}"},
            "splitter": {
                "kind": "sweep",
                "parameters": {"alpha": ["1", "2", "3"], "beta": ["x", "y"]},
            },
        }
    )
    subs = split(spec)
    assert len(subs) == 6
    first = subs[0]
    assert first.command == ("fit", "--alpha=1")
    assert first.arguments == ("x", "{not_a_param}", "awk '{print $1}'")
    assert first.environment == {"TAG": "a1", "ALPHA": "1", "BETA": "x"}
    points = {(s.environment["ALPHA"], s.environment["BETA"]) for s in subs}
    assert points == {(a, b) for a in "123" for b in "xy"}


def test_file_splitter_chunks_inputs() -> None:
    spec = parse_spec(
        {
            "command": ["cat"],
            "arguments": ["{files}"],
            "input_files": ["/d/a", "/d/b", "/d/c"],
            "splitter": {"kind": "files", "chunk": 2},
        }
    )
    subs = split(spec)
    assert [s.input_files for s in subs] == [("/d/a", "/d/b"), ("/d/c",)]
    assert subs[0].arguments == ("a", "b")
    assert subs[1].environment["CORRAL_INPUT_FILES"] == "c"


@pytest.mark.parametrize(
    "splitter",
    [
        {"kind": "sweep", "parameters": {}},
        {"kind": "sweep", "parameters": {"x": []}},
        {"kind": "args", "args": []},
        {"kind": "files", "chunk": 0},
        {"kind": "nope"},
    ],
)
def test_bad_splitters_are_rejected(splitter: dict[str, object]) -> None:
    with pytest.raises(InvalidSpec, match="splitter"):
        parse_spec({"command": ["a"], "input_files": ["/x"], "splitter": splitter})
