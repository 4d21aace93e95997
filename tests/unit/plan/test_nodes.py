"""Node configurations: one class per kind, defaults in one place, one way to read values."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfc.plan import nodes
from dfc.plan.model import PlanFormatError, PlanNode
from dfc.plan.nodes import NODE_TYPES, Http, HttpMultipart, If, IfRows, Retry, Signal, Sleep, read

EXAMPLES: list[nodes.NodeConfig] = [
    nodes.Sql(query="SELECT 1", autocommit=True),
    nodes.Then(),
    nodes.Join(),
    nodes.Race(),
    If(),
    IfRows(result_name="batch"),
    nodes.Loop(),
    nodes.Break(value='{"done": true}'),
    Sleep(seconds=5),
    nodes.WaitSchedule(cron="*/5 * * * *", timezone="Europe/Paris"),
    Signal(name="go", timeout=60),
    Http(url="https://x.example", method="PUT", body="{}", headers='{"A": "b"}', timeout=12),
    HttpMultipart(url="https://x.example", parts='[{"name": "f", "data_b64": ""}]'),
    Retry(attempts=4, backoff=0.5, factor=3, max_backoff=60, jitter=False),
    nodes.Timeout(seconds=10),
    nodes.Call(workflow="charge", version=2, args={"amount": "$order.total", "n": 3}),
    nodes.Spawn(workflow="notify"),
    nodes.Map(rows_from="orders", concurrency=3, on_error="collect", item="order"),
]


def test_every_kind_has_an_example_and_a_node_type() -> None:
    kinds = set(typing.get_args(nodes.NodeConfig))
    assert {type(c) for c in EXAMPLES} == kinds
    assert {k.TYPE for k in kinds} == set(NODE_TYPES)


@pytest.mark.parametrize("config", EXAMPLES, ids=lambda c: type(c).__name__)
def test_each_kind_reads_back_what_it_writes(config: nodes.NodeConfig) -> None:
    node = PlanNode(id="n1", config=config)
    assert PlanNode.from_json("n1", node.to_json()) == node
    assert nodes.read_node(config.TYPE, config.to_json()) == config


def test_plan_json_spells_out_every_default() -> None:
    # A stored plan says everything it does: changing a default later cannot change it unseen.
    assert Http(url="https://x.example").to_json() == {
        "url": "https://x.example",
        "method": "POST",
        "body": None,
        "headers": None,
        "timeout": 30,
    }
    assert Retry().to_json() == {
        "attempts": 3,
        "backoff": 1,
        "factor": 2,
        "max_backoff": 300,
        "jitter": True,
    }
    assert If().to_json() == {"test": "truthy"}
    assert IfRows(result_name="b").to_json() == {"test": "rows", "result_name": "b"}
    assert nodes.Then().to_json() == {}


def test_missing_or_null_values_take_the_defaults() -> None:
    assert read(Http, {"url": "u"}) == Http(url="u")
    assert read(Http, {"url": "u", "method": None, "timeout": None}) == Http(url="u")
    assert read(Retry, {"backoff": 5}) == Retry(backoff=5)
    assert read(Signal, {"name": "go"}).timeout is None
    assert read(HttpMultipart, {"url": "u", "parts": ""}).parts == "[]"


def test_values_are_read_as_the_runtime_always_read_them() -> None:
    http = read(Http, {"url": "u", "method": "put", "timeout": "12"})
    assert (http.method, http.timeout) == ("PUT", 12)
    assert read(Http, {"url": "u", "timeout": 0}).timeout == 30  # 0 has always meant the default
    assert read(Sleep, {"seconds": "30"}) == read(Sleep, {"seconds": 30.0}) == Sleep(seconds=30)
    # Numbers keep the form they were written in (explain shows `backoff=1s`, not `1.0s`).
    assert type(read(Retry, {"backoff": 1}).backoff) is int
    assert read(Retry, {"backoff": "1.5", "attempts": "4"}) == Retry(backoff=1.5, attempts=4)


def test_a_flag_written_as_text_reads_as_a_bool_param() -> None:
    # `jitter => 'false'` once turned jitter on: any non-empty text counted as true.
    assert read(Retry, {"jitter": "false"}).jitter is False
    assert read(Retry, {"jitter": "off"}).jitter is False
    assert read(Retry, {"jitter": "TRUE"}).jitter is True
    assert read(Retry, {"jitter": False}).jitter is False


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        (Sleep, {}, "SLEEP needs 'seconds'"),
        (Http, {"url": "u", "verb": "GET"}, "unknown configuration verb for HTTP"),
        (If, {"test": "maybe"}, "IF has test 'maybe'"),
        (Sleep, {"seconds": "soon"}, "soon"),
        (Sleep, {"seconds": True}, "not a number"),
        (Http, {"url": "u", "timeout": "INFINITY"}, "'INFINITY' is not a finite number"),
        (Sleep, {"seconds": "nan"}, "'nan' is not a finite number"),
        (nodes.Sql, {"query": ["SELECT 1"]}, "not text"),
    ],
)
def test_bad_configurations_are_refused(
    kind: type[nodes.NodeConfig], raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        read(kind, raw)


def test_a_malformed_node_names_itself() -> None:
    with pytest.raises(PlanFormatError, match="node n7: SIGNAL needs 'name'"):
        PlanNode.from_json("n7", {"type": "SIGNAL", "config": {"timeout": 5}})


def test_configurations_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Sleep(seconds=1).seconds = 2  # type: ignore[misc]


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
    st.integers(0, 10**6).map(str),
)


@st.composite
def _raw(draw: st.DrawFn) -> tuple[type[nodes.NodeConfig], dict[str, object]]:
    kind = draw(st.sampled_from(sorted({type(c) for c in EXAMPLES}, key=lambda k: k.__name__)))
    names = [f.name for f in dataclasses.fields(kind)]
    raw = draw(st.dictionaries(st.sampled_from(names), _VALUES)) if names else {}
    return kind, raw


@given(_raw())
def test_reading_is_idempotent_so_a_stored_plan_keeps_its_hash(
    case: tuple[type[nodes.NodeConfig], dict[str, object]],
) -> None:
    kind, raw = case
    try:
        config = read(kind, raw)  # type: ignore[arg-type]
    except ValueError:
        return  # refused, as a malformed plan is
    node = PlanNode(id="n1", config=config)
    again = PlanNode.from_json("n1", json.loads(json.dumps(node.to_json())))
    assert again == node
    assert again.to_json() == node.to_json()


def test_map_refuses_an_unknown_error_policy() -> None:
    with pytest.raises(ValueError, match="on_error 'ignore' is not one of fail, collect"):
        read(nodes.Map, {"on_error": "ignore"})
