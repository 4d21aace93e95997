"""The dashboard's ASGI application: server-rendered pages, their JSON under ``/api``, and the
instance actions (signal, cancel, retry) behind a CSRF check.

Endpoints are plain functions (Starlette runs them in its thread pool), each on a connection
of a small pool; every read and action goes through the client, the runtime and the store, as
the CLI's do.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from dfc.client import Client
from dfc.diagnostics import DfcError
from dfc.store.db import connect_kwargs
from dfc.ui import queries, views

HERE = Path(__file__).parent
CSRF_COOKIE = "dfc_csrf"
CSRF_FIELD = "csrf"

Conn = psycopg.Connection[Any]


def create_app(url: str, *, pool_size: int = 4) -> Starlette:
    """The dashboard over the database at ``url`` (its schema already migrated)."""
    pool = ConnectionPool(
        url,
        kwargs=connect_kwargs(url) | {"autocommit": True},
        min_size=1,
        max_size=pool_size,
        open=False,
    )
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.filters["preview"] = views.preview
    templates.env.filters["seconds"] = _seconds
    templates.env.globals["statuses"] = queries.STATUSES
    templates.env.globals["tree_rows"] = views.TREE_ROWS

    @contextmanager
    def db() -> Iterator[Conn]:
        with pool.connection() as conn:
            yield conn

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        context = context | {"csrf": token, "path": request.url.path}
        response = templates.TemplateResponse(request, name, context, status_code=status)
        if request.cookies.get(CSRF_COOKIE) != token:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
        return response

    def both(
        template: str, build: Callable[[Request, Conn], dict[str, Any]]
    ) -> tuple[Callable[[Request], Response], Callable[[Request], Response]]:
        """A page and its JSON twin from one function that builds what they show."""

        def html(request: Request) -> Response:
            try:
                with db() as conn:
                    data = build(request, conn)
            except DfcError as e:
                return _error_page(page, request, e)
            except psycopg.errors.InsufficientPrivilege as e:
                return _error_page(page, request, _refused(e))
            return page(request, template, {"data": data})

        def api(request: Request) -> Response:
            try:
                with db() as conn:
                    data = build(request, conn)
            except psycopg.errors.InsufficientPrivilege as e:
                return _error_json(_refused(e))
            except DfcError as e:
                return _error_json(e)
            return _json(data)

        return html, api

    # -- builders: what each page shows ----------------------------------------------------

    def list_data(request: Request, conn: Conn) -> dict[str, Any]:
        f = _filters(request)
        after = _cursor(request.query_params.get("after"))
        rows, next_cursor = queries.instances_page(conn, f, after)
        query = {k: v for k, v in request.query_params.items() if k != "after" and v}
        return {
            "filters": query,
            "counts": queries.status_counts(conn, f),
            "instances": [r.to_dict() for r in rows],
            "next": None if next_cursor is None else _cursor_text(next_cursor),
            "next_query": None
            if next_cursor is None
            else urlencode(query | {"after": _cursor_text(next_cursor)}),
            "workflows": queries.workflow_names(conn),
        }

    def instance_data(request: Request, conn: Conn) -> dict[str, Any]:
        iid = request.path_params["id"]
        if not queries.visible(conn, iid):
            raise _NotFound(f"there is no instance {iid} (or it is another role's)")
        return views.instance_view(conn, iid)

    def workflows_data(request: Request, conn: Conn) -> dict[str, Any]:
        return {"workflows": views.workflows(conn)}

    def workflow_data(request: Request, conn: Conn) -> dict[str, Any]:
        name = request.path_params["name"]
        found = views.versions(conn, name)
        if not found:
            raise _NotFound(f"no workflow named {name} is deployed")
        return {"name": name, "versions": found}

    def plan_data(request: Request, conn: Conn) -> dict[str, Any]:
        name, version = request.path_params["name"], request.path_params["version"]
        _deployed(conn, name, version)
        return views.plan_view(conn, name, version)

    def diff_data(request: Request, conn: Conn) -> dict[str, Any]:
        name = request.path_params["name"]
        old = _int_param(request, "from")
        new = _int_param(request, "to")
        _deployed(conn, name, old, new)
        return views.diff_view(conn, name, old, new)

    def health_data(request: Request, conn: Conn) -> dict[str, Any]:
        return queries.health(conn).to_dict()

    instances_html, instances_api = both("instances.html", list_data)
    instance_html, instance_api = both("instance.html", instance_data)
    live_html, _ = both("_live.html", instance_data)
    workflows_html, workflows_api = both("workflows.html", workflows_data)
    workflow_html, workflow_api = both("workflow.html", workflow_data)
    plan_html, plan_api = both("plan.html", plan_data)
    diff_html, diff_api = both("diff.html", diff_data)
    health_html, health_api = both("health.html", health_data)

    def node_api(request: Request) -> Response:
        """One node's whole record (the link behind a truncated result)."""
        with db() as conn:
            data = instance_data(request, conn)
        node = views.node_value(data, request.path_params["node"])
        if node is None:
            return JSONResponse({"error": "no such node in this instance"}, status_code=404)
        return _json(node)

    def result_api(request: Request) -> Response:
        """The instance's whole result and error (the link behind a truncated one)."""
        with db() as conn:
            data = instance_data(request, conn)
        return _json({k: data["instance"][k] for k in ("id", "status", "result", "error")})

    # -- actions -----------------------------------------------------------------------------

    def action(
        run: Callable[[Client, str, Any], str],
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            cookie = request.cookies.get(CSRF_COOKIE)
            sent = form.get(CSRF_FIELD)
            if not cookie or not isinstance(sent, str) or not secrets.compare_digest(cookie, sent):
                return Response(
                    "refused: the form's CSRF token does not match this browser's session; "
                    "reload the page and try again",
                    status_code=403,
                    media_type="text/plain",
                )
            iid = request.path_params["id"]
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            try:
                message = await _in_thread(lambda: _act(iid, run, fields))
            except psycopg.errors.InsufficientPrivilege as e:
                message = f"error: {_refused(e).message}"
            except DfcError as e:
                message = f"error: {e.message}" + (f" ({e.hint})" if e.hint else "")
            return RedirectResponse(
                f"/instances/{iid}?{urlencode({'message': message})}", status_code=303
            )

        return endpoint

    def _act(iid: str, run: Callable[[Client, str, Any], str], fields: dict[str, str]) -> str:
        with db() as conn:
            if not queries.visible(conn, iid):
                raise DfcError(f"there is no instance {iid} (or it is another role's)")
            return run(Client(conn), iid, fields)

    def do_signal(client: Client, iid: str, fields: dict[str, str]) -> str:
        name = fields.get("name", "").strip()
        if not name:
            raise DfcError("a signal needs a name", hint="type the name the workflow waits for")
        raw = fields.get("payload", "").strip()
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DfcError(
                    f"the payload is not JSON: {e.msg} at character {e.pos + 1}",
                    hint='write JSON, e.g. {"approved": true} or "text" in quotes',
                ) from e
        client.signal(iid, name, data)
        return f"signal {name} sent"

    def do_cancel(client: Client, iid: str, fields: dict[str, str]) -> str:
        return client.cancel(iid, fields.get("reason") or "cancelled from the dashboard")

    def do_retry(client: Client, iid: str, fields: dict[str, str]) -> str:
        retried = client.retry(iid)
        where = f" at {retried.at}" if retried.at else ""
        return f"retrying from the step that failed{where}"

    def home(request: Request) -> Response:
        return RedirectResponse("/instances", status_code=307)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.open()
        try:
            yield
        finally:
            pool.close()

    routes = [
        Route("/", home),
        Route("/instances", instances_html),
        Route("/instances/{id}", instance_html),
        Route("/instances/{id}/live", live_html),
        Route("/instances/{id}/signal", action(do_signal), methods=["POST"]),
        Route("/instances/{id}/cancel", action(do_cancel), methods=["POST"]),
        Route("/instances/{id}/retry", action(do_retry), methods=["POST"]),
        Route("/workflows", workflows_html),
        Route("/workflows/{name}", workflow_html),
        Route("/workflows/{name}/diff", diff_html),
        Route("/workflows/{name}/{version:int}", plan_html),
        Route("/health", health_html),
        Route("/api/instances", instances_api),
        Route("/api/instances/{id}", instance_api),
        Route("/api/instances/{id}/result", result_api),
        Route("/api/instances/{id}/nodes/{node}", node_api),
        Route("/api/workflows", workflows_api),
        Route("/api/workflows/{name}", workflow_api),
        Route("/api/workflows/{name}/diff", diff_api),
        Route("/api/workflows/{name}/{version:int}", plan_api),
        Route("/api/health", health_api),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


class _NotFound(DfcError):
    """What a page asks for does not exist (HTTP 404)."""


class _Refused(DfcError):
    """The connection's role may not read what a page needs (HTTP 403)."""


def _refused(error: psycopg.Error) -> _Refused:
    return _Refused(
        f"the database refused this page to the dashboard's role: {error.diag.message_primary}",
        hint="an ordinary role sees its instances in the list; this page needs read access "
        "to schema dfc (connect `dfc ui --db` as the schema's owner or a superuser)",
    )


def _deployed(conn: Conn, name: str, *wanted: int) -> None:
    """Raise `_NotFound` unless every wanted version of ``name`` is deployed."""
    have = {v["version"] for v in views.versions(conn, name)}
    missing = [v for v in wanted if v not in have]
    if not have:
        raise _NotFound(f"no workflow named {name} is deployed")
    if missing:
        raise _NotFound(
            f"workflow {name} has no version {missing[0]}",
            hint="its versions: " + ", ".join(f"v{v}" for v in sorted(have)),
        )


def _status(e: DfcError) -> int:
    return 404 if isinstance(e, _NotFound) else 403 if isinstance(e, _Refused) else 400


def _error_json(e: DfcError) -> Response:
    return JSONResponse({"error": e.message, "hint": e.hint}, status_code=_status(e))


def _error_page(page: Callable[..., Response], request: Request, e: DfcError) -> Response:
    return page(request, "error.html", {"message": e.message, "hint": e.hint}, _status(e))


def _json(data: Any) -> Response:
    body = json.dumps(data, ensure_ascii=False, default=str)
    return Response(body, media_type="application/json")


async def _in_thread(f: Callable[[], str]) -> str:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(f)


def _filters(request: Request) -> queries.Filters:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in queries.STATUSES:
        raise DfcError(
            f"unknown status {status!r}", hint="use one of " + ", ".join(queries.STATUSES)
        )
    return queries.Filters(
        workflow=q.get("workflow") or None,
        status=status,
        label=q.get("label") or None,
        since=_time_param(request, "since"),
        until=_time_param(request, "until"),
    )


def _time_param(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise DfcError(
            f"{name} is not a date and time: {text!r}", hint="write e.g. 2026-12-03T19:00"
        ) from e
    return value if value.tzinfo is not None else value.astimezone()


def _int_param(request: Request, name: str) -> int:
    text = request.query_params.get(name, "")
    try:
        return int(text)
    except ValueError as e:
        raise DfcError(
            f"{name} must be a version number, not {text!r}", hint="pick two versions to compare"
        ) from e


def _cursor(text: str | None) -> tuple[datetime, str] | None:
    if not text:
        return None
    at, sep, iid = text.rpartition("~")
    try:
        if not sep:
            raise ValueError(text)
        return datetime.fromisoformat(at), iid
    except ValueError as e:
        raise DfcError(
            "the page cursor is malformed", hint="start again from the first page"
        ) from e


def _cursor_text(cursor: tuple[datetime, str]) -> str:
    return f"{cursor[0].isoformat()}~{cursor[1]}"


def _when(value: str | datetime | None) -> str:
    """A timestamp as the pages show it: UTC, to the second."""
    if value is None:
        return ""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
