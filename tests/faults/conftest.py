"""The fault suite's soak rounds: with ``--long``, every test taking a ``soak_round`` argument
runs ``DFC_SOAK_ROUNDS`` times (default 1), each round a test of its own with fresh databases,
workers and random seed (docs/reliability.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fault_support import OwnServer

ENV_ROUNDS = "DFC_SOAK_ROUNDS"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "soak_round" not in metafunc.fixturenames:
        return
    rounds = int(os.environ.get(ENV_ROUNDS, "1")) if metafunc.config.getoption("--long") else 1
    metafunc.parametrize("soak_round", range(rounds), ids=[f"round{r + 1}" for r in range(rounds)])


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    """A PostgreSQL of the test's own (the tests restart it), stopped and removed afterwards."""
    server = OwnServer()
    try:
        yield server
    finally:
        server.close()
