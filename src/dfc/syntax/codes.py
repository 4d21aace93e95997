"""Diagnostic codes of the syntax stage (DFC1xx): lexing, parsing and building the AST.

Every code here is an error: a file with any of them has no usable meaning. ``?>`` without ``!>``
is *not* reported here: the parser builds ``If(orelse=None)`` and the checker reports it.
"""

from __future__ import annotations

from dfc.codes import code
from dfc.diagnostics import Severity

E = Severity.ERROR

# -- lexical --------------------------------------------------------------------------------------

UNEXPECTED_CHAR = code(
    "DFC100",
    "unexpected character",
    E,
    "A character that cannot start any token of the language (outside strings and comments).",
    bad="df.sleep(5) # wait",
    good="df.sleep(5) -- wait",
)
UNTERMINATED_STRING = code(
    "DFC101",
    "unterminated string literal",
    E,
    """A '...' literal (or a "quoted identifier") has no closing quote. The error points at the
    opening quote; everything after it was read as part of the string. A quote inside a string
    is written twice (''), or the string is written with dollar quotes.""",
    bad="'SELECT 'done' ~> df.sleep(1)",
    good="$$SELECT 'done'$$ ~> df.sleep(1)",
)
UNTERMINATED_DOLLAR = code(
    "DFC102",
    "unterminated dollar-quoted string",
    E,
    "A $$...$$ or $tag$...$tag$ string has no closing delimiter with the same tag.",
    bad="$sql$SELECT 1$$",
    good="$sql$SELECT 1$sql$",
)
UNTERMINATED_COMMENT = code(
    "DFC103",
    "unterminated block comment",
    E,
    """A /* comment has no matching */. Comments nest as in PostgreSQL, so every /* inside a
    comment needs its own */. The error points at the opening /* that is not closed.""",
    bad="/* retry /* twice */\ndf.sleep(1)",
    good="/* retry /* twice */ */\ndf.sleep(1)",
)
BAD_ESCAPE = code(
    "DFC104",
    "invalid escape in a string literal",
    E,
    r"""An E'...' or U&'...' escape that PostgreSQL rejects: \u and \U need exactly 4 and 8
    hex digits, surrogates must pair, and byte escapes (\xHH, octal) must form valid UTF-8 and
    cannot produce a NUL character.""",
    bad=r"E'caf\u00e'",
    good=r"E'caf\u00e9'",
)
ADJACENT_STRINGS = code(
    "DFC105",
    "string literals on one line",
    E,
    """Two string literals follow each other on the same line. SQL concatenates adjacent
    literals only when a newline separates them.""",
    bad="'SELECT 1' 'SELECT 2'",
    good="'SELECT 1' ~> 'SELECT 2'",
)
UNSUPPORTED_LITERAL = code(
    "DFC106",
    "unsupported literal",
    E,
    "Bit-string literals (B'0101', X'1F') have no meaning in a workflow.",
    bad="df.sleep(X'1F')",
    good="df.sleep(31)",
)
BAD_NUMBER = code(
    "DFC107",
    "invalid number",
    E,
    "A number followed directly by letters, such as a duration with a unit (durations are whole "
    "seconds), or a number of more than 1,000 characters.",
    bad="df.sleep(10s)",
    good="df.sleep(10)",
)
UNKNOWN_OPERATOR = code(
    "DFC108",
    "unknown operator",
    E,
    "An operator the language does not have. dfc's operators are ~> |=> & | ?> !> @> <->.",
    bad="'SELECT 1' -> 'SELECT 2'",
    good="'SELECT 1' ~> 'SELECT 2'",
)
REF_OUTSIDE_STRING = code(
    "DFC109",
    "$reference outside a string",
    E,
    "A $name reference stands inside SQL or HTTP text, where it is substituted when the step runs.",
    bad="'SELECT 1' |=> 'one' ~> $one",
    good="'SELECT 1' |=> 'one' ~> 'SELECT $one + 1'",
)
VAR_OUTSIDE_STRING = code(
    "DFC110",
    "{variable} outside a string",
    E,
    "A {var} reference stands inside SQL or HTTP text, where it is substituted as raw text.",
    bad="df.http({api_url}, 'GET')",
    good="df.http('{api_url}', 'GET')",
)

# -- grammar --------------------------------------------------------------------------------------

SYNTAX = code(
    "DFC111",
    "syntax error",
    E,
    "The text does not follow the grammar at this point. The message says what was expected.",
    bad="param = 5;",
    good="param n int = 5;",
)
MISSING_OPERATOR = code(
    "DFC112",
    "missing operator between two nodes",
    E,
    """Two nodes follow each other without an operator (or, inside a call, without a comma).
    Steps run one after the other with ~>, in parallel with &.""",
    bad="df.sleep(5) 'SELECT 1'",
    good="df.sleep(5) ~> 'SELECT 1'",
)
MISSING_OPERAND = code(
    "DFC113",
    "missing node",
    E,
    "An operator or a call is missing the node it needs, e.g. two operators in a row or an empty pair of parentheses.",
    bad="'SELECT 1' ~> ~> 'SELECT 2'",
    good="'SELECT 1' ~> 'SELECT 2'",
)
UNCLOSED_PAREN = code(
    "DFC114",
    "unclosed parenthesis",
    E,
    "A '(' is never closed. The error points where a ')' was needed and labels the open '('.",
    bad="df.start('SELECT 1' ~> df.sleep(5)",
    good="df.start('SELECT 1' ~> df.sleep(5))",
)
UNMATCHED_PAREN = code(
    "DFC115",
    "unmatched ')'",
    E,
    "A ')' that closes nothing.",
    bad="df.sleep(5))",
    good="df.sleep(5)",
)
TRAILING_COMMA = code(
    "DFC116",
    "trailing comma",
    E,
    "SQL does not allow a comma after the last argument.",
    bad="df.http('{url}', 'GET',)",
    good="df.http('{url}', 'GET')",
)
NAMED_ARG_EQ = code(
    "DFC117",
    "'=' in a named argument",
    E,
    "Named arguments use PostgreSQL's notation name => value.",
    bad="df.retry('SELECT 1', attempts = 3)",
    good="df.retry('SELECT 1', attempts => 3)",
)
ELSE_WITHOUT_IF = code(
    "DFC118",
    "'!>' without '?>'",
    E,
    """!> gives the else branch of a ?> conditional and cannot stand alone. With --grammar=pg
    (pg_durable's flat precedence) the left side of !> must be exactly an incomplete `c ?> t`;
    `c ?> t ~> u !> e` parses as `((c ?> t) ~> u) !> e` there, which is an error.""",
    bad="'SELECT true' ~> 'SELECT 1' !> 'SELECT 2'",
    good="'SELECT true' ?> 'SELECT 1' !> 'SELECT 2'",
)
MISSING_SEMICOLON = code(
    "DFC119",
    "missing ';'",
    E,
    "Declarations end with a semicolon, and statements are separated by semicolons.",
    bad="param n int = 5\ndf.sleep(1)",
    good="param n int = 5;\ndf.sleep(1)",
)
DOUBLE_QUOTED = code(
    "DFC120",
    "double quotes instead of single quotes",
    E,
    """In SQL, "double quotes" make an identifier, not a string. Strings use 'single quotes'
    or dollar quotes.""",
    bad='df.sql("SELECT 1")',
    good="df.sql('SELECT 1')",
)
BARE_SQL = code(
    "DFC121",
    "SQL outside a string",
    E,
    "A SQL statement is a step only when written as a string literal.",
    bad="df.start(SELECT 1)",
    good="df.start('SELECT 1')",
)

# -- file structure -------------------------------------------------------------------------------

EMPTY_FILE = code(
    "DFC122",
    "nothing to run",
    E,
    "A file needs a workflow or at least one declaration (a module of templates).",
    bad="-- the workflow comes later",
    good="df.sleep(1)",
)
MULTIPLE_WORKFLOWS = code(
    "DFC123",
    "more than one workflow",
    E,
    "A file holds one workflow. Combine the steps with operators, or use one file per workflow.",
    bad="'SELECT 1';\n'SELECT 2';",
    good="'SELECT 1' ~> 'SELECT 2';",
)
DECL_AFTER_WORKFLOW = code(
    "DFC124",
    "declaration after the workflow",
    E,
    "import, param and def declarations come before the workflow.",
    bad="df.sleep(1);\nparam n int;",
    good="param n int;\ndf.sleep(1);",
)
TOPLEVEL_ONLY = code(
    "DFC125",
    "function not allowed inside a workflow",
    E,
    """df.start wraps the whole workflow and cannot appear inside it; df.signal, df.setvar,
    df.cancel and the other SQL API functions are called from SQL, not used as steps.""",
    bad="'SELECT 1' ~> df.start('SELECT 2')",
    good="df.start('SELECT 1' ~> 'SELECT 2')",
)
UNKNOWN_FUNCTION = code(
    "DFC126",
    "unknown df.* function",
    E,
    "The built-in node functions are listed in SPEC §1.3 (df.sql, df.seq, df.sleep, df.http, ...).",
    bad="df.wait(5)",
    good="df.sleep(5)",
)
ARITY = code(
    "DFC127",
    "wrong number of arguments",
    E,
    "A built-in function was called with too few or too many arguments.",
    bad="df.if('SELECT true', 'SELECT 1')",
    good="df.if('SELECT true', 'SELECT 1', 'SELECT 2')",
)
LITERAL_EXPECTED = code(
    "DFC128",
    "literal expected",
    E,
    """This parameter takes a literal (a string, a number, NULL, TRUE/FALSE, or a template
    parameter), not a node or an expression.""",
    bad="df.sleep(df.sql('SELECT 5'))",
    good="df.sleep(5)",
)
NODE_EXPECTED = code(
    "DFC129",
    "node expected",
    E,
    "A number, NULL, TRUE or FALSE cannot be a step. A string in node position is a SQL step.",
    bad="df.seq(5, 'SELECT 1')",
    good="df.seq(df.sleep(5), 'SELECT 1')",
)
# Retired: the kind of a literal argument is the checker's rule, for literals written directly
# and for those reaching a built-in through a template parameter. The number is never reused.
code(
    "DFC130",
    "literal of the wrong type (retired)",
    E,
    """Retired: a literal argument of the wrong kind is reported by the checker with the code of
    the argument's rule: DFC407 for seconds, DFC408 for the HTTP method, DFC410 for headers,
    DFC411 for multipart parts, DFC412 for retry options and DFC413 for the others. The
    argument of df.sql is a string in the syntax (DFC134).""",
)
UNKNOWN_ARG = code(
    "DFC131",
    "unknown named argument",
    E,
    "The function has no parameter of that name.",
    bad="df.http('{url}', methd => 'GET')",
    good="df.http('{url}', method => 'GET')",
)
DUPLICATE_ARG = code(
    "DFC132",
    "argument given twice",
    E,
    "A parameter was given twice, by position and by name or twice by name.",
    bad="df.sleep(5, seconds => 5)",
    good="df.sleep(5)",
)
POSITIONAL_AFTER_NAMED = code(
    "DFC133",
    "positional argument after a named one",
    E,
    "As in PostgreSQL, positional arguments come before named ones.",
    bad="df.retry(attempts => 3, 'SELECT 1')",
    good="df.retry('SELECT 1', attempts => 3)",
)
STRING_EXPECTED = code(
    "DFC134",
    "string literal expected",
    E,
    """The right side of |=> (and the name of df.as and df.if_rows) is a result name, and the
    argument of df.sql is the SQL of the step: both are written as string literals.""",
    bad="'SELECT 1' |=> 1",
    good="'SELECT 1' |=> 'one'",
)
# Retired: the checker owns the rule for every result name, written directly or reaching a
# binding through a template parameter (DFC208). The number is never reused.
code(
    "DFC135",
    "invalid result name (retired)",
    E,
    """Retired: an invalid result name is reported as DFC208 by the checker, wherever the name
    is written (`|=> 'name'`, `df.as`, `df.if_rows` or a template argument).""",
)

# -- declarations ---------------------------------------------------------------------------------

BAD_PARAM = code(
    "DFC136",
    "invalid param declaration",
    E,
    """`param NAME [TYPE] [= default];` takes a TYPE among text, int, numeric, bool, json and
    ident, and a literal default.""",
    bad="param limit integer = 10;",
    good="param limit int = 10;",
)
BAD_DEF = code(
    "DFC137",
    "invalid template definition",
    E,
    "Template parameters must have distinct names, and parameters with defaults come last.",
    bad="def f(a = 1, b) = df.sleep(a);",
    good="def f(b, a = 1) = df.sleep(a);",
)
BAD_IMPORT = code(
    "DFC138",
    "invalid import",
    E,
    "An import names a module as a string literal: 'std/NAME' or a path relative to the file.",
    bad="import std_batch;",
    good="import 'std/batch';",
)
BAD_START = code(
    "DFC139",
    "invalid df.start arguments",
    E,
    """df.start(expr [, label] [, database => ..., transaction_mode => ..., max_concurrent =>
    ..., rate_limit => ...]) takes the workflow, an optional label string and literal options;
    max_concurrent is a whole number of at least 1, rate_limit a text like '10/minute' (N per
    second, minute, hour or day).""",
    bad="df.start('SELECT 1', 42)",
    good="df.start('SELECT 1', 'job')",
)
TOO_DEEP = code(
    "DFC140",
    "nested too deeply",
    E,
    """Expressions nest at most 256 levels (a chain of the same operator, like a ~> b ~> c,
    counts as one level). Split the workflow into templates.""",
)
BAD_SCHEDULE = code(
    "DFC141",
    "invalid schedule statement",
    E,
    """`schedule 'CRON' [timezone 'ZONE'] [overlap skip|queue|allow] [catchup none|latest|all];`
    takes each option at most once: the time zone as a string, the policies as words. A file
    has at most one schedule, and a schedule only in a file with a workflow (it starts that
    workflow).""",
    bad="schedule '0 3 * * *' overlap 'wait';\n'SELECT 1'",
    good="schedule '0 3 * * *' overlap queue;\n'SELECT 1'",
)

# -- pg_durable JSON graphs (df.start) ------------------------------------------------------------

GRAPH_NODE_TYPE = code(
    "DFC150",
    "unknown node type in a graph",
    E,
    """A graph given to df.start (pg_durable's JSON form) has a node whose node_type is not one
    of SQL, THEN, IF, JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART,
    SIGNAL. Graphs built with the df.* functions and operators never do; this one was written
    by hand or by another tool. The examples are graph texts.""",
    bad='{"node_type":"SEQ","left_node":"SELECT 1","right_node":"SELECT 2"}',
    good='{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},'
    '"right_node":{"node_type":"SQL","query":"SELECT 2"}}',
)
GRAPH_MALFORMED = code(
    "DFC151",
    "malformed graph node",
    E,
    """A node of a graph given to df.start lacks what its type needs (a THEN needs left_node
    and right_node, a SQL node its query, ...) or holds something else than a node object
    where a child belongs. The note says where in the graph. The examples are graph texts.""",
    bad='{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"}}',
    good='{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"},'
    '"right_node":{"node_type":"SQL","query":"SELECT 2"}}',
)

INTERNAL = code(
    "DFC199",
    "internal parser error",
    E,
    "The parser failed on this input. This is a bug in dfc; please report it with the file.",
)
