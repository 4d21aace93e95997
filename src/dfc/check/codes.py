"""The checker's diagnostic codes (SPEC §3), each with an explanation and examples.

2xx bindings, variables (24x) and templates/imports (25x); 3xx SQL; 4xx structure and literals.
``docs/checks.md`` is generated from these entries (``python -m dfc.codes``).
"""

from __future__ import annotations

from dfc.codes import code
from dfc.diagnostics import Severity

ERR, WARN, INFO, HINT = Severity.ERROR, Severity.WARNING, Severity.INFO, Severity.HINT

# --------------------------------------------------------------------------------------------
# Bindings

UNBOUND = code(
    "DFC201",
    "reference to a result that is never bound",
    ERR,
    """
    `$name` refers to the result of a step bound with `|=> 'name'` (or `df.as`). No step in the
    workflow binds this name, so the reference can never be substituted. Usually a typo, or the
    `|=> 'name'` was forgotten.
    """,
    bad="'SELECT id FROM users' |=> 'user' ~> 'DELETE FROM sessions WHERE user_id = $usr'",
    good="'SELECT id FROM users' |=> 'user' ~> 'DELETE FROM sessions WHERE user_id = $user'",
)

NOT_BOUND_HERE = code(
    "DFC202",
    "result may not be bound when the reference runs",
    ERR,
    """
    The name is bound somewhere, but not certainly before this step runs on every path: it is
    used before the binding in a sequence, in a parallel branch of the same join or race (which
    may not have finished), in the other arm of an if, in a loop body before the binding of the
    same iteration, or after an if/race where only some arms bind it. Move the binding earlier,
    or, after an if or race, use the null-safe form `$name?` to get NULL when it is missing.
    (In SQL, references inside comments are not substituted, and not checked.)
    """,
    bad="('SELECT 1' |=> 'a') & 'SELECT $a'",
    good="('SELECT 1' |=> 'a') ~> 'SELECT $a'",
)

BRANCH_BINDING = code(
    "DFC203",
    "two parallel branches bind the same name",
    ERR,
    """
    Branches of a join or race run concurrently. When two of them bind the same name, which value
    is visible afterwards depends on timing: a race condition. Give each branch its own name.
    """,
    bad="('SELECT 1' |=> 'n') & ('SELECT 2' |=> 'n')",
    good="('SELECT 1' |=> 'n1') & ('SELECT 2' |=> 'n2')",
)

REBINDING = code(
    "DFC204",
    "name bound again while still visible",
    WARN,
    """
    The name is already bound on this path; binding it again replaces the earlier result for
    every later reference. This is allowed, but it is often a copy-paste slip: use a new name
    when both results are meant. Names bound inside templates are the templates' own: using a
    template twice (`drain(a) ~> drain(b)`) rebinds them without a warning.
    """,
    bad="'SELECT 1' |=> 'x' ~> 'SELECT $x + 1' |=> 'x' ~> 'SELECT $x'",
    good="'SELECT 1' |=> 'x' ~> 'SELECT $x + 1' |=> 'y' ~> 'SELECT $y'",
)

UNUSED_BINDING = code(
    "DFC205",
    "bound result is never used",
    HINT,
    """
    No reference (`$name`, `$name.col`, `$name.*`) and no `df.if_rows('name', ...)` reads the
    result bound here. The binding can be removed (binding a result costs nothing at run time,
    so this is only a hint).
    """,
    bad="'SELECT 1' |=> 'unused' ~> 'SELECT 2'",
    good="'SELECT 1' ~> 'SELECT 2'",
)

UNKNOWN_COLUMN = code(
    "DFC206",
    "bound result has no such column",
    ERR,
    """
    `$name.col` reads column `col` of the first row of the result bound to `name`. The bound
    statement's output columns are known statically (its select list or RETURNING list) and
    `col` is not among them. For HTTP results the fields are status, body, encoding, headers, ok
    and duration_ms; for signals signal_name, timed_out and data; for sleeps slept and seconds.
    """,
    bad="'SELECT id, email FROM users LIMIT 1' |=> 'u' ~> 'SELECT $u.mail'",
    good="'SELECT id, email FROM users LIMIT 1' |=> 'u' ~> 'SELECT $u.email'",
)

NO_ROWS = code(
    "DFC207",
    "result of a statement that returns no rows",
    ERR,
    """
    The bound statement returns no rows (an UPDATE, INSERT or DELETE without RETURNING, or DDL),
    so `$name` has no first row and always fails (`$name?` is always NULL, `df.if_rows` always
    takes the else arm). Add a RETURNING clause, or bind a query instead.
    """,
    bad="'UPDATE jobs SET done = true' |=> 'u' ~> 'SELECT $u'",
    good="'UPDATE jobs SET done = true RETURNING id' |=> 'u' ~> 'SELECT $u'",
)

BAD_RESULT_NAME = code(
    "DFC208",
    "invalid result name",
    ERR,
    """
    Result names must match `[A-Za-z_][A-Za-z0-9_]*` so that `$name` can be found in step text.
    They are written without the `$` they are referenced with. The rule applies wherever the name
    is written: after `|=>`, in `df.as` and `df.if_rows`, or as a template argument that reaches
    one of them. (A name written directly was once reported as DFC135, now retired.)
    """,
    bad="'SELECT 1 AS v' |=> 'my-result' ~> 'SELECT 2'",
    good="'SELECT 1 AS v' |=> 'my_result' ~> 'SELECT $my_result.v'",
)

JOIN_FIELD = code(
    "DFC209",
    "field of a join's result",
    ERR,
    """
    A join's result is a JSON array with one element per branch, in branch order (each SQL
    branch's element is its `{"rows": [...], "row_count": n}` object). An array has no fields,
    so `$j.col` cannot be substituted: it stays in the SQL as written and PostgreSQL rejects it.
    Bind the branch that returns the column with a name of its own and use `$name.col`, or read
    the array as JSON: `$j::jsonb->0->'rows'->0->>'col'` is column `col` of the first row of the
    first branch.
    """,
    bad="('SELECT 1 AS a' & 'SELECT 2 AS b') |=> 'j' ~> 'SELECT $j.a AS x'",
    good="('SELECT 1 AS a' |=> 'a1') & ('SELECT 2 AS b' |=> 'b1') ~> 'SELECT $a1.a + $b1.b AS x'",
)

NOT_A_ROW_SET = code(
    "DFC210",
    "`$name.*` on a result without rows",
    ERR,
    """
    `$name.*` expands the rows of a SQL result (an inline `VALUES` relation in SQL, a JSON array
    of row objects elsewhere). The results of HTTP calls, signal waits, sleeps and schedule waits
    are JSON objects, and a join's result is a JSON array: none has rows, so the step would fail
    when it runs. Use `$name` for the whole JSON value (for example `$name::jsonb`) or
    `$name.field` for one field of an object; for a join, bind the branch whose rows you need.
    """,
    bad="df.sleep(1) |=> 's' ~> 'SELECT * FROM $s.*'",
    good="df.sleep(1) |=> 's' ~> 'SELECT $s::jsonb AS slept'",
)

BOUND_TWICE = code(
    "DFC211",
    "one result bound to two names",
    WARN,
    """
    A step's result is bound to one name. In `(x |=> 'a') |=> 'b'` the outer name wins, as in
    pg_durable's graph, where `df.as(df.as(x, 'a'), 'b')` sets the node's one result name twice:
    only `$b` is bound when the workflow runs, and `$a` is not. Use one name.
    """,
    bad="('SELECT 1' |=> 'a') |=> 'b' ~> 'SELECT $b'",
    good="'SELECT 1' |=> 'b' ~> 'SELECT $b'",
)

# --------------------------------------------------------------------------------------------
# Variables

UNDECLARED_VAR = code(
    "DFC240",
    "variable not declared",
    WARN,
    """
    `{name}` is substituted with the value of the variable `name`. Undeclared variables are
    allowed for pg_durable compatibility (set with `df.setvar`), but once a file declares any
    `param`, every variable it uses should be declared, so that values are validated at start
    time and a missing value is reported before the instance runs.
    """,
    bad="param days int = 30;\n'DELETE FROM logs WHERE age > {dys}'",
    good="param days int = 30;\n'DELETE FROM logs WHERE age > {days}'",
)

PARAM_DEFAULT = code(
    "DFC241",
    "parameter default does not match its type",
    ERR,
    """
    The default of a `param` must be a valid value of the declared type: an integer for `int`, a
    number for `numeric`, TRUE/FALSE for `bool`, JSON text for `json`, and an (optionally
    schema-qualified) SQL identifier for `ident`.
    """,
    bad="param batch int = 'many';",
    good="param batch int = 500;",
)

DUPLICATE_PARAM = code(
    "DFC242",
    "parameter declared twice",
    ERR,
    """
    Each `param` name may be declared once per file.
    """,
    bad="param n int = 1;\nparam n int = 2;",
    good="param n int = 1;\nparam m int = 2;",
)

# --------------------------------------------------------------------------------------------
# Templates and imports

UNKNOWN_TEMPLATE = code(
    "DFC250",
    "unknown template",
    ERR,
    """
    `NAME(args)` calls a template defined with `def` in this file or in an imported module. No
    template of that name is visible here. Templates of an imported module are visible only in
    the file that imports it.
    """,
    bad="with_retry('SELECT 1')",
    good="def with_retry(step) = df.retry(step, attempts => 3);\nwith_retry('SELECT 1')",
)

TEMPLATE_ARGS = code(
    "DFC251",
    "wrong arguments for a template",
    ERR,
    """
    A template call must give every parameter without a default exactly once, by position or by
    name, and no more arguments than the template has parameters.
    """,
    bad="def pair(a, b) = a ~> b;\npair('SELECT 1')",
    good="def pair(a, b) = a ~> b;\npair('SELECT 1', 'SELECT 2')",
)

UNKNOWN_MODULE = code(
    "DFC252",
    "imported module not found",
    ERR,
    """
    `import 'std/NAME'` loads `NAME.df` from dfc's standard library; any other path is a file
    relative to the importing file. The module does not exist.
    """,
    bad="import 'std/no_such_module';",
    good="import 'std/batch';",
)

IMPORT_CYCLE = code(
    "DFC253",
    "import cycle",
    ERR,
    """
    A module imports itself, directly or through other modules. Move the shared templates into a
    module that both import.
    """,
    bad="-- a.df\nimport './a.df';",
    good="-- a.df\nimport './common.df';",
)

RECURSIVE_TEMPLATE = code(
    "DFC254",
    "recursive template",
    ERR,
    """
    Templates expand at compile time into a finite plan, so a template cannot call itself,
    directly or through other templates. Use `df.loop` to repeat work at run time.
    """,
    bad="def again(x) = x ~> again(x);",
    good="def again(x) = df.loop(x ~> df.sleep(60));",
)

NAME_COLLISION = code(
    "DFC255",
    "template name defined twice",
    ERR,
    """
    A template name must be unique among the file's own `def`s and the templates of every module
    it imports.
    """,
    bad="def step() = 'SELECT 1';\ndef step() = 'SELECT 2';",
    good="def step1() = 'SELECT 1';\ndef step2() = 'SELECT 2';",
)

ARGUMENT_KIND = code(
    "DFC256",
    "template argument of the wrong kind",
    ERR,
    """
    A template parameter used where a literal is required (seconds, cron, URL, result name, ...)
    needs a literal argument, and one used as a step needs a step (a string is a SQL step).
    """,
    bad="def nap(s) = df.sleep(s);\nnap(df.sleep(1))",
    good="def nap(s) = df.sleep(s);\nnap(5)",
)

UNKNOWN_NAME = code(
    "DFC257",
    "unknown name",
    ERR,
    """
    A bare identifier stands for a template parameter, and only inside that template's body.
    Built-in functions are written with their `df.` prefix; SQL steps are strings.
    """,
    bad="def run(step) = stpe;",
    good="def run(step) = step;",
)

EXPANSION_TOO_LARGE = code(
    "DFC258",
    "template expansion too large",
    ERR,
    """
    Expanding the templates produced more than 100,000 nodes, almost certainly by templates that
    use their parameters several times inside each other.
    """,
    bad="def twice(x) = x ~> x;\ntwice(twice(twice(... 'SELECT 1' ...)))",
    good="df.loop('SELECT 1' |=> 'r' ~> df.if_rows('r', df.break(), 'SELECT 2'))",
)

# --------------------------------------------------------------------------------------------
# SQL

SQL_INVALID = code(
    "DFC301",
    "invalid SQL",
    ERR,
    """
    The SQL step is certainly not valid PostgreSQL: an unterminated string, quoted identifier or
    comment, unbalanced parentheses, or a statement that stops in the middle of a clause. The
    caret points at the character in the `.df` file.
    """,
    bad="'SELECT count(* FROM jobs'",
    good="'SELECT count(*) FROM jobs'",
)

SQL_UNPARSED = code(
    "DFC302",
    "SQL not understood by the static checker",
    WARN,
    """
    The statement could not be parsed by dfc's SQL parser (sqlglot, PostgreSQL dialect). It may
    still be valid PostgreSQL: sqlglot does not cover every PostgreSQL feature. Run
    `dfc check --db URL` to validate the statement against a real server.
    """,
    bad="'SELECT 1 UPDATE t SET x = 1'",
    good="'SELECT 1' ~> 'UPDATE t SET x = 1'",
)

NOT_A_STATEMENT = code(
    "DFC303",
    "step is not a SQL statement",
    ERR,
    """
    A plain string in node position is a SQL step, so its text must be a SQL statement.
    A word such as `'completed'` or `'OK'` is not one: to make a value the result of a loop,
    use `df.break('completed')`; to produce a value, `SELECT 'completed'`.
    """,
    bad="@> ('SELECT 1' ~> 'completed')",
    good="@> ('SELECT 1' ~> df.break('completed'))",
)

AUTOCOMMIT = code(
    "DFC304",
    "statement runs outside a transaction",
    INFO,
    """
    The statement cannot run inside a transaction block (VACUUM, CREATE INDEX CONCURRENTLY,
    CREATE DATABASE, ALTER SYSTEM, ...). dfc runs the step in autocommit mode and checkpoints its
    result afterwards, so the step is at-least-once instead of exactly-once: after a crash at the
    wrong moment it runs again. Make such statements safe to repeat (`IF NOT EXISTS`).
    """,
    bad="'VACUUM ANALYZE jobs'",
    good="'VACUUM ANALYZE jobs'  -- reported for information; nothing to fix",
)

REF_IN_STRING = code(
    "DFC305",
    "reference inside a SQL string literal",
    WARN,
    """
    In SQL, `$name` stands for a value. Inside a string literal dfc inserts the value's text into
    the string (escaped), but pg_durable replaces the reference with a quoted literal, which ends
    the string early (`'hello 'Bob''`): a syntax error, or worse. The same text means different
    things in the two systems: write the reference outside the quotes and concatenate,
    `'hello ' || $name`.
    """,
    bad="'SELECT ''hello $user'''",
    good="'SELECT ''hello '' || $user'",
)

CONCATENATED_STATEMENTS = code(
    "DFC306",
    "a line break joins two statements into one step (forgotten `~>`)",
    WARN,
    """
    String literals separated only by a line break (and blanks or comments) are one literal:
    PostgreSQL's rule, which dfc follows for every form of literal. Two SQL steps written one
    per line without `~>` between them thus become one step whose text is both statements
    glued together (`SELECT 1SELECT 2`). The warning points at the literal after the break,
    where `~>` is missing, when the text before the break ends a statement (it parses, does not
    end in `;`, and does not end in a word after which a statement goes on, such as `AS`, `IN`,
    `FROM` or `WHERE`, nor is an INSERT without rows or an UPDATE without SET) and the literal
    starts a statement of its own (its first word is a command such as SELECT, UPDATE or
    CREATE, and it parses). One statement split over lines (`'SELECT a '` / `'FROM t'`) is
    not reported; to keep several statements in one step on purpose, end each with `;`.
    """,
    bad="'UPDATE a SET x = 1'\n'UPDATE b SET y = 2'",
    good="'UPDATE a SET x = 1'\n~> 'UPDATE b SET y = 2'",
)

EMPTY_SQL = code(
    "DFC307",
    "empty SQL step",
    ERR,
    """
    The SQL step contains no statement (only whitespace, comments or semicolons).
    """,
    bad="'SELECT 1' ~> ''",
    good="'SELECT 1'",
)

AUTOCOMMIT_MULTI = code(
    "DFC308",
    "autocommit statement among other statements",
    WARN,
    """
    PostgreSQL runs the statements of one multi-statement step in a single implicit transaction,
    and statements such as VACUUM fail there ("cannot run inside a transaction block"). Put the
    statement in a step of its own.
    """,
    bad="'DELETE FROM logs WHERE old; VACUUM logs'",
    good="'DELETE FROM logs WHERE old' ~> 'VACUUM logs'",
)

LIVE_REJECTED = code(
    "DFC310",
    "the database rejects the statement",
    ERR,
    """
    Reported by `dfc check --db URL`, which prepares every SQL step against a real server inside
    a transaction that is rolled back (DDL steps earlier in the workflow are executed first, so
    tables they create are known). The server reported an unknown table, column, function,
    type or schema, or a syntax error. The message is the server's.
    """,
    bad="'SELECT emial FROM users'",
    good="'SELECT email FROM users'",
)

# --------------------------------------------------------------------------------------------
# Structure

BREAK_OUTSIDE_LOOP = code(
    "DFC401",
    "df.break outside a loop",
    ERR,
    """
    `df.break` ends the nearest enclosing loop; there is none here. (A compensation step is not
    inside the loop of the step it undoes: it runs after the instance failed. Nor is the body
    of `df.map` inside a loop around the map: a row's steps end with the row.)
    """,
    bad="'SELECT 1' ~> df.break()",
    good="@> ('SELECT 1' ~> df.break())",
)

UNREACHABLE = code(
    "DFC402",
    "unreachable step",
    WARN,
    """
    The step comes after one that never finishes normally in the same sequence: an
    unconditional `df.break` (it leaves the loop), or a loop without condition and without
    break (it runs forever). The step never runs.
    """,
    bad="@> ('SELECT 1' ~> df.break() ~> 'SELECT 2')",
    good="@> ('SELECT 1' ~> 'SELECT 2' ~> df.break())",
)

HOT_LOOP = code(
    "DFC403",
    "loop that never waits and never ends",
    WARN,
    """
    The loop has no condition, its body has no `df.break`, and nothing in it waits (sleep,
    schedule or signal). It repeats its steps as fast as the database allows, forever. Add a
    `df.sleep`, a `df.wait_for_schedule`, or a way out.
    """,
    bad="@> 'DELETE FROM queue WHERE done'",
    good="@> ('DELETE FROM queue WHERE done' ~> df.sleep(60))",
)

IF_WITHOUT_ELSE = code(
    "DFC404",
    "`?>` without `!>`",
    ERR,
    """
    A conditional needs both arms: `cond ?> then !> else`. To do nothing in the else case, use a
    no-op step such as `'SELECT 1'`.
    """,
    bad="'SELECT x > 0 FROM t' ?> 'UPDATE t SET y = 1'",
    good="'SELECT x > 0 FROM t' ?> 'UPDATE t SET y = 1' !> 'SELECT 1'",
)

TOO_DEEP = code(
    "DFC405",
    "nesting too deep",
    ERR,
    """
    Constructs are nested more than 256 levels deep. Long chains of the same operator (`~>`,
    `&`, `|`) count as one level; nested constructs of different kinds each add one. Split the
    workflow into templates or flatten it.
    """,
    bad="df.retry(df.retry(df.retry(... 257 times ...)))",
    good="df.retry('SELECT 1', attempts => 5)",
)

BAD_CRON = code(
    "DFC406",
    "invalid cron expression",
    ERR,
    """
    `df.wait_for_schedule` and the `schedule` statement take a 5-field cron expression: minute (0-59), hour (0-23),
    day of month (1-31), month (1-12 or JAN-DEC), day of week (0-7 or SUN-SAT), each a `*`, a
    value, a range `a-b`, a step `*/n` or `a-b/n`, or a comma-separated list of these.
    """,
    bad="df.wait_for_schedule('0 25 * * *')",
    good="df.wait_for_schedule('0 23 * * *')",
)

BAD_SECONDS = code(
    "DFC407",
    "invalid number of seconds",
    ERR,
    """
    Durations (`df.sleep`, the timeout of `df.wait_for_signal`, `df.http` and `df.timeout`) are
    whole, non-negative numbers of seconds, at most 100 years (3153600000).
    """,
    bad="df.sleep(-5)",
    good="df.sleep(5)",
)

BAD_METHOD = code(
    "DFC408",
    "invalid HTTP method",
    ERR,
    """
    `df.http` supports the methods GET, POST, PUT, PATCH, DELETE and HEAD.
    """,
    bad="df.http('https://example.com', 'FETCH')",
    good="df.http('https://example.com', 'GET')",
)

BAD_URL = code(
    "DFC409",
    "invalid HTTP URL",
    ERR,
    """
    The URL of an HTTP step must start with `http://` or `https://`, or with a `{var}` that
    holds the base URL.
    """,
    bad="df.http('example.com/hook')",
    good="df.http('https://example.com/hook')",
)

BAD_HEADERS = code(
    "DFC410",
    "HTTP headers are not a JSON object",
    ERR,
    """
    The headers argument of `df.http` is a JSON object of header names to string values,
    e.g. `'{"Authorization": "Bearer {token}"}'`.
    """,
    bad="df.http('https://example.com', 'GET', NULL, 'Authorization: Bearer x')",
    good="""df.http('https://example.com', 'GET', NULL, '{"Authorization": "Bearer x"}')""",
)

BAD_PARTS = code(
    "DFC411",
    "invalid multipart parts",
    ERR,
    """
    The parts of `df.http_multipart` are a JSON array of objects, each with a `name` and a
    `data_b64` (base64 data, or a whole-value `$reference`), and optionally `filename` and
    `content_type`.
    """,
    bad="""df.http_multipart('https://example.com/up', 'POST', '{"name": "f"}')""",
    good="""df.http_multipart('https://example.com/up', 'POST', '[{"name": "f", "data_b64": "aGk="}]')""",
)

BAD_RETRY = code(
    "DFC412",
    "invalid retry option",
    ERR,
    """
    `df.retry` options: `attempts` an integer from 1 to 1000000 (tries in total), `backoff` and
    `max_backoff` numbers of seconds from 0 to 100 years (3153600000), `factor` a number ≥ 1,
    `jitter` TRUE or FALSE.
    """,
    bad="df.retry('SELECT 1', attempts => 0)",
    good="df.retry('SELECT 1', attempts => 3)",
)

BAD_LITERAL = code(
    "DFC413",
    "literal argument of the wrong kind",
    ERR,
    """
    The argument must be a literal of another kind: SQL steps, signal names, cron expressions,
    URLs and HTTP bodies are text; durations are numbers. A string that PostgreSQL would convert
    fits (`df.sleep('30')`); a cast decides the type (`'SELECT 1'::int` is not a SQL step). The
    rule applies to a literal written in the call and to one passed through a template.
    (A literal written in the call was once reported as DFC130, now retired.)
    """,
    bad="df.wait_for_signal(42)",
    good="df.wait_for_signal('approved')",
)

EXPRESSION_ARGUMENT = code(
    "DFC414",
    "SQL expression where the plan needs a literal",
    ERR,
    """
    In a `--grammar pg` file an argument may be a SQL expression, as in pg_durable's SQL:
    `jsonb_build_array(...)` for multipart parts, `'Bearer ' || current_setting('app.key')`
    in headers, `now()::text` in a body. The database evaluates it once, when the instance
    starts (as the role that starts it), and the step uses its text as it would a literal's
    (`$refs` and `{vars}` in that text are substituted when the step runs). That works for the
    texts a step substitutes: the URL, body, headers and parts of `df.http` and
    `df.http_multipart`, and the value of `df.break`. Durations, timeouts, cron expressions,
    signal names, HTTP methods, retry options, SQL steps and result names decide the plan
    itself and must be written as literals. (In `.df` files read with the dfc grammar, an
    argument is always a literal.)
    """,
    bad="df.sleep(60 * 5)  -- read with --grammar pg",
    good="df.sleep(300)",
)

BAD_TIMEZONE = code(
    "DFC430",
    "unknown time zone",
    ERR,
    """
    The `timezone` of a `schedule` names a zone of the IANA time zone database, spelt as it
    is there (case matters): `'UTC'`, `'Europe/Paris'`, `'America/New_York'`. The cron
    expression is read as wall-clock time in that zone, daylight saving time included.
    """,
    bad="schedule '0 3 * * *' timezone 'Paris';\n'SELECT 1'",
    good="schedule '0 3 * * *' timezone 'Europe/Paris';\n'SELECT 1'",
)

SCHEDULED_PARAM = code(
    "DFC431",
    "scheduled workflow parameter without a default",
    ERR,
    """
    A schedule starts its workflow with no values, so each parameter the workflow declares
    (in its file or in a module it imports) needs a default. Give it one; an instance started
    by hand can still pass another value.
    """,
    bad="schedule '0 3 * * *';\nparam days int;\n'DELETE FROM logs WHERE age > {days}'",
    good="schedule '0 3 * * *';\nparam days int = 30;\n'DELETE FROM logs WHERE age > {days}'",
)

PRECEDENCE = code(
    "DFC420",
    "pg_durable reads this expression differently",
    WARN,
    """
    Inside PostgreSQL, pg_durable's operators all have one precedence and group left to right
    (`@>` takes only the operand right after it). dfc uses the precedence table of the language
    (`<->`, `|=>`, `&`, `|`, `~>`, `?> !>`, `@>`, tightest first), so this text behaves
    differently when pasted into `SELECT df.start(...)`. Add the parentheses shown in the help:
    they make both readings agree.
    """,
    bad="'SELECT 1' ~> 'SELECT 2' & 'SELECT 3'",
    good="'SELECT 1' ~> ('SELECT 2' & 'SELECT 3')",
)

# --------------------------------------------------------------------------------------------
# Child workflows (df.call, df.spawn)

CALLEE_UNKNOWN = code(
    "DFC460",
    "called workflow not found before run time",
    HINT,
    """
    `df.call('name', ...)` and `df.spawn('name', ...)` start an instance of the deployed
    workflow `name` when the step runs. The checker checks the parameters passed against the
    callee's `param` declarations when it knows the callee: a file `name.df` next to this one
    whose workflow is named `name`, or, with `dfc check --db URL`, the deployed workflow. This
    callee is neither, so its parameters are checked only when the step starts it; a workflow
    that is not deployed by then fails the step. (With `--db`, a callee that is not deployed is
    a warning.)
    """,
    bad="df.call('charge_card', amount => 10)  -- no charge_card.df beside this file",
    good="df.call('charge_card', amount => 10)  -- charge_card.df beside this file",
)

CALLEE_PARAM = code(
    "DFC461",
    "unknown parameter for the called workflow",
    ERR,
    """
    A named argument of `df.call` or `df.spawn` (other than `version`) is a parameter of the
    called workflow, and the callee declares no parameter of that name (the list of its
    parameters is in the help). Starting it would fail. Fix the name, or declare the parameter
    in the callee with `param NAME [TYPE] [= default];`.
    """,
    bad="df.call('charge', amout => 10)  -- charge.df: param amount int;",
    good="df.call('charge', amount => 10)",
)

CALLEE_MISSING = code(
    "DFC462",
    "required parameter of the called workflow not given",
    ERR,
    """
    The called workflow declares a parameter without a default, and the call does not give it
    a value: starting the child would fail. Pass it as `name => value`, or give the parameter
    a default in the callee.
    """,
    bad="df.call('charge')  -- charge.df: param amount int;",
    good="df.call('charge', amount => 10)",
)

CALLEE_TYPE = code(
    "DFC463",
    "argument does not fit the called workflow's parameter type",
    ERR,
    """
    The value passed for a parameter of the called workflow cannot be read as the parameter's
    type (`int`, `numeric`, `bool`, `json`, `ident`, `text`), so starting the child would fail.
    A value holding `$refs` or `{vars}` is known only when the step runs and is checked then.
    """,
    bad="df.call('charge', amount => 'ten')  -- charge.df: param amount int;",
    good="df.call('charge', amount => 10)",
)

CALLEE_VERSION = code(
    "DFC464",
    "bad version for the called workflow",
    ERR,
    """
    `version => n` pins the version of the called workflow that the child runs (by default,
    the latest deployed version when the step starts it). It is a whole number of at least 1;
    with `dfc check --db URL` it must also be a deployed version of the callee.
    """,
    bad="df.call('charge', version => 0, amount => 10)",
    good="df.call('charge', version => 2, amount => 10)",
)

# df.map (45x)

BAD_MAP_OPTION = code(
    "DFC450",
    "invalid df.map option",
    ERR,
    """
    `concurrency` is how many rows `df.map` processes at once: a whole number from 1 to 1000
    (default 8). `on_error` is `'fail'` (default: the first failing row fails the map and
    cancels the rows still running) or `'collect'` (every row runs; a failed row gives an
    `{"error": ...}` object in its slot of the result).
    """,
    bad="'SELECT id FROM t' |=> 'ids' ~> df.map('$ids.*', 'SELECT $item.id', concurrency => 0)",
    good="'SELECT id FROM t' |=> 'ids' ~> df.map('$ids.*', 'SELECT $item.id', concurrency => 4)",
)

MAP_ROWS = code(
    "DFC451",
    "df.map over a result without rows",
    ERR,
    """
    `df.map` runs its body once per row of a SQL result: its first argument is a query (run
    once), or a reference to a bound SQL result (`'$orders.*'`). The result given here has no
    rows: an HTTP response, a signal, a sleep or a join's array. Select the rows to process
    with a query instead.
    """,
    bad="df.sleep(1) |=> 's' ~> df.map('$s', 'SELECT 1')",
    good="'SELECT id FROM t' |=> 'ids' ~> df.map('$ids.*', 'SELECT $item.id')",
)

MAP_UNDO = code(
    "DFC452",
    "compensation inside df.map",
    ERR,
    """
    The body of `df.map` may not hold a compensation (`a <-> undo`, `df.with_undo`): the
    records of finished rows are summarised to keep a map of many rows small, so their undo
    steps could not run after a later failure. Compensate the whole map instead
    (`df.map(...) <-> undo`), or process the rows with a loop.
    """,
    bad="df.map('SELECT id FROM t', 'UPDATE t SET n = n + 1 WHERE id = $item.id' <-> 'SELECT 1')",
    good="df.map('SELECT id FROM t', 'UPDATE t SET n = n + 1 WHERE id = $item.id') <-> 'SELECT 1'",
)
