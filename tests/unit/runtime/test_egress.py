"""HTTP egress (SPEC §5.2 HTTP, docs/operations.md): which addresses a step may reach.

Every address a host resolves to is judged by `is_public`; IPv6 forms that carry an IPv4
address are judged by the IPv4 address they carry, because that is where the packet goes,
although Python's `ipaddress` calls most of them global. The allow-list is the only way around.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dfc.runtime import codes
from dfc.runtime import http as runtime_http
from dfc.runtime.http import EgressPolicy, HttpError, check_egress, is_public, perform
from dfc.runtime.state import HttpRequest

# (address, why it must be denied)
DENIED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local: AWS, GCP, Azure IMDS, OpenStack metadata"),
    ("169.254.0.23", "link-local: Tencent metadata"),
    ("100.100.100.200", "shared address space: Alibaba metadata"),
    ("192.0.0.192", "IETF protocol assignments: Oracle metadata"),
    ("168.63.129.16", "Azure wire server, a public-looking metadata address"),
    ("0.0.0.0", "unspecified: connects to the local host"),
    ("0.1.2.3", "this network"),
    ("255.255.255.255", "broadcast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd00:ec2::254", "unique local: AWS IPv6 metadata"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "global-scope multicast"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
    # IPv6 forms that carry an IPv4 address
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::169.254.169.254", "IPv4-compatible metadata"),
    ("::10.0.0.1", "IPv4-compatible private"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("::ffff:0.0.0.0", "IPv4-mapped unspecified"),
    ("::ffff:0:127.0.0.1", "IPv4-translated loopback"),
    ("::ffff:0:10.0.0.1", "IPv4-translated private"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
    ("64:ff9b::c0a8:101", "NAT64 of 192.168.1.1"),
    ("64:ff9b:1::7f00:1", "local-use NAT64: never public"),
    ("64:ff9b:1:ffff::808:808", "local-use NAT64, even of a public address"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
    ("2002:a00:1:1::1", "6to4 of 10.0.0.1"),
    ("2002::1", "6to4 of 0.0.0.0"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo, client 127.0.0.1 (obfuscated)"),
    ("2001:0:7f00:1::1", "Teredo, server 127.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo, client 8.8.8.8: never public"),
]

ALLOWED = [
    "8.8.8.8",
    "93.184.216.34",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::8.8.8.8",  # IPv4-compatible of a public address
    "::ffff:8.8.8.8",  # IPv4-mapped
    "::ffff:0:8.8.8.8",  # IPv4-translated
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "why"), DENIED)
def test_non_public_addresses_are_denied(address: str, why: str) -> None:
    a = ipaddress.ip_address(address)
    assert not is_public(a), why
    with pytest.raises(HttpError) as e:
        EgressPolicy().check("api.example.com", 443, [a])
    assert e.value.code == codes.HTTP_EGRESS_DENIED
    assert f"resolves to the non-public address {a}" in e.value.message
    assert "DFC_HTTP_ALLOW" in e.value.message


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    a = ipaddress.ip_address(address)
    assert is_public(a)
    EgressPolicy().check("api.example.com", 443, [a])


def test_one_non_public_address_among_public_ones_denies_the_host() -> None:
    addresses = [ipaddress.ip_address(a) for a in ("8.8.8.8", "2606:4700::1", "::ffff:10.0.0.1")]
    with pytest.raises(HttpError, match=r"non-public address ::ffff:a00:1"):
        EgressPolicy().check("rebind.example", 443, addresses)


def test_the_allow_list_is_the_only_way_around() -> None:
    loop4 = ipaddress.ip_address("64:ff9b::7f00:1")
    # `*` and a pattern naming another host do not allow it; naming the host or a CIDR does.
    for allow in ((), ("*",), ("other.example",), ("127.0.0.0/8",)):
        with pytest.raises(HttpError):
            EgressPolicy(allow=allow).check("api.example.com", 443, [loop4])
    EgressPolicy(allow=("api.example.com",)).check("api.example.com", 443, [loop4])
    EgressPolicy(allow=("*.example.com",)).check("api.example.com", 443, [loop4])
    EgressPolicy(allow=("64:ff9b::/96",)).check("api.example.com", 443, [loop4])
    EgressPolicy(allow=("[64:ff9b::7f00:1]",)).check("64:ff9b::7f00:1", 80, [loop4])


@pytest.mark.parametrize(
    "url",
    [
        "http://[::127.0.0.1]/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://[::ffff:7f00:1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::127.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "http://[fe80::1%25eth0]/",
        "http://[::]/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/",
        # numeric spellings the resolver reads as 127.0.0.1 (inet_aton)
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://localhost/",
    ],
)
def test_urls_are_judged_after_resolution(url: str) -> None:
    with pytest.raises(HttpError) as e:
        asyncio.run(check_egress(url, EgressPolicy()))
    assert e.value.code == codes.HTTP_EGRESS_DENIED, e.value.message


# -- requests that cannot be sent fail their step (and never the worker) -----------------------


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"X-Name": "José"}, None, "the value of header 'X-Name' holds 'é'"),
        ({"A": "ok", "X-Tag": "中文"}, None, "the value of header 'X-Tag' holds '中'"),
        ({"X": "\ud800"}, None, "the value of header 'X' holds '\\ud800'"),
        ({}, "lone \udc80 surrogate", "the request cannot be encoded"),
    ],
)
def test_unencodable_requests_fail_with_a_clear_error(
    headers: dict[str, str], body: str | None, message: str
) -> None:
    request = HttpRequest(
        url="http://127.0.0.1:9/x?token=secret",
        method="POST",
        body=body,
        headers=headers,
        timeout_s=1,
        idempotency_key="dfc-abcd1234-n1",
    )
    policy = EgressPolicy(allow=("127.0.0.1",))
    with pytest.raises(HttpError) as e:
        asyncio.run(perform(request, policy=policy))
    assert e.value.code == codes.BAD_REQUEST
    assert e.value.message.startswith("POST http://127.0.0.1:9/x: ")
    assert message in e.value.message


# -- DNS rebinding: the connection goes where the check looked ------------------------------------


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.headers["Host"])  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"hi")


@pytest.fixture
def local() -> Iterator[tuple[ThreadingHTTPServer, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.hits = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, server.server_address[1]
    server.shutdown()
    server.server_close()


def _answers(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Make name resolution give each of `answers` in turn (the last one from then on);
    returns the names looked up."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[Any]:
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        return [ipaddress.ip_address(address)]

    monkeypatch.setattr(runtime_http, "_resolve", resolve)
    return asked


def test_a_name_that_resolves_elsewhere_when_connecting_is_denied(
    local: tuple[ThreadingHTTPServer, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, port = local
    asked = _answers(monkeypatch, "93.184.216.34", "127.0.0.1")
    request = HttpRequest(
        url=f"http://rebind.example:{port}/", method="GET", body=None, headers={}, timeout_s=2,
        idempotency_key="dfc-abcd1234-n1",
    )  # fmt: skip
    with pytest.raises(HttpError) as e:
        asyncio.run(perform(request, policy=EgressPolicy()))
    assert e.value.code == codes.HTTP_EGRESS_DENIED
    assert "resolves to the non-public address 127.0.0.1" in e.value.message
    assert asked == ["rebind.example", "rebind.example"]  # checked, then checked again
    assert server.hits == []  # type: ignore[attr-defined]


def test_the_connection_goes_to_the_address_that_was_checked(
    local: tuple[ThreadingHTTPServer, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name resolves (here) to loopback only, allowed by name; the socket layer never
    # resolves it itself (it would not know it), and the Host header keeps the name.
    server, port = local
    _answers(monkeypatch, "127.0.0.1")
    request = HttpRequest(
        url=f"http://api.internal.example:{port}/", method="GET", body=None, headers={},
        timeout_s=2, idempotency_key="dfc-abcd1234-n1",
    )  # fmt: skip
    policy = EgressPolicy(allow=("api.internal.example",))
    env = asyncio.run(perform(request, policy=policy))
    assert (env["status"], env["body"]) == (200, "hi")
    assert server.hits == [f"api.internal.example:{port}"]  # type: ignore[attr-defined]
