"""Debian's chromium driven by Playwright, for the studio's browser tests (test_studio.py) and its screenshots
(scripts/studio_screenshots.py); the server they talk to is serving.Server.

    with chromium() as browser:
        page = browser.new_page(); page.goto(server.url)

Playwright's own browser download cannot reach its host here, so the system chromium is launched
(scripts/install-browser-deps installs it).
"""

from __future__ import annotations

import contextlib

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]  # a beeping microphone


@contextlib.contextmanager
def chromium():
    """Headless Debian chromium under Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
