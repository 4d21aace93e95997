"""Workflows and helpers shared by the dashboard tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from dfc.client import Client
from integration.runtime_support import run_until_done

WORKFLOWS = {
    "greet": "'SELECT 41 + 1 AS answer' |=> 'a' ~> 'SELECT $a.answer AS again'\n",
    "approve": (
        "'SELECT 1 AS ready' ~> df.wait_for_signal('approval') |=> 'decision'\n"
        "    ~> $$SELECT $decision::jsonb -> 'data' AS got$$\n"
    ),
    "broken": "'SELECT 1 AS fine'\n    ~> 'SELECT 1 / 0 AS boom'\n",
    "big": "$$SELECT repeat('x', 50000) AS long$$\n",
    "slow": "'SELECT pg_sleep(3) AS slept' ~> 'SELECT 1 AS done'\n",
}
GREET_V2 = "'SELECT 41 + 1 AS answer' |=> 'a' ~> 'SELECT $a.answer * 2 AS twice'\n"


def deploy_all(client: Client, folder: Path) -> None:
    """Deploy every workflow of `WORKFLOWS`, then a second version of ``greet``."""
    for name, text in WORKFLOWS.items():
        (folder / f"{name}.df").write_text(text)
        client.deploy(folder / f"{name}.df")
    (folder / "v2").mkdir()
    (folder / "v2" / "greet.df").write_text(GREET_V2)
    client.deploy(folder / "v2" / "greet.df")


def run_to_end(url: str, ids: Sequence[str]) -> None:
    """Run these instances to their end with an in-process worker."""
    asyncio.run(run_until_done(url, ids, timeout=60))
