"""The ``browser`` fixture: one headless Chromium per test process, skipped without one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.picture.browser import Browser, chromium, missing


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    with chromium() as launched:
        yield launched
