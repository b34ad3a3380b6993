"""A small HTTP client for the benchmark: one connection, the session cookie, the CSRF token.

Built on http.client rather than a full-featured library so that the time measured is
the server's, not the client's. Everything goes to 127.0.0.1.
"""

import http.client
import re
import time
from dataclasses import dataclass
from urllib.parse import urlencode

_FORM_TOKEN = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
_PAGE_TOKEN = re.compile(r'"X-CSRFToken":\s*"([^"]+)"')


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float

    @property
    def sql_queries(self) -> int | None:
        value = self.headers.get("X-SQL-Queries")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class LoginFailed(RuntimeError):
    pass


class Client:
    """Sequential requests to the app, as one signed-in browser."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.cookies: dict[str, str] = {}
        self.csrf_token: str | None = None

    def close(self) -> None:
        self.connection.close()

    def request(
        self, method: str, path: str, form: dict | None = None, headers: dict | None = None
    ):
        body = urlencode(form).encode() if form is not None else None
        sent = {"Host": f"127.0.0.1:{self.port}", "Accept-Language": "en"}
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = self.cookie_header
        sent.update(headers or {})
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=sent)
            answer = self.connection.getresponse()
            data = answer.read()
        except (http.client.HTTPException, OSError):
            self.connection.close()  # a dropped keep-alive connection: once more on a new one
            self.connection.request(method, path, body=body, headers=sent)
            answer = self.connection.getresponse()
            data = answer.read()
        seconds = time.perf_counter() - started
        if answer.getheader("Connection", "").lower() == "close":
            self.connection.close()
        for cookie in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value:
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return Response(answer.status, answer.headers, data, seconds)

    def get(self, path: str, headers: dict | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: dict, headers: dict | None = None) -> Response:
        form = {"csrf_token": self.csrf_token or "", **form}
        headers = {"X-CSRFToken": self.csrf_token or "", **(headers or {})}
        return self.request("POST", path, form=form, headers=headers)

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def login(self, email: str, password: str) -> None:
        """Sign in through the login form, as a browser does; then keep the page's CSRF token."""
        page = self.get("/login")
        found = _FORM_TOKEN.search(page.text)
        if page.status != 200 or not found:
            raise LoginFailed(f"GET /login answered {page.status} without a CSRF token")
        form = {"email": email, "password": password, "csrf_token": found.group(1)}
        answer = self.request("POST", "/login", form=form)
        if answer.status not in (302, 303):
            raise LoginFailed(f"POST /login as {email} answered {answer.status}")
        home = self.get("/")
        token = _PAGE_TOKEN.search(home.text)
        if home.status != 200 or not token:
            raise LoginFailed(f"GET / after signing in as {email} answered {home.status}")
        self.csrf_token = token.group(1)
