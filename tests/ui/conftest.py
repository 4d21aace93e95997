"""Fixtures of the dashboard tests: a database with a few deployed workflows, and the app."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from ui_support import deploy_all

from dfc.client import connect
from dfc.ui.app import create_app

with warnings.catch_warnings():
    # Starlette 1.x would rather its TestClient ran on httpx2; dfc depends on httpx (HTTP steps).
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def ui_db(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The module's database with `WORKFLOWS` deployed."""
    with connect(db_url) as client:
        deploy_all(client, tmp_path_factory.mktemp("workflows"))
    return db_url


@pytest.fixture
def web(ui_db: str) -> Iterator[TestClient]:
    """The dashboard app on the module's database, in-process."""
    with TestClient(create_app(ui_db), follow_redirects=False) as c:
        yield c
