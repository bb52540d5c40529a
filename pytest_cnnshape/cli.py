"""The ``cnnshape`` command: shape tables and diagnostics without writing a test.

    cnnshape summary models.py:Net --input 1x3x32x32 [--depth 2] [--json] [--params] [--flops] [--lint]
                     [--memory [--optimizer AdamW]]
    cnnshape check   mypkg.models:Net --input 1x1x28x28
    cnnshape summary models.py:TextCNN --input 8x50:long --forward-kwarg task=cls
    cnnshape summary models.py:UNet --input "B x 1 x H x W" --symbolic [--dim H=128]
    cnnshape domain  models.py:UNet --input "B x 1 x H x W" [--dim H=128] [--json]

Exit codes: 0 table printed (check: the model runs), 1 the model fails: its
forward (the diagnostic is printed), its factory, a trace that cannot run it
(one line), or ``--lint`` found something; 2 a bad spec, input or option (one
line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .defaults import DEFAULT_DEVICE, DEVICES
from .errors import UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, like every usage error here
        self.exit(EXIT_USAGE, f"cnnshape: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of every subcommand."""
    parser = _Parser(prog="cnnshape", description="Shapes of convolutional networks in PyTorch.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name, text in (
        ("summary", "print every layer's input and output shape and the parameter counts"),
        ("check", "run the model once; print the diagnostic if its forward fails, else 'ok'"),
        ("domain", "print the input sizes the model runs at, for an input with named sizes"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("spec", help="model factory: pkg.module:Factory or path/file.py:Factory(k=v)")
        cmd.add_argument(
            "--input",
            "-i",
            action="append",
            metavar="SHAPE",
            help="input shape, e.g. 1x3x32x32, or 8x50:long with a dtype (repeat for several inputs)",
        )
        cmd.add_argument(
            "--forward-kwarg",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a keyword argument of the model's forward, passed as it is: a Python literal "
            "(2, 0.5, True, None, 'text') or else a string, e.g. --forward-kwarg task=seg",
        )
        cmd.add_argument(
            "--device",
            default=DEFAULT_DEVICE,
            choices=DEVICES,
            help=f"where to trace (default: {DEFAULT_DEVICE} = meta first)",
        )
        cmd.add_argument("--dtype", default=None, help="input dtype, e.g. float16 (default: the model's)")
        cmd.add_argument("--train", action="store_true", help="trace in training mode")
        cmd.add_argument(
            "--dim",
            action="append",
            default=[],
            metavar="NAME=SIZE",
            help="an example size of a named size of a symbolic input, e.g. --dim H=128",
        )
        cmd.add_argument("--json", action="store_true", help="print the trace as JSON")
        if name == "domain":
            continue
        cmd.add_argument(
            "--symbolic",
            action="store_true",
            help="also give each layer's output as a formula of the input's named sizes "
            "(--input 'B x 3 x H x W'), and the sizes the model runs at",
        )
        cmd.add_argument(
            "--depth", type=int, default=None, metavar="N", help="fold the table to N levels of nesting"
        )
        cmd.add_argument(
            "--html",
            metavar="PATH",
            default=None,
            help="also write the shape-flow picture to PATH (one self-contained HTML file)",
        )
        if name == "summary":
            cmd.add_argument(
                "--torchinfo",
                action="store_true",
                help="print torchinfo's table instead (real forward on the model's device)",
            )
            cmd.add_argument(
                "--params",
                action="store_true",
                help="also print every parameter and buffer tensor, and the regularization",
            )
            cmd.add_argument(
                "--flops", action="store_true", help="also print multiply-accumulates and FLOPs per layer"
            )
            cmd.add_argument(
                "--lint",
                action="store_true",
                help="also lint the model; exit 1 on findings ([tool.cnnshape] lint.ignore "
                "of ./pyproject.toml applies)",
            )
            cmd.add_argument(
                "--memory",
                action="store_true",
                help="also estimate the memory of one training step (saved activations per layer, "
                "peaks), on meta",
            )
            cmd.add_argument(
                "--optimizer",
                default=None,
                metavar="NAME",
                help="the optimizer whose state --memory counts, e.g. AdamW or 'SGD(momentum=0.9)'",
            )
            cmd.add_argument(
                "--lint-ignore",
                action="append",
                default=[],
                metavar="RULE",
                help="switch a lint rule off, e.g. --lint-ignore dropout-after-conv",
            )
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Options that cannot go together, or values no command takes (a usage error, exit 2)."""
    if not args.input:
        raise UsageError("--input is required, e.g. --input 1x3x32x32")
    depth = getattr(args, "depth", None)
    if depth is not None and depth < 0:
        raise UsageError(f"--depth {depth}: give 0 or more")
    if args.dim and not getattr(args, "symbolic", True):
        raise UsageError("--dim gives example sizes of named sizes: add --symbolic")


def _run(args: argparse.Namespace) -> int:
    from .errors import ShapeMismatchError
    from .tracing.factory import build_model
    from .tracing.inputs import InputSpec
    from .tracing.request import TraceRequest

    _check_args(args)
    if args.command == "domain":
        return _domain(args)
    inputs = _symbolic_inputs(args) if args.symbolic else _inputs(args)
    model = build_model(args.spec)
    if getattr(args, "torchinfo", False):
        from .inspection.torchinfo_view import torchinfo_summary

        print(torchinfo_summary(model, inputs, depth=args.depth if args.depth is not None else 3))
        return EXIT_OK
    # a symbolic trace's inputs are named sizes: the request takes the example's once it is found
    given = InputSpec((), {}) if args.symbolic else inputs
    request = TraceRequest.of(model, given, device=args.device, dtype=args.dtype, train=args.train)
    try:
        result = _traced(args, request, model, inputs)
    except ShapeMismatchError as err:
        if args.html:
            _write_html(args, err.trace, request, diagnostic=err.diagnosis.render())
        if args.json:
            payload = {"ok": False, "error": err.diagnosis.to_dict(), "trace": err.trace.to_dict()}
            print(json.dumps(payload, indent=2, sort_keys=True))
        else:
            print(f"ShapeMismatchError: {err}")
        return EXIT_FAILED
    if args.symbolic:
        request = request.with_inputs(result_inputs(result, inputs))
    sections = _inspection(args, request)
    if args.html:
        _write_html(args, result, request)
    if args.json:
        payload = {"ok": True, "trace": result.to_dict()}
        if sections.data:
            payload["inspection"] = sections.data
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        if args.command == "check":
            print(f"ok: {args.spec} runs; output {_output(result)}")
        print(result.table(max_depth=args.depth))
        for line in sections.lines:
            print(line)
    return EXIT_FAILED if sections.findings else EXIT_OK


def _inputs(args: argparse.Namespace) -> Any:
    """``--input`` (each a shape, maybe with a dtype), ``--dtype`` and ``--forward-kwarg``, as one spec."""
    from .tracing.devices import parse_dtype
    from .tracing.inputs import parse_inputs

    raw: Any = args.input[0] if len(args.input) == 1 else list(args.input)
    return (
        parse_inputs(raw).typed(parse_dtype(args.dtype)).with_kwargs(_forward_kwargs(args), "--forward-kwarg")
    )


def _forward_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--forward-kwarg NAME=VALUE`` (repeated): Python literals, else strings."""
    import ast

    kwargs: dict[str, Any] = {}
    for item in args.forward_kwarg:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"--forward-kwarg {item!r}: write NAME=VALUE, e.g. --forward-kwarg task=seg")
        try:
            kwargs[name.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[name.strip()] = text
    return kwargs


def _traced(args: argparse.Namespace, request: Any, model: Any, inputs: Any) -> Any:
    """The trace the command prints: the request's, or with ``--symbolic`` the model's at the
    example sizes of the named ``inputs``, with the formulas."""
    from .diagnostics.explain import symbolic_trace, traced

    if not args.symbolic:
        return traced(request, (), flow=bool(args.html))
    return symbolic_trace(
        model,
        inputs,
        dims=_dims(args),
        device=args.device,
        dtype=args.dtype,
        train=args.train,
        flow=bool(args.html),
    )


def _symbolic_inputs(args: argparse.Namespace) -> Any:
    """``--input`` with named sizes and ``--forward-kwarg``, as a symbolic trace takes them."""
    from .tracing.inputs import Arg, InputSpec

    kwargs = {name: Arg(value) for name, value in _forward_kwargs(args).items()}
    return InputSpec(tuple(args.input), kwargs)


def result_inputs(result: Any, inputs: Any) -> Any:
    """The inputs at a symbolic trace's example sizes (what the inspection sections trace)."""
    from .tracing.named_inputs import parse_symbolic

    return parse_symbolic(inputs).concrete(result.symbolic["example"])


def _dims(args: argparse.Namespace) -> dict[str, int]:
    """``--dim NAME=SIZE`` (repeated) as example sizes by name."""
    out: dict[str, int] = {}
    for item in args.dim:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier() or not text.strip().isdigit():
            raise UsageError(f"--dim {item!r}: write NAME=SIZE, e.g. --dim H=128")
        out[name.strip()] = int(text)
    return out


def _domain(args: argparse.Namespace) -> int:
    """``cnnshape domain``: the input sizes the model runs at, in words, and its output formula."""
    from .diagnostics.explain import symbolic_trace
    from .errors import ShapeMismatchError, SymbolicError
    from .tracing.factory import build_model
    from .tracing.table import formula_text

    model = build_model(args.spec)
    inputs = _symbolic_inputs(args)
    try:
        result = symbolic_trace(
            model, inputs, dims=_dims(args), device=args.device, dtype=args.dtype, train=args.train
        )
    except ShapeMismatchError as err:
        print(f"ShapeMismatchError: {err}")
        return EXIT_FAILED
    if result.domain is None:
        raise SymbolicError(
            (result.symbolic or {}).get("why") or "torch's symbolic shapes cannot follow this model"
        )
    domain = result.domain
    smallest = domain.smallest()
    output = formula_text(result.layers[0].output_formula)
    if args.json:
        payload = {
            "ok": True,
            **domain.to_dict(),
            "smallest": smallest,
            "output": result.layers[0].output_formula,
        }
        print(json.dumps(payload, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"{args.spec} takes {', '.join(domain.inputs)} for: {domain}")
    print(f"smallest: {', '.join(f'{n}={v}' for n, v in smallest.items())}")
    print(f"output: {output}")
    return EXIT_OK


def _inspection(args: argparse.Namespace, request: Any) -> Any:
    """``--params``, ``--flops``, ``--lint`` (with ./pyproject.toml's lint settings)."""
    from pathlib import Path

    from .inspection.catalog import check_rule_ids
    from .inspection.console import inspection_sections
    from .plugin.config import load_project

    wanted = {key: getattr(args, key, False) for key in ("params", "flops", "lint", "memory")}
    optimizer = getattr(args, "optimizer", None)
    if optimizer is not None and not wanted["memory"]:
        raise UsageError("--optimizer counts in the memory estimate: add --memory")
    ignore: tuple[str, ...] = ()
    batch_dim = 0
    if wanted["lint"]:
        project = load_project(Path("pyproject.toml"))
        ignore = (*project.lint_ignore, *check_rule_ids(args.lint_ignore, "--lint-ignore"))
        batch_dim = project.lint_batch_dim
    return inspection_sections(
        request, **wanted, optimizer=optimizer, ignore=ignore, depth=args.depth, batch_dim=batch_dim
    )


def _write_html(args: argparse.Namespace, result: Any, request: Any, diagnostic: str | None = None) -> None:
    """``--html PATH``: the picture, with MACs, lint findings and module settings."""
    from pathlib import Path

    from .inspection.settings import module_settings

    model = request.model
    inspection = None
    if diagnostic is None:
        from .inspection.collect import inspect_model

        inspection = inspect_model(request.with_mode(False))
    target = Path(args.html)
    try:
        result.save_html(
            target,
            depth=args.depth,
            title=args.spec,
            diagnostic=diagnostic,
            inspection=inspection,
            modules=module_settings(model),
        )
    except OSError as exc:
        raise UsageError(f"--html {args.html}: cannot write the file ({exc.strerror or exc})") from None
    print(f"cnnshape: picture written to {target}", file=sys.stderr)


def _output(result: Any) -> str:
    from .shapes.tree import format_shape

    return format_shape(result.output_shape)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnshape`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"cnnshape {__version__}")
        return EXIT_OK
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    import os

    from .errors import CnnShapeError

    try:
        return _run(args)
    except UsageError as exc:  # a bad spec, input or option
        print(f"cnnshape: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CnnShapeError as exc:  # the model's: a factory that raised, a model no trace can run
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}))
        print(f"cnnshape: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug of ours: one line, unless debugging
        if os.environ.get("CNNSHAPE_DEBUG"):
            raise
        print(
            f"cnnshape: internal error: {type(exc).__name__}: {exc} (a bug in pytest-cnnshape; "
            "CNNSHAPE_DEBUG=1 shows the traceback)".replace("\n", " "),
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
