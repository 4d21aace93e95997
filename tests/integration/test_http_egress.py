"""HTTP egress through the worker (docs/operations.md, HTTP egress): redirects are never
followed, and addresses are judged after resolution, IPv6 forms carrying an IPv4 address
included."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from runtime_support import B, run

from dfc.runtime import codes

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    location = ""
    hits: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        status, extra = (
            (302, {"Location": self.server.location})
            if self.server.location
            else (
                200,
                {},
            )
        )
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(location: str = "") -> tuple[_Server, str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.location, server.hits = location, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Server, str, _Server, str]]:
    """A server that must never be reached, and one that redirects to it; only the redirecting
    one is allowed."""
    target, target_url = _serve()
    redirecting, url = _serve(location=f"{target_url}/secret")
    monkeypatch.setenv("DFC_HTTP_ALLOW", url.removeprefix("http://"))
    yield redirecting, url, target, target_url
    for s in (redirecting, target):
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize(
    "location",
    [None, "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/", "/again"],
)
def test_a_redirect_completes_with_its_status_and_is_not_followed(
    db_url: str, servers: tuple[_Server, str, _Server, str], location: str | None
) -> None:
    redirecting, url, target, target_url = servers
    if location is not None:
        redirecting.location = location
    b = B("redirect")
    root = b.then(b.http(f"{url}/start", method="GET", name="r"), b.sql("SELECT $r::jsonb AS r"))
    out = run(db_url, b.plan(root))
    assert out.status == "completed", out.error
    (row,) = out.result["rows"]
    envelope = row["r"]
    assert envelope["status"] == 302 and envelope["ok"] is False
    assert envelope["headers"]["location"] == (location or f"{target_url}/secret")
    assert redirecting.hits == ["/start"]  # `/again` would have come back here
    assert target.hits == []


@pytest.mark.parametrize(
    "host", ["[::ffff:127.0.0.1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]"]
)
def test_ipv6_forms_of_an_allowed_ipv4_address_are_still_denied(
    db_url: str, servers: tuple[_Server, str, _Server, str], host: str
) -> None:
    # 127.0.0.1:port is allowed by name; the same address spelled as IPv6 is another host, and
    # a non-public one.
    redirecting, url, _, _ = servers
    port = url.rsplit(":", 1)[1]
    b = B("embedded")
    out = run(db_url, b.plan(b.http(f"http://{host}:{port}/x", method="GET")))
    assert out.status == "failed"
    assert out.error["code"] == codes.HTTP_EGRESS_DENIED, out.error
    assert "not allowed" in out.error["message"]
    assert redirecting.hits == []


def test_a_value_a_header_cannot_carry_fails_the_step(
    db_url: str, servers: tuple[_Server, str, _Server, str]
) -> None:
    # Before: the encoding error escaped the step and the instance was retried forever.
    redirecting, url, _, _ = servers
    b = B("header")
    root = b.then(
        b.sql("SELECT 'José' AS n", name="who"),
        b.http(f"{url}/x", method="GET", headers='{"X-Name": "$who"}'),
    )
    out = run(db_url, b.plan(root))
    assert out.status == "failed"
    assert out.error["code"] == codes.BAD_REQUEST
    assert "the value of header 'X-Name' holds 'é'" in out.error["message"]
    assert redirecting.hits == []
