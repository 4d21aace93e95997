"""Hand-made plans for the runtime tests: `Build` makes a `dfc.plan.model.Plan` node by node.

Plans are built directly (not compiled from text) so that state-machine and engine tests exercise
the runtime, not the front end. Nodes get ids n1, n2, ... in creation order, and each has a line
of its own in a synthetic source (``sql SELECT 1``, ``then``, ...), so error locations
(``error["at"] == "t.df:2:1"``) can be checked. Configurations are `dfc.plan.nodes` classes,
whose defaults are the language's (``df.http`` POSTs with a 30 s timeout, ``df.retry`` backs
off 1 s doubling), so tests that need something else say so.

Shared by ``tests/unit/runtime`` (``from plan_builder import Build``) and ``tests/integration``
(whose ``runtime_support.B`` is this builder with that suite's defaults). It is importable there
because pytest's default ``prepend`` import mode puts ``tests/`` on ``sys.path`` for
``tests/conftest.py``, in every xdist worker as in a plain run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from dfc.json_types import JSON
from dfc.plan import nodes
from dfc.plan.model import Plan, PlanNode, PlanParam, SourceSpan


class Build:
    """Builds a plan node by node; each method returns the new node's id.

    ``name`` names the plan and its source file (``{name}.df``); ``indent`` is how many spaces
    start each node's source line, so its column is ``indent + 1``.
    """

    def __init__(self, name: str = "t", *, indent: int = 0) -> None:
        self.name = name
        self.indent = indent
        self.nodes: dict[str, PlanNode] = {}
        self.lines: list[str] = []

    def node(self, config: nodes.NodeConfig, *children: str, bind: str | None = None) -> str:
        """Any node: ``config`` is its configuration, ``bind`` its result name."""
        nid = f"n{len(self.nodes) + 1}"
        self.nodes[nid] = PlanNode(
            id=nid, config=config, children=tuple(children), result_name=bind
        )
        query = config.query if isinstance(config, nodes.Sql) else ""
        line = f"{config.TYPE.lower()} {query}".rstrip()
        self.lines.append(" " * self.indent + line)
        return nid

    def sql(self, query: str, name: str | None = None, *, autocommit: bool = False) -> str:
        return self.node(nodes.Sql(query=query, autocommit=autocommit), bind=name)

    def then(self, *steps: str, name: str | None = None) -> str:
        """``steps[0] then steps[1] then ...`` (left-nested); ``name`` binds the whole chain."""
        left = steps[0]
        for i, right in enumerate(steps[1:], 1):
            left = self.node(nodes.Then(), left, right, bind=name if i == len(steps) - 1 else None)
        return left

    def join(self, *branches: str, name: str | None = None) -> str:
        return self.node(nodes.Join(), *branches, bind=name)

    def race(self, *branches: str, name: str | None = None) -> str:
        return self.node(nodes.Race(), *branches, bind=name)

    def if_(self, cond: str, then: str, else_: str | None = None, name: str | None = None) -> str:
        kids = (cond, then) if else_ is None else (cond, then, else_)
        return self.node(nodes.If(), *kids, bind=name)

    def if_rows(self, result: str, then: str, else_: str, name: str | None = None) -> str:
        return self.node(nodes.IfRows(result_name=result), then, else_, bind=name)

    def loop(self, body: str, cond: str | None = None, name: str | None = None) -> str:
        kids = (body,) if cond is None else (body, cond)
        return self.node(nodes.Loop(), *kids, bind=name)

    def brk(self, value: str | None = None) -> str:
        return self.node(nodes.Break(value=value))

    def sleep(self, seconds: int, name: str | None = None) -> str:
        return self.node(nodes.Sleep(seconds=seconds), bind=name)

    def schedule(self, cron: str, name: str | None = None) -> str:
        return self.node(nodes.WaitSchedule(cron=cron), bind=name)

    def signal(self, signal: str, timeout: int | None = None, name: str | None = None) -> str:
        return self.node(nodes.Signal(name=signal, timeout=timeout), bind=name)

    def http(self, url: str, *, name: str | None = None, **options: JSON) -> str:
        """``df.http(url, ...)``: ``options`` as the plan writes them (method, body, headers,
        timeout), read like a stored plan's (the method upper-cased, defaults filled in)."""
        return self.node(nodes.read(nodes.Http, {"url": url, **options}), bind=name)

    def multipart(self, url: str, parts: str, name: str | None = None) -> str:
        return self.node(nodes.HttpMultipart(url=url, parts=parts), bind=name)

    def retry(self, x: str, *, name: str | None = None, **options: JSON) -> str:
        """``df.retry(x, ...)`` with the language's defaults, except that jitter is off unless
        a test asks for it, so that delays are exact."""
        return self.node(nodes.read(nodes.Retry, {"jitter": False, **options}), x, bind=name)

    def timeout(self, x: str, seconds: int, name: str | None = None) -> str:
        return self.node(nodes.Timeout(seconds=seconds), x, bind=name)

    def map(self, rows: str | None, body: str, *, name: str | None = None, **options: JSON) -> str:
        """``df.map(rows, body, ...)``; ``rows`` None with ``rows_from=...`` among the options
        for a map over a bound result."""
        kids = (body,) if rows is None else (rows, body)
        return self.node(nodes.read(nodes.Map, options), *kids, bind=name)

    def undo(self, step: str, undo: str) -> str:
        """Give ``step`` the compensation subtree ``undo`` (``step <-> undo``); returns ``step``."""
        self.nodes[step] = replace(self.nodes[step], undo=undo)
        return step

    def plan(self, root: str, params: Iterable[PlanParam] = ()) -> Plan:
        file = f"{self.name}.df"
        smap: dict[str, SourceSpan] = {}
        offset = 0
        for i, (nid, line) in enumerate(zip(self.nodes, self.lines, strict=True), 1):
            smap[nid] = SourceSpan(
                file=file,
                line=i,
                column=self.indent + 1,
                end_line=i,
                end_column=len(line) + 1,
                start=offset + self.indent,
                end=offset + len(line),
            )
            offset += len(line) + 1
        return Plan(
            name=self.name,
            root=root,
            nodes=dict(self.nodes),
            params=tuple(params),
            source="\n".join(self.lines) + "\n",
            source_map=smap,
        )
