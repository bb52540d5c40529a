"""Sizes as formulas: torch's symbolic sizes written in the spec syntax users read.

torch's symbolic shapes keep a size as a sympy expression over its own symbols
(``16*((s36//16))``). Here it becomes text in the user's names and in the syntax
``shapes.spec`` parses (``+ - * // %`` and parentheses): ``16*(H//16)``; and
simplified under what the input domain knows of each name: with H a multiple of
16 (H = 16k), ``16*(H//16)`` is 16k, which reads ``H``.

The same expressions compile to plain Python functions of the named sizes that
take ints or integer tensors alike (a domain is checked on a whole grid of sizes
at once). Anything the spec syntax cannot write (a ``max``, a size scaled by a
float that is no exact binary fraction) raises ``Unwritable``; no sympy text
ever reaches a user.

Imported only by a symbolic trace: it imports sympy and torch's sympy functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy
import torch
from torch.utils._sympy import functions as tf

#: A compiled formula: the named sizes (ints or int64 tensors) -> its value (or truth).
Evaluator = Callable[[Mapping[str, Any]], Any]


class Unwritable(Exception):
    """An expression the spec syntax has no words for; the message says what it is."""


@dataclass(frozen=True)
class Residue:
    """What a domain knows of one name: every value it allows is ``r`` modulo ``m``."""

    modulus: int
    residue: int


# -- writing -------------------------------------------------------------------------------

_FLOOR_DIVS = (tf.FloorDiv, tf.CleanDiv)
_MODS = (sympy.Mod, tf.PythonMod, tf.Mod)


def _exact_fraction(value: sympy.Expr) -> Fraction | None:
    """A float or rational coefficient as an exact fraction with a small denominator."""
    if isinstance(value, (sympy.Integer, sympy.Rational)):
        return Fraction(int(value.p), int(value.q))
    if isinstance(value, sympy.Float):
        exact = Fraction(float(value))
        return exact if exact.denominator <= 1024 else None
    return None


def _atomic(text: str) -> bool:
    return text.isidentifier() or text.isdigit()


def _wrap(text: str) -> str:
    return text if _atomic(text) else f"({text})"


class Writer:
    """Writes sympy size expressions over torch's symbols in the user's names."""

    def __init__(self, names: Mapping[sympy.Symbol, str]) -> None:
        self.names = dict(names)

    def __call__(self, expr: Any) -> str:
        if isinstance(expr, int):
            return str(expr)
        return self._write(sympy.sympify(expr))

    def _write(self, e: sympy.Expr) -> str:  # noqa: C901  (one branch per kind of node)
        if isinstance(e, sympy.Integer):
            return str(int(e))
        if isinstance(e, sympy.Symbol):
            name = self.names.get(e)
            if name is None:
                raise Unwritable(f"a size the input does not name ({e})")
            return str(name)
        if isinstance(e, sympy.Add):
            return self._add(e)
        if isinstance(e, sympy.Mul):
            return self._mul(e)
        if isinstance(e, _FLOOR_DIVS):
            return self._division(e.args[0], e.args[1], "//")
        if isinstance(e, _MODS):
            return self._division(e.args[0], e.args[1], " % ")
        if isinstance(e, tf.CeilDiv):
            a, b = e.args
            return self._division(a + b - 1, b, "//")
        if isinstance(e, sympy.Pow) and isinstance(e.exp, sympy.Integer) and 1 < int(e.exp) <= 4:
            return "*".join([_wrap(self._write(e.base))] * int(e.exp))
        if (
            isinstance(e, tf.PowByNatural)
            and isinstance(e.args[1], sympy.Integer)
            and 1 < int(e.args[1]) <= 4
        ):
            return "*".join([_wrap(self._write(e.args[0]))] * int(e.args[1]))
        if isinstance(e, (tf.TruncToInt, tf.FloorToInt)):
            return self._write(_scaled(e.args[0]))
        if isinstance(e, tf.Identity):
            return self._write(e.args[0])
        raise Unwritable(_describe(e))

    def _division(self, a: sympy.Expr, b: sympy.Expr, op: str) -> str:
        left = self._write(a)
        right = self._write(b)
        if not _atomic(left):
            left = f"({left})"
        return f"{left}{op}{_wrap(right)}"

    def _add(self, e: sympy.Expr) -> str:
        constant, terms = e.as_coeff_add()
        ordered = sorted(terms, key=_term_order)
        parts: list[str] = []
        for term in ordered:
            coeff, _ = term.as_coeff_Mul()
            negative = bool(coeff < 0)
            text = self._write(-term if negative else term)
            if not parts:
                parts.append(f"-{_wrap(text)}" if negative else text)
            else:
                parts.append(f" - {text}" if negative else f" + {text}")
        if constant != 0:
            value = int(constant) if constant.is_integer else None
            if value is None:
                raise Unwritable(f"a fractional size ({constant})")
            parts.append(f" - {-value}" if value < 0 else f" + {value}" if parts else str(value))
        return "".join(parts)

    def _mul(self, e: sympy.Expr) -> str:
        coeff, rest = e.as_coeff_mul()
        factors = [f for f in rest if not (isinstance(f, sympy.Float) and f == 1)]
        fraction = _exact_fraction(coeff)
        if fraction is None:
            raise Unwritable(f"a size scaled by {float(coeff):g}")
        texts = []
        for factor in factors:
            text = self._write(factor)
            if not _atomic(text):
                text = f"({text})"
            texts.append(text)
        body = "*".join(texts)
        if fraction.denominator != 1:
            top = body if fraction.numerator == 1 else f"{fraction.numerator}*{body}"
            return f"{_wrap(top) if not _single(top) else top}//{fraction.denominator}"
        if fraction.numerator == 1:
            return body
        if fraction.numerator == -1:
            return f"-{body}"
        return f"{fraction.numerator}*{body}"


def _single(text: str) -> bool:
    """``H`` or ``2*H``: a product a floor division may follow without parentheses."""
    return all(_atomic(part) for part in text.split("*"))


def _term_order(term: sympy.Expr) -> tuple[int, str]:
    """Terms with more factors first, then by their text: ``H*W + H + 3``."""
    return (-len(term.free_symbols), str(term))


def _scaled(value: sympy.Expr) -> sympy.Expr:
    """``2.0*ToFloat(H)`` (an upsampling's size) as an integer expression, when exact.

    ``floor(p/q * x)`` is ``(p*x)//q`` for an exact fraction p/q.
    """
    coeff, rest = value.as_coeff_Mul()
    inner = rest
    if isinstance(inner, tf.ToFloat):
        inner = inner.args[0]
    elif isinstance(inner, tf.FloatTrueDiv) and isinstance(inner.args[0], tf.ToFloat):
        divisor = _exact_fraction(inner.args[1])
        if divisor is None or divisor == 0:
            raise Unwritable("a size divided by a float")
        coeff = coeff / sympy.Rational(divisor.numerator, divisor.denominator)
        inner = inner.args[0].args[0]
    else:
        raise Unwritable(_describe(value))
    fraction = _exact_fraction(sympy.sympify(coeff))
    if fraction is None:
        raise Unwritable(f"a size scaled by {float(coeff):g}, which is no exact fraction")
    return tf.FloorDiv(fraction.numerator * inner, fraction.denominator)


def _describe(e: sympy.Expr) -> str:
    """What an unwritable node is, in words (never sympy's own text)."""
    kind = type(e).__name__
    words = {
        "Max": "the larger of two sizes (max)",
        "Min": "the smaller of two sizes (min)",
        "FloatTrueDiv": "a size divided as a float",
        "ToFloat": "a size used as a float",
        "RoundToInt": "a rounded size",
        "CeilToInt": "a size rounded up from a float",
        "Where": "a size chosen by a condition",
    }
    return words.get(kind, f"an operation on sizes the spec syntax has no words for ({kind})")


# -- simplifying under the domain ----------------------------------------------------------


def under_domain(expr: Any, residues: Mapping[sympy.Symbol, Residue]) -> Any:
    """``expr`` simplified with what the domain knows: each name ``r`` modulo ``m``.

    Substitutes ``s = m*k + r`` (k a fresh non-negative integer), lets torch's
    floor division simplify, and puts ``s`` back: ``16*(s//16)`` becomes ``s``
    when s is a multiple of 16. Returns ``expr`` unchanged when nothing is known.
    """
    if isinstance(expr, int) or not isinstance(expr, sympy.Expr):
        return expr
    known = {s: r for s, r in residues.items() if r.modulus > 1 and s in expr.free_symbols}
    if not known:
        return expr
    fresh = {s: sympy.Symbol(f"_k_{s}", integer=True, nonnegative=True) for s in known}
    forward = {s: known[s].modulus * k + known[s].residue for s, k in fresh.items()}
    back = {k: (s - known[s].residue) / known[s].modulus for s, k in fresh.items()}
    try:
        result = _reduce(expr.xreplace(forward)).xreplace(back)
    except (TypeError, ValueError, ZeroDivisionError):  # pragma: no cover  (sympy refusing a form)
        return expr
    if result.atoms(sympy.Symbol) - set(expr.free_symbols):
        return expr
    return result


def _reduce(e: sympy.Expr) -> sympy.Expr:
    """Floor divisions and remainders of ``c*k + d`` by ``b`` where b divides c, exactly."""
    if not e.args:
        return e
    args = [_reduce(a) for a in e.args]
    if isinstance(e, (*_FLOOR_DIVS, *_MODS)):
        a, b = args
        if isinstance(b, sympy.Integer) and int(b) > 0:
            step, rest = _split_multiple(sympy.expand(a), int(b))
            if step is not None:
                if isinstance(e, _MODS):
                    return type(e)(rest, b) if rest != 0 else sympy.Integer(0)
                return step / int(b) + (tf.FloorDiv(rest, b) if rest != 0 else 0)
    return e.func(*args)


def _split_multiple(a: sympy.Expr, b: int) -> tuple[sympy.Expr | None, sympy.Expr]:
    """``a`` as ``M + rest`` where every term of M has a coefficient divisible by b."""
    multiple, rest = sympy.Integer(0), sympy.Integer(0)
    for term in sympy.Add.make_args(a):
        coeff, _ = term.as_coeff_Mul()
        if coeff.is_Integer and int(coeff) % b == 0:
            multiple += term
        else:
            rest += term
    if multiple == 0:
        return None, a
    if rest.is_Integer and 0 <= int(rest) < b:
        return multiple, rest
    if rest.free_symbols:
        return None, a
    quotient, remainder = divmod(int(rest), b)
    return multiple + quotient * b, sympy.Integer(remainder)


def tidy(expr: Any) -> Any:
    """Floor divisions merged with what is added around them: ``(H//2 - 1)//2 + 1`` is
    ``(H + 2)//4``, ``(H - 1)//2 + 1`` is ``(H + 1)//2`` (exact for every integer H)."""
    if isinstance(expr, int) or not isinstance(expr, sympy.Basic) or not expr.args:
        return expr
    e = expr.func(*[tidy(a) for a in expr.args])
    if isinstance(e, tf.FloorDiv) and isinstance(e.args[1], sympy.Integer) and int(e.args[1]) > 0:
        merged = _floor_plus_constant(e.args[0])
        if merged is not None:
            inner, add = merged
            x, m = inner.args
            return tf.FloorDiv(x + add * m, m * e.args[1])
    if isinstance(e, sympy.Add):
        scaled = _scaled_floor_plus_constant(e)
        if scaled is not None:
            k, inner, add = scaled
            x, m = inner.args
            return k * tf.FloorDiv(x + add * m, m)
    return e


def _floor_plus_constant(e: sympy.Expr) -> tuple[sympy.Expr, sympy.Integer] | None:
    """``x//m + c`` (one floor division by a positive number, plus an integer) as its parts."""
    scaled = _scaled_floor_plus_constant(e)
    if scaled is None or scaled[0] != 1:
        return None
    return scaled[1], scaled[2]


def _scaled_floor_plus_constant(e: sympy.Expr) -> tuple[int, sympy.Expr, int] | None:
    """``k*(x//m) + c`` with c a multiple of k (``8*((H - 3)//2) + 8``) as k, ``x//m`` and c/k."""
    constant, rest = e.as_coeff_Add()
    if not constant.is_Integer:
        return None
    k, inner = rest.as_coeff_Mul() if not isinstance(rest, tf.FloorDiv) else (sympy.Integer(1), rest)
    if not isinstance(inner, tf.FloorDiv) or not k.is_Integer or int(k) == 0 or int(constant) % int(k):
        return None
    divisor = inner.args[1]
    if not isinstance(divisor, sympy.Integer) or int(divisor) <= 0:
        return None
    return int(k), inner, int(constant) // int(k)


def factored(expr: Any) -> Any:
    """``expr`` with its common factors taken out: ``16*(H//4 - 2)*(W//4 - 2)``."""
    if isinstance(expr, int) or not isinstance(expr, sympy.Expr) or not expr.free_symbols:
        return expr
    atoms = {a: sympy.Dummy(f"a{i}") for i, a in enumerate(expr.atoms(*_FLOOR_DIVS, *_MODS))}
    try:
        return sympy.factor(expr.xreplace(atoms)).xreplace({v: k for k, v in atoms.items()})
    except (TypeError, ValueError):  # pragma: no cover  (sympy refusing a form)
        return expr


def shortest(writer: Writer, *candidates: Any) -> str:
    """The shortest text among equivalent forms of one size (the first that can be written)."""
    texts = []
    error: Unwritable | None = None
    for candidate in candidates:
        try:
            texts.append(writer(candidate))
        except Unwritable as exc:
            error = error or exc
    if not texts:
        assert error is not None
        raise error
    return min(texts, key=len)


# -- relations in words --------------------------------------------------------------------


def normalised(relation: sympy.Basic, positive: frozenset[sympy.Symbol] = frozenset()) -> sympy.Basic:
    """A relation with its common factors divided out, as a user would write it.

    ``Eq(8*(H//32)*(W//32), 392)`` becomes ``(H//32)*(W//32) = 49``;
    ``(16*(H//4) - 32)*(W//4 - 2) >= 0`` becomes ``(H//4 - 2)*(W//4 - 2) >= 0``;
    ``3*B*H*W = 48*B*(H//4)*(W//4)`` becomes ``H*W = 16*(H//4)*(W//4)`` (B, a size,
    is positive: it cancels). ``W <= H`` stays as it is.
    """
    if not isinstance(relation, sympy.core.relational.Relational):
        return relation
    lhs, rhs = relation.lhs, relation.rhs
    kind = type(relation)
    if lhs.is_Integer and not rhs.is_Integer:
        lhs, rhs = rhs, lhs
        kind = _MIRRORED.get(kind, kind)
    if lhs.is_Integer:
        return relation
    if not rhs.is_Integer:
        return _cancelled(relation, kind, lhs - rhs, positive)
    atoms = {a: sympy.Dummy(f"a{i}") for i, a in enumerate(lhs.atoms(*_FLOOR_DIVS, *_MODS))}
    factored = sympy.factor(lhs.xreplace(atoms)).xreplace({v: k for k, v in atoms.items()})
    content, primitive = factored.as_content_primitive()
    if not content.is_Rational or content <= 0:
        return relation
    scaled = rhs / content
    if not scaled.is_Integer:
        if kind in (sympy.Eq, sympy.Ne):
            return relation  # never holds (or always): said as it is
        rounded = {
            sympy.Ge: sympy.ceiling,
            sympy.Lt: sympy.ceiling,
            sympy.Gt: sympy.floor,
            sympy.Le: sympy.floor,
        }
        scaled = rounded[kind](scaled)
    try:
        return kind(primitive, scaled, evaluate=False)
    except TypeError:  # pragma: no cover
        return relation


def _cancelled(
    relation: sympy.Basic, kind: type, difference: sympy.Expr, positive: frozenset[sympy.Symbol]
) -> sympy.Basic:
    """``lhs - rhs`` compared with 0, positive factors (sizes, numbers) divided out, its terms
    back on two sides; the relation as it was when nothing cancels."""
    atoms = {a: sympy.Dummy(f"a{i}") for i, a in enumerate(difference.atoms(*_FLOOR_DIVS, *_MODS))}
    factored = sympy.factor(difference.xreplace(atoms))
    kept, dropped = [], False
    for factor in sympy.Mul.make_args(factored):
        if (factor.is_Number and factor > 0) or factor in positive:
            dropped = True
        else:
            kept.append(factor)
    if not dropped or not kept:
        return relation
    rest = sympy.expand(sympy.Mul(*kept)).xreplace({v: k for k, v in atoms.items()})
    left = sympy.Add(*[t for t in sympy.Add.make_args(rest) if not t.could_extract_minus_sign()])
    right = -sympy.Add(*[t for t in sympy.Add.make_args(rest) if t.could_extract_minus_sign()])
    try:
        return kind(left, right, evaluate=False)
    except TypeError:  # pragma: no cover
        return relation


_MIRRORED: dict[type, type] = {sympy.Ge: sympy.Le, sympy.Le: sympy.Ge, sympy.Gt: sympy.Lt, sympy.Lt: sympy.Gt}


def write_relation(relation: sympy.Basic, writer: Writer) -> str:
    """A condition on sizes in words: ``H//32*(W//32) = 49``, ``W <= H``, ``H//4 a multiple of 7``."""
    if isinstance(relation, sympy.And):
        return " and ".join(write_relation(a, writer) for a in relation.args)
    if isinstance(relation, sympy.Or):
        return " or ".join(f"({write_relation(a, writer)})" for a in relation.args)
    if isinstance(relation, sympy.Not):
        return "not " + _wrap_words(write_relation(relation.args[0], writer))
    relation = normalised(relation)
    if isinstance(relation, (sympy.Eq, sympy.Ne)):
        lhs, rhs = relation.lhs, relation.rhs
        if isinstance(lhs, _MODS) and rhs == 0:
            verb = "a multiple of" if isinstance(relation, sympy.Eq) else "not a multiple of"
            return f"{writer(lhs.args[0])} {verb} {writer(lhs.args[1])}"
        sign = "=" if isinstance(relation, sympy.Eq) else "!="
        return f"{writer(lhs)} {sign} {writer(rhs)}"
    signs = {sympy.Ge: ">=", sympy.Gt: ">", sympy.Le: "<=", sympy.Lt: "<"}
    for kind, sign in signs.items():
        if isinstance(relation, kind):
            return f"{writer(relation.lhs)} {sign} {writer(relation.rhs)}"
    raise Unwritable(f"a condition the spec syntax has no words for ({type(relation).__name__})")


def _wrap_words(text: str) -> str:
    return f"({text})" if " " in text else text


# -- evaluating -----------------------------------------------------------------------------


def _floordiv(a: Any, b: Any) -> Any:
    return a // b


def _mod(a: Any, b: Any) -> Any:
    return a % b


def _max(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.maximum(torch.as_tensor(a), torch.as_tensor(b))
    return max(a, b)


def _min(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.minimum(torch.as_tensor(a), torch.as_tensor(b))
    return min(a, b)


def _and(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.as_tensor(a) & torch.as_tensor(b)
    return a and b


def _or(a: Any, b: Any) -> Any:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.as_tensor(a) | torch.as_tensor(b)
    return a or b


def _not(a: Any) -> Any:
    return ~a if isinstance(a, torch.Tensor) else not a


_RELATIONS: dict[type, Callable[[Any, Any], Any]] = {
    sympy.Eq: lambda a, b: a == b,
    sympy.Ne: lambda a, b: a != b,
    sympy.Lt: lambda a, b: a < b,
    sympy.Le: lambda a, b: a <= b,
    sympy.Gt: lambda a, b: a > b,
    sympy.Ge: lambda a, b: a >= b,
}


def compile_expr(expr: Any, names: Mapping[sympy.Symbol, str]) -> Evaluator:  # noqa: C901
    """A function of the named sizes computing ``expr`` (a size or a condition) exactly.

    Integer arithmetic only (floor division and remainder as Python has them), so it
    agrees with torch at every size; it takes ints or int64 tensors of sizes alike.
    """
    if isinstance(expr, bool) or expr is sympy.true or expr is sympy.false:
        value = bool(expr)
        return lambda sizes: value
    if isinstance(expr, int):
        return lambda sizes: expr
    e = sympy.sympify(expr)
    if isinstance(e, sympy.Integer):
        number = int(e)
        return lambda sizes: number
    if isinstance(e, sympy.Symbol):
        if e not in names:
            raise Unwritable(f"a size the input does not name ({e})")
        key = names[e]
        return lambda sizes: sizes[key]
    parts = [compile_expr(a, names) for a in e.args]
    if isinstance(e, sympy.Add):
        return lambda sizes: sum((p(sizes) for p in parts[1:]), parts[0](sizes))
    if isinstance(e, sympy.Mul):
        fraction = _exact_fraction(e.as_coeff_Mul()[0])
        if fraction is not None and fraction.denominator != 1:
            rest = compile_expr(e.as_coeff_Mul()[1], names)
            top, bottom = fraction.numerator, fraction.denominator
            return lambda sizes: (top * rest(sizes)) // bottom
        return lambda sizes: math.prod((p(sizes) for p in parts[1:]), start=parts[0](sizes))
    if isinstance(e, _FLOOR_DIVS):
        return lambda sizes: _floordiv(parts[0](sizes), parts[1](sizes))
    if isinstance(e, _MODS):
        return lambda sizes: _mod(parts[0](sizes), parts[1](sizes))
    if isinstance(e, tf.CeilDiv):
        return lambda sizes: -_floordiv(-parts[0](sizes), parts[1](sizes))
    if isinstance(e, (sympy.Pow, tf.PowByNatural)) and isinstance(e.args[1], sympy.Integer):
        power = int(e.args[1])
        return lambda sizes: parts[0](sizes) ** power
    if isinstance(e, (tf.TruncToInt, tf.FloorToInt)):
        return compile_expr(_scaled(e.args[0]), names)
    if isinstance(e, tf.Identity):
        return parts[0]
    if isinstance(e, (sympy.Max, tf.Max)):
        return _fold(parts, _max)
    if isinstance(e, (sympy.Min, tf.Min)):
        return _fold(parts, _min)
    for kind, relation in _RELATIONS.items():
        if isinstance(e, kind):
            return lambda sizes: relation(parts[0](sizes), parts[1](sizes))
    if isinstance(e, sympy.And):
        return _fold(parts, _and)
    if isinstance(e, sympy.Or):
        return _fold(parts, _or)
    if isinstance(e, sympy.Not):
        return lambda sizes: _not(parts[0](sizes))
    raise Unwritable(_describe(e))


def _fold(parts: list[Evaluator], op: Callable[[Any, Any], Any]) -> Evaluator:
    def folded(sizes: Mapping[str, Any]) -> Any:
        value = parts[0](sizes)
        for part in parts[1:]:
            value = op(value, part(sizes))
        return value

    return folded
