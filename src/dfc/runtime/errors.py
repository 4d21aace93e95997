"""The error object of a failed node and instance (SPEC §5.1, §5.6).

``{"message", "node": id, "key", "at": "file:line:col", "code" | "sqlstate", ...}``, plus a
``path`` of the constructs it propagated through (innermost first: the join branch, the race
branch, the retry with its attempts) when it came from inside one.
"""

from __future__ import annotations

from dfc.json_types import JSON
from dfc.plan.model import Plan


def node_error(
    plan: Plan,
    key: str,
    node_id: str,
    message: str,
    *,
    code: str | None = None,
    sqlstate: str | None = None,
    **extra: JSON,
) -> dict[str, JSON]:
    """The error of node `node_id` running at `key`, located through the plan's source map.

    The engine builds SQL and HTTP failures with it too, so every error has the same shape."""
    error: dict[str, JSON] = {"message": message, "node": node_id, "key": key}
    span = plan.source_map.get(node_id)
    if span is not None:
        error["at"] = str(span)
    if code is not None:
        error["code"] = code
    if sqlstate is not None:
        error["sqlstate"] = sqlstate
    error.update(extra)
    return error


def with_path(error: JSON, entry: dict[str, JSON]) -> dict[str, JSON]:
    """A child's error with the enclosing construct that propagated it appended to ``path``."""
    if not isinstance(error, dict):
        error = {"message": str(error)}
    return {**error, "path": [*error.get("path", ()), entry]}


def brief(error: JSON) -> dict[str, JSON]:
    """The gist of an error, as kept in a retry's list of failed attempts."""
    if isinstance(error, dict):
        return {k: error[k] for k in ("message", "key", "code", "sqlstate") if k in error}
    return {"message": str(error)}
