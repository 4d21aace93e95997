"""pg_durable's JSON graph ↔ AST (dfc.syntax.graph): both envelopes, the texts sqlapi's builders
write, malformed input, and the round trip AST → graph → AST for generated workflows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfc import ast
from dfc.json_types import canonical
from dfc.source import SourceFile, TextMap
from dfc.syntax import codes, format_module, parse_text
from dfc.syntax.graph import (
    NODE_TYPES,
    graph_module,
    graph_text,
    read_graph,
    with_retries,
)

_FILE = SourceFile("<generated>", "")
SP = _FILE.span(0, 0)


def s(value: str) -> ast.Str:
    return ast.Str(value=value, span=SP, text_map=TextMap((), 0))


def sql(q: str) -> ast.Sql:
    return ast.Sql(query=s(q), span=SP)


def num(text: str) -> ast.Num:
    return ast.Num(text=text, span=SP)


def read(text: str) -> ast.Expr:
    body, diags = read_graph(text)
    assert diags == [], [d.message for d in diags]
    assert body is not None
    return body


# -- what the SQL surface's builders write (captured from migration 0005's functions) -------------

BUILT = {
    # 'SELECT 1' |=> 'x' ~> ('SELECT $x > 0' ?> 'SELECT 2' !> df.sleep(5))
    "operators": (
        '{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1","result_name":"x"},'
        '"right_node":{"node_type":"IF","left_node":{"node_type":"SQL","query":"SELECT 2"},'
        '"right_node":{"node_type":"SLEEP","query":"5"},'
        '"condition_node":{"node_type":"SQL","query":"SELECT $x > 0"}}}',
        ast.Seq(
            left=ast.Bind(node=sql("SELECT 1"), name=s("x"), span=SP),
            right=ast.If(
                cond=sql("SELECT $x > 0"),
                then=sql("SELECT 2"),
                orelse=ast.Sleep(seconds=num("5"), span=SP),
                span=SP,
            ),
            span=SP,
        ),
    ),
    "join3": (
        '{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},'
        '"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":[{"node_type":"SQL","query":"c"}]}',
        ast.Join(branches=(sql("a"), sql("b"), sql("c")), span=SP),
    ),
    "loop_while": (
        '{"node_type":"LOOP","left_node":{"node_type":"SQL","query":"a"},'
        '"condition_node":{"node_type":"SQL","query":"b"}}',
        ast.Loop(body=sql("a"), cond=sql("b"), span=SP),
    ),
    "loop_break": (
        '{"node_type":"LOOP","left_node":{"node_type":"THEN","left_node":{"node_type":"SQL",'
        '"query":"a"},"right_node":{"node_type":"BREAK","query":"{\\"break_value\\":null}"}}}',
        ast.Loop(body=ast.Seq(left=sql("a"), right=ast.Break(span=SP), span=SP), span=SP),
    ),
    "if_rows": (
        '{"node_type":"IF","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":'
        '"SQL","query":"b"},"query":"{\\"condition_type\\":\\"result_has_rows\\",\\"result_name\\":\\"x\\"}"}',
        ast.IfRows(name=s("x"), then=sql("a"), orelse=sql("b"), span=SP),
    ),
    "signal": (
        '{"node_type":"SIGNAL","query":"{\\"signal_name\\":\\"go\\",\\"timeout_seconds\\":60}"}',
        ast.WaitSignal(name=s("go"), timeout=num("60"), span=SP),
    ),
    "schedule": (
        '{"node_type":"WAIT_SCHEDULE","query":"{\\"cron_expr\\":\\"*/5 * * * *\\"}"}',
        ast.WaitSchedule(cron=s("*/5 * * * *"), span=SP),
    ),
    "break_value": (
        '{"node_type":"BREAK","query":"{\\"break_value\\":\\"{\\\\\\"done\\\\\\":true}\\"}"}',
        ast.Break(value=s('{"done":true}'), span=SP),
    ),
}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_builder_texts(case: str) -> None:
    text, expected = BUILT[case]
    assert read(text) == expected
    assert graph_text(expected) == text  # the same canonical text as the builders write


def test_http_from_the_builders() -> None:
    # df.http('https://x.example/y', 'GET', NULL, '{"A":"b"}'::jsonb): jsonb text has spaces.
    text = (
        '{"node_type":"HTTP","query":"{\\"url\\":\\"https://x.example/y\\",\\"method\\":\\"GET\\",'
        '\\"body\\":null,\\"headers\\":{\\"A\\": \\"b\\"},\\"timeout_seconds\\":30}"}'
    )
    assert read(text) == ast.Http(
        url=s("https://x.example/y"),
        method=s("GET"),
        headers=s('{"A":"b"}'),
        timeout=num("30"),
        span=SP,
    )
    multipart = (
        '{"node_type":"HTTP_MULTIPART","query":"{\\"url\\":\\"https://x.example/y\\",\\"method\\":'
        '\\"POST\\",\\"parts\\":[{\\"name\\": \\"f\\", \\"data_b64\\": \\"aGk=\\"}],\\"headers\\":null,'
        '\\"timeout_seconds\\":30}"}'
    )
    assert read(multipart) == ast.HttpMultipart(
        url=s("https://x.example/y"),
        method=s("POST"),
        parts=s('[{"name":"f","data_b64":"aGk="}]'),
        timeout=num("30"),
        span=SP,
    )


def test_the_older_envelope() -> None:
    cond = '{\\"condition_node\\":{\\"node_type\\":\\"SQL\\",\\"query\\":\\"c\\"}}'
    old_if = (
        '{"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},'
        f'"right_node":{{"node_type":"SQL","query":"e"}},"query":"{cond}"}}'
    )
    assert read(old_if) == ast.If(cond=sql("c"), then=sql("t"), orelse=sql("e"), span=SP)
    old_loop = (
        f'{{"node_type":"LOOP","left_node":{{"node_type":"SQL","query":"b"}},"query":"{cond}"}}'
    )
    assert read(old_loop) == ast.Loop(body=sql("b"), cond=sql("c"), span=SP)
    extra = '{\\"extra_nodes\\":[{\\"node_type\\":\\"SQL\\",\\"query\\":\\"c\\"}]}'
    old_join = (
        '{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},'
        f'"right_node":{{"node_type":"SQL","query":"b"}},"query":"{extra}"}}'
    )
    assert read(old_join) == ast.Join(branches=(sql("a"), sql("b"), sql("c")), span=SP)
    # The older WAIT_SCHEDULE also carried a precomputed wait: the cron expression decides.
    old_cron = '{"node_type":"WAIT_SCHEDULE","query":"{\\"cron_expr\\":\\"0 3 * * *\\",\\"wait_seconds\\":99}"}'
    assert read(old_cron) == ast.WaitSchedule(cron=s("0 3 * * *"), span=SP)


def test_a_text_that_is_not_a_graph_is_one_sql_step() -> None:
    for text in ("SELECT 1", "  {not json", '{"a": 1}', "[1, 2]", "42", ""):
        assert read(text) == sql(text)


def test_partial_if_is_an_if_without_else() -> None:
    # What `'c' ?> 't'` gives in SQL (jsonb text: reordered keys, spaces).
    text = (
        '{"condition": {"query": "c", "node_type": "SQL"}, "_partial_if": true, '
        '"then_branch": {"query": "t", "node_type": "SQL"}}'
    )
    assert read(text) == ast.If(cond=sql("c"), then=sql("t"), orelse=None, span=SP)


@pytest.mark.parametrize(
    ("text", "code", "message", "where"),
    [
        (
            '{"node_type":"SEQ"}',
            codes.GRAPH_NODE_TYPE,
            "Invalid durable function: Unknown node_type 'SEQ'. Valid types: SQL, THEN, IF, "
            "JOIN, LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART, SIGNAL",
            "$",
        ),
        (
            '{"node_type":"THEN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":7}}',
            codes.GRAPH_NODE_TYPE,
            "Invalid durable function: Unknown node_type '7'. Valid types: SQL, THEN, IF, JOIN, "
            "LOOP, BREAK, RACE, SLEEP, WAIT_SCHEDULE, HTTP, HTTP_MULTIPART, SIGNAL",
            "$.right_node",
        ),
        (
            '{"node_type":"THEN","left_node":{"node_type":"SQL","query":"a"}}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'THEN': needs left_node and right_node",
            "$",
        ),
        (
            '{"node_type":"RACE","left_node":"SELECT 1","right_node":{"node_type":"SQL","query":"b"}}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'RACE': left_node must be a node object",
            "$",
        ),
        (
            '{"node_type":"LOOP","left_node":{"node_type":"SQL"}}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'SQL': needs query",
            "$.left_node",
        ),
        (
            '{"node_type":"IF","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"}}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'IF': needs condition_node, or a "
            "result_has_rows query",
            "$",
        ),
        (
            '{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},'
            '"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":["c"]}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'JOIN': extra_nodes must hold node objects",
            "$",
        ),
        (
            '{"node_type":"SIGNAL","query":"go"}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'SIGNAL': query must be a JSON object",
            "$",
        ),
        (
            '{"node_type":"HTTP","query":"{\\"method\\":\\"GET\\"}"}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'HTTP': query needs url",
            "$",
        ),
        (
            '{"node_type":"BREAK","query":"{\\"break_value\\":5}"}',
            codes.GRAPH_MALFORMED,
            "Malformed Durofut JSON with node_type 'BREAK': break_value must be a string or null",
            "$",
        ),
    ],
)
def test_malformed_graphs(text: str, code: str, message: str, where: str) -> None:
    body, diags = read_graph(text)
    assert body is None
    assert [(d.code, d.message, d.notes) for d in diags] == [
        (code, message, (f"in the graph at {where}",))
    ]


@pytest.mark.parametrize("code", [codes.GRAPH_NODE_TYPE, codes.GRAPH_MALFORMED])
def test_bad_example_graphs_trigger_their_code_and_good_ones_are_clean(code: str) -> None:
    from dfc.catalogue import all_codes

    entry = all_codes()[code]
    assert entry.bad is not None and entry.good is not None
    assert [d.code for d in read_graph(entry.bad)[1]] == [code]
    assert read_graph(entry.good)[1] == []


def test_node_types_are_pg_durables() -> None:
    assert NODE_TYPES == (
        "SQL",
        "THEN",
        "IF",
        "JOIN",
        "LOOP",
        "BREAK",
        "RACE",
        "SLEEP",
        "WAIT_SCHEDULE",
        "HTTP",
        "HTTP_MULTIPART",
        "SIGNAL",
    )


def test_the_module_has_readable_positions() -> None:
    body = read(BUILT["operators"][0])
    module, diags = graph_module(body, "sql:demo")
    assert diags == [] and module is not None
    assert module.span.file.name == "sql:demo"
    assert (
        module.span.file.text
        == "'SELECT 1' |=> 'x' ~> ('SELECT $x > 0' ?> 'SELECT 2' !> df.sleep(5));\n"
    )
    wf = module.workflow
    assert wf is not None and isinstance(wf.body, ast.Seq)
    assert wf.body.right.span.text == "('SELECT $x > 0' ?> 'SELECT 2' !> df.sleep(5))"[1:-1]


def test_retries_wrap_sql_and_http_steps_inside_their_bindings() -> None:
    body = read(BUILT["operators"][0])
    wrapped = with_retries(body, 5, 16.0)
    assert isinstance(wrapped, ast.Seq) and isinstance(wrapped.left, ast.Bind)
    retry = wrapped.left.node
    assert isinstance(retry, ast.Retry) and retry.node == sql("SELECT 1")
    assert (retry.attempts, retry.backoff, retry.factor, retry.max_backoff) == (
        num("5"),
        num("1"),
        num("2"),
        num("16"),
    )
    assert retry.jitter == ast.Bool(value=False, span=SP)
    assert isinstance(wrapped.right, ast.If) and isinstance(wrapped.right.orelse, ast.Sleep)
    assert with_retries(body, 2, 2.5).left.node.max_backoff == num("2.5")  # type: ignore[union-attr]
    module, diags = graph_module(wrapped, "sql:r")
    assert diags == [] and module is not None


def test_long_chains_need_no_recursion() -> None:
    text = '{"node_type":"SQL","query":"SELECT 0"}'
    for i in range(3000):
        text = (
            f'{{"node_type":"THEN","left_node":{text},'
            f'"right_node":{{"node_type":"SQL","query":"SELECT {i + 1}"}}}}'
        )
    body = read(text)
    module, diags = graph_module(body, "sql:long")
    assert diags == [] and module is not None
    assert graph_text(body) == text


# -- generated workflows: AST → graph → AST is the identity -------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
whole = st.from_regex(r"0|[1-9][0-9]{0,4}", fullmatch=True).map(num)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=4), json_values, max_size=3).map(
    lambda v: s(json.dumps(v, ensure_ascii=False, separators=(",", ":")))
)
json_arrays = st.lists(json_values, max_size=3).map(
    lambda v: s(json.dumps(v, ensure_ascii=False, separators=(",", ":")))
)
opt_text = st.one_of(st.none(), texts.map(s))


def leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        texts.map(sql),
        st.builds(lambda v: ast.Break(value=v, span=SP), opt_text),
        st.builds(lambda x: ast.Sleep(seconds=x, span=SP), whole),
        st.builds(lambda c: ast.WaitSchedule(cron=s(c), span=SP), texts),
        st.builds(
            lambda n, t: ast.WaitSignal(name=s(n), timeout=t, span=SP),
            texts,
            st.one_of(st.none(), whole),
        ),
        st.builds(
            lambda u, m, b, h, t: ast.Http(
                url=s(u), method=m, body=b, headers=h, timeout=t, span=SP
            ),
            texts,
            opt_text,
            opt_text,
            st.one_of(st.none(), json_objects),
            st.one_of(st.none(), whole),
        ),
        st.builds(
            lambda u, m, p, h, t: ast.HttpMultipart(
                url=s(u), method=m, parts=p, headers=h, timeout=t, span=SP
            ),
            texts,
            opt_text,
            st.one_of(st.none(), json_arrays),
            st.one_of(st.none(), json_objects),
            st.one_of(st.none(), whole),
        ),
    )


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    two = st.tuples(children, children)
    # A node is bound once; pg_durable cannot bind a `?>` that no `!>` completed.
    unbound = children.filter(
        lambda n: not isinstance(n, ast.Bind) and not (isinstance(n, ast.If) and n.orelse is None)
    )
    return st.one_of(
        st.builds(lambda p: ast.Seq(left=p[0], right=p[1], span=SP), two),
        st.builds(lambda n, r: ast.Bind(node=n, name=s(r), span=SP), unbound, names),
        st.builds(
            lambda bs: ast.Join(branches=tuple(bs), span=SP),
            st.lists(children, min_size=2, max_size=4),
        ),
        st.builds(lambda p: ast.Race(branches=p, span=SP), two),
        st.builds(
            lambda c, t, e: ast.If(cond=c, then=t, orelse=e, span=SP),
            children,
            children,
            st.one_of(st.none(), children),
        ),
        st.builds(
            lambda n, t, e: ast.IfRows(name=s(n), then=t, orelse=e, span=SP),
            names,
            children,
            children,
        ),
        st.builds(
            lambda b, c: ast.Loop(body=b, cond=c, span=SP),
            children,
            st.one_of(st.none(), children),
        ),
    )


workflows = st.recursive(leaves(), extend, max_leaves=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(workflows)
def test_ast_to_graph_to_ast_is_the_identity(body: ast.Expr) -> None:
    text = graph_text(body)
    assert read(text) == body
    assert isinstance(json.loads(text), dict)
    # Printed and parsed back, it is the same workflow again.
    module, diags = graph_module(body, "sql:gen")
    assert diags == [] and module is not None
    assert module.workflow is not None and module.workflow.body == body


@settings(max_examples=100)
@given(json_values.map(lambda v: canonical(v)) | texts)
def test_any_text_gives_a_workflow_or_diagnostics(text: str) -> None:
    body, diags = read_graph(text)
    assert (body is None) == any(d.is_error for d in diags)


@settings(max_examples=100)
@given(
    st.recursive(
        st.fixed_dictionaries(
            {"node_type": st.sampled_from([*NODE_TYPES, "X"])},
            optional={
                "query": st.one_of(
                    texts, st.just('{"condition_node":{"node_type":"SQL","query":"c"}}')
                ),
                "result_name": st.one_of(names, st.integers()),
            },
        ),
        lambda inner: st.fixed_dictionaries(
            {"node_type": st.sampled_from(NODE_TYPES)},
            optional={
                "left_node": inner,
                "right_node": inner,
                "condition_node": st.one_of(inner, texts),
                "extra_nodes": st.lists(inner, max_size=2),
                "query": texts,
            },
        ),
        max_leaves=6,
    )
)
def test_any_graph_object_gives_a_workflow_or_diagnostics(graph: dict[str, Any]) -> None:
    body, diags = read_graph(json.dumps(graph))
    assert (body is None) == any(d.is_error for d in diags)
    if body is not None:
        _, more = graph_module(body, "sql:any")
        assert all(d.code != codes.INTERNAL for d in more)


def test_the_printed_text_is_what_dfc_fmt_prints() -> None:
    body = read(BUILT["join3"][0])
    module, _ = graph_module(body, "sql:j")
    assert module is not None
    parsed, diags = parse_text(module.span.file.text, grammar="pg")
    assert diags == [] and parsed is not None
    assert format_module(parsed) == module.span.file.text
