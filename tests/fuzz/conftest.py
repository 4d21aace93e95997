"""Fixtures of the fuzzers: a database with the schema the generated steps call."""

from __future__ import annotations

import pytest
from fuzz_workflows import SETUP

from dfc.store.db import connect


@pytest.fixture(scope="module")
def fuzz_url(db_url: str) -> str:
    """The module's database with `fuzz_workflows.SETUP` applied."""
    with connect(db_url) as c:
        c.execute(SETUP)
    return db_url
