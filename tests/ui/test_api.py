"""The dashboard's JSON API, pages and CSRF check, in-process (Starlette's TestClient)."""

from __future__ import annotations

import socket
from urllib.parse import unquote_plus

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from ui_support import run_to_end

from dfc.cli.main import main
from dfc.client import connect
from dfc.ui import views
from dfc.ui.app import create_app

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]


def test_lists_filters_and_counts_instances(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        done = client.start("greet", label="order-17")
        failed = client.start("broken", label="order-18")
        waiting = client.start("approve", label="other")
    run_to_end(ui_db, [done, failed])

    body = web.get("/api/instances").json()
    assert {i["id"] for i in body["instances"]} >= {done, failed, waiting}
    assert body["counts"]["completed"] >= 1 and body["counts"]["failed"] >= 1

    by_status = web.get("/api/instances", params={"status": "failed"}).json()
    assert [i["id"] for i in by_status["instances"]] == [failed]
    by_label = web.get("/api/instances", params={"label": "order-"}).json()
    assert {i["id"] for i in by_label["instances"]} == {done, failed}
    # Counts follow the other filters, so the status links say what each would show.
    assert by_label["counts"]["pending"] == 0
    by_workflow = web.get("/api/instances", params={"workflow": "approve"}).json()
    assert [i["id"] for i in by_workflow["instances"]] == [waiting]
    future = web.get("/api/instances", params={"since": "2999-01-01T00:00"}).json()
    assert future["instances"] == [] and future["next"] is None

    page = web.get("/instances", params={"status": "failed"})
    assert page.status_code == 200 and failed in page.text and done not in page.text


def test_pages_through_many_instances(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        ids = {client.start("greet", label="paged") for _ in range(60)}
    first = web.get("/api/instances", params={"label": "paged"}).json()
    assert len(first["instances"]) == 50 and first["next"]
    second = web.get("/api/instances", params={"label": "paged", "after": first["next"]}).json()
    assert second["next"] is None
    seen = [i["id"] for i in first["instances"] + second["instances"]]
    assert len(seen) == 60 and set(seen) == ids


def test_instance_shows_tree_results_and_history(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        iid = client.start("greet")
    run_to_end(ui_db, [iid])
    body = web.get(f"/api/instances/{iid}").json()
    assert body["instance"]["status"] == "completed" and body["finished"]
    assert body["instance"]["result"]["rows"] == [{"twice": 84}]
    steps = [n for n in body["nodes"] if n["type"] == "SQL"]
    assert [n["status"] for n in steps] == ["completed", "completed"]
    assert steps[0]["result"]["rows"] == [{"answer": 42}]
    assert [e["event"] for e in body["history"]][-1] == "completed"
    page = web.get(f"/instances/{iid}")
    assert page.status_code == 200 and "SELECT 41 + 1 AS answer" in page.text
    # A finished instance's tree does not poll.
    assert 'hx-trigger="every 1s"' not in page.text


def test_failed_instance_shows_the_error_at_its_source(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        iid = client.start("broken")
    run_to_end(ui_db, [iid])
    body = web.get(f"/api/instances/{iid}").json()
    assert body["error_location"]["file"].endswith("broken.df")
    assert body["error_location"]["line"] == 2
    page = web.get(f"/instances/{iid}").text
    assert "division by zero" in page and "broken.df:2:" in page and "retry-form" in page


def test_waiting_instance_polls_and_says_what_it_waits_for(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        iid = client.start("approve")
    page = web.get(f"/instances/{iid}").text
    assert 'hx-trigger="every 1s"' in page and f'hx-get="/instances/{iid}/live"' in page
    live = web.get(f"/instances/{iid}/live").text
    assert live.lstrip().startswith('<div id="live"') and "<html" not in live


def test_long_values_are_cut_with_a_link_to_the_whole(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        iid = client.start("big")
    run_to_end(ui_db, [iid])
    page = web.get(f"/instances/{iid}").text
    assert f'href="/api/instances/{iid}/result"' in page
    assert len(page) < 30_000
    whole = web.get(f"/api/instances/{iid}/result").json()
    assert whole["result"]["rows"][0]["long"] == "x" * 50_000
    (node,) = [n for n in web.get(f"/api/instances/{iid}").json()["nodes"] if n["result"]]
    assert f'href="/api/instances/{iid}/nodes/{node["id"]}"' in page
    assert web.get(f"/api/instances/{iid}/nodes/{node['id']}").json()["result"] == node["result"]


def test_workflows_versions_plan_and_diff(web: TestClient) -> None:
    names = {w["name"] for w in web.get("/api/workflows").json()["workflows"]}
    assert {"greet", "approve", "broken"} <= names
    versions = web.get("/api/workflows/greet").json()["versions"]
    assert [v["version"] for v in versions] == [2, 1] and all(len(v["hash"]) > 12 for v in versions)
    plan = web.get("/api/workflows/greet/1").json()
    assert any("SELECT $a.answer AS again" in line for line in plan["lines"])
    diff = web.get("/api/workflows/greet/diff", params={"from": 1, "to": 2}).json()
    assert not diff["same"]
    assert any(line.startswith("-") and "again" in line for line in diff["diff"])
    assert any(line.startswith("+") and "twice" in line for line in diff["diff"])
    assert "twice" in web.get("/workflows/greet/diff", params={"from": 1, "to": 2}).text


def test_health(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        client.start("greet")
    body = web.get("/api/health").json()
    assert body["queue_depth"] >= 1 and body["oldest_due"] is not None
    assert isinstance(body["workers"], list)
    assert "queue depth" in web.get("/health").text


def test_unknown_things_are_404_with_a_sentence(web: TestClient) -> None:
    r = web.get("/api/instances/0badf00d")
    assert r.status_code == 404 and "no instance 0badf00d" in r.json()["error"]
    assert web.get("/instances/0badf00d").status_code == 404
    assert web.get("/api/workflows/nope").status_code == 404
    assert web.get("/api/workflows/greet/99").status_code == 404
    assert web.get("/workflows/greet/diff", params={"from": 1, "to": 99}).status_code == 404
    bad = web.get("/api/instances", params={"status": "bogus"})
    assert bad.status_code == 400 and "unknown status" in bad.json()["error"]


def test_actions_refuse_a_post_without_the_sessions_csrf_token(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        iid = client.start("approve")
        web.get("/instances")  # sets the session's token cookie
        token = web.cookies["dfc_csrf"]
        for form in ({}, {"csrf": "forged"}):
            r = web.post(f"/instances/{iid}/cancel", data=form)
            assert r.status_code == 403 and "CSRF" in r.text
        assert client.status(iid).status == "pending"
        assert web.get(f"/instances/{iid}/cancel").status_code == 405  # POST only

        r = web.post(f"/instances/{iid}/cancel", data={"csrf": token, "reason": "test"})
        assert r.status_code == 303 and r.headers["location"].startswith(f"/instances/{iid}?")
        assert client.status(iid).status == "cancelled"


def test_signal_and_retry_actions(web: TestClient, ui_db: str) -> None:
    with connect(ui_db) as client:
        iid = client.start("approve")
        web.get("/instances")
        token = web.cookies["dfc_csrf"]
        bad = web.post(
            f"/instances/{iid}/signal", data={"csrf": token, "name": "approval", "payload": "{oops"}
        )
        assert "payload is not JSON" in unquote_plus(bad.headers["location"])
        ok = web.post(
            f"/instances/{iid}/signal",
            data={"csrf": token, "name": "approval", "payload": '{"approved": true}'},
        )
        assert ok.status_code == 303
        run_to_end(ui_db, [iid])
        assert client.status(iid).result["rows"] == [{"got": {"approved": True}}]

        failed = client.start("broken")
        run_to_end(ui_db, [failed])
        r = web.post(f"/instances/{failed}/retry", data={"csrf": token})
        assert r.status_code == 303 and "retrying" in r.headers["location"]
        assert client.status(failed).status in ("pending", "running")


def test_dfc_ui_says_in_one_sentence_when_it_cannot_listen(ui_db: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(main, ["--no-color", "ui", "--db", ui_db, "--port", port])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), result.output
    result = CliRunner().invoke(main, ["ui", "--db", ui_db, "--host", "no-such-host.invalid"])
    assert result.exit_code == 1 and "cannot listen on no-such-host.invalid:8471" in result.output


def test_a_big_tree_shows_its_first_nodes_and_links_to_all(
    ui_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "TREE_ROWS", 2)
    with connect(ui_db) as client:
        iid = client.start("greet")
    with TestClient(create_app(ui_db)) as web:
        page = web.get(f"/instances/{iid}").text
        assert page.count("<tr data-node=") == 2 and "The first 2 of 3 nodes" in page
        assert len(web.get(f"/api/instances/{iid}").json()["nodes"]) == 3
