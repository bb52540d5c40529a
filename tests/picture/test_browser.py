"""The picture as a person sees it: loaded from file:// in headless Chromium.

Each test checks what is drawn (nodes per visible layer call, the failing layer,
joins), that clicking and the keyboard open and fold blocks, and that the page
logs no error and requests nothing from the network. Skipped, with the reason,
where no Chromium is installed (CI installs Debian's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.models import ResNet, resnet50
from pytest_cnnshape import ShapeMismatchError, trace
from pytest_cnnshape.picture.document import render
from pytest_cnnshape.picture.flow import ModelPicture
from tests.corpus.broken_zoo import CORPUS, FlattenThenFc
from tests.corpus.zoo import ZOO, TinyUNet, lenet, small_resnet
from tests.picture.browser import Browser, Opened
from tests.plugin.helpers import make_project, set_models


def visible(traced: Any, depth: int) -> set[int]:
    """Calls drawn as nodes when folded to ``depth``: open containers are those above it,
    and those the failing call runs in (the failing call itself, when it is one)."""
    layers = traced.layers
    parents, open_at = [], []
    for index, r in enumerate(layers):
        del open_at[r.depth :]
        parents.append(open_at[-1] if open_at else -1)
        open_at.append(index)
    has_children = {p for p in parents if p >= 0}
    failing = [i for i, r in enumerate(layers) if not r.finished][-1:]
    around = set()
    for start in failing:
        walker = start
        while walker >= 0:
            around.add(walker)
            walker = parents[walker]

    def is_open(i: int) -> bool:
        return i in has_children and (layers[i].depth < depth or i in around)

    out = set()
    for i in range(len(layers)):
        chain, a = [], parents[i]
        while a >= 0:
            chain.append(a)
            a = parents[a]
        if all(is_open(a) for a in chain) and not is_open(i):
            out.add(i)
    return out


def drawn(opened: Opened) -> set[int]:
    calls = opened.page.locator("svg.flow .node.call")
    return {int(calls.nth(k).get_attribute("data-call")) for k in range(calls.count())}


def clean(opened: Opened) -> None:
    assert opened.errors == [], opened.errors
    assert opened.requests == [], opened.requests


def open_trace(browser: Browser, tmp_path: Path, traced: Any, **options: Any) -> Opened:
    path = traced.save_html(tmp_path / "picture.html", **options)
    return browser.open(path)


def test_lenet_draws_one_node_per_layer_call_and_fetches_nothing(browser: Browser, tmp_path: Path) -> None:
    traced = trace(lenet(), (1, 1, 28, 28), flow=True)
    opened = open_trace(browser, tmp_path, traced)
    assert drawn(opened) == visible(traced, 2) == set(range(1, len(traced.layers)))
    page = opened.page
    assert page.locator("svg.flow .node.input").count() == 1
    assert page.locator("svg.flow .node.output").count() == 1
    edges = page.locator("svg.flow .edge").count()
    assert edges == len(traced.layers) - 1 + 1  # a chain: input -> layers -> output
    label = page.locator('svg.flow .node[data-call="1"]').inner_html()
    assert "1×6×24×24" in label  # conv1's output shape on its label
    # a taller block for a larger map: conv1 (24x24) against the last conv (8x8)
    heights = page.evaluate(
        "[...document.querySelectorAll('svg.flow .node.cat-conv rect.face')].map(r => r.getBBox().height)"
    )
    assert heights[0] > heights[1]
    clean(opened)


def test_blocks_open_and_fold_by_click_and_keyboard(browser: Browser, tmp_path: Path) -> None:
    traced = trace(small_resnet(), (1, 3, 32, 32), flow=True)
    opened = open_trace(browser, tmp_path, traced, depth=1)
    page = opened.page
    folded = visible(traced, 1)
    assert drawn(opened) == folded
    block = next(i for i, r in enumerate(traced.layers) if r.name == "4")
    node = page.locator(f'svg.flow .node[data-call="{block}"]')
    assert node.get_attribute("aria-expanded") == "false"
    assert page.locator("svg.flow .node.junction").count() == 0
    node.click()
    children = {i for i, r in enumerate(traced.layers) if r.name.startswith("4.") and r.depth == 2}
    assert drawn(opened) == (folded - {block}) | children
    assert page.locator("svg.flow .node.junction").count() == 1  # the residual add
    page.locator(f'svg.flow .frame[data-call="{block}"]').click()
    assert drawn(opened) == folded
    other = next(i for i, r in enumerate(traced.layers) if r.name == "3")
    page.locator(f'svg.flow .node[data-call="{other}"]').focus()
    assert "Output" in page.locator(".facts").inner_text()
    page.keyboard.press("Enter")
    assert other not in drawn(opened) and len(drawn(opened)) > len(folded)
    clean(opened)


def test_a_failed_forward_marks_the_failing_layer_next_to_its_diagnostic(
    browser: Browser, tmp_path: Path
) -> None:
    with pytest.raises(ShapeMismatchError) as info:
        trace(FlattenThenFc(), (1, 1, 28, 28), flow=True)
    err = info.value
    opened = open_trace(browser, tmp_path, err.trace, diagnostic=err.diagnosis.render())
    page = opened.page
    failed = page.locator("svg.flow .node.failed")
    assert failed.count() == 1
    index = int(failed.get_attribute("data-call"))
    assert err.trace.layers[index].name == "fc"
    assert "fc (Linear) cannot take its input" in failed.inner_html()
    assert "nn.Linear(in_features=800" in page.locator(".diagnostic").inner_text()
    assert page.locator("svg.flow .node.output").count() == 0
    clean(opened)


def test_skip_concatenations_and_branches_join_where_they_meet(browser: Browser, tmp_path: Path) -> None:
    traced = trace(TinyUNet(), (1, 1, 16, 16), flow=True)
    opened = open_trace(browser, tmp_path, traced)
    page = opened.page
    preds = page.evaluate(
        "(() => { const g = window.cnnshapeViewers[0].current;"
        " return Object.fromEntries(g.nodes.map(n => [n.id, n.preds.map(e => e.id)])); })()"
    )
    index = {r.name: i for i, r in enumerate(traced.layers)}
    (junction,) = [k for k in preds if k.startswith("j")]
    assert preds[junction] == [f"c{index['up']}", f"c{index['down1']}"]
    assert preds[f"c{index['fuse']}"] == [junction]
    assert page.locator("svg.flow .node.junction text.symbol").text_content() == "∥"
    clean(opened)


def section_drawn(opened: Opened, k: int) -> set[int]:
    calls = opened.page.locator(f"#model-{k} svg.flow .node.call")
    return {int(calls.nth(n).get_attribute("data-call")) for n in range(calls.count())}


def test_every_model_of_the_corpus_is_drawn_on_one_page(browser: Browser, tmp_path: Path) -> None:
    traces = [trace(factory(), inputs, flow=True) for factory, inputs in ZOO.values()]
    pictures = [ModelPicture(name, t.to_dict()) for name, t in zip(ZOO, traces, strict=True)]
    path = tmp_path / "zoo.html"
    path.write_text(render(pictures, depth=2))
    opened = browser.open(path)
    for k, traced in enumerate(traces):
        assert section_drawn(opened, k) == visible(traced, 2), list(ZOO)[k]
    assert opened.page.locator("svg.flow .node.output").count() == len(traces)
    clean(opened)


def test_every_broken_model_has_its_failing_layer_marked(browser: Browser, tmp_path: Path) -> None:
    errors = []
    for case in CORPUS.values():
        with pytest.raises(ShapeMismatchError) as info:
            trace(case.factory(), case.inputs, flow=True)
        errors.append(info.value)
    pictures = [
        ModelPicture(name, e.trace.to_dict(), status="failed", failure=e.diagnosis.headline)
        for name, e in zip(CORPUS, errors, strict=True)
    ]
    path = tmp_path / "broken.html"
    path.write_text(render(pictures, depth=2))
    opened = browser.open(path)
    page = opened.page
    for k, err in enumerate(errors):
        name = list(CORPUS)[k]
        assert section_drawn(opened, k) == visible(err.trace, 2), name
        layers = err.trace.layers
        failing = [i for i, r in enumerate(layers) if not r.finished][-1]
        assert layers[failing].name == err.layer, name
        inside = failing + 1 < len(layers) and layers[failing + 1].depth > layers[failing].depth
        marked = page.locator(f"#model-{k} svg.flow .node.failed")
        if inside:  # failed in its own forward() after calling layers: the failure follows them
            assert marked.count() == 0, name
            assert page.locator(f"#model-{k} svg.flow .node.fail").count() == 1, name
        else:
            assert marked.count() == 1, name
            assert int(marked.get_attribute("data-call")) == failing, name
    clean(opened)


def test_a_call_order_picture_says_it_lacks_the_data_flow(browser: Browser, tmp_path: Path) -> None:
    traced = trace(small_resnet(), (1, 3, 32, 32))
    opened = open_trace(browser, tmp_path, traced)
    assert drawn(opened) == visible(traced, 2)
    assert "did not record the data flow" in opened.page.locator(".flow-note").inner_text()
    assert opened.page.locator("svg.flow .node.junction").count() == 0
    clean(opened)


def test_300_layers_stay_folded_and_search_finds_a_folded_layer(browser: Browser, tmp_path: Path) -> None:
    traced = trace(ResNet((3, 8, 36, 3)), (1, 3, 224, 224), flow=True)  # ResNet-152
    assert len(traced.layers) > 500
    opened = open_trace(browser, tmp_path, traced)
    page = opened.page
    assert drawn(opened) == visible(traced, 2) and len(drawn(opened)) < 60
    target = next(i for i, r in enumerate(traced.layers) if r.name == "layer3.17.conv2")
    block = next(i for i, r in enumerate(traced.layers) if r.name == "layer3.17")
    page.locator("input.search").fill("layer3.17.conv2")
    assert page.locator(".search-status").inner_text().startswith("1 match")
    assert "match-inside" in page.locator(f'svg.flow .node[data-call="{block}"]').get_attribute("class")
    page.locator("input.search").press("Enter")
    hit = page.locator(f'svg.flow .node[data-call="{target}"]')
    assert "match" in hit.get_attribute("class").split()
    assert page.evaluate("document.activeElement.getAttribute('data-call')") == str(target)
    page.locator("button[data-action=expand]").click()
    assert len(drawn(opened)) == len(traced.leaves())
    page.locator("button[data-action=fold]").click()
    assert drawn(opened) == visible(traced, 2)
    clean(opened)


def test_zoom_and_pan_move_the_picture(browser: Browser, tmp_path: Path) -> None:
    """Measured on screen, as a person sees it: a node's box grows 1.25 times about the
    stage's centre per zoom-in, follows a drag pixel for pixel, and an arrow key moves it 60 px."""
    opened = open_trace(browser, tmp_path, trace(resnet50(), (1, 3, 224, 224), flow=True))
    page = opened.page
    node = page.locator("svg.flow .node.call").first

    def box() -> dict[str, float]:
        found = node.bounding_box()
        assert found is not None
        return found

    stage = page.locator(".stage").bounding_box()
    assert stage is not None
    cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    start = box()
    page.locator("button[data-action=zoom-in]").click()
    zoomed = box()
    assert zoomed["width"] == pytest.approx(start["width"] * 1.25, abs=0.5)
    assert zoomed["height"] == pytest.approx(start["height"] * 1.25, abs=0.5)
    assert zoomed["x"] - cx == pytest.approx((start["x"] - cx) * 1.25, abs=1)
    assert zoomed["y"] - cy == pytest.approx((start["y"] - cy) * 1.25, abs=1)
    page.mouse.move(stage["x"] + 300, stage["y"] + 40)
    page.mouse.down()
    page.mouse.move(stage["x"] + 100, stage["y"] + 60, steps=5)
    page.mouse.up()
    dragged = box()
    assert (dragged["x"] - zoomed["x"], dragged["y"] - zoomed["y"]) == pytest.approx((-200, 20), abs=0.5)
    assert dragged["width"] == pytest.approx(zoomed["width"], abs=0.01)  # a drag does not zoom
    page.locator(".stage").focus()
    page.keyboard.press("ArrowRight")
    moved = box()
    assert (moved["x"] - dragged["x"], moved["y"] - dragged["y"]) == pytest.approx((-60, 0), abs=0.5)
    clean(opened)


LENET = """
import torch.nn as nn


class LeNet(nn.Sequential):
    def __init__(self, classes=10, mid=16):
        super().__init__(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, mid, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(mid * 16, 120), nn.ReLU(), nn.Linear(120, classes),
        )
"""


def test_the_session_report_marks_a_changed_baseline(
    browser: Browser, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = (
        "[tool.cnnshape]\nbaselines = true\n\n"
        '[tool.cnnshape.models.lenet]\nfactory = "mymodels.nets:LeNet"\ninput = "2x1x28x28"\n'
    )
    project = make_project(pytester, monkeypatch, toml, {})
    set_models(project, LENET)
    project.runpytest_subprocess("--cnn-shapes-update", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    set_models(project, LENET.replace("mid=16", "mid=12"))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--cnn-shapes-report=report.html")
    result.assert_outcomes(failed=1)
    opened = browser.open(project.path / "report.html")
    page = opened.page
    assert page.locator(".index tbody tr").count() == 1
    assert "failed" in page.locator(".index .status").inner_text()
    changed = page.locator("svg.flow .node.changed")
    assert changed.count() >= 4  # conv2 and what follows it, up to the first Linear
    rows = page.locator(".baseline tbody tr").all_inner_texts()
    conv2 = next(r for r in rows if "\t3\t" in r)
    assert "2x16x8x8" in conv2 and "2x12x8x8" in conv2  # old and new side by side
    changed.first.hover()
    facts = page.locator(".facts").inner_text()
    assert "Baseline" in facts and "Now" in facts
    clean(opened)


def test_a_symbolic_trace_shows_each_blocks_formula(browser: Browser, tmp_path: Path) -> None:
    traced = trace(lenet(), "B x 1 x H x W", symbolic=True, flow=True)
    opened = open_trace(browser, tmp_path, traced)
    page = opened.page
    conv = next(i for i, r in enumerate(traced.layers) if r.name == "3")
    node = page.locator(f'svg.flow .node[data-call="{conv}"]')
    assert "2×16×8×8" in node.inner_html() and "B x 16 x H//2 - 6 x W//2 - 6" in node.inner_html()
    node.focus()
    assert "Formula" in page.locator(".facts").inner_text()
    assert "B x 16 x H//2 - 6 x W//2 - 6" in page.locator(".facts").inner_text()
    notes = page.locator(".notes").inner_text()
    assert "Symbolic: input B x 1 x H x W" in notes and "Domain: H and W at least 16" in notes
    clean(opened)
