"""Browser tests: Playwright driving Debian's Chromium against the app on a live server.

The server is werkzeug in a thread, on a free port of 127.0.0.1, serving the
CSRF-protected app (`csrf_app`) on the same database as the test. Rows the test
commits are visible to the server at once; `_clean_state` empties everything
after each test. See ../../../shared/recipes/browser-tests.md.

Every task is counted in clicks: the tests click through `Clicks.click()`, and
`Clicks.task(name, budget)` asserts the budget and records the count, which is
printed at the end of the run ("clicks per task"). Typing is not counted; text goes in
with keyboard.insert_text() (one input event, like a fast typist), except in search
boxes, where the tests press key by key because each key press may start a search.
"""

import logging
import threading
from contextlib import contextmanager

import pytest
from playwright.sync_api import Locator, Page, expect
from werkzeug.serving import make_server

from crm.extensions import db
from tests import factories

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Every hostname except loopback gets NXDOMAIN inside Chromium: no DNS, no outbound traffic.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# task -> (clicks measured, budget), filled by Clicks.task() and printed at the end.
MEASURED: dict[str, tuple[int, int]] = {}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP, "locale": "en-US"}


@pytest.fixture(scope="session")
def live_server(csrf_app):
    """The real app over HTTP; port 0 lets the system pick a free port."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, csrf_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def base_url(live_server):
    """pytest-playwright resolves page.goto("/contacts") against this."""
    return live_server


@pytest.fixture
def page(page: Page) -> Page:
    """The plugin's page; a click that cannot happen fails in 5 s, as expect() does, not 30 s."""
    page.set_default_timeout(5_000)
    return page


class Clicks:
    """Counts the clicks a user makes; typing and key presses are not clicks."""

    def __init__(self) -> None:
        self.count = 0

    def click(self, locator: Locator, **options) -> None:
        locator.click(**options)
        self.count += 1

    @contextmanager
    def task(self, name: str, budget: int):
        start = self.count
        yield self
        used = self.count - start
        MEASURED[name] = (used, budget)
        assert used <= budget, f"{name}: {used} clicks, budget {budget}"


@pytest.fixture
def clicks() -> Clicks:
    return Clicks()


@pytest.fixture
def seed(app, ctx):
    """The database session of the test: create rows with tests.factories, then commit."""
    return db.session


@pytest.fixture
def sales_user(seed):
    user = factories.make_user(role="sales", name="Sarah Connor", email="sarah@example.com")
    seed.commit()
    return user


@pytest.fixture
def signed_in(csrf_app, base_url, ctx):
    """signed_in(page, user): start the browser signed in, without the login form.

    The form itself is walked by the tests of the login task; the others start from
    the session cookie Flask-Login would have set.
    """

    def _sign_in(page: Page, user) -> None:
        token = factories.start_session(user)
        db.session.commit()
        serializer = csrf_app.session_interface.get_signing_serializer(csrf_app)
        value = serializer.dumps({"_user_id": token, "_fresh": True})
        name = csrf_app.config["SESSION_COOKIE_NAME"]
        page.context.add_cookies([{"name": name, "value": value, "url": base_url}])

    return _sign_in


def sign_in(page: Page, clicks: Clicks, email: str, password: str = factories.PASSWORD) -> None:
    """Through the login form, as a user does: type, type, click Sign in."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)  # the email field has autofocus
    page.get_by_label("Password").fill(password)
    clicks.click(page.get_by_role("button", name="Sign in"))
    expect(page.locator("header.topbar")).to_be_visible()


def wait_until_ready(link: Locator) -> None:
    """Wait until htmx is idle and `link` is boosted, as it is by the time a person clicks it.

    htmx pushes the URL before it swaps, and processes swapped-in content after, so a click
    right after a search (typed letters may answer twice) can land on a link htmx has not yet
    taken over and make a full page load.
    """
    link.page.wait_for_function("() => !document.querySelector('.htmx-request')")
    link.evaluate(
        "a => new Promise(done => { const check = () => a._htmx?.boosted ? done() : requestAnimationFrame(check); check(); })"
    )


def pytest_terminal_summary(terminalreporter):
    if not MEASURED:
        return
    terminalreporter.section("clicks per task")
    for name, (used, budget) in MEASURED.items():
        terminalreporter.write_line(f"{used} / {budget}  {name}")
