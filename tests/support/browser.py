"""Headless Chromium (Debian's) through playwright, kept to one Label Studio."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]  # fmt: skip


@contextmanager
def label_studio_page(base_url: str, width: int = 1400, height: int = 860) -> Iterator[object]:
    """A page that may reach only ``base_url``: Label Studio's page calls analytics hosts, and
    any of them could stall the load."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; run scripts/bootstrap.sh system")
    from playwright.sync_api import Route, sync_playwright

    def only_label_studio(route: Route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", only_label_studio)
            yield page
        finally:
            browser.close()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/user/login")
    page.fill("#email", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
