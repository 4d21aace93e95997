"""HTTP steps are answered by the test's fakes, every request is recorded, and nothing is sent
to the network."""

from __future__ import annotations

import json

import httpx
import pytest

from dfc.client import InstanceFailed
from dfc.testing import Env, Reply, Request

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

CHARGE = """
param order_id int = 7;

df.start(
    'SELECT {order_id} AS id, 1990 AS cents' |=> 'order'
    ~> df.http('https://api.example.com/charge', 'POST',
               '{"order": $order.id, "cents": $order.cents}',
               '{"Authorization": "Bearer test"}') |=> 'charge'
    ~> 'SELECT $charge.status AS status, ($charge.body)::jsonb ->> ''id'' AS charge_id',
    'charge'
);
"""


def test_a_fake_answers_and_the_request_is_recorded(dfc_env: Env) -> None:
    dfc_env.http.fake(
        "POST", "https://api.example.com/charge", status=201, json={"id": "ch_1", "ok": True}
    )
    dfc_env.deploy(CHARGE)
    iid = dfc_env.start("charge", order_id=42)
    assert dfc_env.result(iid) == {"rows": [{"status": 201, "charge_id": "ch_1"}], "row_count": 1}
    (sent,) = dfc_env.http.requests_to("POST", "https://api.example.com/charge")
    assert sent.json() == {"order": 42, "cents": 1990}
    assert sent.headers["authorization"] == "Bearer test"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["idempotency-key"].startswith(f"dfc-{iid}-")


def test_a_responder_computes_the_reply(dfc_env: Env) -> None:
    def charge(request: Request) -> Reply:
        return Reply(status=200, json={"id": f"ch_{request.json()['order']}"})

    dfc_env.http.fake("POST", "https://api.example.com/charge", charge)
    dfc_env.deploy(CHARGE)
    iid = dfc_env.start("charge", order_id=9)
    assert dfc_env.result(iid)["rows"] == [{"status": 200, "charge_id": "ch_9"}]


def test_an_undeclared_request_fails_the_step_and_says_what_to_declare(dfc_env: Env) -> None:
    dfc_env.deploy(CHARGE)
    iid = dfc_env.start("charge")
    with pytest.raises(InstanceFailed, match=r"no fake answers POST https://api\.example\.com"):
        dfc_env.result(iid)
    error = dfc_env.status(iid).error
    assert isinstance(error, dict)
    assert "env.http.fake('POST', 'https://api.example.com/charge'" in error["message"]
    assert error["code"] == "DFC612"
    assert len(dfc_env.http.requests) == 1  # recorded, though nothing answered it


def test_a_5xx_is_retried_after_the_backoff_on_the_virtual_clock(dfc_env: Env) -> None:
    replies = iter([Reply(status=503, body="busy"), Reply(status=200, json={"id": "ch_2"})])
    dfc_env.http.fake("POST", "https://api.example.com/charge", lambda _: next(replies))
    dfc_env.deploy(
        "df.start(df.retry(df.http('https://api.example.com/charge', 'POST', '{}'),"
        " attempts => 2, backoff => 3600, max_backoff => 3600, jitter => false), 'retried');"
    )
    iid = dfc_env.start("retried")
    began = dfc_env.now
    result = dfc_env.result(iid)
    assert result["status"] == 200 and json.loads(result["body"]) == {"id": "ch_2"}
    assert (dfc_env.now - began).total_seconds() >= 3600
    assert len(dfc_env.http.requests) == 2
    # Both tries carried the same idempotency key (SPEC §5.2).
    assert len({r.headers["idempotency-key"] for r in dfc_env.http.requests}) == 1


def test_a_transport_error_from_a_responder_fails_the_step(dfc_env: Env) -> None:
    def down(request: Request) -> Reply:
        raise httpx.ConnectError("connection refused")

    dfc_env.http.fake("*", "https://api.example.com/*", down)
    dfc_env.deploy(CHARGE)
    iid = dfc_env.start("charge")
    with pytest.raises(InstanceFailed, match="connection refused"):
        dfc_env.result(iid)


def test_a_url_without_a_query_matches_any_query(dfc_env: Env) -> None:
    dfc_env.http.fake("GET", "https://api.example.com/rates", json={"eur": 1})
    dfc_env.deploy("df.start(df.http('https://api.example.com/rates?day=1', 'GET'), 'rates');")
    iid = dfc_env.start("rates")
    assert dfc_env.result(iid)["ok"] is True
    assert dfc_env.http.requests[0].url == "https://api.example.com/rates?day=1"
