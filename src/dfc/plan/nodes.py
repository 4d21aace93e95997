"""The configuration of each kind of plan node: one frozen dataclass per kind (SPEC §4).

A node's configuration is what it does besides its children: the query of a SQL step, the URL of
an HTTP call, the backoff of a retry. The defaults of the language (``df.http`` POSTs with a
30 s timeout, ``df.retry`` tries 3 times, waiting 1 s, doubling, at most 300 s, with jitter) are
the defaults of these fields and are written nowhere else: the emitter, the runtime and the
tests' plan builder all take them from here.

Every field is written out in the plan, defaults included, so that changing a default can never
change what a stored plan does without changing its hash.

`read` builds a configuration from its JSON form and is the one place that turns plan values
into typed ones: the emitter (from the literals of the source) and `dfc.plan.model` (from stored
plans, of any format) both go through it, so a workflow compiled today and the same workflow read
back from an older plan get the same configuration, and hence the same hash.

`NodeConfig` is the union of the kinds: a ``match`` over it that ends in ``assert_never`` makes
mypy list every place to touch when a kind is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Final, Literal, TypeVar, get_args

from dfc.fanout import DEFAULT_CONCURRENCY, DEFAULT_ITEM, DEFAULT_ON_ERROR, ON_ERROR
from dfc.json_types import JSON
from dfc.params import TRUE_WORDS

NodeType = Literal[
    "SQL",
    "THEN",
    "JOIN",
    "RACE",
    "IF",
    "LOOP",
    "BREAK",
    "SLEEP",
    "WAIT_SCHEDULE",
    "SIGNAL",
    "HTTP",
    "HTTP_MULTIPART",
    "RETRY",
    "TIMEOUT",
    "CALL",
    "SPAWN",
    "MAP",
]
"""The ``type`` of a node in plan JSON. IF is two kinds (`If`, `IfRows`), told apart by
``config.test``."""

NODE_TYPES: tuple[str, ...] = NodeType.__args__  # type: ignore[attr-defined]

HTTP_TIMEOUT: Final = 30
"""Seconds an HTTP request may take when the workflow does not say (``df.http``'s default)."""

NO_PARTS: Final = "[]"
"""The parts of a ``df.http_multipart`` that gives none."""


# -- how plan values become typed values --------------------------------------------------------
# The checker accepts a number written as a string ('30') wherever it accepts a number, and the
# runtime has always converted such values when it read them; these do it once, when the plan
# is made or read.


def _number(v: JSON) -> int | float:
    """An int or float as written (1 stays 1, 1.5 stays 1.5: the plan shows what was written)."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ValueError(f"{v!r} is not a number")
    if isinstance(v, str):
        text = v.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return v


def _whole(v: JSON) -> int:
    n = _number(v)
    if isinstance(n, float) and not math.isfinite(n):  # 'Infinity' has no whole number
        raise ValueError(f"{v!r} is not a finite number")
    return int(n)


def _text(v: JSON) -> str:
    if isinstance(v, dict | list):
        raise ValueError(f"{v!r} is not text")
    return str(v)


def _flag(v: JSON) -> bool:
    # A flag written as text reads as the bool param type does ('false' is false).
    if isinstance(v, str):
        return v.strip().lower() in TRUE_WORDS
    return bool(v)


def _method(v: JSON) -> str:
    return _text(v).upper()


def _http_timeout(v: JSON) -> int:
    # A timeout of 0 has always meant the default (the runtime read `timeout or 30`).
    return _whole(v) or HTTP_TIMEOUT


def _parts(v: JSON) -> str:
    return _text(v) or NO_PARTS


def _on_error(v: JSON) -> str:
    text = _text(v)
    if text not in ON_ERROR:
        raise ValueError(f"on_error {text!r} is not one of {', '.join(ON_ERROR)}")
    return text


_BY_TYPE: Mapping[str, Callable[[JSON], Any]] = {
    "str": _text,
    "str | None": _text,
    "int": _whole,
    "int | None": _whole,
    "float": _number,
    "bool": _flag,
}


def _as(convert: Callable[[JSON], Any]) -> dict[str, Any]:
    """Field metadata: read this field with `convert` rather than by its type."""
    return {"read": convert}


# -- the kinds ----------------------------------------------------------------------------------


class _Config:
    """What every configuration has: its node type, and the JSON form of its fields."""

    __slots__ = ()
    TYPE: ClassVar[NodeType]
    # Fixed keys written before the fields: they tell apart kinds that share a node type.
    TAG: ClassVar[Mapping[str, JSON]] = {}

    def to_json(self) -> dict[str, JSON]:
        """The configuration as plan JSON: every field, defaults included."""
        out: dict[str, JSON] = dict(self.TAG)
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Sql(_Config):
    """A SQL step: ``query`` runs with references substituted; ``autocommit`` when a statement
    cannot run in a transaction block (the step is then at-least-once)."""

    TYPE: ClassVar[NodeType] = "SQL"
    query: str
    autocommit: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Then(_Config):
    """``a ~> b``: children [a, b]."""

    TYPE: ClassVar[NodeType] = "THEN"


@dataclass(frozen=True, slots=True, kw_only=True)
class Join(_Config):
    """``df.join`` / ``&``: children are the branches; the result is an array in branch order."""

    TYPE: ClassVar[NodeType] = "JOIN"


@dataclass(frozen=True, slots=True, kw_only=True)
class Race(_Config):
    """``df.race`` / ``|``: children are the branches; the first to finish decides."""

    TYPE: ClassVar[NodeType] = "RACE"


@dataclass(frozen=True, slots=True, kw_only=True)
class If(_Config):
    """``df.if`` / ``?> !>``: children [cond, then, else] (else missing only from the SQL
    surface); the arm taken follows the truthiness of cond's result."""

    TYPE: ClassVar[NodeType] = "IF"
    TAG: ClassVar[Mapping[str, JSON]] = {"test": "truthy"}


@dataclass(frozen=True, slots=True, kw_only=True)
class IfRows(_Config):
    """``df.if_rows``: children [then, else]; then runs when the result bound to
    ``result_name`` has rows."""

    TYPE: ClassVar[NodeType] = "IF"
    TAG: ClassVar[Mapping[str, JSON]] = {"test": "rows"}
    result_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Loop(_Config):
    """``df.loop`` / ``df.loop_while``: children [body] or [body, cond]."""

    TYPE: ClassVar[NodeType] = "LOOP"


@dataclass(frozen=True, slots=True, kw_only=True)
class Break(_Config):
    """``df.break``: ``value`` is the loop's result text (None: null)."""

    TYPE: ClassVar[NodeType] = "BREAK"
    value: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep(_Config):
    """``df.sleep``: a durable timer of ``seconds``."""

    TYPE: ClassVar[NodeType] = "SLEEP"
    seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitSchedule(_Config):
    """``df.wait_for_schedule``: a durable timer until the next minute matching ``cron``."""

    TYPE: ClassVar[NodeType] = "WAIT_SCHEDULE"
    cron: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal(_Config):
    """``df.wait_for_signal``: wait for signal ``name``, at most ``timeout`` seconds if given."""

    TYPE: ClassVar[NodeType] = "SIGNAL"
    name: str
    timeout: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Http(_Config):
    """``df.http``: one request; ``body`` and ``headers`` (a JSON object) are texts with
    references, ``timeout`` in seconds."""

    TYPE: ClassVar[NodeType] = "HTTP"
    url: str
    method: str = field(default="POST", metadata=_as(_method))
    body: str | None = None
    headers: str | None = None
    timeout: int = field(default=HTTP_TIMEOUT, metadata=_as(_http_timeout))


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpMultipart(_Config):
    """``df.http_multipart``: a multipart/form-data request; ``parts`` is a JSON array text."""

    TYPE: ClassVar[NodeType] = "HTTP_MULTIPART"
    url: str
    method: str = field(default="POST", metadata=_as(_method))
    parts: str = field(default=NO_PARTS, metadata=_as(_parts))
    headers: str | None = None
    timeout: int = field(default=HTTP_TIMEOUT, metadata=_as(_http_timeout))


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry(_Config):
    """``df.retry``: children [x]; up to ``attempts`` tries, waiting ``min(max_backoff,
    backoff * factor^(k-1))`` seconds before try k+1, with full jitter if ``jitter``."""

    TYPE: ClassVar[NodeType] = "RETRY"
    attempts: int = 3
    backoff: float = 1
    factor: float = 2
    max_backoff: float = 300
    jitter: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout(_Config):
    """``df.timeout``: children [x]; x fails when it has not finished within ``seconds``."""

    TYPE: ClassVar[NodeType] = "TIMEOUT"
    seconds: int


def _arguments(v: JSON) -> dict[str, JSON]:
    if not isinstance(v, dict):
        raise ValueError(f"{v!r} is not an object of parameters")
    return dict(v)


@dataclass(frozen=True, slots=True, kw_only=True)
class Call(_Config):
    """``df.call``: start an instance of ``workflow`` (at ``version``; None: the latest deployed
    when the step runs) with the parameters ``args`` (texts with references, or JSON values),
    and wait for its result."""

    TYPE: ClassVar[NodeType] = "CALL"
    workflow: str
    version: int | None = None
    args: dict[str, JSON] = field(default_factory=dict, metadata=_as(_arguments), hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Spawn(Call):
    """``df.spawn``: as `Call`, but the step completes once the child is started, with
    ``{"id": child}``."""

    TYPE: ClassVar[NodeType] = "SPAWN"


@dataclass(frozen=True, slots=True, kw_only=True)
class Map(_Config):
    """``df.map``: children [rows, body], or [body] when the rows are those of the result bound
    to ``rows_from``; runs body once per row, at most ``concurrency`` rows at a time, with the
    row bound to ``item``; ``on_error`` is ``fail`` or ``collect`` (`dfc.fanout`)."""

    TYPE: ClassVar[NodeType] = "MAP"
    rows_from: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    on_error: str = field(default=DEFAULT_ON_ERROR, metadata=_as(_on_error))
    item: str = DEFAULT_ITEM


NodeConfig = (
    Sql
    | Then
    | Join
    | Race
    | If
    | IfRows
    | Loop
    | Break
    | Sleep
    | WaitSchedule
    | Signal
    | Http
    | HttpMultipart
    | Retry
    | Timeout
    | Call
    | Spawn
    | Map
)
"""The configuration of any node; its class is the node's kind."""

# IF nodes are an `If` or an `IfRows` by their ``test``, which `read_node` looks at first.
_KINDS: Mapping[str, type[NodeConfig]] = {
    k.TYPE: k for k in get_args(NodeConfig) if k is not IfRows
}

C = TypeVar("C", bound=NodeConfig)


def read(kind: type[C], raw: Mapping[str, JSON]) -> C:
    """A configuration of ``kind`` from its JSON form: a missing or null value takes the field's
    default (a field without one is required), and values are converted to the field's type.

    Raises `ValueError` for a missing required field, an unknown key or a value of the wrong
    kind.
    """
    unknown = set(raw) - {f.name for f in fields(kind)} - set(kind.TAG)
    if unknown:
        raise ValueError(f"unknown configuration {', '.join(sorted(unknown))} for {kind.TYPE}")
    for key, tag in kind.TAG.items():
        if raw.get(key, tag) != tag:
            raise ValueError(f"{kind.TYPE} has {key} {raw[key]!r}, which is not {tag!r}")
    values: dict[str, Any] = {}
    for f in fields(kind):
        v = raw.get(f.name)
        if v is None:
            if f.default is MISSING:
                raise ValueError(f"{kind.TYPE} needs {f.name!r} in its configuration")
            continue
        convert = f.metadata.get("read") or _BY_TYPE[str(f.type)]
        values[f.name] = convert(v)
    return kind(**values)


def read_node(type_: str, raw: Mapping[str, JSON]) -> NodeConfig:
    """The configuration of a node of type ``type_`` from its JSON ``config`` (see `read`)."""
    if type_ == "IF" and raw.get("test") == "rows":
        return read(IfRows, raw)
    kind = _KINDS.get(type_)
    if kind is None:
        raise ValueError(f"unknown node type {type_!r}")
    return read(kind, raw)
