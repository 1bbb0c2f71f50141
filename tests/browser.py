"""Helpers for the real-browser tests: Debian's Chromium driven by Playwright, the app
served from a thread on loopback, axe-core on every page, bounded waits for email.

Cookies: the app sets `Secure` cookies (`cookie_secure=True` in the test settings).
Chromium treats http://127.0.0.1 and http://localhost as potentially trustworthy
origins and keeps Secure cookies there (checked when this was written, Chromium 156),
so the live server runs on http://127.0.0.1 with the production cookie flags;
`assert_session_cookie_is_secure` guards that assumption.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    Request,
    Response,
    Route,
)
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import Mailbox, _flush_prefix, run_worker
from web.http import database
from workers.context import use_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
EMAIL_TIMEOUT_SECONDS = 10.0
BLOCKING_IMPACTS = ("serious", "critical")


# --- the browser ---------------------------------------------------------------------


def chromium_executable() -> str:
    """Debian's Chromium, or a clear failure (never a skip, never a downloaded build)."""
    for candidate in (CHROMIUM, shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "Chromium is not installed, and the browser tests need it. Install Debian's "
        "chromium: `apt-get update && apt-get install -y --no-install-recommends "
        "chromium fonts-dejavu-core` (.ci/run does this). Do not use `playwright install`.",
        pytrace=False,
    )


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS
    )


class LazyBrowser:
    """Launches Chromium on first use, inside the test, so a missing Chromium makes the
    test FAIL with `chromium_executable`'s message (a fixture would only ERROR)."""

    def __init__(self, playwright: Playwright) -> None:
        self.playwright = playwright
        self.browser: Browser | None = None

    def get(self) -> Browser:
        if self.browser is None:
            self.browser = launch_chromium(self.playwright)
        return self.browser

    def close(self) -> None:
        if self.browser is not None:
            self.browser.close()
            self.browser = None


# --- the live server -----------------------------------------------------------------


class _Deferred:
    """A WSGI app that forwards to the real one, set once the port (and so the base URL
    the app needs for links in emails) is known. Binding port 0 first avoids the race of
    picking a "free" port and binding it later."""

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "the live server received a request before its app"
        return self.app(environ, start_response)


@dataclass
class LiveServer:
    app: Flask
    url: str


@contextmanager
def serve_live_app(build: Callable[..., Flask], **overrides: Any) -> Iterator[LiveServer]:
    """Build the live app (committed data, separate database) with base_url pointing at
    a werkzeug server on 127.0.0.1, serve it from a daemon thread, make it the app that
    in-process RQ workers run jobs under, and tear it all down afterwards."""
    deferred = _Deferred()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, deferred, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app = build(base_url=url, **overrides)
    deferred.app = app
    redis = app.extensions["chorus.redis"]
    prefix = app.extensions["chorus.settings"].rq_queue_prefix
    _flush_prefix(redis, prefix)  # no rate-limit counts or stray jobs from other tests
    use_app(app)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        use_app(None)
        _flush_prefix(redis, prefix)
        database(app).engine.dispose()


# --- email -----------------------------------------------------------------------------


def wait_for_link(
    app: Flask,
    mailbox: Mailbox,
    address: str,
    path_fragment: str,
    timeout: float = EMAIL_TIMEOUT_SECONDS,
) -> str:
    """Drain the queues with a real RQ worker until an email to `address` holding a link
    with `path_fragment` arrives at the SMTP server; return that link (newest first)."""
    deadline = time.monotonic() + timeout
    while True:
        run_worker(app)
        for msg in reversed(mailbox.to(address)):
            if path_fragment in Mailbox.text_of(msg):
                return mailbox.link_in(msg, path_fragment)
        if time.monotonic() > deadline:
            seen = [_describe(m) for m in mailbox.messages]
            raise AssertionError(
                f"no email to {address} with a {path_fragment!r} link arrived within "
                f"{timeout:.0f} s; the SMTP server received: {seen or 'nothing'}"
            )
        time.sleep(0.1)


def _describe(msg: EmailMessage) -> str:
    return f"{msg['Subject']!r} to {msg['To']}"


# --- pages -----------------------------------------------------------------------------


@dataclass
class PageWatch:
    """Follows one page: every document it loads, sub-resources (stylesheet, images) that
    failed, and console errors (a Content-Security-Policy refusal shows up there).
    `A11y.check` marks the current document as checked, so a journey can prove that axe
    ran on every page it visited."""

    page: Page
    documents: list[str] = field(default_factory=list)
    checked: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A new document (not a same-document move such as following a #fragment link).
        self.page.on("domcontentloaded", lambda page: self.documents.append(page.url))
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._request_failed)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))

    def _response(self, response: Response) -> None:
        if response.request.resource_type == "document" or response.status < 400:
            return
        if response.url.endswith("/favicon.ico"):
            return  # Chromium asks for it on its own; the app has none yet
        self.problems.append(f"{response.url} answered {response.status}")

    def _request_failed(self, request: Request) -> None:
        if request.failure != "net::ERR_ABORTED":  # left behind by a navigation
            self.problems.append(f"{request.url} failed: {request.failure}")

    def _console(self, message: ConsoleMessage) -> None:
        # "Failed to load resource" repeats a status >= 400: `_response` judges those (a
        # form answered with 422 is how the app reports what to correct).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console error on {self.page.url}: {message.text}")

    def unchecked(self) -> list[str]:
        return [url for i, url in enumerate(self.documents) if i not in self.checked]


class A11y:
    """axe-core on the current document: fails on any serious or critical violation,
    with what a developer needs to fix it."""

    def __init__(self) -> None:
        self.axe = Axe()
        self.watches: list[PageWatch] = []
        self.pages_checked = 0

    def watch(self, page: Page) -> Page:
        self.watches.append(PageWatch(page))
        return page

    def _watch_of(self, page: Page) -> PageWatch | None:
        return next((w for w in self.watches if w.page is page), None)

    def check(self, page: Page) -> None:
        page.wait_for_load_state("load")
        results = self.axe.run(page)
        self.pages_checked += 1
        self._mark_checked(page)
        blocking = [
            v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS
        ]
        assert not blocking, format_violations(page.url, blocking)

    def check_without_scripts(self, page: Page, twin: Page) -> None:
        """axe-core for a page in a context with JavaScript disabled, where axe cannot
        run (its promises never settle). The document `page` shows is served, as is, to
        `twin` (a page of a JavaScript-enabled context) at the same address, so the
        app's stylesheet still loads and colour contrast is judged; then `check` runs
        there and `page`'s current document counts as checked."""
        page.wait_for_load_state("load")
        address, html = page.url, page.content()
        document = address.split("#", 1)[0]

        def serve_snapshot(route: Route) -> None:
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)

        twin.route(lambda u: u.split("#", 1)[0] == document, serve_snapshot)
        try:
            twin.goto(address)
            self.check(twin)
        finally:
            twin.unroute_all()
        self._mark_checked(page)

    def _mark_checked(self, page: Page) -> None:
        """Count `page`'s current document as checked (after every earlier one was)."""
        watch = self._watch_of(page)
        if watch is not None and watch.documents:
            skipped = [url for i, url in enumerate(watch.documents[:-1]) if i not in watch.checked]
            assert not skipped, f"axe was not run on these pages: {skipped}"
            watch.checked.add(len(watch.documents) - 1)

    def assert_every_page_checked(self) -> None:
        for watch in self.watches:
            assert not watch.unchecked(), f"axe was not run on: {watch.unchecked()}"
            assert not watch.problems, "the browser reported:\n" + "\n".join(watch.problems)


def format_violations(url: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"{len(violations)} serious/critical accessibility violation(s) on {url}:"]
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']}  <{v['helpUrl']}>")
        for node in v["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            lines.append(f"    at {target}: {node.get('failureSummary', '').strip()}")
            lines.append(f"       {node.get('html', '')[:200]}")
    return "\n".join(lines)


def assert_session_cookie_is_secure(context: BrowserContext, url: str) -> None:
    cookies = {c["name"]: c for c in context.cookies(url)}
    assert "chorus_session" in cookies, f"no session cookie for {url}: {list(cookies)}"
    assert cookies["chorus_session"]["secure"], "the session cookie lost its Secure flag"
    assert cookies["chorus_session"]["httpOnly"], "the session cookie lost its HttpOnly flag"


def tab_until_focused(page: Page, target: Locator, max_presses: int = 12) -> None:
    """Press Tab until `target` has the focus; fail if it is not reached (not in the tab
    order, or a focus trap before it)."""
    for _ in range(max_presses):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement && document.activeElement.outerHTML")
    raise AssertionError(f"{max_presses} presses of Tab never reached {target}; at {focused}")


def assert_fits_viewport(page: Page) -> None:
    """No horizontal scrolling: the document is no wider than the viewport.

    A mobile context (`is_mobile=True`) zooms out to show content that overflows, which
    widens `innerWidth` too; so the width is also compared with the viewport asked for."""
    widths = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    size = page.viewport_size
    limit = min(widths["inner"], size["width"]) if size else widths["inner"]
    if widths["scroll"] <= limit and widths["inner"] <= limit:
        return
    wide = page.evaluate(
        """limit => [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > limit + 0.5
                || (el.scrollWidth > el.clientWidth + 1
                    && getComputedStyle(el).overflowX === 'visible'))
            .slice(-5).map(el => el.outerHTML.slice(0, 120))""",
        limit,
    )
    raise AssertionError(
        f"{page.url} scrolls sideways: {widths['scroll']} px wide (innerWidth "
        f"{widths['inner']} px) in a {limit} px viewport; too wide: {wide}"
    )
