"""The HTML picture of ResNet-50 at 1x3x224x224: its size, and how fast headless Chromium draws it.

    python benchmarks/picture_speed.py          # needs /usr/bin/chromium and playwright

The file is made as ``cnnshape summary ... --html`` makes it: a trace with the data
flow, the inspection data (MACs, lint, regularization) and every module's settings.
It is checked to be self-contained (a Content-Security-Policy of ``default-src
'none'``, no URL but the SVG namespace, no request made while it loads: every
request is routed and counted). Then it is loaded from file:// several times in
headless Chromium, each in a fresh page; printed: when the picture was drawn
(``performance.now()`` at the end of the script, from navigation start), the load
event, and opening every block (all 175 layer calls) with "Open all". ResNet-152 is
measured the same way for scale. Targets from the issue are printed next to the
numbers; nothing asserts.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPEATS = 7


def picture(model: object, inputs: tuple[int, ...], path: Path) -> Path:
    from pytest_cnnshape import trace
    from pytest_cnnshape.inspection.collect import inspect_model
    from pytest_cnnshape.inspection.settings import module_settings
    from pytest_cnnshape.tracing.request import TraceRequest

    traced = trace(model, inputs, flow=True)  # type: ignore[arg-type]
    return traced.save_html(
        path,
        inspection=inspect_model(TraceRequest.of(model, inputs)),
        modules=module_settings(model),  # type: ignore[arg-type]
    )


def self_contained(page: str) -> bool:
    urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'<>]*", page)
    return "default-src 'none'" in page and set(urls) <= {"http://www.w3.org/2000/svg"}


def measure(path: Path) -> dict[str, list[float] | int]:
    sys.path.insert(0, str(ROOT))
    from tests.picture.browser import chromium

    drawn, loaded, opened, requests = [], [], [], 0
    with chromium() as browser:
        for _ in range(REPEATS + 1):  # the first load warms the browser up; not counted
            page = browser.open(path).page
            drawn.append(page.evaluate("window.cnnshapeDrawnAt"))
            loaded.append(
                page.evaluate(
                    "new Promise(r => { const f = () => {"
                    " const n = performance.getEntriesByType('navigation')[0];"
                    " if (n && n.loadEventEnd) r(n.loadEventEnd); else setTimeout(f, 5); }; f(); })"
                )
            )
            opened.append(
                page.evaluate(
                    "(() => { const t = performance.now();"
                    " document.querySelector('button[data-action=expand]').click();"
                    " return performance.now() - t; })()"
                )
            )
            last = browser.last
            requests += len(last.requests) + len(last.errors) if last else 0
            page.close()
    return {"drawn": drawn[1:], "loaded": loaded[1:], "opened": opened[1:], "problems": requests}


def report(name: str, path: Path) -> None:
    page = path.read_text(encoding="utf-8")
    size = path.stat().st_size
    print(
        f"{name}: {path.name} {size / 1024:.1f} KB (target: at most 300 KB); "
        f"self-contained: {'yes' if self_contained(page) else 'NO'}"
    )
    times = measure(path)
    for key, label in (("drawn", "picture drawn"), ("loaded", "load event"), ("opened", "Open all")):
        values = times[key]
        assert isinstance(values, list)
        print(f"  {label:14s} fastest {min(values):7.1f} ms   median {statistics.median(values):7.1f} ms")
    print(f"  network requests and console errors over {REPEATS + 1} loads: {times['problems']}")


def main() -> None:
    from benchmarks.models import ResNet, resnet50
    from tests.picture.browser import missing

    reason = missing()
    if reason:
        print(f"cannot measure: {reason}")
        return
    with tempfile.TemporaryDirectory() as folder:
        report("ResNet-50 1x3x224x224", picture(resnet50(), (1, 3, 224, 224), Path(folder) / "resnet50.html"))
        print("  target: drawn in under 1 s (1,000 ms)")
        report(
            "ResNet-152 1x3x224x224",
            picture(ResNet((3, 8, 36, 3)), (1, 3, 224, 224), Path(folder) / "resnet152.html"),
        )


if __name__ == "__main__":
    main()
