"""The values a start gives a workflow: its parameters checked against the plan's ``param``
declarations (SPEC §1.5), and its flow-control limit. Shared by every way to start an instance:
`dfc.runtime.instances` (CLI, client, schedules) and `dfc.runtime.children` (df.call, df.spawn).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dfc.diagnostics import DfcError
from dfc.params import ParamValueError, substitution_text
from dfc.plan.model import Plan, PlanParam
from dfc.references import is_reserved_var


def validate_vars(plan: Plan, given: Mapping[str, Any] | None) -> dict[str, str]:
    """The instance's variables as substitution text, checked against the plan's params.

    Raises `DfcError` naming the parameter for a missing value without default, a value that
    does not fit its type, an unknown name (when the workflow declares params) or a system name.
    """
    given = dict(given or {})
    declared = {p.name: p for p in plan.params}
    out: dict[str, str] = {}
    for name in given:
        if is_reserved_var(name):
            raise DfcError(f"{name} is set by dfc and cannot be given", hint="choose another name")
        if declared and name not in declared:
            raise DfcError(
                f"workflow {plan.name} has no parameter {name}",
                hint="its parameters are " + ", ".join(sorted(declared)),
            )
    for p in plan.params:
        if p.name in given:
            out[p.name] = convert(p, given.pop(p.name), given=True)
        elif p.has_default:
            out[p.name] = convert(p, p.default, given=False)
        else:
            raise DfcError(
                f"parameter {p.name} of workflow {plan.name} has no value",
                hint=f"give it with --var {p.name}=VALUE",
            )
    for name, value in given.items():  # undeclared variables (pg_durable style)
        out[name] = substitution_text("text", value)
    return out


def convert(p: PlanParam, value: Any, *, given: bool) -> str:
    """``value`` as ``p``'s substitution text; `DfcError` naming ``p`` when it does not fit
    (``given``: a value passed at start, else ``p``'s default)."""
    try:
        return substitution_text(p.type, value)
    except ParamValueError as e:
        raise DfcError(
            f"parameter {p.name} must be {e.expected}, got {show(value)}"
            + (f": {e.reason}" if e.reason else ""),
            hint=f"fix the {'value' if given else 'default'} of {p.name}",
        ) from None


def show(value: Any) -> str:
    """A value as a message quotes it, cut to 40 characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text if len(text) <= 40 else text[:39] + "…")


def max_concurrent(plan: Plan) -> int | None:
    """The plan's ``max_concurrent`` option (``df.start(..., max_concurrent => n)``), if any."""
    value = plan.options.get("max_concurrent")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
