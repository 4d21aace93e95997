"""Runtime error codes (DFC6xx): failures a running workflow records on the failing node.

A runtime error is stored as ``{"message", "code", "node", "key", "at", ...}`` on the node record
and the instance; the code lets ``dfc check --explain`` say what happened and what to do.
SQL errors carry the server's SQLSTATE instead of a code (the server already explains them).
"""

from __future__ import annotations

from dfc.codes import code
from dfc.diagnostics import Severity

MISSING_VALUE = code(
    "DFC601",
    "reference has no value",
    Severity.ERROR,
    """
A `$name` or `$name.col` reference needs a value, but the bound result has no row or the value
is NULL. Without `?` this fails the step, because silently substituting NULL hides bugs. Add `?`
to get NULL instead, or branch on whether the result has rows with `df.if_rows`.
""",
    bad="'SELECT id FROM jobs LIMIT 1' |=> 'job' ~> 'UPDATE jobs SET done = true WHERE id = $job'",
    good="'SELECT id FROM jobs LIMIT 1' |=> 'job'\n"
    "~> df.if_rows('job', 'UPDATE jobs SET done = true WHERE id = $job', 'SELECT 1')",
)

TOO_MANY_ROWS = code(
    "DFC602",
    "inline relation too large",
    Severity.ERROR,
    """
`$name.*` in SQL expands to an inline `(VALUES ...)` relation, which is limited to 10,000 rows:
beyond that the statement text becomes huge and slow to plan. Store the rows in a work table
(`CREATE TABLE ... AS` in the step that makes them, dropped when done) and read them from
there; a temporary table does not outlive its step.
""",
)

UNKNOWN_FIELD = code(
    "DFC603",
    "reference to a missing column or field",
    Severity.ERROR,
    """
In an HTTP url, body or headers, or a break value, `$name.col` names a column (or, for HTTP,
signal and other JSON results, a top-level field) that the bound result does not have. In SQL
text the reference is left as written so that PostgreSQL reports the unknown column instead.
""",
)

NOT_A_ROW_SET = code(
    "DFC604",
    "`$name.*` on a result without rows",
    Severity.ERROR,
    """
`$name.*` expands the rows of a SQL result. The result bound to `name` is not a SQL result (an
HTTP envelope, a signal, a join array, a loop or break value, ...), so it has no rows to expand.
Use `$name` (the whole value as JSON) or `$name.field` instead.
""",
)

BAD_REQUEST = code(
    "DFC605",
    "invalid HTTP request after substitution",
    Severity.ERROR,
    """
The HTTP step's headers are not a JSON object of strings, its multipart parts are not a JSON array
of `{name, data_b64, filename?, content_type?}` objects, or a part's `data_b64` is neither a
whole-value reference nor valid base64 (a reference mixed with other text is refused before any
request is sent, because the result could not be valid base64).
""",
)

TIMED_OUT = code(
    "DFC606",
    "df.timeout expired",
    Severity.ERROR,
    """
The subtree wrapped in `df.timeout(x, seconds)` did not finish in time. What it was running was
cancelled (SQL steps inside also run with a matching statement_timeout). Wrap it in `df.retry` to
try again, or raise the limit.
""",
)

BREAK_OUTSIDE_LOOP = code(
    "DFC607",
    "df.break outside a loop",
    Severity.ERROR,
    """
A `df.break` was reached that is not inside any `df.loop`/`@>` of the workflow. The checker
rejects this in `.df` files; a graph started from SQL can still contain it.
""",
)

IDLE_ITERATION = code(
    "DFC608",
    "loop iteration ran no step",
    Severity.ERROR,
    """
A loop iteration finished without running any step (for example a body that is only a nested
loop ending in an immediate `df.break()`), so the loop would spin forever without progress.
Put a step, a wait or a break for the outer loop in the body.
""",
)

UNSAFE_VALUE = code(
    "DFC609",
    "value cannot be placed in the SQL text safely",
    Severity.ERROR,
    """
A substituted value contains a NUL character (which PostgreSQL text cannot hold), or it would
contain the `$tag$` of the dollar-quoted text (a function body or `DO` block) the reference is
placed in, which would end that text early and let the rest of the value run as SQL. Pass the
value through a table or a parameter of the function instead.
""",
)

HTTP_SERVER_ERROR = code(
    "DFC610",
    "HTTP server error",
    Severity.ERROR,
    """
The HTTP step got a 5xx response. 2xx, 3xx and 4xx responses complete the step (check
`$resp.ok` or `$resp.status`); 5xx responses fail it so that `df.retry` can try again.
""",
)

HTTP_TRANSPORT_ERROR = code(
    "DFC611",
    "HTTP request failed",
    Severity.ERROR,
    """
The HTTP request could not be completed: the connection failed, the request timed out, or the
response was larger than the configured limit. The step fails; `df.retry` can try again (the
request carries the same Idempotency-Key).
""",
)

HTTP_EGRESS_DENIED = code(
    "DFC612",
    "HTTP destination not allowed",
    Severity.ERROR,
    """
The HTTP step's host is not in the egress allow-list (`DFC_HTTP_ALLOW`, comma-separated
`host[:port]`, `*.domain` or CIDR patterns), or it resolves to a private, loopback or link-local
address, which is denied unless the host or address is allowed explicitly.
""",
)

CHILD_NOT_STARTED = code(
    "DFC660",
    "child workflow could not be started",
    Severity.ERROR,
    """
A `df.call` or `df.spawn` step starts an instance of another workflow when it runs. This one
could not start it: no workflow of that name (or no such version) is deployed, or the
parameters passed do not fit the callee's `param` declarations (a missing value, an unknown
name, a value not of the parameter's type). Nothing was started. Deploy the callee or fix
the arguments, then `dfc retry` the instance. (`dfc check` checks the arguments when the
callee is a file beside the caller, or with `--db` when it is deployed.)
""",
)

CHILD_FAILED = code(
    "DFC661",
    "child workflow failed",
    Severity.ERROR,
    """
The instance a `df.call` step started failed, and the step fails with its error (the error
names the child: `dfc status CHILD` and `dfc explain CHILD` show where it failed). Wrap the
call in `df.retry` to call a new child on failure, or fix the cause, `dfc retry CHILD`, and then
`dfc retry` the parent: a retried call finds the child it started and takes its outcome.
""",
)

CHILD_CANCELLED = code(
    "DFC662",
    "child workflow cancelled",
    Severity.ERROR,
    """
The instance a `df.call` step started was cancelled before it ended (by `dfc cancel`, by
`df.cancel`, or with a parent of its own), so the call has no result and fails. A cancelled
parent cancels the children it waits for; this error is for a child cancelled on its own.
""",
)

MAP_ROWS = code(
    "DFC650",
    "df.map over a result without rows",
    Severity.ERROR,
    """
`df.map` runs its body once per row of a SQL result (`{"rows": [...]}`). The result its rows
come from had no `rows` array (an HTTP envelope, a signal, a join array, ...), or the result
named by `'$name.*'` was not bound when the map started. Give the map a query, or a result
bound by a SQL step.
""",
)

MAP_BREAK = code(
    "DFC651",
    "df.break inside the body of df.map",
    Severity.ERROR,
    """
A row of `df.map` reached a `df.break` that would leave a loop around the map. A break
cannot leave a row (`dfc check` reports it as DFC401); this fails the row instead.
""",
)
