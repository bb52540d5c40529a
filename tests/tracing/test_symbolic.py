"""Symbolic traces held against plain torch: every row's formula at seeded sizes, and the
domain swept over every side from 2 to 256.

The formulas are read back with the spec parser (the syntax users write) and evaluated
at 32 sizes drawn from the domain; a plain forward watched by hooks registered by hand
(``tests.helpers.observe``, CPU) must show the same shapes, row by row. The domain of a
model whose forward does not branch on sizes must hold exactly where a plain forward
runs (on meta, spot-checked on CPU).
"""

from __future__ import annotations

import copy
import random
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_cnnshape import InputDomain, SpecError, SymbolicError, input_domain, trace
from pytest_cnnshape.shapes.spec import CONVENTIONAL_NAMES, parse_shape
from pytest_cnnshape.tracing.records import ShapeTrace
from tests.corpus.zoo import ZOO
from tests.helpers import assert_same, observe, snapshot

ROOT = Path(__file__).resolve().parents[2]
for project in ("lenet", "vgg_style", "resnet_style", "unet_style", "dynamic"):
    sys.path.insert(0, str(ROOT / "examples" / project))

from dynamic_net import DynamicNet  # noqa: E402
from lenet import lenet5  # noqa: E402
from resnet import ResNet  # noqa: E402
from unet import UNet  # noqa: E402
from vgg import VGGStyle  # noqa: E402

#: What a user would never want to read: torch's symbols, sympy's functions.
ENGINE_TEXT = re.compile(r"\bs\d+\b|Eq\(|Ne\(|FloorDiv|Mod\(|Max\(|sympy|Traceback")

EXAMPLES: dict[str, tuple[Callable[[], nn.Module], Any]] = {
    "example_lenet": (lenet5, (2, 1, 28, 28)),
    "example_vgg_style": (VGGStyle, (2, 3, 32, 32)),
    "example_resnet_style": (ResNet, (2, 3, 64, 64)),
    "example_unet_style": (UNet, (1, 1, 128, 128)),
    "example_dynamic": (DynamicNet, (2, 3, 120, 40)),
}
#: Followed models: the zoo (but its lazy layer, which no formula holds for) and the examples.
FOLLOWED = {**{k: v for k, v in ZOO.items() if k != "lazy_linear"}, **EXAMPLES}


def formula_sizes(formula: Any, sizes: Mapping[str, int]) -> Any:
    """A formula tree read with the spec parser and evaluated at ``sizes``."""
    if formula is None:
        return None
    if isinstance(formula, str):
        return () if formula == "()" else tuple(d.evaluate(sizes) for d in parse_shape(formula).dims)
    if isinstance(formula, dict):
        return {k: formula_sizes(v, sizes) for k, v in formula.items()}
    if isinstance(formula, list):
        return [formula_sizes(v, sizes) for v in formula]
    return tuple(formula_sizes(v, sizes) for v in formula)


def plain(tree: Any) -> Any:
    if isinstance(tree, tuple):
        return tuple(plain(v) for v in tree)
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    if isinstance(tree, dict):
        return {k: plain(v) for k, v in tree.items()}
    return tree


def at_sizes(inputs: Any, sizes: Mapping[str, int]) -> Any:
    """``inputs`` with the first shape resized to ``sizes`` (its conventional names)."""
    done = False

    def swap(value: Any) -> Any:
        nonlocal done
        if not done and isinstance(value, tuple) and all(isinstance(d, int) for d in value):
            done = True
            return tuple(sizes[n] for n in CONVENTIONAL_NAMES[len(value)])
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return swap(inputs)


@pytest.mark.parametrize("name", sorted(FOLLOWED))
def test_every_formula_is_the_plain_forward_at_seeded_sizes(name: str) -> None:
    factory, inputs = FOLLOWED[name]
    torch.manual_seed(0)
    model = factory()
    tr = trace(model, inputs, symbolic=True)
    assert tr.domain is not None, tr.note
    assert all(r.output_formula is not None for r in tr.layers)
    samples = tr.domain.sample(32, seed=0, max_size=160, limits={"B": 3})
    assert len({tuple(s.values()) for s in samples}) > 1 or len(tr.domain.names) == 1
    for i, sizes in enumerate(samples):  # plain forwards on meta, every eighth on CPU
        rows, _ = observe(model, at_sizes(inputs, sizes), "cpu" if i % 8 == 0 else "meta")
        assert len(rows) == len(tr.layers), sizes
        for record, row in zip(tr.layers, rows, strict=True):
            assert formula_sizes(record.output_formula, sizes) == plain(row[5]), (sizes, record.label)


# -- the domain swept against plain torch -------------------------------------------------------


class CompactUNet(nn.Module):
    """A U-Net four poolings deep (no normalisation, so a sweep on meta stays quick)."""

    def __init__(self, depth: int = 4, width: int = 4) -> None:
        super().__init__()
        w = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            [nn.Conv2d(1, w[0], 3, padding=1)]
            + [nn.Conv2d(w[i], w[i + 1], 3, padding=1) for i in range(depth)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.fuse = nn.ModuleList(nn.Conv2d(2 * w[i], w[i], 3, padding=1) for i in reversed(range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, conv in enumerate(self.down):
            x = F.relu(conv(x if i == 0 else self.pool(x)))
            skips.append(x)
        x = skips.pop()
        for up, fuse in zip(self.up, self.fuse, strict=True):
            x = F.relu(fuse(torch.cat([up(x), skips.pop()], 1)))
        return x


def vgg_fixed_head() -> nn.Module:
    """Five 2x2 poolings and a Linear sized for 7x7 maps: 224 to 255 for a square image."""
    blocks = [
        nn.Sequential(nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        for i in range(5)
    ]
    return nn.Sequential(*blocks, nn.Flatten(), nn.Linear(8 * 7 * 7, 10))


def unpadded_lenet() -> nn.Module:
    """LeNet-5 for 32x32: valid convolutions, so only sides 32 to 35 reach the Linear as 5x5."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 10),
    )


class WindowAttention(nn.Module):
    """Swin-style: 4x4 patches, attention in 7x7 windows of patches: sides multiples of 28."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3 * 16, 16)
        self.qkv = nn.Linear(16, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        patches = (
            x.view(b, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5).reshape(b, h // 4, w // 4, c * 16)
        )
        tokens = self.embed(patches)
        gh, gw = tokens.shape[1] // 7, tokens.shape[2] // 7
        windows = tokens.view(b, gh, 7, gw, 7, 16).permute(0, 1, 3, 2, 4, 5).reshape(-1, 49, 16)
        q, k, v = self.qkv(windows).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v)


def signal_net() -> nn.Module:
    """1-D: strided convs and a max pooling: lengths of at least 35."""
    return nn.Sequential(
        nn.Conv1d(2, 4, 7, stride=2),
        nn.ReLU(),
        nn.MaxPool1d(3),
        nn.Conv1d(4, 4, 5, stride=3),
        nn.AdaptiveAvgPool1d(1),
    )


def volume_net() -> nn.Module:
    """3-D: a strided conv, a pooling and a valid conv: sides of at least 11."""
    return nn.Sequential(nn.Conv3d(1, 4, 3, stride=2, padding=1), nn.MaxPool3d(2), nn.Conv3d(4, 4, 3))


#: name -> (model, input spec, channels, the domain in words)
SWEPT: dict[str, tuple[Callable[[], nn.Module], str, int, str]] = {
    "unet": (CompactUNet, "B x 1 x H x W", 1, "H and W at least 16 and multiples of 16; any B"),
    "vgg_fixed_head": (
        vgg_fixed_head,
        "B x 3 x H x W",
        3,
        "H and W at least 32; (H//32)*(W//32) = 49; with H = W: H and W from 224 to 255; any B",
    ),
    "unpadded_lenet": (
        unpadded_lenet,
        "B x 1 x H x W",
        1,
        "H and W at least 16; (H//4 - 3)*(W//4 - 3) = 25; with H = W: H and W from 32 to 35; any B",
    ),
    "window_attention": (
        WindowAttention,
        "B x 3 x H x W",
        3,
        "H and W at least 28 and multiples of 28; any B",
    ),
    "signal_1d": (signal_net, "B x 2 x L", 2, "L at least 35; any B"),
    "volume_3d": (volume_net, "B x 1 x D x H x W", 1, "D, H and W at least 11; any B"),
}


def runs(model: nn.Module, shape: tuple[int, ...], device: str = "meta") -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    except (RuntimeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("name", sorted(SWEPT))
def test_the_domain_is_exactly_where_plain_torch_runs(name: str) -> None:
    factory, spec, channels, words = SWEPT[name]
    torch.manual_seed(0)
    model = factory()
    domain = input_domain(model, spec)
    assert str(domain) == words
    on_meta = copy.deepcopy(model).to("meta")
    sides = [n for n in domain.names if n != "B"]

    def sizes_of(*values: int) -> dict[str, int]:
        return {"B": 2, **dict(zip(sides, values, strict=True))}

    def shape_of(sizes: Mapping[str, int]) -> tuple[int, ...]:
        return (sizes["B"], channels, *(sizes[n] for n in sides))

    points = [sizes_of(*[side] * len(sides)) for side in range(2, 257)]
    rng = random.Random(0)  # and sides that differ
    points += [sizes_of(*[rng.randint(2, 256) for _ in sides]) for _ in range(60 if len(sides) > 1 else 0)]
    disagree = [p for p in points if domain.contains(p) != runs(on_meta, shape_of(p))]
    assert not disagree, disagree[:5]
    # meta answers as a CPU forward does: at the smallest sizes, one below, one above
    smallest = domain.smallest()
    assert smallest["B"] == 1
    for sizes in (
        smallest,
        {**smallest, sides[0]: smallest[sides[0]] - 1},
        {**smallest, sides[0]: smallest[sides[0]] + 1},
    ):
        assert runs(model, shape_of(sizes), "cpu") == runs(on_meta, shape_of(sizes)) == domain.contains(sizes)


def test_a_forward_that_branches_describes_the_branch_of_its_example() -> None:
    model = DynamicNet().eval()
    domain = input_domain(model, "B x 3 x H x W", dims={"B": 2, "H": 120, "W": 40})
    assert str(domain).startswith("H from 65 to 128; W from 1 to 63; any B (the branch the example")
    assert "the forward branches on sizes at" in str(domain) and "dynamic_net.py:33" in str(domain)
    on_meta = copy.deepcopy(model).to("meta")
    inside = [
        (h, w)
        for h in range(2, 160, 5)
        for w in range(2, 160, 5)
        if domain.contains({"B": 2, "H": h, "W": w})
    ]
    assert inside and all(runs(on_meta, (2, 3, h, w)) for h, w in inside)
    # outside the branch the model still runs, on another path: not this trace's domain
    assert runs(on_meta, (2, 3, 200, 200)) and not domain.contains({"B": 2, "H": 200, "W": 200})


# -- what a symbolic trace shows ------------------------------------------------------------------


def test_formulas_are_written_in_the_spec_syntax_and_simplified_under_the_domain() -> None:
    tr = trace(UNet(), "B x 1 x H x W", symbolic=True)
    assert tr.layers[0].output_formula == "B x 1 x H x W"  # 16*(H//16) where H is a multiple of 16
    assert tr["pool"].output_formula == "B x 8 x H//2 x W//2"
    assert tr["down.4"].output_formula == "B x 128 x H//16 x W//16"
    lenet = trace(lenet5(), "B x 1 x H x W", symbolic=True)
    assert lenet["3"].output_formula == "B x 16 x H//2 - 4 x W//2 - 4"
    assert lenet["6"].output_formula == "B x 400"  # the Linear after it fixes the flatten
    resnet = trace(ResNet(), "B x 3 x H x W", symbolic=True)
    assert [r.output_formula for r in resnet.layers if r.name.endswith("conv1")][
        -1
    ] == "B x 64 x (H + 3)//4 x (W + 3)//4"


def test_names_stay_apart_numbers_stay_numbers_and_sizes_of_one_stay_names() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.Flatten(1, 2))
    tr = trace(model, "B x 3 x H x W", symbolic=True, dims={"B": 4, "H": 64, "W": 64})
    assert tr.layers[0].output_formula == "B x 8*((H - 1)//2) x (W - 1)//2"  # H and W: 64 each, two names
    fixed = trace(model, "2 x 3 x H x W", symbolic=True)
    assert fixed.layers[0].output_formula.startswith("2 x ")
    assert fixed.domain is not None and fixed.domain.names == ("H", "W")
    one = trace(model, (1, 3, 32, 32), symbolic=True)  # conventional names; B = 1 is no constant
    assert one.layers[0].output_formula.startswith("B x ")
    assert one.symbolic == {
        "inputs": ["B x C x H x W"],
        "example": {"B": 1, "C": 3, "H": 32, "W": 32},
        "domain": "C = 3; H and W at least 3; any B",
    }


def test_the_table_json_and_picture_show_the_formulas() -> None:
    tr = trace(UNet(depth=2), "B x 1 x H x W", symbolic=True, dims={"H": 64, "W": 64})
    table = tr.table(max_depth=1)
    assert "Output formula" in table and "B x 16 x H//2 x W//2" in table
    assert "Symbolic: input B x 1 x H x W (the sizes above are for B=2, H=64, W=64)" in table
    assert "Domain: H and W at least 4 and multiples of 4; any B" in table
    data = tr.to_dict()
    assert data["layers"][0]["output_formula"] == "B x 1 x H x W"
    assert data["symbolic"]["domain"] == "H and W at least 4 and multiples of 4; any B"
    again = ShapeTrace.from_dict(data)
    assert [r.output_formula for r in again.layers] == [r.output_formula for r in tr.layers]
    assert again.table() == tr.table()
    html = tr.to_html()
    assert '"f":"B x 16 x H//2 x W//2"' in html and "Domain: H and W at least 4" in html
    assert "Output formula" not in trace(UNet(depth=2), (1, 1, 64, 64)).table()  # a plain trace: no column


def test_structured_outputs_get_a_tree_of_formulas() -> None:
    factory, inputs = ZOO["namedtuple_and_nontensor_output"]
    tr = trace(factory(), inputs, symbolic=True)
    logits_and_features = tr.layers[0].output_formula[0]
    assert logits_and_features.logits == "B x 3" and logits_and_features.features == (
        "B x 4 x H - 2 x W - 2",
        None,
    )
    assert tr.to_dict()["layers"][0]["output_formula"][0] == {
        "logits": "B x 3",
        "features": ["B x 4 x H - 2 x W - 2", None],
    }


def test_the_domain_answers_questions() -> None:
    domain = input_domain(UNet(), "B x 1 x H x W")
    assert isinstance(domain, InputDomain)
    assert domain.contains({"B": 2, "H": 64, "W": 48}) and {"B": 1, "H": 32, "W": 32} in domain
    assert not domain.contains({"B": 2, "H": 65, "W": 64}) and not domain.contains({"B": 0, "H": 64, "W": 64})
    assert domain.smallest() == {"B": 1, "H": 16, "W": 16}
    assert all(domain.contains(s) for s in domain.sample(20, seed=3))
    assert domain.to_dict()["words"] == str(domain)
    with pytest.raises(
        ValueError, match=r"^no size for W: give one size per name, e.g. \{'B': 2, 'H': 224, 'W': 224\}$"
    ):
        domain.contains({"B": 2, "H": 64})
    with pytest.raises(ValueError, match=r"X is not a name of B x 1 x H x W"):
        domain.contains({"B": 2, "H": 64, "W": 64, "X": 1})


def test_the_example_is_found_where_the_model_runs() -> None:
    # the defaults (sides of 224) fail at the Linear; the nearest square sizes it takes are 28 to 31
    tr = trace(lenet5(), "B x 1 x H x W", symbolic=True)
    assert tr.input_shapes == ((2, 1, 28, 28),)
    vgg = trace(vgg_fixed_head(), "B x 3 x H x W", symbolic=True)
    assert vgg.input_shapes == ((2, 3, 224, 224),)
    # sizes the caller gave stay: W is found for H = 28; no W fits H = 64, which is diagnosed
    assert trace(lenet5(), "B x 1 x H x W", symbolic=True, dims={"H": 28}).input_shapes == ((2, 1, 28, 28),)
    from pytest_cnnshape import ShapeMismatchError

    with pytest.raises(ShapeMismatchError, match=r"^7 \(Linear\) cannot take its input"):
        trace(lenet5(), "B x 1 x H x W", symbolic=True, dims={"H": 64})


# -- what the engine cannot follow, and bad input ---------------------------------------------------


class ValueDependent(nn.Module):
    """Keeps the positive entries only: a size that depends on the values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[x > 0]


@pytest.mark.parametrize(
    ("inputs", "dims", "message"),
    [
        ("B x 3 x H*2 x W", None, r"'H\*2' is not a name or a number; a symbolic input names each size"),
        ("B x 3 x * x W", None, r"'\*' is not a name or a number"),
        ("B x 3 x H x W", {"X": 4}, r"dims names 'X', which the input does not \(B, H, W\)"),
        ("B x 3 x H x W", {"H": 0}, r"dims\['H'\] = 0: an example size is a whole number of at least 1"),
        ((2, 3, 32, 32), {"H": 64}, r"dims\['H'\] = 64 but the input gives H = 32"),
        ("2 x 3 x 32 x 32 x 4 x 4", None, r"a 6-d input has no conventional names"),
    ],
)
def test_names_that_cannot_bind_are_one_line_errors(inputs: Any, dims: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        trace(nn.Conv2d(3, 4, 3), inputs, symbolic=True, dims=dims)
    assert "\n" not in str(info.value)


def test_a_model_the_engine_cannot_follow_gets_a_one_line_note_and_the_concrete_trace() -> None:
    tr = trace(ValueDependent(), "B x 3 x H x W", symbolic=True, dims={"H": 8, "W": 8})
    assert tr.domain is None and tr.output_shape is not None
    assert tr.note is not None and "\n" not in tr.note and not ENGINE_TEXT.search(tr.note)
    assert tr.note.startswith("no formulas: (root) (ValueDependent) makes a size that depends on the values")
    assert tr.note.endswith("this table is for B=2, H=8, W=8 only")
    with pytest.raises(
        SymbolicError, match=r"^\(root\) \(ValueDependent\) makes a size that depends on the values"
    ):
        input_domain(ValueDependent(), "B x 3 x H x W")
    lazy = trace(ZOO["lazy_linear"][0](), (1, 3, 16, 16), symbolic=True)
    assert lazy.note is not None and "lazy layers that are not initialised yet" in lazy.note
    scripted = trace(torch.jit.script(nn.Conv2d(3, 4, 3)), (1, 3, 16, 16), symbolic=True)
    assert scripted.note is not None and "TorchScript" in scripted.note


def test_dims_belong_to_symbolic_traces() -> None:
    with pytest.raises(
        ValueError, match="dims= gives the example sizes of a symbolic trace's names; add symbolic=True"
    ):
        trace(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), dims={"H": 8})


def test_a_model_failing_at_its_example_is_diagnosed_as_ever() -> None:
    from pytest_cnnshape import ShapeMismatchError

    with pytest.raises(ShapeMismatchError, match=r"fix +nn\.Conv2d"):
        trace(nn.Conv2d(3, 4, 3), "B x 5 x H x W", symbolic=True, dims={"B": 1, "H": 8, "W": 8})


def test_the_model_is_left_exactly_as_it_was() -> None:
    model = ZOO["resnet_bottlenecks"][0]()
    model.train()
    before = snapshot(model)
    state = torch.get_rng_state()
    trace(model, "B x 3 x H x W", symbolic=True, train=True)
    input_domain(model, "B x 3 x H x W")
    assert_same(before, model)
    assert torch.equal(torch.get_rng_state(), state)


def test_symbolic_traces_in_threads_take_turns_and_agree() -> None:
    from concurrent.futures import ThreadPoolExecutor

    models = [CompactUNet(depth=2), signal_net(), CompactUNet(depth=2), signal_net()]
    specs = ["B x 1 x H x W", "B x 2 x L", "B x 1 x H x W", "B x 2 x L"]
    with ThreadPoolExecutor(4) as pool:
        words = list(pool.map(lambda ms: str(input_domain(*ms)), zip(models, specs, strict=True)))
    assert words == ["H and W at least 4 and multiples of 4; any B", "L at least 35; any B"] * 2
