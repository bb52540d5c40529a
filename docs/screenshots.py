"""Take the README's screenshots of the HTML report: the examples' reports in headless Chromium.

    python docs/screenshots.py      # writes docs/picture-*.png (needs /usr/bin/chromium)

Each example project is run with ``pytest --cnn-shapes-report=<tmp>.html`` as a
user would run it, then one model's section is photographed with the same headless
Chromium the tests use: LeNet-5, the U-Net (folded to depth 1, fitted), the broken
project's flatten mismatch, and LeNet-5 with conv2 slimmed from 16 to 12 channels
against its committed baseline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOCS = ROOT / "docs"


def report(project: Path, html: Path, *options: str) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--cnn-shapes-report={html}",
            *options,
        ],
        cwd=project,
        capture_output=True,
        check=False,
    )
    return html


def shoot(
    browser: object, html: Path, model: str, name: str, *, hover: str, fit: bool = False, width: int = 1400
) -> None:
    page = browser.open(html, width=width, height=900).page  # type: ignore[attr-defined]
    section = page.locator(f'section.model:has(h2 a:text-is("{model}"))')
    if fit:
        section.locator("button[data-action=fit]").click()
    section.locator(hover).first.hover()
    section.screenshot(path=str(DOCS / name))
    page.close()
    print(f"docs/{name}: {model} from {html.name}")


def main() -> None:
    from tests.picture.browser import chromium, missing

    reason = missing()
    if reason:
        sys.exit(f"cannot take screenshots: {reason}")
    examples = ROOT / "examples"
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        out = Path(tmp)
        lenet = report(examples / "lenet", out / "lenet.html")
        unet = report(examples / "unet_style", out / "unet.html", "--cnn-shapes-depth=1")
        broken = report(examples / "broken", out / "broken.html")
        changed_project = out / "lenet_changed"
        shutil.copytree(examples / "lenet", changed_project)
        source = changed_project / "lenet.py"
        text = source.read_text()
        text = text.replace("nn.Conv2d(6, 16, kernel_size=5)", "nn.Conv2d(6, 12, kernel_size=5)")
        source.write_text(text.replace("nn.Linear(16 * 5 * 5, 120)", "nn.Linear(12 * 5 * 5, 120)"))
        changed = report(changed_project, out / "changed.html")
        shoot(browser, lenet, "lenet5_digits", "picture-lenet.png", hover='.node[data-call="4"]')
        shoot(browser, unet, "UNet", "picture-unet.png", hover=".node.junction", fit=True, width=1700)
        shoot(browser, broken, "FlattenMismatch", "picture-broken.png", hover=".node.failed")
        shoot(browser, changed, "lenet5_digits", "picture-baseline.png", hover='.node[data-call="4"]')


if __name__ == "__main__":
    main()
