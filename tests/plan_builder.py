"""Hand-made plans for the runtime tests: `Build` makes a `dfc.plan.model.Plan` node by node.

Plans are built directly (not compiled from text) so that state-machine and engine tests exercise
the runtime, not the front end. Nodes get ids n1, n2, ... in creation order, and each has a line
of its own in a synthetic source (``sql SELECT 1``, ``then``, ...), so error locations
(``error["at"] == "t.df:2:1"``) can be checked. Defaults follow the language's (``df.http``
POSTs with a 30 s timeout, ``df.retry`` backs off 1 s doubling), so tests that need something
else say so.

Shared by ``tests/unit/runtime`` (``from plan_builder import Build``) and ``tests/integration``
(whose ``runtime_support.B`` is this builder with that suite's defaults). It is importable there
because pytest's default ``prepend`` import mode puts ``tests/`` on ``sys.path`` for
``tests/conftest.py``, in every xdist worker as in a plain run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

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

    def node(self, type_: str, *children: str, bind: str | None = None, **config: Any) -> str:
        """Any node: ``bind`` is its result name, ``config`` its configuration as is."""
        nid = f"n{len(self.nodes) + 1}"
        self.nodes[nid] = PlanNode(
            id=nid,
            type=type_,  # type: ignore[arg-type]
            children=tuple(children),
            result_name=bind,
            config=config,
        )
        line = f"{type_.lower()} {config.get('query', '')}".rstrip()
        self.lines.append(" " * self.indent + line)
        return nid

    def sql(
        self, query: str, name: str | None = None, *, autocommit: bool = False, **config: Any
    ) -> str:
        """A SQL node with the configuration the emitter writes for an unanalysed statement."""
        defaults: dict[str, Any] = {
            "statements": ["unknown"],
            "columns": None,
            "returns_rows": None,
            "refs": [],
            "vars": [],
        }
        return self.node(
            "SQL", bind=name, query=query, autocommit=autocommit, **(defaults | config)
        )

    def then(self, *steps: str, name: str | None = None) -> str:
        """``steps[0] then steps[1] then ...`` (left-nested); ``name`` binds the whole chain."""
        left = steps[0]
        for i, right in enumerate(steps[1:], 1):
            left = self.node("THEN", left, right, bind=name if i == len(steps) - 1 else None)
        return left

    def join(self, *branches: str, name: str | None = None) -> str:
        return self.node("JOIN", *branches, bind=name)

    def race(self, *branches: str, name: str | None = None) -> str:
        return self.node("RACE", *branches, bind=name)

    def if_(self, cond: str, then: str, else_: str | None = None, name: str | None = None) -> str:
        kids = (cond, then) if else_ is None else (cond, then, else_)
        return self.node("IF", *kids, bind=name, test="truthy")

    def if_rows(self, result: str, then: str, else_: str, name: str | None = None) -> str:
        return self.node("IF", then, else_, bind=name, test="rows", result_name=result)

    def loop(self, body: str, cond: str | None = None, name: str | None = None) -> str:
        kids = (body,) if cond is None else (body, cond)
        return self.node("LOOP", *kids, bind=name)

    def brk(self, value: str | None = None) -> str:
        return self.node("BREAK", value=value)

    def sleep(self, seconds: int, name: str | None = None) -> str:
        return self.node("SLEEP", bind=name, seconds=seconds)

    def schedule(self, cron: str, name: str | None = None) -> str:
        return self.node("WAIT_SCHEDULE", bind=name, cron=cron, timezone="UTC")

    def signal(self, signal: str, timeout: int | None = None, name: str | None = None) -> str:
        return self.node("SIGNAL", bind=name, name=signal, timeout=timeout)

    def http(
        self,
        url: str,
        method: str = "POST",
        body: str | None = None,
        headers: str | None = None,
        timeout: int = 30,
        name: str | None = None,
    ) -> str:
        return self.node(
            "HTTP", bind=name, url=url, method=method, body=body, headers=headers, timeout=timeout
        )

    def multipart(self, url: str, parts: str, name: str | None = None) -> str:
        return self.node(
            "HTTP_MULTIPART",
            bind=name,
            url=url,
            method="POST",
            parts=parts,
            headers=None,
            timeout=30,
        )

    def retry(
        self,
        x: str,
        attempts: int = 3,
        backoff: float = 1,
        factor: float = 2,
        max_backoff: float = 300,
        jitter: bool = False,
        name: str | None = None,
    ) -> str:
        return self.node(
            "RETRY",
            x,
            bind=name,
            attempts=attempts,
            backoff=backoff,
            factor=factor,
            max_backoff=max_backoff,
            jitter=jitter,
        )

    def timeout(self, x: str, seconds: float, name: str | None = None) -> str:
        return self.node("TIMEOUT", x, bind=name, seconds=seconds)

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
