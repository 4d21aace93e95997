"""HTTP steps answered by fakes a test declares, with every request recorded.

The worker of a test environment sends HTTP steps through `dfc.runtime.http.send` (the real
request building and envelope) over an ``httpx.MockTransport`` whose handler is `HttpFakes`:
nothing reaches the network. A request no fake matches fails its step with a message naming
the call to declare.
"""

from __future__ import annotations

import json as jsonlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from dfc.json_types import JSON
from dfc.runtime import codes
from dfc.runtime.http import HttpError, send
from dfc.runtime.state import HttpRequest

_NO_JSON: Any = object()


@dataclass(frozen=True, slots=True)
class Request:
    """A request an HTTP step made: header names in lower case, the body as sent."""

    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON)."""
        return jsonlib.loads(self.content)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a fake answers: a status, a body (``json`` serialised, or ``body`` as given) and
    headers. A ``json`` body gets ``Content-Type: application/json`` unless headers set one."""

    status: int = 200
    json: Any = _NO_JSON
    body: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> httpx.Response:
        """The reply as an httpx response."""
        headers = dict(self.headers)
        if self.json is not _NO_JSON:
            content: bytes = jsonlib.dumps(self.json).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        elif isinstance(self.body, str):
            content = self.body.encode()
        else:
            content = self.body or b""
        return httpx.Response(self.status, headers=headers, content=content)


Responder = Callable[[Request], Reply]
"""A fake that computes its reply from the request (it may raise an ``httpx.HTTPError``, such
as ``httpx.ReadTimeout``, to make the request fail as a transport error)."""


@dataclass(frozen=True, slots=True)
class _Fake:
    method: str
    url: str
    answer: Reply | Responder

    def matches(self, method: str, url: str) -> bool:
        if self.method not in ("*", method):
            return False
        if self.url.endswith("*"):
            return url.startswith(self.url[:-1])
        return url == self.url or (not urlsplit(self.url).query and _without_query(url) == self.url)


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class HttpFakes:
    """The fakes of a test environment (``env.http``) and the requests they saw."""

    def __init__(self) -> None:
        self._fakes: list[_Fake] = []
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None

    def fake(
        self,
        method: str,
        url: str,
        respond: Responder | None = None,
        *,
        status: int = 200,
        json: JSON | object = _NO_JSON,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``method url`` (``*`` for any method; a URL ending in ``*`` matches every URL
        it starts; a URL without a query matches the request's with any query) with ``status``
        and ``json`` or ``body`` and ``headers``, or with what ``respond(request)`` returns. A
        later fake for the same request replaces an earlier one."""
        answer: Reply | Responder = (
            respond
            if respond is not None
            else Reply(status=status, json=json, body=body, headers=dict(headers or {}))
        )
        with self._lock:
            self._fakes.append(_Fake(method.upper(), url, answer))

    @property
    def requests(self) -> list[Request]:
        """Every request the workflows made, in order (answered or not)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, url: str) -> list[Request]:
        """The requests a fake for ``method url`` (same matching rules) would answer."""
        probe = _Fake(method.upper(), url, Reply())
        return [r for r in self.requests if probe.matches(r.method, r.url)]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The transport's handler: record the request and answer it with the latest matching
        fake; raise `HttpError` (the step fails) when none matches."""
        seen = Request(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            content=request.read(),
        )
        with self._lock:
            self._requests.append(seen)
            fake = next(
                (f for f in reversed(self._fakes) if f.matches(seen.method, seen.url)), None
            )
        if fake is None:
            raise HttpError(
                f"no fake answers {seen.method} {seen.url}: declare one with "
                f"env.http.fake({seen.method!r}, {_without_query(seen.url)!r}, status=..., "
                "json=...) (the test kit never sends real requests)",
                code=codes.HTTP_EGRESS_DENIED,
            )
        reply = fake.answer if isinstance(fake.answer, Reply) else fake.answer(seen)
        return reply.response()

    async def send(self, request: HttpRequest) -> dict[str, JSON]:
        """Perform an HTTP step's request against the fakes (`dfc.runtime.worker.HttpSender`)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=httpx.MockTransport(self.handle), follow_redirects=False
            )
        return await send(request, self._client)

    async def aclose(self) -> None:
        """Close the client (in the event loop that used it)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
