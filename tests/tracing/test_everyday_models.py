"""Models as people have them, traced: lazy, wrapped, several inputs, plain values, token ids.

Each model of ``tests/corpus/everyday_zoo.py`` is compared with a plain CPU forward
watched by hooks registered by hand (``tests.helpers.observe``): every call's
name, class, depth, input and output shapes, and the parameter count each module
holds once initialised; and the model must be exactly as it was afterwards —
lazy layers still uninitialised, nothing left on a wrapper.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.utils.flop_counter import FlopCounterMode

from pytest_cnnshape import (
    Arg,
    ArgumentError,
    ShapeMismatchError,
    ShapeTrace,
    SpecError,
    TraceError,
    count_flops,
    lint,
    trace,
)
from tests.corpus.everyday_zoo import CORPUS, WRAPPED, WRAPPERS, Picky
from tests.helpers import assert_same, fresh_copy, make_inputs, materialized_counts, observe, snapshot

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]


def rows(tr: ShapeTrace) -> list[tuple[object, ...]]:
    return [(r.name, r.type, r.depth, r.call, r.input_shapes, r.output_shape) for r in tr.layers]


def uninitialised(model: nn.Module) -> list[str]:
    return [
        n for n, m in model.named_modules() if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params()
    ]


def holds_lazy(model: nn.Module) -> set[str]:
    """Modules whose subtree holds an uninitialised lazy layer: the rows marked lazy."""
    lazy = uninitialised(model)
    return {
        n for n, _ in model.named_modules() if any(x == n or x.startswith(f"{n}.") or not n for x in lazy)
    }


def reference_flops(model: nn.Module, spec: object) -> int:
    args, kwargs = make_inputs(spec)
    model = fresh_copy(model).eval()
    with torch.no_grad():
        model(*args, **kwargs)  # a lazy copy initialises here, outside the count
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return int(counter.get_total_flops())


@pytest.mark.parametrize("device", ["auto", "meta", "cpu"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_model_traces_as_a_plain_forward_runs(name: str, device: str) -> None:
    case = CORPUS[name]
    torch.manual_seed(0)
    model = case.factory()
    lazy_before = uninitialised(model)
    expected_rows, expected_out = observe(model, case.reference())
    counts = materialized_counts(model, case.reference())
    before = snapshot(model)
    rng = torch.get_rng_state()

    tr = trace(model, case.inputs, device=device)

    assert rows(tr) == expected_rows
    assert tr.output_shape == expected_out
    assert {r.name: r.num_params for r in tr.layers} == {r[0]: counts[r[0]] for r in expected_rows}
    assert tr.total_params == counts[""]
    lazy = holds_lazy(model)
    assert {r.name for r in tr.layers if r.lazy} == lazy
    assert tr.lazy == bool(lazy) and (("(lazy)" in tr.table()) == bool(lazy))
    # the user's model is exactly as it was: lazy layers still uninitialised
    assert_same(before, model)
    assert uninitialised(model) == lazy_before
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_lint_and_flops_run_on_each_model_and_leave_it_as_it_was(name: str) -> None:
    case = CORPUS[name]
    model = case.factory()
    before = snapshot(model)
    findings = lint(model, case.inputs)
    unused = {f.layer for f in findings if f.rule == "unused-parameters"}
    assert unused == (
        {"heads.cls"} if name == "multitask_seg" else {"heads.seg"} if name == "multitask_cls" else set()
    )
    report = count_flops(model, case.inputs)
    assert report.total_flops == reference_flops(model, case.reference())
    assert_same(before, model)


def test_lazy_rows_say_so_in_the_table_json_and_lint_fixes() -> None:
    model = CORPUS["d2l_bn_lenet"].factory()
    tr = trace(model, (4, 1, 28, 28))
    conv = tr["0"]
    assert (conv.type, conv.num_params, conv.lazy) == ("LazyConv2d", 1 * 6 * 5 * 5 + 6, True)
    assert tr["2"].lazy is False  # Sigmoid holds nothing lazy
    assert re.search(r"^  0 +LazyConv2d .* 156 \(lazy\)$", tr.table(), re.MULTILINE)
    data = tr.to_dict()
    assert data["layers"][1]["lazy"] is True and "lazy" not in data["layers"][3]
    assert ShapeTrace.from_dict(data).to_dict() == data
    finding = next(f for f in lint(model, (4, 1, 28, 28)) if f.rule == "bias-before-batchnorm")
    assert "nn.LazyConv2d(6, 5, bias=False)" in finding.fix  # the lazy class, no in_channels


def test_a_model_initialised_by_a_dummy_forward_is_not_lazy() -> None:
    model = CORPUS["d2l_lenet"].factory()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))  # d2l's way of initialising a lazy net
    tr = trace(model, "2x1x28x28")
    assert not tr.lazy and tr["0"].type == "Conv2d"


# --- wrappers --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
@pytest.mark.parametrize("name", sorted(WRAPPED))
def test_wrapped_models_are_traced_for_what_they_hold(name: str, kind: str) -> None:
    factory, shape = WRAPPED[name]
    torch.manual_seed(0)
    eager = factory()
    wrapped = WRAPPERS[kind](copy.deepcopy(eager), torch.randn(shape))
    expected_rows, expected_out = observe(eager, shape)
    before = snapshot(wrapped)

    tr = trace(wrapped, shape)
    report = count_flops(wrapped, shape)
    findings = lint(wrapped, shape)

    assert tr.output_shape == expected_out
    assert report.total_flops == reference_flops(eager, shape)
    eager_counts = {n: sum(p.numel() for p in m.parameters()) for n, m in eager.named_modules()}
    assert {r.name: r.num_params for r in tr.layers} == eager_counts
    assert tr.wrapper is not None and f"Note: {tr.wrapper}" in tr.table()
    if kind in ("scripted", "jit_traced"):
        # hooks never fire inside TorchScript: the module tree, the output, and the note
        assert [(r.name, r.type, r.depth) for r in tr.layers] == [(r[0], r[1], r[2]) for r in expected_rows]
        assert tr.layers[0].input_shapes == (shape,)
        assert all(r.output_shape is None and r.input_shapes == () for r in tr.layers[1:])
        assert "per-layer shapes are not shown" in tr.wrapper and "trace the eager model" in tr.wrapper
        assert tr.device == "cpu" and not findings and findings.skipped
    else:
        assert rows(tr) == expected_rows
        assert "compile" in tr.wrapper or "DataParallel" in tr.wrapper
    assert_same(before, wrapped)
    if kind.startswith("compiled"):
        assert "training" not in vars(wrapped)  # the compile wrapper's flag is a property


def test_torchscript_state_is_restored_through_the_interpreter() -> None:
    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(4)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self.bn(x)

    model = torch.jit.script(Counting())
    model.bn.eval()
    stats = model.bn.running_mean.clone()
    tr = trace(model, (4, 4, 8, 8), train=True)
    assert tr.train and tr.output_shape == (4, 4, 8, 8)
    assert model.calls == 0 and not model.bn.training and model.training
    assert torch.equal(model.bn.running_mean, stats)


def test_torchscript_cannot_go_to_meta_and_says_what_to_do() -> None:
    model = torch.jit.script(nn.Linear(3, 2))
    with pytest.raises(TraceError, match=r"Linear \(TorchScript\) on the meta device.*device='auto'"):
        trace(model, (1, 3), device="meta")


def test_a_torchscript_forward_that_fails_is_explained_without_its_interpreter_traceback() -> None:
    model = torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(512, 10)))
    with pytest.raises(ShapeMismatchError) as info:
        trace(model, (1, 3, 32, 32))
    text = str(info.value)
    assert info.value.layer == "2" and "mat1 and mat2 shapes cannot be multiplied (1x7200 and 512x10)" in text
    assert "TorchScript interpreter" not in text
    assert "the eager model the scripted one was compiled from" in text


class WithScriptedBlock(nn.Module):
    """An eager model holding a scripted block (``self.block = torch.jit.script(...)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.block = torch.jit.script(nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8)))
        self.head = nn.LazyLinear(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.stem(x)).flatten(1))


def test_a_scripted_submodule_is_run_and_counted_but_not_seen_inside() -> None:
    model = WithScriptedBlock()
    before = snapshot(model)
    tr = trace(model, (8, 3, 64, 64), train=True)  # large enough that auto would start on meta
    assert [r.name for r in tr.layers] == ["", "stem", "head"] and tr.device == "cpu"
    assert tr.output_shape == (8, 4) and tr["head"].input_shapes == ((8, 8 * 60 * 60),)
    block = sum(p.numel() for p in model.block.parameters())
    assert tr.total_params == 3 * 8 * 9 + 8 + block + 8 * 60 * 60 * 4 + 4
    assert tr.wrapper is not None and "TorchScript submodule(s) block" in tr.wrapper
    assert_same(before, model)  # BatchNorm's running stats in the scripted block included
    with pytest.raises(TraceError, match=r"its TorchScript submodule\(s\) block keep their weights"):
        trace(model, (1, 3, 16, 16), device="meta")


# --- inputs: batches of tensors, plain values, Arg ---------------------------------------


def test_a_list_of_real_tensors_is_a_batch_never_a_shape() -> None:
    model = CORPUS["image_with_metadata_batch"].factory()
    img, meta = torch.randn(4, 3, 32, 32), torch.randn(4, 9)
    for batch in ([img, meta], (img, meta)):
        tr = trace(model, batch)
        assert tr.input_shapes == ((4, 3, 32, 32), (4, 9)) and tr.output_shape == (4, 1)
    one = trace(nn.Linear(1, 2), [torch.ones(1)])  # a one-element tensor is no size either
    assert one.input_shapes == ((1,),)


def test_strings_are_shapes_unless_wrapped_in_arg() -> None:
    model = CORPUS["multitask_seg"].factory()
    with pytest.raises(SpecError, match=r"seg is not a size.*write Arg\('seg'\)"):
        trace(model, {"x": "2x3x32x32", "task": "seg"})
    assert trace(model, {"x": "2x3x32x32", "task": Arg("seg")}).output_shape == (2, 5, 32, 32)
    assert trace(model, ["2x3x32x32", Arg("cls")]).output_shape == (2, 5)
    # the shape forms are untouched: one shape, two shapes
    assert trace(nn.Linear(10, 2), (1, 10)).input_shapes == ((1, 10),)
    with pytest.raises(SpecError, match="Arg"):
        trace(model, [(2, 3, 32, 32), object()])


def test_integer_inputs_hold_valid_indices_and_leave_the_rng_alone() -> None:
    class TwoVocabularies(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.small, self.large = nn.Embedding(7, 4), nn.Embedding(1000, 4)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            self.seen = ids.clone()
            return self.small(ids) + self.large(ids)

    model = TwoVocabularies()
    rng = torch.get_rng_state()
    tr = trace(model, "64x20:long", device="cpu")
    assert tr.output_shape == (64, 20, 4)
    assert torch.equal(torch.get_rng_state(), rng)
    assert not hasattr(model, "seen")  # the attribute the forward set is gone again
    seen = {}
    model.register_forward_hook(lambda m, a, out: seen.setdefault("ids", a[0].clone()))
    trace(model, "64x20:long", device="cpu")
    ids = seen["ids"]
    assert ids.dtype == torch.int64 and int(ids.max()) < 7 and len(ids.unique()) > 1


def test_dtype_per_input_mixes_with_the_default() -> None:
    case = CORPUS["cgan_discriminator"]
    seen = {}
    model = case.factory()
    model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.update({k: v.dtype for k, v in kwargs.items()}), with_kwargs=True
    )
    trace(model, case.inputs, device="cpu")
    assert seen == {"img": torch.float32, "labels": torch.int64}


# --- failures that are not shape errors ------------------------------------------------

LIB = torch.library.Library("cnnshape_everyday", "DEF")
LIB.define("cpu_only(Tensor x) -> Tensor")
LIB.impl("cpu_only", lambda x: x * 2, "CPU")
LIB.define("cuda_only(Tensor x) -> Tensor")
LIB.impl("cuda_only", lambda x: x * 2, "CUDA")


class Extension(nn.Module):
    """A layer calling a C++ extension's op (here one registered with torch.library)."""

    def __init__(self, op: object) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)  # type: ignore[operator]


class WithExtension(nn.Module):
    def __init__(self, op: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.ext = Extension(op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ext(self.conv(x))


class NeedsCuda(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.cuda())


def one_line_trace_error(model: nn.Module, inputs: object, **kwargs: object) -> TraceError:
    with pytest.raises(TraceError) as info:
        trace(model, inputs, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is not None
    return info.value


def test_an_op_without_a_meta_kernel_falls_back_to_cpu() -> None:
    tr = trace(WithExtension(torch.ops.cnnshape_everyday.cpu_only), (8, 1, 512, 512))  # meta first
    assert tr.device == "cpu" and tr.note and "meta could not run" in tr.note
    err = one_line_trace_error(
        WithExtension(torch.ops.cnnshape_everyday.cpu_only), (1, 1, 8, 8), device="meta"
    )
    assert "ext (Extension)" in str(err) and err.layer == "ext" and err.trace is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with CUDA runs these")
def test_an_op_or_a_move_that_needs_cuda_is_one_line_naming_the_layer() -> None:
    err = one_line_trace_error(WithExtension(torch.ops.cnnshape_everyday.cuda_only), (8, 1, 256, 256))
    assert err.layer == "ext" and "no kernel for cpu" in str(err) and "cuda_only" in str(err)
    err = one_line_trace_error(NeedsCuda(), (1, 1, 8, 8))
    assert "needs CUDA, which this machine does not have" in str(err)
    assert "test_everyday_models.py" in str(err)  # the user's line


def test_a_model_that_raises_for_its_own_reasons_is_a_trace_error() -> None:
    for device in ("meta", "cpu"):
        err = one_line_trace_error(Picky(), (1, 3, 8, 9), device=device)
        assert str(err).startswith("cannot trace Picky: the forward() of (root) (Picky) raised ValueError")
        assert 'raise ValueError("this model wants even widths")' in str(err)
        assert err.layer == "" and err.trace is not None and err.trace.layers[1].name == "conv"
    assert trace(Picky(), (1, 3, 8, 8)).output_shape == (1, 3, 8, 8)


def test_inputs_that_do_not_fit_forward_are_a_usage_error() -> None:
    model = CORPUS["cgan_generator"].factory()
    with pytest.raises(
        ArgumentError, match=r"inputs do not fit CGANGenerator\.forward: .*missing 1 required"
    ):
        trace(model, (8, 100))
