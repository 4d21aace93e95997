"""The Python client and the monitoring views."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from runtime_support import B

from dfc.client import Client, InstanceFailed, WaitTimeout, connect
from dfc.diagnostics import DfcError
from dfc.runtime.logs import StepLog
from dfc.runtime.worker import Worker, WorkerOptions
from dfc.testing import Env

pytestmark = [pytest.mark.db, pytest.mark.timeout(60)]


def _serve(url: str, seconds: float) -> threading.Thread:
    """A worker serving every instance for a while, in a thread with its own event loop."""

    async def serve() -> None:
        worker = Worker(
            url, WorkerOptions(poll_seconds=0.2, retention_every=0), log=StepLog(quiet=True)
        )
        asyncio.get_running_loop().call_later(seconds, worker.request_stop)
        await worker.run()

    t = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    t.start()
    return t


def test_client_deploy_start_wait(db_url: str, tmp_path: Path) -> None:
    flow = tmp_path / "greet.df"
    flow.write_text(
        "param who text = 'world';\n'SELECT ''hello {who}'' AS g'\n"
    )  # {vars} are raw text
    with connect(db_url) as client:
        assert isinstance(client, Client)
        first = client.deploy(flow)
        assert first.created and first.version == 1
        assert not client.deploy(flow).created
        assert [v.version for v in client.versions("greet")] == [1]
        iid = client.start("greet", vars={"who": "dfc"}, label="t")
        with pytest.raises(WaitTimeout):
            client.wait(iid, timeout=0.3)
        server = _serve(db_url, 3)
        assert client.wait(iid, timeout=10) == {"rows": [{"g": "hello dfc"}], "row_count": 1}
        assert client.result(iid)["rows"][0]["g"] == "hello dfc"
        assert client.status(iid).status == "completed"
        assert client.history(iid)[0].event == "started"
        assert [i.id for i in client.list(workflow="greet")] == [iid]
        server.join()


def test_client_wait_raises_for_failures_and_cancels(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "bad.df").write_text("'SELECT 1/0'\n")
    (tmp_path / "waits.df").write_text("df.wait_for_signal('go')\n")
    with connect(db_url) as client:
        client.deploy(tmp_path / "bad.df")
        client.deploy(tmp_path / "waits.df")
        bad = client.start("bad")
        waiting = client.start("waits")
        server = _serve(db_url, 3)
        with pytest.raises(InstanceFailed, match="division by zero") as e:
            client.wait(bad, timeout=10)
        assert e.value.info.error["sqlstate"] == "22012"
        client.signal(waiting, "go", {"n": 1})
        assert client.wait(waiting, timeout=10)["data"] == {"n": 1}
        bare = client.start("waits")
        client.signal(bare, "go")  # no data: pg_durable's default payload, {}
        assert client.wait(bare, timeout=10)["data"] == {}
        other = client.start("waits")
        assert "cancelled" in client.cancel(other, "no")
        with pytest.raises(InstanceFailed, match="cancelled"):
            client.wait(other, timeout=5)
        with pytest.raises(DfcError, match="does not compile"):
            (tmp_path / "broken.df").write_text("'SELECT 1' ~>\n")
            client.deploy(tmp_path / "broken.df")
        server.join()


def test_monitoring_views(dfc_env: Env) -> None:
    b = B("views")
    dfc_env.deploy(b.plan(b.sleep(3600)))
    b2 = B("views_sig")
    dfc_env.deploy(b2.plan(b2.signal("approve")))
    ids = [dfc_env.start("views"), dfc_env.start("views_sig")]
    dfc_env.advance(0)  # both run until they wait, the timer is not skipped
    waits = dict(
        dfc_env.sql(
            "SELECT instance_id, waiting_for FROM dfc.waits WHERE instance_id = ANY(%s)", (ids,)
        )
    )
    assert waits[ids[0]].startswith("timer until")
    assert waits[ids[1]] == "signal approve"
    rows = dfc_env.sql(
        "SELECT id, status, waiting_for, duration IS NOT NULL FROM dfc.instance_overview WHERE id = ANY(%s) ORDER BY workflow",
        (ids,),
    )
    assert [r[1] for r in rows] == ["running", "running"]
    assert all(r[3] for r in rows)
    states = dfc_env.sql(
        "SELECT node_type, status FROM dfc.node_states WHERE instance_id = %s", (ids[0],)
    )
    assert states == [("SLEEP", "waiting")]
