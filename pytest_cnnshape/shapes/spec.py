"""Shape specs: one parser for every place a user writes a shape.

Markers, fixtures, ``[tool.cnnshape]``, the CLI and ``trace`` all accept the same
forms::

    (1, 3, 32, 32)        "1x3x32x32"        "1, 3, 32, 32"       torch.Size([1, 3, 32, 32])
    "B x 64 x H//8 x W//8"                     ("N", 3, "H", "W")
    "B x 10"   "* x 10"   "B x ... x 10"       (None, 10)

A dimension is an int, a name, integer arithmetic on names (``+ - * // %`` and
parentheses), ``*``/``?``/``None``/``-1`` (any one size, expected shapes only) or
``...`` (any number of sizes, expected shapes only). Names bind from a concrete
input by the conventional layout (B, C, L / B, C, H, W / B, C, D, H, W; ``N`` is
the batch too) or from the values a caller gives (``dims=``).

An input may name the dtype of the tensor it stands for after a colon:
``"8x50:long"``, ``"B x 50 : int64"``, ``"2x3x32x32:float16"`` (token ids,
class labels, masks). Only the string form carries one, so ``("B", 50,
"long")`` stays a shape of three sizes named B, 50 and long; expected outputs
take none.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import EllipsisType
from typing import Any, Literal

from ..errors import SizeLimitError, SpecError, unknown
from .tree import Shape

DimKind = Literal["int", "name", "expr", "any", "rest"]

ANY_TOKENS = frozenset({"*", "?", "_", "None", "none", "-1"})
REST_TOKENS = frozenset({"...", "…"})
EXAMPLE = "write it like '1x3x32x32', (1, 3, 32, 32) or 'B x 3 x H x W'"
DTYPE_EXAMPLE = "'8x50:long' (token ids, labels), '1x3x32x32:float16'"

#: dtype names an input spec may end with (``"8x50:long"``) -> torch's attribute name.
DTYPES: dict[str, str] = {
    **{
        name: name
        for name in (
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "int64",
            "int32",
            "int16",
            "int8",
            "uint8",
            "bool",
            "complex64",
            "complex128",
        )
    },
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
}

#: Names a concrete input's dimensions take, by rank (B and N both mean the batch).
CONVENTIONAL_NAMES: dict[int, tuple[str, ...]] = {
    1: ("L",),
    2: ("B", "F"),
    3: ("B", "C", "L"),
    4: ("B", "C", "H", "W"),
    5: ("B", "C", "D", "H", "W"),
}

_ALLOWED_OPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)


#: The most elements a tensor can have: torch counts them (and their bytes) in an int64.
MAX_ELEMENTS = 2**63 - 1


@dataclass(frozen=True)
class Dim:
    """One dimension of a spec, keeping the text the user wrote for messages."""

    text: str
    kind: DimKind
    value: int | None = None
    expr: ast.Expression | None = field(default=None, compare=False, repr=False)
    names: frozenset[str] = frozenset()

    def evaluate(self, bindings: Mapping[str, Any]) -> Any:
        """The size this dimension stands for under ``bindings`` (int/name/expr only); an int, or
        an integer tensor of sizes when the bindings are tensors (a whole grid of inputs)."""
        if self.kind == "int":
            assert self.value is not None
            return self.value
        if self.kind == "name":
            return bindings[self.text]
        assert self.expr is not None
        value = _eval(self.expr.body, bindings)
        return value if hasattr(value, "shape") else int(value)


@dataclass(frozen=True)
class DimCheck:
    """One dimension of a comparison between an expected spec and an actual shape."""

    index: int
    expected: str  # what the user wrote, e.g. "H//8"
    expected_value: int | None  # None for wildcards
    actual: int | None  # None when the actual shape has no such dimension
    ok: bool


@dataclass(frozen=True)
class ShapeSpec:
    """A parsed shape: concrete, symbolic or with wildcards."""

    dims: tuple[Dim, ...]
    text: str
    #: The dtype written after a colon (``"8x50:long"`` -> ``"int64"``), if any.
    dtype: str | None = None

    @property
    def names(self) -> frozenset[str]:
        """Every name the spec mentions."""
        out: set[str] = set()
        for d in self.dims:
            out |= d.names
        return frozenset(out)

    @property
    def is_concrete(self) -> bool:
        """True when every dimension is a plain int."""
        return all(d.kind == "int" for d in self.dims)

    @property
    def has_wildcards(self) -> bool:
        return any(d.kind in ("any", "rest") for d in self.dims)

    def __str__(self) -> str:
        dims = " x ".join(d.text for d in self.dims)
        return f"{dims}:{self.dtype}" if self.dtype else dims

    def resolve(
        self, bindings: Mapping[str, int], what: str = "shape"
    ) -> tuple[int | EllipsisType | None, ...]:
        """Sizes under ``bindings``; None for ``*``; a ``...`` stays as Ellipsis."""
        self._check_names(bindings, what)
        out: list[Any] = []
        for d in self.dims:
            if d.kind == "any":
                out.append(None)
            elif d.kind == "rest":
                out.append(...)
            else:
                out.append(d.evaluate(bindings))
        return tuple(out)

    def concrete(self, bindings: Mapping[str, int] | None = None, what: str = "input") -> Shape:
        """A concrete shape; names must be bound, wildcards are not allowed."""
        if self.has_wildcards:
            raise SpecError(
                f"{what} {self.text!r}: wildcards ('*', '...') only go in expected shapes; "
                f"an input needs every size, {EXAMPLE}"
            )
        sizes = self.resolve(bindings or {}, what)
        for d, size in zip(self.dims, sizes, strict=True):
            if not isinstance(size, int) or size <= 0:
                raise SpecError(
                    f"{what} {self.text!r}: dimension {d.text!r} comes out as {size}; "
                    "every size must be a positive integer"
                )
        shape = tuple(s for s in sizes if isinstance(s, int))
        if (count := math.prod(shape)) > MAX_ELEMENTS:
            raise SizeLimitError(
                f"{what} {self.text!r} has {count:.3g} elements, more than a tensor can hold "
                "(at most 2**63 - 1); use a smaller input"
            )
        return shape

    def bind(
        self, shape: Sequence[int], bindings: Mapping[str, int] | None = None, what: str = "input"
    ) -> dict[str, int]:
        """Bind the spec's bare names from a concrete ``shape``; a conflict is an error."""
        out = dict(bindings or {})
        if len(shape) != len(self.dims) and not self.has_wildcards:
            raise SpecError(
                f"{what} {self.text!r} has {len(self.dims)} dimensions but the shape "
                f"{list(shape)} has {len(shape)}"
            )
        for d, size in zip(self.dims, shape, strict=False):
            if d.kind == "name":
                if d.text in out and out[d.text] != size:
                    raise SpecError(
                        f"{what} {self.text!r}: {d.text} is bound to both {out[d.text]} "
                        f"and {size}; use two names if the sizes may differ"
                    )
                out[d.text] = int(size)
        for d, size in zip(self.dims, shape, strict=False):
            if d.kind in ("int", "expr") and d.evaluate(out) != size:
                raise SpecError(
                    f"{what} {self.text!r}: {d.text} = {d.evaluate(out)} but the shape "
                    f"{list(shape)} has {size} there"
                )
        return out

    def compare(
        self, actual: Sequence[int], bindings: Mapping[str, int], what: str = "expected output"
    ) -> list[DimCheck]:
        """Dimension-by-dimension comparison of ``actual`` with this spec."""
        expected = self.resolve(bindings, what)
        if ... in expected:
            return self._compare_with_rest(expected, actual)
        checks = []
        for i in range(max(len(expected), len(actual))):
            exp = expected[i] if i < len(expected) else None
            assert exp is not ...
            text = self.dims[i].text if i < len(self.dims) else "(none)"
            act = actual[i] if i < len(actual) else None
            in_both = i < len(expected) and i < len(actual)
            ok = in_both and (exp is None or exp == act)
            checks.append(DimCheck(i, text, exp, act, ok))
        return checks

    def matches(self, actual: Sequence[int], bindings: Mapping[str, int]) -> bool:
        """True when ``actual`` fits the spec."""
        return all(c.ok for c in self.compare(actual, bindings))

    def _compare_with_rest(self, expected: tuple[Any, ...], actual: Sequence[int]) -> list[DimCheck]:
        cut = expected.index(...)
        head, tail = expected[:cut], expected[cut + 1 :]
        fits = len(actual) >= len(head) + len(tail)
        checks = []
        for i, exp in enumerate(head):
            act = actual[i] if i < len(actual) else None
            ok = fits and (exp is None or exp == act)
            checks.append(DimCheck(i, self.dims[i].text, exp, act, ok))
        for j, exp in enumerate(tail):
            i = len(actual) - len(tail) + j
            act = actual[i] if 0 <= i < len(actual) else None
            ok = fits and (exp is None or exp == act)
            checks.append(DimCheck(i, self.dims[cut + 1 + j].text, exp, act, ok))
        return checks

    def _check_names(self, bindings: Mapping[str, int], what: str) -> None:
        missing = sorted(self.names - set(bindings))
        if missing:
            known = ", ".join(sorted(bindings)) or "none"
            raise SpecError(
                f"{what} {self.text!r} uses {', '.join(missing)}, which nothing defines "
                f"(defined: {known}); name input dimensions in the input spec, e.g. "
                "'N x 3 x H x W', or give their values with dims={...}"
            )


def _eval(node: ast.expr, bindings: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        assert isinstance(node.value, int)  # _check_expr allows int constants only
        return node.value
    if isinstance(node, ast.Name):
        return bindings[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, bindings)
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, bindings), _eval(node.right, bindings)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(b, int) and b == 0:  # (sizes may also be integer tensors: a whole grid at once)
            raise SpecError(f"division by zero in a shape expression ({ast.unparse(node)})")
        if isinstance(node.op, ast.FloorDiv):
            return a // b
        return a % b
    raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check_expr rejects these


def _check_expr(node: ast.AST, text: str, what: str) -> set[str]:
    """Validate an arithmetic expression; return the names it uses."""
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Constant):
            if type(sub.value) is not int:
                raise SpecError(f"{what}: {text!r} has the non-integer {sub.value!r}; {EXAMPLE}")
        elif isinstance(sub, ast.BinOp):
            if isinstance(sub.op, ast.Div):
                raise SpecError(f"{what}: {text!r} uses '/'; shapes are integers, write '//'")
            if not isinstance(sub.op, _ALLOWED_OPS):
                raise SpecError(f"{what}: {text!r} may only use + - * // % and parentheses")
        elif isinstance(sub, ast.UnaryOp):
            if not isinstance(sub.op, ast.USub):
                raise SpecError(f"{what}: {text!r} may only use + - * // % and parentheses")
        elif not isinstance(sub, (ast.Expression, ast.operator, ast.unaryop, ast.Load)):
            raise SpecError(f"{what}: {text!r} is not a size; {EXAMPLE}")
    return names


def parse_dim(token: Any, what: str = "shape") -> Dim:  # noqa: C901  (one branch per token form a user may write)
    """One dimension from an int, None, Ellipsis or a string token."""
    if token is None:
        return Dim("*", "any")
    if token is ...:
        return Dim("...", "rest")
    if isinstance(token, bool):
        raise SpecError(f"{what}: {token!r} is not a size; {EXAMPLE}")
    if isinstance(token, int) or (hasattr(token, "__index__") and not isinstance(token, str)):
        value = int(token)
        if value == -1:
            return Dim("*", "any")
        return Dim(str(value), "int", value)
    if not isinstance(token, str):
        raise SpecError(f"{what}: {token!r} ({type(token).__name__}) is not a size; {EXAMPLE}")
    text = token.strip()
    if not text:
        raise SpecError(f"{what}: an empty dimension; {EXAMPLE}")
    if text in ANY_TOKENS:
        return Dim("*", "any")
    if text in REST_TOKENS:
        return Dim("...", "rest")
    if re.fullmatch(r"[+-]?\d+", text):
        return parse_dim(int(text), what)
    if text.isidentifier():
        return Dim(text, "name", names=frozenset({text}))
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise SpecError(f"{what}: cannot read {text!r} as a size; {EXAMPLE}") from None
    names = _check_expr(tree, text, what)
    return Dim(text, "expr", expr=tree, names=frozenset(names))


def split_shape_text(text: str) -> list[str]:
    """Split '1x3x32x32', 'B x 3 x H x W', '1, 3, 32, 32' or '(1, 3, 32, 32)' into tokens."""
    body = text.strip()
    if len(body) >= 2 and body[0] + body[-1] in ("()", "[]"):
        body = body[1:-1]
    if "," in body:
        return [t for t in (p.strip() for p in body.split(",")) if t] or [""]
    if re.search(r"\s[x×]\s", body):
        return [p.strip() for p in re.split(r"\s+[x×]\s+", body)]
    if re.search(r"\s", body.strip()) and not re.search(r"[-+*/%()]", body):
        return body.split()
    return [p.strip() for p in re.split(r"[x×]", body)]


def parse_shape(value: Any, what: str = "shape") -> ShapeSpec:
    """Parse one shape from a string, a tuple/list of sizes or a torch.Size."""
    if isinstance(value, ShapeSpec):
        return value
    dtype = None
    if isinstance(value, str):
        if not value.strip():
            raise SpecError(f"{what}: the empty shape {value!r} has no dimensions; {EXAMPLE}")
        body, dtype = split_dtype(value, what)
        tokens: Sequence[Any] = split_shape_text(body)
        text = value.strip()
    elif isinstance(value, (tuple, list)):
        tokens, text = value, "(" + ", ".join(_token_text(v) for v in value) + ")"
    else:
        raise SpecError(f"{what}: {value!r} ({type(value).__name__}) is not a shape; {EXAMPLE}")
    if not tokens:
        raise SpecError(f"{what}: the empty shape {value!r} has no dimensions; {EXAMPLE}")
    dims = tuple(parse_dim(t, what) for t in tokens)
    if sum(d.kind == "rest" for d in dims) > 1:
        raise SpecError(f"{what} {text!r}: only one '...' per shape")
    for d in dims:
        if d.kind == "int" and d.value is not None and d.value <= 0:
            raise SpecError(
                f"{what} {text!r}: size {d.value} is not positive; every dimension of a "
                f"shape is at least 1 ({EXAMPLE})"
            )
    return ShapeSpec(dims, text, dtype)


def split_dtype(text: str, what: str = "input") -> tuple[str, str | None]:
    """``"8x50:long"`` -> ``("8x50", "int64")``; a text without a colon has no dtype."""
    body, colon, name = text.rpartition(":")
    if not colon:
        return text, None
    key = name.strip().lower().removeprefix("torch.")
    if key not in DTYPES:
        raise SpecError(
            f"{what} {text.strip()!r}: "
            + unknown(name.strip(), sorted(DTYPES), noun="dtype")
            + f"; write it like {DTYPE_EXAMPLE}"
        )
    if not body.strip():
        raise SpecError(f"{what} {text.strip()!r}: no shape before the dtype; write it like {DTYPE_EXAMPLE}")
    return body, DTYPES[key]


def is_shape_text(value: Any) -> bool:
    """A string written as a shape; an enum member that is also a str is a value, not a shape."""
    return isinstance(value, str) and not isinstance(value, Enum)


def is_tensor_like(value: Any) -> bool:
    """A tensor (or anything with a shape, a dtype and a device): data, never a size."""
    return hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "device")


def _token_text(v: Any) -> str:
    if v is None:
        return "None"
    if v is ...:
        return "..."
    return str(v)


def looks_like_shape(value: Any) -> bool:
    """True for one shape (string or flat sequence of sizes), False for a structure.

    Tensors and enum members are values even though a one-element tensor has
    ``__index__``: a list of tensors is a batch (``[img, meta]``), never a shape.
    """
    if is_shape_text(value):
        return True
    if isinstance(value, (tuple, list)):
        return all(_size_like(v) for v in value) and not any(
            isinstance(v, str) and len(split_shape_text(v)) > 1 for v in value
        )
    return False


def _size_like(v: Any) -> bool:
    if v is None or v is ...:
        return True
    if isinstance(v, Enum) or is_tensor_like(v):
        return False
    return isinstance(v, (int, str)) or hasattr(v, "__index__")


def conventional_bindings(shape: Sequence[int]) -> dict[str, int]:
    """Names for a concrete input's dimensions by the usual layout (B is also N)."""
    names = CONVENTIONAL_NAMES.get(len(shape), ())
    out = {n: int(s) for n, s in zip(names, shape, strict=False)}
    if "B" in out:
        out["N"] = out["B"]
    return out


def parse_concrete_shape(value: Any, what: str = "input") -> Shape:
    """A concrete shape (no names, no wildcards); what ``trace`` takes."""
    return parse_concrete_input(value, what)[0]


def parse_concrete_input(value: Any, what: str = "input") -> tuple[Shape, str | None]:
    """A concrete shape and the dtype written with it (``"8x50:long"``), if any."""
    spec = parse_shape(value, what)
    if spec.names:
        raise SpecError(
            f"{what} {spec.text!r}: {', '.join(sorted(spec.names))} is not a size; a traced "
            "input needs numbers, e.g. '1x3x32x32' (symbolic shapes like 'N x 3 x H x W' go "
            "in contracts, with dims={...})"
        )
    return spec.concrete({}, what), spec.dtype
