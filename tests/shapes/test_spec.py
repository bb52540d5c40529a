"""The one shape-spec parser: forms, symbols, wildcards and errors."""

from __future__ import annotations

import pytest

from pytest_cnnshape.errors import SpecError
from pytest_cnnshape.shapes.spec import conventional_bindings, parse_shape


@pytest.mark.parametrize(
    ("text", "dims"),
    [
        ("1x3x32x32", ["1", "3", "32", "32"]),
        ("1 x 3 x 32 x 32", ["1", "3", "32", "32"]),
        ("1×3×32×32", ["1", "3", "32", "32"]),
        ("B x 64 x H//8 x W//8", ["B", "64", "H//8", "W//8"]),
        ("BxCxHxW", ["B", "C", "H", "W"]),
        ("(N, 3, H, W)", ["N", "3", "H", "W"]),
        ("* x 10", ["*", "10"]),
        ("B x ... x 10", ["B", "...", "10"]),
        ("B x (H + 2) * 2", ["B", "(H + 2) * 2"]),
    ],
)
def test_string_forms(text: str, dims: list[str]) -> None:
    assert [d.text for d in parse_shape(text).dims] == dims


def test_tuple_forms_with_wildcards() -> None:
    spec = parse_shape(("N", 3, None, -1, ...))
    assert [d.kind for d in spec.dims] == ["name", "int", "any", "any", "rest"]


def test_conventional_bindings_by_rank() -> None:
    assert conventional_bindings((2, 3, 32, 30)) == {"B": 2, "N": 2, "C": 3, "H": 32, "W": 30}
    assert conventional_bindings((2, 3, 100)) == {"B": 2, "N": 2, "C": 3, "L": 100}
    assert conventional_bindings((2, 3, 4, 5, 6))["D"] == 4


def test_resolve_compare_and_rest() -> None:
    b = conventional_bindings((2, 3, 64, 48))
    spec = parse_shape("B x 64 x H//8 x W//8")
    assert spec.resolve(b) == (2, 64, 8, 6)
    assert spec.matches((2, 64, 8, 6), b)
    assert not spec.matches((2, 64, 8, 7), b)
    rest = parse_shape("B x ... x 10")
    assert rest.matches((2, 10), b) and rest.matches((2, 5, 5, 10), b)
    assert not rest.matches((3, 10), b)


def test_binding_conflicts_and_undefined_names_are_clear() -> None:
    with pytest.raises(SpecError, match="H is bound to both 32 and 31"):
        parse_shape("N x 3 x H x H").bind((1, 3, 32, 31))
    with pytest.raises(SpecError, match=r"uses K, which nothing defines \(defined: B, C, H, N, W\)"):
        parse_shape("B x K").resolve(conventional_bindings((1, 3, 8, 8)))


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("H/2", "write '//'"),
        ("2**H", "may only use"),
        ("f(H)", "not a size"),
        ("1x0", "not positive"),
        ("... x ...", "only one '...'"),
        (3.0, "not a shape"),
        ("1 x 2.5", "non-integer"),
    ],
)
def test_bad_specs(bad: object, words: str) -> None:
    with pytest.raises(SpecError, match=words.replace("(", r"\(").replace("*", r"\*")):
        parse_shape(bad)
