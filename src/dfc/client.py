"""The Python client: deploy, start, signal, cancel and wait for workflows from application code.

    import dfc

    with dfc.connect() as client:           # --db URL > DFC_DATABASE_URL > embedded server
        client.deploy("orders.df")
        iid = client.start("orders", vars={"batch_size": 100})
        print(client.wait(iid, timeout=60))  # the result, once a worker has run it

The client only records intentions in the database; `dfc worker` processes (or `dfc run`) do the
work. Every method is one short transaction on the client's connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import psycopg

from dfc.diagnostics import DfcError
from dfc.plan.model import Plan
from dfc.runtime import instances
from dfc.store.children import Child
from dfc.store.db import open_database
from dfc.store.instances import HistoryEvent, InstanceInfo
from dfc.store.registry import DeployResult, VersionInfo

if TYPE_CHECKING:
    from dfc.runtime.rewind import Compat, Forked, Retried


class WaitTimeout(DfcError):
    """`Client.wait` gave up before the instance finished."""


class InstanceFailed(DfcError):
    """`Client.wait` saw the instance fail or be cancelled; ``info`` has the details."""

    def __init__(self, message: str, info: InstanceInfo) -> None:
        super().__init__(message, hint=f"`dfc status {info.id}` shows where")
        self.info = info


class Client:
    """A connection to a dfc database."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    # -- context management -------------------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- registry -----------------------------------------------------------------------------

    def deploy(self, source: str | Path | Plan) -> DeployResult:
        """Store a workflow as the next version (a no-op when the latest has the same hash).

        ``source`` is a compiled `Plan` or the path of a ``.df`` file, which is compiled first;
        raises `DfcError` with the first error diagnostic when the file does not compile.
        """
        from dfc.store.registry import deploy

        plan = source if isinstance(source, Plan) else _compile(str(source))
        return deploy(self.conn, plan)

    def versions(self, name: str) -> list[VersionInfo]:
        """The deployed versions of workflow ``name``, oldest first."""
        from dfc.store.registry import versions

        return versions(self.conn, name)

    # -- instances ----------------------------------------------------------------------------

    def start(
        self,
        name: str,
        version: int | None = None,
        vars: Mapping[str, Any] | None = None,
        label: str | None = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
    ) -> str:
        """Start an instance of ``name`` (its latest deployed version unless given: see
        `dfc.store.registry.load_plan_txn`); returns its id.

        With ``idempotency_key``, a start that repeats an earlier one with the same key (for
        this workflow) starts nothing and returns the earlier instance's id, finished or not;
        one that gives the key with another version, label or variable value raises
        `DfcError`. Keys are kept as long as their instances (retention deletes both).

        With ``concurrency_key`` (e.g. a customer id), the instance runs only while no other
        instance of ``name`` with that key runs; it waits, pending, until then. The workflow's
        ``max_concurrent`` option limits its running instances the same way.
        """
        with self.conn.transaction():
            return instances.start(
                self.conn,
                name,
                version,
                vars,
                label,
                idempotency_key=idempotency_key,
                concurrency_key=concurrency_key,
            )

    def signal(self, instance_id: str, name: str, data: Any = None) -> None:
        """Send a signal; ``data`` that is not a string is sent as JSON. Without data (None)
        the waiting step sees ``"data": {}``, as with pg_durable's ``df.signal``."""
        payload = data if data is None or isinstance(data, str) else json.dumps(data)
        with self.conn.transaction():
            instances.signal(self.conn, instance_id, name, payload)

    def cancel(self, instance_id: str, reason: str | None = None) -> str:
        """Cancel an instance; returns what happened (cancelling a finished one is a no-op)."""
        with self.conn.transaction():
            return instances.cancel(self.conn, instance_id, reason)

    def retry(self, instance_id: str) -> Retried:
        """Run a failed instance again from the step that failed, keeping every completed
        step's result (fix the cause first); `DfcError` when it is not failed or was
        compensated."""
        from dfc.runtime import rewind

        with self.conn.transaction():
            return rewind.retry(self.conn, instance_id)

    def fork(self, instance_id: str, step: str, version: int | None = None) -> Forked:
        """Start a new instance reusing ``instance_id``'s recorded results of the steps before
        ``step`` (a node id or key, as `history` names it), on its version or ``version``."""
        from dfc.runtime import rewind

        with self.conn.transaction():
            return rewind.fork(self.conn, instance_id, step, version)

    def compatibility(self, name: str, old: int, new: int) -> list[Compat]:
        """Which unfinished instances of ``name`` at version ``old`` could move to ``new`` now
        (``dfc diff NAME OLD NEW --compat``)."""
        from dfc.runtime import rewind

        with self.conn.transaction():
            return rewind.compatibility(self.conn, name, old, new)

    def upgrade(self, name: str, to: int, ids: Sequence[str] = ()) -> list[Compat]:
        """Move the unfinished instances of ``name`` (or ``ids``) to version ``to`` where their
        recorded steps are the same there; what happened to each."""
        from dfc.runtime import rewind

        return rewind.upgrade(self.conn, name, to, ids)

    def status(self, instance_id: str) -> InstanceInfo:
        """The instance's current state."""
        return instances.status(self.conn, instance_id)

    def result(self, instance_id: str) -> Any:
        """The result of a completed instance (`DfcError` otherwise)."""
        return instances.result(self.conn, instance_id)

    def history(self, instance_id: str) -> list[HistoryEvent]:
        """The instance's event log."""
        return instances.history(self.conn, instance_id)

    def children(self, instance_id: str) -> list[Child]:
        """The instances its ``df.call`` and ``df.spawn`` steps started, oldest first."""
        return instances.children(self.conn, instance_id)

    def list(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[InstanceInfo]:
        """Recent instances, newest first."""
        return instances.list_instances(self.conn, status=status, workflow=workflow, limit=limit)

    def wait(self, instance_id: str, timeout: float | None = None, *, poll: float = 1.0) -> Any:
        """Block until the instance finishes; return its result.

        Raises `InstanceFailed` when it failed or was cancelled, `WaitTimeout` after ``timeout``
        seconds. Listens on ``dfc_done`` and looks again every ``poll`` seconds as a safety net.
        """
        info = instances.wait(self.conn, instance_id, timeout, poll=poll)
        if not info.finished:
            raise WaitTimeout(
                f"instance {instance_id} is still {info.status} after {timeout:g} s",
                hint="a worker must be running (`dfc worker`) for instances to progress",
            )
        return _outcome(info)


def _compile(path: str) -> Plan:
    # Imported on first use: a program that only starts and watches instances should not pay
    # for loading the parser and the checker.
    from dfc.compiler import compile_path

    comp = compile_path(path)
    if comp.plan is None or not comp.ok:
        errors = [d for d in comp.sorted_diagnostics if d.is_error]
        first = errors[0] if errors else None
        where = f" at {first.span}" if first is not None and first.span is not None else ""
        raise DfcError(
            f"{path} does not compile: {first.message if first else 'no workflow'}{where}",
            hint=f"run `dfc check {path}` for all diagnostics",
        )
    plan: Plan = comp.plan
    return plan


def _outcome(info: InstanceInfo) -> Any:
    if info.status == "completed":
        return info.result
    if info.status == "failed":
        err = info.error if isinstance(info.error, Mapping) else {}
        where = f" at {err['at']}" if err.get("at") else ""
        raise InstanceFailed(
            f"instance {info.id} failed{where}: {err.get('message', info.error)}", info
        )
    raise InstanceFailed(f"instance {info.id} was cancelled", info)


def connect(url: str | None = None) -> Client:
    """Open a client on ``url`` (else ``DFC_DATABASE_URL``, else the embedded server),
    bringing the ``dfc`` schema up to date."""
    return Client(open_database(url))
