"""The failing inputs of a contract's domain in words: exact, or not said at all.

Each description is read back by a decoder written here, independently of the
wording code, and must give exactly the failing set it describes.
"""

from __future__ import annotations

import re

import torch
from hypothesis import given
from hypothesis import strategies as st

from pytest_cnnshape.contracts.failing_words import failing_in_words


def grid(**sides: list[int]) -> dict[str, torch.Tensor]:
    axes = torch.meshgrid(*(torch.tensor(v) for v in sides.values()), indexing="ij")
    return {name: axis.reshape(-1) for name, axis in zip(sides, axes, strict=True)}


def decode(phrase: str, value: int) -> bool:
    """Whether ``value`` is in the set ``phrase`` (one name's description) says."""
    if m := re.fullmatch(r"not a multiple of (\d+)", phrase):
        return value % int(m[1]) != 0
    if m := re.fullmatch(r"a multiple of (\d+)", phrase):
        return value % int(m[1]) == 0
    if m := re.fullmatch(r"outside (\d+) to (\d+)", phrase):
        return not int(m[1]) <= value <= int(m[2])
    if m := re.fullmatch(r"other than (\d+)", phrase):
        return value != int(m[1])
    if phrase.startswith("one of "):
        listed = phrase.removeprefix("one of ")
        assert "…" not in listed, "a description cut short cannot be read back"
        return value in {int(v) for v in listed.split(", ")}
    hit = False
    for part in phrase.split(" or "):
        if m := re.fullmatch(r"= (\d+)", part):
            hit |= value == int(m[1])
        elif m := re.fullmatch(r"from (\d+) to (\d+)", part):
            hit |= int(m[1]) <= value <= int(m[2])
        else:
            raise AssertionError(f"unreadable: {phrase!r}")
    return hit


def test_sizes_failing_on_either_side_are_said_once_for_both() -> None:
    values = grid(H=list(range(3, 25)), W=list(range(3, 25)))
    failing = (values["H"] % 4 != 0) | (values["W"] % 4 != 0)
    assert failing_in_words(values, failing) == "H or W not a multiple of 4"


def test_sides_tied_to_one_size_are_named_together() -> None:
    side = torch.arange(8, 65)
    values = {"B": torch.ones_like(side), "H": side, "W": side}
    assert failing_in_words(values, side % 2 == 1) == "H = W not a multiple of 2"
    assert failing_in_words(values, side < 20) == "H = W from 8 to 19"


def test_different_conditions_per_name_are_joined_by_or() -> None:
    values = grid(H=list(range(1, 33)), W=list(range(1, 33)))
    failing = (values["H"] % 8 != 0) | (values["W"] < 5)
    assert failing_in_words(values, failing) == "H not a multiple of 8 or W from 1 to 4"


def test_a_set_no_name_describes_alone_is_not_said() -> None:
    values = grid(H=list(range(1, 17)), W=list(range(1, 17)))
    assert failing_in_words(values, values["H"] == values["W"]) == ""
    assert failing_in_words(values, (values["H"] < 4) & (values["W"] < 4)) == ""


def test_nothing_failing_and_everything_failing() -> None:
    values = grid(H=list(range(1, 5)))
    assert failing_in_words(values, torch.zeros(4, dtype=torch.bool)) == ""
    assert failing_in_words(values, torch.ones(4, dtype=torch.bool)) == "every input of its domain"


@given(
    st.lists(st.integers(1, 80), min_size=2, max_size=40, unique=True).flatmap(
        lambda d: st.tuples(st.just(sorted(d)), st.lists(st.sampled_from(sorted(d)), unique=True))
    )
)
def test_a_description_reads_back_as_exactly_the_failing_sizes(case: tuple[list[int], list[int]]) -> None:
    domain, bad = case
    values = {"L": torch.tensor(domain)}
    failing = torch.isin(values["L"], torch.tensor(bad, dtype=torch.int64))
    words = failing_in_words(values, failing)
    if not bad:
        assert words == ""
    elif len(bad) == len(domain):
        assert words == "every input of its domain"
    else:
        assert words.startswith("L ")
        phrase = words.removeprefix("L ")
        if "…" not in phrase:
            assert [v for v in domain if decode(phrase, v)] == sorted(bad)
        else:
            first = ", ".join(str(v) for v in sorted(bad)[:5])
            assert phrase == f"one of {first}, … ({len(bad)} sizes)"
