"""Browser tests: Debian's Chromium, driven by Playwright, against pytest-django's live server.

Never downloads a browser: Playwright launches /usr/bin/chromium (`apt-get install chromium`). The export runs inline
(django-q2's sync mode) in the live server's thread, so a page that polls sees the batch finish, and the test thread
never touches the database while the browser is waiting on the server (with SQLite both share one connection).

One request at a time on SQLite: the test database is in memory there, and the live server hands its request threads
the one connection that holds it (an in-memory database lives only as long as its connection). A sqlite3 connection
is not safe to use from two threads at once: on Python 3.13, two requests reading the same session row through it
can get no row ("session lost": the page redirects to the sign-in page and the answer deletes the session cookie),
two rows, or "bad parameter or other API misuse". The browser does send requests at once (a page's htmx fragment is
still loading when the test goes to the next page), so `live_server` here runs them one after another when the
connection is shared. On PostgreSQL each request thread has its own connection and nothing changes.

Set FIELDSYNC_SCREENSHOTS=<directory> to save screenshots of the main pages (bench/screenshots.py does).
"""

import contextlib
import os
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("FIELDSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium", allow_module_level=True)


# Exports run inline in the live server's request; on a busy two-core machine a page can take a few seconds.
playwright_sync.expect.set_options(timeout=20_000)


class _OneRequestAtATime:
    """WSGI wrapper: a request holds the lock from the call to the response's close() (after its body is sent, and
    Django's request_finished), so no two requests use the shared connection at once."""

    def __init__(self, application, lock) -> None:
        self.application, self.lock = application, lock

    def __call__(self, environ, start_response):
        self.lock.acquire()
        try:
            result = self.application(environ, start_response)
        except BaseException:
            self.lock.release()
            raise
        return _ReleasedOnClose(result, self.lock)


class _ReleasedOnClose:
    def __init__(self, result, lock) -> None:
        self.result, self.lock = result, lock

    def __iter__(self):
        return iter(self.result)

    def close(self) -> None:
        try:
            if hasattr(self.result, "close"):
                self.result.close()
        finally:
            self.lock.release()


@pytest.fixture(scope="session")
def live_server(request, django_db_setup):
    """pytest-django's live server, started after the test database exists: pytest-django's own fixture (session
    scope) is created before it when a browser test is the first to use the database, and then gives each request
    thread a connection of its own; otherwise they share the test's. Here always shared on SQLite, one request at a
    time."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from pytest_django.live_server_helper import LiveServer

    addr = request.config.getvalue("liveserver") or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    server = LiveServer(addr, start=False)
    server.request_lock = None
    if server.thread.connections_override:
        lock = server.request_lock = threading.Lock()
        server.thread.static_handler = lambda application: _OneRequestAtATime(StaticFilesHandler(application), lock)
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def server_held(live_server):
    """For the test thread's own database work while a page may still send requests (htmx polls, a click's POST):
    on SQLite the live server's requests wait meanwhile, as they share the test's connection."""
    if live_server.request_lock is None:
        yield
        return
    with live_server.request_lock:
        yield


@pytest.fixture(scope="module")
def browser():
    # live_server + Playwright's sync API: Playwright keeps an event loop in the test thread, and Django refuses ORM
    # calls from a thread with an event loop unless told it is safe (it is: these are ordinary blocking calls). Set
    # for the browser tests only, and the browser closed after them, so no other test runs under either.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with playwright_sync.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900}, locale="en-US")
    context.set_default_timeout(20_000)
    page = context.new_page()
    # The Content-Security-Policy (no inline script or style) must not block anything the pages do, htmx included.
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.csp_violations = blocked
    yield page
    context.close()
    assert not blocked, blocked


@pytest.fixture
def exports_run_inline(monkeypatch):
    """django-q2's sync mode: the export task runs in the request that enqueued it (on commit)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def qbo_company(qbo_sandbox, settings, transactional_db):
    from tests.quickbooks_export.export.conftest import connect

    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox, settings)


@pytest.fixture
def shoot():
    """shoot(page, "payments-list"): a screenshot into $FIELDSYNC_SCREENSHOTS, when it is set."""
    directory = os.environ.get("FIELDSYNC_SCREENSHOTS")

    def take(page, name: str, *, full_page: bool = False) -> None:
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=full_page)

    return take


def sign_in(page, username: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    playwright_sync.expect(page.get_by_role("heading", name="Payments", exact=True)).to_be_visible()
    # The Payments page then loads its count (htmx, on load): wait for it, so the test's next navigation starts on a
    # quiet page rather than cancelling a request the server is still answering.
    match_count = page.locator("#match-count")  # server-rendered when there are payments listed
    if match_count.count():
        playwright_sync.expect(match_count).not_to_contain_text("counting")
