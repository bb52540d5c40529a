"""Model specs: ``pkg.module:Factory`` or ``path/to/file.py:Factory(width=2)``.

A factory is a class or callable returning an ``nn.Module``; literal keyword (and
positional) arguments may follow in parentheses, or come separately as a dict.
Models are built with a fixed seed inside a forked RNG, so the same spec gives the
same weights every run and the caller's random state is untouched.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import FactoryError, SpecError

if TYPE_CHECKING:
    from torch import nn

EXAMPLE = "write it like 'mypkg.models:Net', 'models/net.py:Net' or 'mypkg.models:Net(width=2)'"
MODEL_SEED = 0
#: What follows the ``:`` of a spec: a dotted Python name, then optionally one argument list.
_NAME_AND_CALL = re.compile(r"(?P<attr>[^\W\d]\w*(?:\.[^\W\d]\w*)*)\s*(?P<call>\(.*\))?\s*", re.DOTALL)


@dataclass(frozen=True)
class FactorySpec:
    """Where a factory lives and the arguments to call it with."""

    target: str
    attr: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def is_path(self) -> bool:
        """True for ``file.py:Name`` specs (a file path rather than a module)."""
        return self.target.endswith(".py") or "/" in self.target or "\\" in self.target


def parse_factory(text: str, kwargs: Mapping[str, Any] | None = None) -> FactorySpec:
    """Parse a factory spec; ``kwargs`` add to any written in parentheses."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"model factory {text!r} is empty; {EXAMPLE}")
    text = text.strip()
    # the last ':' followed by a name (and its arguments): colons inside the arguments
    # (name="a:b") or a Windows drive (C:\\models\\net.py) are not the separator
    for cut in reversed([i for i, c in enumerate(text) if c == ":"]):
        found = _NAME_AND_CALL.fullmatch(text, cut + 1)
        if found and text[:cut].strip():
            break
    else:
        target, sep, attr = text.partition("(")[0].rpartition(":")
        if not sep or not target or not attr:
            raise SpecError(f"model factory {text!r} has no ':Name' part; {EXAMPLE}")
        raise SpecError(f"model factory {text!r}: {attr.strip()!r} is not a Python name; {EXAMPLE}")
    target, attr, call = text[:cut].strip(), found["attr"], found["call"] or ""
    args: tuple[Any, ...] = ()
    written: dict[str, Any] = {}
    if call:
        args, written = _parse_call(attr + call, text)
    written.update(kwargs or {})
    return FactorySpec(target, attr, args, written, text)


def _parse_call(code: str, text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    try:
        node = ast.parse(code, mode="eval").body
    except SyntaxError:
        raise SpecError(f"model factory {text!r}: cannot read the arguments; {EXAMPLE}") from None
    if not isinstance(node, ast.Call):
        raise SpecError(f"model factory {text!r}: cannot read the arguments; {EXAMPLE}")
    if isinstance(node.func, ast.Call):
        raise SpecError(
            f"model factory {text!r} has more than one argument list; put every argument in one, "
            "e.g. 'net.py:Net(width=4, depth=2)'"
        )
    if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
        raise SpecError(f"model factory {text!r}: write each argument out (no * or **); {EXAMPLE}")
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except ValueError:
        raise SpecError(
            f"model factory {text!r}: arguments must be literals (numbers, strings, "
            "True/False/None, lists, dicts)"
        ) from None
    return args, kwargs


def _import_path(path: Path) -> ModuleType:
    """Import a file, as part of its package when it sits in one (relative imports work)."""
    path = path.resolve()
    parts = [path.stem]
    top = path.parent
    while (top / "__init__.py").exists():
        parts.insert(0, top.name)
        top = top.parent
    if str(top) not in sys.path:
        sys.path.insert(0, str(top))
    name = ".".join(parts)
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path:
        return loaded
    if len(parts) > 1:
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_factory(spec: FactorySpec, root: Path | None = None) -> Callable[..., Any]:
    """Import the module or file and return the named callable."""
    root = Path(root) if root is not None else Path.cwd()
    try:
        if spec.is_path:
            path = Path(spec.target)
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise SpecError(f"model factory {spec.text!r}: no file {path}; {EXAMPLE}")
            module = _import_path(path)
        else:
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            module = importlib.import_module(spec.target)
    except SpecError:
        raise
    except ImportError as exc:
        raise SpecError(
            f"model factory {spec.text!r}: cannot import {spec.target!r} ({exc}); run from the "
            "project root, or name the file: 'path/to/file.py:Name'"
        ) from exc
    except SystemExit as exc:
        raise FactoryError(
            f"model factory {spec.text!r}: importing {spec.target!r} called sys.exit({exc.code!r}); "
            "a module that defines models must not exit when imported (put script code under "
            "if __name__ == '__main__':)"
        ) from None
    except Exception as exc:
        raise FactoryError(
            f"model factory {spec.text!r}: importing {spec.target!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in spec.attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:12]
            raise SpecError(
                f"model factory {spec.text!r}: {spec.target!r} has no {spec.attr!r}; it "
                f"defines {', '.join(names) or 'nothing callable'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"model factory {spec.text!r}: {spec.attr!r} is not callable")
    return obj  # type: ignore[no-any-return]


def build_model(
    factory: str | Callable[..., Any],
    kwargs: Mapping[str, Any] | None = None,
    root: Path | None = None,
    seed: int | None = MODEL_SEED,
    *,
    device: str | None = None,
) -> nn.Module:
    """Build a model from a spec or callable, seeded, without touching the global RNG.

    ``device="meta"`` calls the factory under ``torch.device("meta")``: its parameters
    are made without memory or initialisation (what a meta trace reads of them is their
    shapes); a factory that fails there raises as any other (``FactoryError``).
    """
    import torch
    from torch import nn

    if isinstance(factory, str):
        spec = parse_factory(factory, kwargs)
        fn = load_factory(spec, root)
        args, call_kwargs, label = spec.args, dict(spec.kwargs), spec.text
    elif callable(factory):
        fn, args, call_kwargs = factory, (), dict(kwargs or {})
        label = getattr(factory, "__qualname__", repr(factory))
    else:
        raise SpecError(f"model factory {factory!r} is neither a spec string nor callable; {EXAMPLE}")
    if isinstance(fn, nn.Module):
        raise SpecError(
            f"model factory {label!r} is a module instance; give its class or a function "
            "returning a fresh model"
        )
    with torch.random.fork_rng(devices=[]), torch.device(device) if device else nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        try:
            model = fn(*args, **call_kwargs)
        except SystemExit as exc:
            raise FactoryError(
                f"model factory {label!r} called sys.exit({exc.code!r}) instead of returning a model"
            ) from None
        except Exception as exc:
            raise FactoryError(f"model factory {label!r} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise FactoryError(f"model factory {label!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
