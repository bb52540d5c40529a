"""Headless Chromium for the picture's tests: Debian's /usr/bin/chromium, driven by Playwright.

``playwright install`` downloads browser builds, which cannot happen here; the system
Chromium is launched with ``executable_path`` instead (``.ci/run`` installs it). Every
request a page makes is routed: file:// and data: go through, anything else is
recorded and aborted, so a test sees any attempt to reach the network.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("CNNSHAPE_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; CI installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class Opened:
    """A loaded page and what it did: console errors, uncaught exceptions, network requests."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class Browser:
    """One Chromium with a fresh profile; ``open`` loads a file and waits for the picture."""

    def __init__(self, context: Any) -> None:
        self.context = context
        #: The page ``open`` loaded last.
        self.last: Opened | None = None

    def open(self, path: Path, *, width: int = 1400, height: int = 900) -> Opened:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        opened = Opened(page)
        page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.errors.append(str(e)))

        def route(r: Any) -> None:
            url = r.request.url
            if url.startswith(("file:", "data:")):
                r.continue_()
            else:
                opened.requests.append(url)
                r.abort()

        page.route("**/*", route)
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("html[data-rendered]")
        self.last = opened
        return opened


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch the system Chromium headless with a throw-away user data dir."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=ARGS, headless=True
        )
        try:
            yield Browser(context)
        finally:
            context.close()
