"""The state machine: HTTP steps become fully substituted requests (SPEC §1.3, §5.2 HTTP)."""

from __future__ import annotations

import base64

from plan_kit import Sim, rows

from dfc.plan.nodes import Http
from dfc.runtime import codes
from dfc.runtime.keys import idempotency_key
from dfc.runtime.state import HttpRequest, RunHttp, Store
from plan_builder import Build


def request_of(s: Sim) -> HttpRequest:
    (run,) = s.runs(s.evaluate())
    assert isinstance(run, RunHttp)
    return run.request


def test_http_request_is_substituted_raw() -> None:
    b = Build()
    http = b.http(
        # `$item.id?q` would be the null-safe `$item.id?`: a literal `?` after a reference is `??`
        "{base}/items/$item.id??q=$item.name",
        method="put",
        body='{"name": "$item.name", "all": $item.*}',
        headers='{"Authorization": "Bearer {token}", "X-N": $item.id}',
        timeout=12,
    )
    p = b.plan(b.then(b.sql("Q", name="item"), http))
    s = Sim(p, vars={"base": "https://api.example.com", "token": "t0k"})
    s.complete("n2", rows({"id": 7, "name": "a b"}))
    req = request_of(s)
    assert req.url == "https://api.example.com/items/7?q=a b"
    assert req.method == "PUT"
    assert req.body == '{"name": "a b", "all": [{"id":7,"name":"a b"}]}'
    assert req.headers == {"Authorization": "Bearer t0k", "X-N": "7"}
    assert req.timeout_s == 12
    assert req.idempotency_key == idempotency_key("abcd1234", "n1")
    assert req.multipart is None


def test_http_defaults() -> None:
    b = Build()
    p = b.plan(b.node(Http(url="https://x.example")))
    req = request_of(Sim(p))
    assert (req.method, req.body, req.headers, req.timeout_s) == ("POST", None, {}, 30)


def test_http_inside_a_timeout_gets_the_shorter_timeout() -> None:
    b = Build()
    p = b.plan(b.timeout(b.http("https://x.example", timeout=30), 5))
    s = Sim(p)
    s.settle()
    assert request_of(s).timeout_s == 5


def test_idempotency_keys_per_iteration_and_stable_across_attempts() -> None:
    b = Build()
    p = b.plan(b.loop(b.retry(b.http("https://x.example"), attempts=3, backoff=0)))
    s = Sim(p)
    first = request_of(s)
    assert first.idempotency_key == "dfc-abcd1234-n3#1/n1"
    s.fail("n3#1/n2@1/n1")
    s.settle()
    assert request_of(s).idempotency_key == first.idempotency_key  # attempt 2: same request
    s.complete("n3#1/n2@2/n1", {"status": 200})
    s.settle()
    assert request_of(s).idempotency_key == "dfc-abcd1234-n3#2/n1"  # next iteration: new one


def test_bad_headers_fail_before_sending() -> None:
    for headers in ("not json", "[1, 2]", '{"a": "$r"}x'):
        b = Build()
        p = b.plan(b.then(b.sql("Q", name="r"), b.http("https://x.example", headers=headers)))
        s = Sim(p)
        s.complete("n1", rows({"v": 1}))
        ev = s.evaluate()
        assert ev.status == "failed" and ev.error["code"] == codes.BAD_REQUEST, headers
        assert isinstance(ev.actions[0], Store)


def test_missing_field_in_raw_context_fails() -> None:
    b = Build()
    p = b.plan(b.then(b.sql("Q", name="r"), b.http("https://x.example/$r.nope")))
    s = Sim(p)
    s.complete("n1", rows({"v": 1}))
    ev = s.evaluate()
    assert ev.status == "failed" and ev.error["code"] == codes.UNKNOWN_FIELD


PNG = base64.b64encode(b"\x89PNG\r\n" + bytes(range(200))).decode()


def test_multipart_parts() -> None:
    wrapped = "\n".join(PNG[i : i + 40] for i in range(0, len(PNG), 40))
    b = Build()
    parts = (
        '[{"name": "file", "data_b64": "$img", "filename": "{stem}.png", "content_type": "image/png"},'
        ' {"name": "note", "data_b64": "' + wrapped.replace("\n", "\\n") + '"}]'
    )
    p = b.plan(b.then(b.sql("Q", name="img"), b.multipart("https://x.example/upload", parts)))
    s = Sim(p, vars={"stem": "pic"})
    s.complete("n1", rows({"b64": PNG}))
    req = request_of(s)
    assert req.multipart == (
        {"data_b64": PNG, "name": "file", "filename": "pic.png", "content_type": "image/png"},
        {"data_b64": PNG, "name": "note"},
    )


def test_multipart_refuses_references_mixed_with_text_and_bad_base64() -> None:
    for data in ("xx$img", "$img and more", "not base64!"):
        b = Build()
        parts = '[{"name": "f", "data_b64": "' + data + '"}]'
        p = b.plan(b.then(b.sql("Q", name="img"), b.multipart("https://x.example", parts)))
        s = Sim(p)
        s.complete("n1", rows({"b64": PNG}))
        ev = s.evaluate()
        assert ev.status == "failed" and ev.error["code"] == codes.BAD_REQUEST, data
        assert not s.runs(ev)


def test_start_time_expressions_stand_where_a_literal_was() -> None:
    # A --grammar pg argument's value (computed when the instance started) is put in first,
    # then substituted like the literal it stands for; parts are put in before they are parsed.
    b = Build()
    http = b.http("{__expr_1}/x", body="{__expr_2}", headers="{__expr_3}")
    p = b.plan(
        b.then(
            b.sql("Q", name="item"),
            http,
            b.multipart("https://x.example/upload", "{__expr_4}"),
        )
    )
    expression_values = {
        "__expr_1": "{base}",
        "__expr_2": "id=$item.id",
        "__expr_3": '{"X-Token": "{token}"}',
        "__expr_4": '[{"name": "f", "data_b64": "$item.b64"}]',
    }
    s = Sim(p, vars={"base": "https://api.example.com", "token": "t0k", **expression_values})
    s.complete("n2", rows({"id": 7, "b64": PNG}))
    req = request_of(s)
    assert (req.url, req.body, req.headers) == (
        "https://api.example.com/x",
        "id=7",
        {"X-Token": "t0k"},
    )
    s.complete("n1", {"status": 200})  # the df.http node (made first)
    assert request_of(s).multipart == ({"data_b64": PNG, "name": "f"},)
