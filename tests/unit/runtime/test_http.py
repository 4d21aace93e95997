"""Performing HTTP steps against a local server on 127.0.0.1 (SPEC §5.2 HTTP)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dfc.runtime import codes
from dfc.runtime import http as runtime_http
from dfc.runtime.http import EgressPolicy, HttpError, is_textual
from dfc.runtime.state import HttpRequest

LOCAL = EgressPolicy(allow=("127.0.0.1",))


def perform(request: HttpRequest, **options: Any) -> dict[str, Any]:
    """`runtime_http.perform` run to completion."""
    return asyncio.run(runtime_http.perform(request, **options))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path == "/echo":
            echo = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", errors="replace"),
            }
            self._send(200, json.dumps(echo).encode(), "application/json", {"X-Multi": "a"})
        elif path == "/png":
            self._send(200, b"\x89PNG\r\n\x00\xff", "image/png")
        elif path == "/plain":
            self._send(200, "héllo".encode("latin-1"), "text/plain; charset=latin-1")
        elif path == "/none":
            self._send(201, b"no type", None)
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/echo"})
        elif path == "/missing":
            self._send(404, b'{"error": "nope"}', "application/problem+json")
        elif path == "/broken":
            self._send(503, b"try later", "text/plain")
        elif path == "/slow":
            time.sleep(0.5)
            self._send(200, b"late", "text/plain")
        elif path == "/big":
            self._send(200, b"x" * 5000, "text/plain")
        else:
            self._send(400, b"?", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out on purpose closes the connection under the handler


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def req(
    url: str,
    method: str = "POST",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
    multipart: tuple[dict[str, Any], ...] | None = None,
) -> HttpRequest:
    return HttpRequest(
        url=url,
        method=method,
        body=body,
        headers=headers or {},
        timeout_s=timeout,
        idempotency_key="dfc-abcd1234-n1",
        multipart=multipart,
    )


def test_json_envelope(server: str) -> None:
    env = perform(
        req(f"{server}/echo?x=1", body='{"a": 1}', headers={"X-Test": "yes"}), policy=LOCAL
    )
    assert set(env) == {"status", "body", "encoding", "headers", "ok", "duration_ms"}
    assert (env["status"], env["ok"], env["encoding"]) == (200, True, "text")
    assert isinstance(env["duration_ms"], int) and env["duration_ms"] >= 0
    assert env["headers"]["content-type"] == "application/json" and env["headers"]["x-multi"] == "a"
    echo = json.loads(env["body"])
    assert echo["method"] == "POST" and echo["path"] == "/echo?x=1" and echo["body"] == '{"a": 1}'
    assert echo["headers"]["idempotency-key"] == "dfc-abcd1234-n1"
    assert echo["headers"]["x-test"] == "yes"
    assert echo["headers"]["content-type"] == "application/json"


def test_text_body_gets_a_text_content_type_and_user_headers_win(server: str) -> None:
    env = perform(
        req(f"{server}/echo", body="hello", headers={"Idempotency-Key": "mine"}), policy=LOCAL
    )
    echo = json.loads(env["body"])
    assert echo["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert echo["headers"]["idempotency-key"] == "mine"


def test_binary_and_textual_bodies(server: str) -> None:
    env = perform(req(f"{server}/png", "GET"), policy=LOCAL)
    assert env["encoding"] == "base64" and base64.b64decode(env["body"]) == b"\x89PNG\r\n\x00\xff"
    env = perform(req(f"{server}/plain", "GET"), policy=LOCAL)
    assert (env["encoding"], env["body"]) == ("text", "héllo")
    env = perform(req(f"{server}/none", "GET"), policy=LOCAL)
    assert (env["status"], env["encoding"], env["body"]) == (201, "text", "no type")


def test_redirects_are_not_followed_and_4xx_completes(server: str) -> None:
    env = perform(req(f"{server}/redirect", "GET"), policy=LOCAL)
    assert (env["status"], env["ok"], env["headers"]["location"]) == (302, False, "/echo")
    env = perform(req(f"{server}/missing", "GET"), policy=LOCAL)
    assert (env["status"], env["ok"], env["encoding"]) == (404, False, "text")


def test_5xx_fails_with_the_response(server: str) -> None:
    with pytest.raises(HttpError) as e:
        perform(req(f"{server}/broken?token=secret", "GET"), policy=LOCAL)
    err = e.value.to_error()
    assert err["code"] == codes.HTTP_SERVER_ERROR and err["status"] == 503
    assert err["response"]["body"] == "try later"
    assert "secret" not in err["message"]  # query strings may hold secrets


def test_timeouts_and_connection_errors_fail(server: str) -> None:
    with pytest.raises(HttpError) as e:
        perform(req(f"{server}/slow", "GET", timeout=0.2), policy=LOCAL)
    assert e.value.code == codes.HTTP_TRANSPORT_ERROR and "timed out" in e.value.message
    with pytest.raises(HttpError) as e:
        perform(req("http://127.0.0.1:1/", "GET"), policy=LOCAL)
    assert e.value.code == codes.HTTP_TRANSPORT_ERROR


def test_response_size_limit(server: str) -> None:
    with pytest.raises(HttpError) as e:
        perform(req(f"{server}/big", "GET"), policy=LOCAL, max_body=1000)
    assert "larger than" in e.value.message


def test_multipart(server: str) -> None:
    data = base64.b64encode(b"\x00\x01binary").decode()
    parts = (
        {
            "name": "file",
            "data_b64": data,
            "filename": "a.bin",
            "content_type": "application/octet-stream",
        },
        {"name": "note", "data_b64": base64.b64encode(b"hi").decode()},
    )
    env = perform(
        req(f"{server}/echo", headers={"Content-Type": "text/plain"}, multipart=parts), policy=LOCAL
    )
    echo = json.loads(env["body"])
    assert echo["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    body = echo["body"]
    assert 'name="file"; filename="a.bin"' in body and "binary" in body
    assert 'name="note"\r\n\r\nhi' in body


def test_async(server: str) -> None:
    async def go() -> dict[str, Any]:
        return await runtime_http.perform(req(f"{server}/echo", "GET"), policy=LOCAL)

    env = asyncio.run(go())
    assert env["status"] == 200
    with pytest.raises(HttpError) as e:
        asyncio.run(runtime_http.perform(req(f"{server}/echo"), policy=EgressPolicy()))
    assert e.value.code == codes.HTTP_EGRESS_DENIED


def test_loopback_is_denied_by_default(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DFC_HTTP_ALLOW", raising=False)
    for url in (f"{server}/echo", "http://localhost:1/"):
        with pytest.raises(HttpError) as e:
            perform(req(url))
        assert e.value.code == codes.HTTP_EGRESS_DENIED
    monkeypatch.setenv("DFC_HTTP_ALLOW", "example.com, 127.0.0.0/8")
    assert perform(req(f"{server}/echo"))["status"] == 200


def test_egress_rules() -> None:
    public = [ipaddress.ip_address("93.184.216.34")]
    private = [ipaddress.ip_address("10.1.2.3")]
    mixed = [*public, ipaddress.ip_address("::1")]
    EgressPolicy().check("example.com", 443, public)  # empty list: any public host
    for policy, host, port, addrs in [
        (EgressPolicy(), "intranet", 80, private),  # private needs an explicit allow
        (EgressPolicy(), "rebind.example", 443, mixed),  # every address is checked
        (EgressPolicy(allow=("*",)), "intranet", 80, private),  # `*` is not explicit
        (EgressPolicy(allow=("api.example.com",)), "example.com", 443, public),
        (EgressPolicy(allow=("api.example.com:443",)), "api.example.com", 8443, public),
        (EgressPolicy(allow=("*.example.com",)), "example.com.evil.net", 443, public),
    ]:
        with pytest.raises(HttpError):
            policy.check(host, port, addrs)
    EgressPolicy(allow=("intranet",)).check("intranet", 80, private)
    EgressPolicy(allow=("*.corp.example",)).check("db.corp.example", 80, private)
    EgressPolicy(allow=("10.0.0.0/8",)).check("intranet", 80, private)
    EgressPolicy(allow=("api.example.com:443",)).check("API.example.com.", 443, public)
    EgressPolicy(allow=("[::1]:8080",)).check("::1", 8080, [ipaddress.ip_address("::1")])
    with pytest.raises(HttpError):
        EgressPolicy(allow=("a:b:c:x",)).check("x", 1, public)


def test_invalid_urls() -> None:
    for url in ("ftp://example.com/x", "not a url", "http://"):
        with pytest.raises(HttpError) as e:
            perform(req(url), policy=LOCAL)
        assert e.value.code == codes.BAD_REQUEST


@pytest.mark.parametrize(
    ("content_type", "textual"),
    [
        (None, True),
        ("", True),
        ("text/html; charset=utf-8", True),
        ("application/json", True),
        ("application/vnd.api+json", True),
        ("application/atom+xml", True),
        ("text/xml", True),
        ("application/xml", True),
        ("application/yaml", True),
        ("application/x-yaml", True),
        ("application/x-www-form-urlencoded", True),
        ("application/problem+json; charset=x", True),
        ("image/png", False),
        ("application/octet-stream", False),
        ("application/pdf", False),
        ("application/javascript", False),
    ],
)
def test_textual_content_types(content_type: str | None, textual: bool) -> None:
    assert is_textual(content_type) is textual
