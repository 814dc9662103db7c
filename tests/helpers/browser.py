"""Headless Debian Chromium driven by Playwright, for tests that look at the Airflow UI.

::

    reason = browser_skip_reason()          # None, or why no browser test can run here
    with chromium() as browser:              # Playwright's sync API; /usr/bin/chromium, closed-network flags
        page = new_page(browser)             # 1280x900; any request off 127.0.0.1/localhost is blocked
        login(page, airflow.url, airflow.username, airflow.password)
        page.goto(f"{airflow.url}/connections")
        assert offline_violations(page) == []

Never downloads Playwright's own browsers: it launches Debian's ``chromium`` (``apt-get install -y chromium``)
through ``executable_path``. Chromium here runs on a closed network, so background networking, component
updates, sync and QUIC are off (without those flags its connections are refused, many at a time); Playwright
gives every launch an empty ``--user-data-dir`` of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
VIEWPORT = {"width": 1280, "height": 900}


def chromium_executable() -> str | None:
    """``$DEBITURA_CHROMIUM``, else Debian's ``/usr/bin/chromium`` (or ``chromium`` on PATH); None if absent."""
    configured = os.environ.get("DEBITURA_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def browser_skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[test]')"
    if chromium_executable() is None:
        return "no Chromium: install Debian's (apt-get install -y chromium) or set DEBITURA_CHROMIUM to its path"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Launch headless Chromium (Playwright sync API); closed and stopped on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    if executable is None:
        raise RuntimeError(browser_skip_reason())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, timeout_ms: float = 60_000) -> Page:
    """A page in a fresh context that refuses (and records) every request to a host that is not loopback.

    :param browser: from :func:`chromium`.
    :param timeout_ms: default timeout of every wait and action (a loaded 2-core machine is slow).
    """
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(timeout_ms)
    blocked: list[str] = []

    def guard(route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS or not route.request.url.startswith("http"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page._debitura_blocked = blocked  # type: ignore[attr-defined]
    return page


def offline_violations(page: Page) -> list[str]:
    """The URLs off loopback that the page (or its context) tried to load since :func:`new_page`."""
    return list(page._debitura_blocked)  # type: ignore[attr-defined]


def login(page: Page, base_url: str, username: str, password: str) -> None:
    """Log in through the simple auth manager's own login form, as a person would.

    :param page: from :func:`new_page`.
    :param base_url: Airflow's URL, e.g. ``http://127.0.0.1:8080``.
    :param username: the user.
    :param password: its password.
    """
    page.goto(base_url)
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/" not in url)
