"""Fixtures of the browser tests: one local stack with seeded calls, Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import (
    CHROMIUM,
    LAUNCH_FLAGS,
    chromium_missing_reason,
    running_stack,
    seed_calls,
)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Any, Any]]:
    """The running stack (config, calls table) with :func:`seed_calls` stored."""
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    with running_stack() as (cfg, table):
        seed_calls(table)
        yield cfg, table


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """The Playwright driver."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def launch(playwright: Any, user_data_dir: Path, extra: list[str] | None = None) -> Any:
    """Chromium with the project's flags and a fresh profile directory."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(CHROMIUM),
        headless=True,
        args=LAUNCH_FLAGS + (extra or []),
        viewport={"width": 1280, "height": 900},
    )


@pytest.fixture(scope="module")
def browser(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A browser context for the page tests."""
    context = launch(playwright, tmp_path_factory.mktemp("chromium-profile"))
    yield context
    context.close()


class PageErrors:
    """Console errors and uncaught exceptions of a page, collected as it runs."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, PageErrors]]:
    """A fresh tab and its error log."""
    tab = browser.new_page()
    yield tab, PageErrors(tab)
    tab.close()
