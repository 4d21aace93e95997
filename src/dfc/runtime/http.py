"""Performing HTTP steps (SPEC §5.2 HTTP): the request, the egress policy, the result envelope.

`perform` sends one `HttpRequest` and returns the envelope
``{"status", "body", "encoding", "headers", "ok", "duration_ms"}`` for 2xx, 3xx and 4xx
responses (redirects are never followed: a 3xx completes with its status). A 5xx response, a
timeout, a connection error, a response over the size limit or a destination the egress policy
denies raise `HttpError`, whose ``to_error()`` is the error object to store on the failed node.

Egress: `EgressPolicy` is an allow-list of ``host``, ``host:port``, ``*.domain``, IP or CIDR
patterns (``DFC_HTTP_ALLOW``, comma-separated, plus any given in code). With an empty list any
public host may be called; with a list, only matching hosts. Private, loopback, link-local,
unspecified, multicast, cloud metadata and other non-public addresses (`is_public`) are denied
unless allowed explicitly (by a pattern naming the host or its domain, or a CIDR containing the
address; ``*`` alone does not). The host is resolved and every address checked before the
request is built, and again when a connection is opened, which then goes to an address of the
answer that was checked (`_EgressBackend`), so a DNS server that answers differently the second
time gains nothing.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from dfc.json_types import JSON
from dfc.runtime import codes
from dfc.runtime.state import HttpRequest

ENV_ALLOW = "DFC_HTTP_ALLOW"
MAX_BODY = 10 * 1024 * 1024
"""Largest response body accepted (bytes); larger ones fail the step rather than the worker."""

_TEXT_SUBTYPES = frozenset({"json", "xml", "yaml", "x-yaml", "x-www-form-urlencoded"})
_IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class HttpError(Exception):
    """An HTTP step that fails its node; ``to_error()`` is what the engine stores."""

    def __init__(
        self, message: str, *, code: str, status: int | None = None, response: JSON = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.response = response

    def to_error(self) -> dict[str, JSON]:
        error: dict[str, JSON] = {"message": self.message, "code": self.code, "kind": "http"}
        if self.status is not None:
            error["status"] = self.status
        if self.response is not None:
            error["response"] = self.response
        return error


# -- egress -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pattern:
    host: str | None  # exact host, or ".domain" for "*.domain", or "*" for any
    port: int | None
    network: _IpNetwork | None

    def names(self, host: str, port: int) -> bool:
        if self.host is None or (self.port is not None and self.port != port):
            return False
        if self.host == "*":
            return True
        if self.host.startswith("."):
            return host.endswith(self.host)
        return host == self.host

    def contains(self, address: _IpAddress) -> bool:
        return self.network is not None and address in self.network


def _parse_pattern(text: str) -> _Pattern:
    """``host``, ``host:port``, ``*.domain[:port]``, ``*``, an IP (``[v6]:port`` too) or a CIDR."""
    text = text.strip().lower()
    try:
        return _Pattern(None, None, ipaddress.ip_network(text.strip("[]"), strict=False))
    except ValueError:
        pass
    host, port = text, None
    if text.startswith("["):
        close = text.index("]")
        host, rest = text[1:close], text[close + 1 :]
        port = int(rest[1:]) if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    if not host:
        raise ValueError(text)
    if host.startswith("*."):
        host = host[1:]  # ".domain": any subdomain
    literal = _literal(host)
    return _Pattern(str(literal) if literal is not None else host, port, None)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which destinations HTTP steps may reach (see the module docstring)."""

    allow: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, extra: Iterable[str] = ()) -> EgressPolicy:
        """The policy of ``DFC_HTTP_ALLOW`` plus `extra` patterns."""
        env = [p for p in os.environ.get(ENV_ALLOW, "").split(",") if p.strip()]
        return cls(allow=(*env, *extra))

    def _patterns(self) -> list[_Pattern]:
        out = []
        for text in self.allow:
            try:
                out.append(_parse_pattern(text))
            except ValueError:
                raise HttpError(
                    f"invalid egress pattern {text!r} in {ENV_ALLOW} (expected host[:port], "
                    "*.domain, an IP address or a CIDR range)",
                    code=codes.HTTP_EGRESS_DENIED,
                ) from None
        return out

    def check(self, host: str, port: int, addresses: Iterable[_IpAddress]) -> None:
        """Raise `HttpError` unless `host:port`, resolving to `addresses`, may be called."""
        host = host.lower().rstrip(".")
        literal = _literal(host)
        if literal is not None:
            host = str(literal)
        patterns = self._patterns()
        named = [p for p in patterns if p.names(host, port)]
        explicit = any(p.host != "*" for p in named)
        addresses = list(addresses)
        if (
            patterns
            and not named
            and not all(any(p.contains(a) for p in patterns) for a in addresses)
        ):
            raise HttpError(
                f"HTTP requests to {host}:{port} are not allowed; add the host to {ENV_ALLOW}",
                code=codes.HTTP_EGRESS_DENIED,
            )
        for a in addresses:
            if is_public(a) or explicit or any(p.contains(a) for p in patterns):
                continue
            raise HttpError(
                f"HTTP requests to {host} are not allowed: it resolves to the non-public address "
                f"{a}; allow it explicitly in {ENV_ALLOW} (host or CIDR) if this is intended",
                code=codes.HTTP_EGRESS_DENIED,
            )


# IPv6 ranges that carry an IPv4 address, which is where a packet sent to them ends up (or may,
# through a translator or tunnel on the way): Python's `is_global` judges the IPv6 address alone
# and calls most of them global, so `::127.0.0.1` would reach the worker's own loopback. Each
# range with the bits that hold the IPv4 address (RFC 4291, 2765, 6052, 3056).
_EMBEDDING: tuple[tuple[ipaddress.IPv6Network, int], ...] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), 0),  # IPv4-mapped
    (ipaddress.IPv6Network("::ffff:0:0:0/96"), 0),  # IPv4-translated (SIIT)
    (ipaddress.IPv6Network("::/96"), 0),  # IPv4-compatible (deprecated)
    (ipaddress.IPv6Network("64:ff9b::/96"), 0),  # NAT64, well-known prefix
    (ipaddress.IPv6Network("2002::/16"), 80),  # 6to4: bits 16-47
)
"""An IPv6 range carrying an IPv4 address, and how far its IPv4 address is shifted from the
low bits."""

# Never public, whatever they carry: Teredo (2001::/32) tunnels to a client address obfuscated in
# the low bits through a relay of the network's choosing, and the local-use NAT64 prefix
# (64:ff9b:1::/48, RFC 8215) puts the IPv4 address wherever the local operator's prefix length
# says; both are "not globally reachable" in IANA's registry, which newer Pythons follow too.
_NEVER_PUBLIC: tuple[_IpNetwork, ...] = (
    ipaddress.IPv6Network("2001::/32"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    # Cloud metadata endpoints that may look public: Azure's wire server, and Oracle's in the
    # IETF protocol block, which IANA marks not globally reachable but Python only in part (the
    # others, such as 169.254.169.254, fd00:ec2::254, 100.100.100.200, are link-local,
    # unique-local or shared addresses).
    ipaddress.IPv4Network("168.63.129.16/32"),
    ipaddress.IPv4Network("192.0.0.0/24"),
)


def is_public(address: _IpAddress) -> bool:
    """Whether an HTTP step may reach `address` without an explicit allow: a globally routable
    unicast address that is no metadata endpoint, and for IPv6 forms that embed an IPv4 address
    (IPv4-mapped, -translated and -compatible, NAT64, 6to4), an embedded address that is public
    too. Teredo and local-use NAT64 addresses never are."""
    if any(address in net for net in _NEVER_PUBLIC if net.version == address.version):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        # The embedded address decides, whatever the Python version thinks of the range.
        for net, shift in _EMBEDDING:
            if address in net:
                return is_public(ipaddress.IPv4Address((int(address) >> shift) & 0xFFFFFFFF))
    return address.is_global and not address.is_multicast


def _destination(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise HttpError(f"invalid URL {url!r}: {e}", code=codes.BAD_REQUEST) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(
            f"invalid URL {url!r}: only http:// and https:// URLs with a host can be called",
            code=codes.BAD_REQUEST,
        )
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> _IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[_IpAddress]:
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _unresolvable(host: str, e: OSError) -> HttpError:
    return HttpError(f"cannot resolve host {host}: {e}", code=codes.HTTP_TRANSPORT_ERROR)


async def _resolve(host: str, port: int) -> list[_IpAddress]:
    """The addresses of `host` (itself when it is one), without blocking the event loop."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise _unresolvable(host, e) from None
    return _addresses(infos)


async def check_egress(url: str, policy: EgressPolicy) -> None:
    """Resolve the URL's host and apply `policy` (before anything is built or sent)."""
    host, port = _destination(url)
    policy.check(host, port, await _resolve(host, port))


class _EgressBackend(httpcore.AsyncNetworkBackend):
    """Opens connections only to addresses `policy` allows, from the resolution it checked.

    `check_egress` gives a clear error before a request is built; this closes the gap after
    it: a name that resolves to a public address for the check and to a private one a moment
    later (DNS rebinding) is resolved once more here, checked again, and the connection goes to
    an address of that same answer, never to a name the socket layer would resolve anew. TLS
    still verifies the certificate against the URL's host name (httpcore passes it as the
    server name), and pooled connections stay keyed by that name.
    """

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        self.policy.check(host, port, addresses)
        error: Exception | None = None
        for address in dict.fromkeys(addresses):  # as a name's own connect would: each in turn
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        assert error is not None  # getaddrinfo answers at least one address or raises
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - HTTP steps name hosts, not sockets
        raise httpcore.ConnectError("HTTP steps do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _EgressTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with connections opened by `_EgressBackend`."""

    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend: its pool is made again, as httpx makes it (the TLS
        # context, httpx's default limits) plus ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_EgressBackend(policy),
        )


# -- requests ---------------------------------------------------------------------------------


def async_client(policy: EgressPolicy | None = None, **kwargs: Any) -> httpx.AsyncClient:
    """An async client for HTTP steps (share one per worker) whose connections go only where
    `policy` (by default ``DFC_HTTP_ALLOW`` now) allows."""
    transport = _EgressTransport(policy if policy is not None else EgressPolicy.from_env())
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, transport=transport, **kwargs)


def _build(http: httpx.AsyncClient, request: HttpRequest) -> httpx.Request:
    headers = dict(request.headers)
    lower = {k.lower() for k in headers}
    if "idempotency-key" not in lower:  # a key the user set deliberately wins
        headers["Idempotency-Key"] = request.idempotency_key
    timeout = httpx.Timeout(max(0.001, request.timeout_s))
    if request.multipart is not None:
        # The boundary goes into Content-Type: a user-set one would break the body.
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        files = [
            (
                str(part["name"]),
                (
                    part.get("filename"),
                    base64.b64decode("".join(str(part.get("data_b64", "")).split())),
                    part.get("content_type"),
                ),
            )
            for part in request.multipart
        ]
        return http.build_request(
            request.method, request.url, headers=headers, files=files, timeout=timeout
        )
    content = None
    if request.body is not None:
        content = request.body.encode()
        if "content-type" not in lower:
            headers["Content-Type"] = _guess_type(request.body)
    return http.build_request(
        request.method, request.url, headers=headers, content=content, timeout=timeout
    )


def _guess_type(body: str) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def is_textual(content_type: str | None) -> bool:
    """Whether a response body of this content type is stored as text (else base64)."""
    if not content_type or not content_type.strip():
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    if kind == "text":
        return True
    return subtype in _TEXT_SUBTYPES or subtype.rsplit("+", 1)[-1] in ("json", "xml", "yaml")


def _envelope(response: httpx.Response, body: bytes, started: float) -> dict[str, JSON]:
    content_type = response.headers.get("content-type")
    if is_textual(content_type):
        charset = response.charset_encoding or "utf-8"
        try:
            text = body.decode(charset, errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        encoding = "text"
    else:
        text = base64.b64encode(body).decode("ascii")
        encoding = "base64"
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    status = response.status_code
    return {
        "status": status,
        "body": text,
        "encoding": encoding,
        "headers": headers,
        "ok": 200 <= status < 300,
        "duration_ms": round((time.perf_counter() - started) * 1000),
    }


def _finish(
    request: HttpRequest, response: httpx.Response, body: bytes, started: float
) -> dict[str, JSON]:
    envelope = _envelope(response, body, started)
    if response.status_code >= 500:
        raise HttpError(
            f"HTTP {response.status_code} from {request.method} {_redacted(request.url)}",
            code=codes.HTTP_SERVER_ERROR,
            status=response.status_code,
            response=envelope,
        )
    return envelope


def _redacted(url: str) -> str:
    """The URL without query string or user info (they may hold secrets) for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _transport_error(request: HttpRequest, e: httpx.HTTPError) -> HttpError:
    where = f"{request.method} {_redacted(request.url)}"
    if isinstance(e, httpx.TimeoutException):
        return HttpError(
            f"{where} timed out after {request.timeout_s:g} s", code=codes.HTTP_TRANSPORT_ERROR
        )
    if isinstance(e, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return HttpError(f"{where}: {e}", code=codes.BAD_REQUEST)
    return HttpError(f"{where} failed: {type(e).__name__}: {e}", code=codes.HTTP_TRANSPORT_ERROR)


def _unencodable(request: HttpRequest, e: UnicodeEncodeError) -> HttpError:
    """A header value (HTTP carries ASCII only) or a body (UTF-8) that cannot be sent."""
    where = f"{request.method} {_redacted(request.url)}"
    for name, value in request.headers.items():
        bad = next((c for c in value if not c.isascii()), None)
        if bad is not None:
            return HttpError(
                f"{where}: the value of header {name!r} holds {bad!r}, and header values can "
                "only hold ASCII text; percent- or base64-encode it",
                code=codes.BAD_REQUEST,
            )
    return HttpError(f"{where}: the request cannot be encoded: {e}", code=codes.BAD_REQUEST)


def _too_large(request: HttpRequest, limit: int) -> HttpError:
    return HttpError(
        f"the response to {request.method} {_redacted(request.url)} is larger than {limit:,} bytes",
        code=codes.HTTP_TRANSPORT_ERROR,
    )


async def perform(
    request: HttpRequest,
    *,
    client: httpx.AsyncClient | None = None,
    policy: EgressPolicy | None = None,
    max_body: int = MAX_BODY,
) -> dict[str, JSON]:
    """Send `request` and return its envelope; raises `HttpError`."""
    policy = policy if policy is not None else EgressPolicy.from_env()
    await check_egress(request.url, policy)
    own = client is None
    http = client if client is not None else async_client(policy)
    try:
        return await send(request, http, max_body=max_body)
    finally:
        if own:
            await http.aclose()


async def send(
    request: HttpRequest, http: httpx.AsyncClient, *, max_body: int = MAX_BODY
) -> dict[str, JSON]:
    """Send `request` with `http`, whose transport decides where it goes (no egress check of
    its own: `perform` checks first; the test kit's transport answers with fakes), and return
    its envelope; raises `HttpError`."""
    started = time.perf_counter()
    try:
        built = _build(http, request)
    except UnicodeEncodeError as e:
        raise _unencodable(request, e) from None
    try:
        response = await http.send(built, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_body:
                    raise _too_large(request, max_body)
        finally:
            await response.aclose()
    except httpx.HTTPError as e:
        raise _transport_error(request, e) from None
    return _finish(request, response, bytes(body), started)
