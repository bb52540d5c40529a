"""Snapshots of real traces: the file format, and diffs that say what happened."""

from __future__ import annotations

import json

import pytest
from torch import nn

from pytest_cnnshape import trace
from pytest_cnnshape.baseline import serializer
from pytest_cnnshape.baseline.diff import compare
from pytest_cnnshape.baseline.render import changed, shown_rows
from pytest_cnnshape.baseline.snapshot import Snapshot


def snap(model: nn.Module, inputs: str = "1x3x16x16", output_only: bool = False) -> Snapshot:
    return Snapshot.from_trace(
        trace(model, inputs).to_dict(), model="net", input=inputs, output_only=output_only
    )


def net(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), *layers, nn.Flatten(), nn.LazyLinear(10))


class Block(nn.Module):
    def __init__(self, attribute: str = "conv", channels: int = 8) -> None:
        super().__init__()
        setattr(self, attribute, nn.Conv2d(3, channels, 3, padding=1))
        self.attribute = attribute
        self.act = nn.ReLU()

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.act(getattr(self, self.attribute)(x))


def marks(old: Snapshot, new: Snapshot) -> list[tuple[str, str, str]]:
    """(mark, old name, new name) of each row that differs."""
    return [
        (r.mark, r.old.name if r.old else "", r.new.name if r.new else "") for r in compare(old, new).changes
    ]


def test_file_is_sorted_one_layer_per_line_and_round_trips() -> None:
    snapshot = snap(Block())
    text = serializer.dumps(snapshot)
    lines = text.splitlines()
    assert lines[4] == (
        '    {"call": 0, "name": "", "output": [1, 8, 16, 16], "params": 224, "type": "Block"},'
    )
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["schema"] == "pytest-cnnshape/baseline" and data["version"] == 1
    assert serializer.loads(text) == snapshot
    assert serializer.dumps(serializer.loads(text)) == text
    # any layout and key order with the same values is the same baseline
    assert serializer.loads(json.dumps(data, indent=1, sort_keys=False)) == snapshot


def test_only_what_is_documented_is_compared() -> None:
    model = net()
    base = snap(model)
    # device, dtype, train mode and batch-independent details never enter the snapshot
    on_cpu = Snapshot.from_trace(
        trace(model, "1x3x16x16", device="cpu", train=True).to_dict(), model="net", input="1x3x16x16"
    )
    assert on_cpu == base
    assert set(json.loads(serializer.dumps(base))) == {
        "compare",
        "input",
        "layers",
        "model",
        "output",
        "schema",
        "total_params",
        "trainable_params",
        "version",
    }
    rows = json.loads(serializer.dumps(base))["layers"]
    assert set(rows[1]) == {"call", "name", "output", "params", "type"}  # the Conv2d
    # a row holding an uninitialised LazyLinear counts what it will have, and says so
    assert rows[0]["lazy"] is True and rows[-1] == {
        "call": 0,
        "name": "3",
        "output": [1, 10],
        "params": 8 * 14 * 14 * 10 + 10,
        "type": "LazyLinear",
        "lazy": True,
    }
    frozen = net()
    frozen[0].requires_grad_(False)
    assert compare(snap(net()), snap(frozen)).changes == []  # rows equal...
    assert snap(net()) != snap(frozen)  # ...but the trainable total differs


def test_a_changed_layer_is_a_changed_row() -> None:
    diff = compare(snap(Block(channels=8)), snap(Block(channels=16)))
    assert [(r.mark, r.old.name if r.old else None) for r in diff.changes] == [
        ("~", ""),
        ("~", "conv"),
        ("~", "act"),
    ]
    assert diff.counts() == {"changed": 3, "renamed": 0, "added": 0, "removed": 0}


def test_a_renamed_attribute_reads_as_a_rename() -> None:
    assert marks(snap(Block("conv")), snap(Block("stem"))) == [("~", "conv", "stem")]
    headline, text = changed(compare(snap(Block("conv")), snap(Block("stem"))), "f.json", "t.py::t")
    assert headline == "shape baseline changed for net (1x3x16x16): 1 layer renamed"
    assert "~   conv -> stem  Conv2d  1x8x16x16            1x8x16x16" in text


def test_an_inserted_layer_shifts_sequential_names_as_renames() -> None:
    old, new = snap(net()), snap(net(nn.Dropout()))
    assert marks(old, new) == [("+", "", "2"), ("~", "2", "3"), ("~", "3", "4")]
    assert marks(new, old) == [("-", "2", ""), ("~", "3", "2"), ("~", "4", "3")]
    diff = compare(old, new)
    assert diff.counts() == {"changed": 0, "renamed": 2, "added": 1, "removed": 0}


def test_a_replaced_layer_is_a_new_type_on_the_same_row() -> None:
    rows = compare(snap(net(nn.MaxPool2d(2))), snap(net(nn.AvgPool2d(2)))).changes
    assert [(r.mark, r.old.type if r.old else "", r.new.type if r.new else "") for r in rows] == [
        ("~", "MaxPool2d", "AvgPool2d")
    ]


def test_the_diff_shows_changed_rows_with_a_row_of_context() -> None:
    layers = [nn.Conv2d(3, 3, 1) for _ in range(8)]
    wider = [*layers[:4], nn.Conv2d(3, 3, 1, bias=False), *layers[5:]]
    rows = shown_rows(compare(snap(nn.Sequential(*layers)), snap(nn.Sequential(*wider))).rows)
    assert [(r[0], r[1]) for r in rows] == [
        ("~", "(root)"),
        (" ", "0"),
        ("", "..."),
        (" ", "3"),
        ("~", "4"),
        (" ", "5"),
    ]


def test_output_only_snapshots_compare_output_and_totals() -> None:
    old = snap(Block(), output_only=True)
    assert old.layers is None and json.loads(serializer.dumps(old))["compare"] == "output"
    assert snap(Block("stem"), output_only=True) == old
    diff = compare(old, snap(Block(channels=4), output_only=True))
    assert diff.rows == () and diff.output_changed
    headline, text = changed(diff, "f.json", "t.py::t")
    assert headline == (
        "shape baseline changed for net (1x3x16x16): output 1x8x16x16 -> 1x4x16x16; params -112"
    )
    assert "params: 224 -> 112 (-112)    trainable: 224 -> 112 (-112)" in text
    mode = compare(old, snap(Block()))
    assert mode.mode_changed
    assert (
        "the baseline compares only the output and totals; the test now asks for every layer"
        in changed(mode, "f.json", "t.py::t")[1]
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"schema": "pytest-cnnshape/baseline", "version": 1}', "has no 'compare': the file is incomplete"),
        ('{"schema": "pytest-cnnshape/baseline", "version": 0}', 'has "version": 0, which no*'),
        ('{"schema": "pytest-cnnshape/baseline", "version": 1, "compare": "all"}', "has \"compare\": 'all'*"),
        ("[1, 2]", "is not a pytest-cnnshape baseline*"),
    ],
)
def test_bad_structure_is_named(text: str, problem: str) -> None:
    with pytest.raises(serializer.BaselineFileError) as info:
        serializer.loads(text)
    from fnmatch import fnmatchcase

    assert fnmatchcase(str(info.value), problem), str(info.value)


def test_a_bad_layer_row_is_named() -> None:
    data = json.loads(serializer.dumps(snap(Block())))
    del data["layers"][2]["type"]
    with pytest.raises(serializer.BaselineFileError, match=r"has no 'type' in layers\[2\]"):
        serializer.from_data(data)
