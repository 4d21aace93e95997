"""The dashboard in a real headless Chromium (Playwright driving the system's browser), served
by `dfc ui` with a `dfc worker` beside it, both subprocesses on the module's database.

Screenshots of every page land in the test's tmp dir (pytest keeps the last runs'); with
``DFC_UI_SCREENSHOT=1`` the instance page's also replaces docs/img/dashboard.png.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ui_support import deploy_all

from dfc.client import Client, connect
from integration.runtime_support import stop_gracefully

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - .ci/run installs it with the test extra
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.db,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        sync_playwright is None or CHROMIUM is None,
        reason="the browser tests need Playwright for Python (the test extra) and the system's "
        "chromium (`apt-get install chromium`; .ci/run installs it)",
    ),
]

DOCS_IMAGE = Path(__file__).parents[2] / "docs" / "img" / "dashboard.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dfc(*args: str) -> subprocess.Popen[Any]:
    return subprocess.Popen([sys.executable, "-m", "dfc", *args], stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def site(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dfc ui` and `dfc worker` on the module's database; the dashboard's base URL."""
    with connect(db_url) as client:
        deploy_all(client, tmp_path_factory.mktemp("workflows"))
    port = _free_port()
    procs = [
        _dfc("ui", "--db", db_url, "--port", str(port)),
        _dfc("worker", "--db", db_url, "--quiet", "--concurrency", "4"),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "dfc ui did not answer within 60 s"
            assert procs[0].poll() is None, "dfc ui exited"
            time.sleep(0.2)
        yield base
    finally:
        stop_gracefully(procs)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None and CHROMIUM is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, site: str) -> Iterator[Page]:
    context = browser.new_context(base_url=site, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.on("dialog", lambda dialog: dialog.accept())  # the actions' confirmations
    yield pg
    context.close()


@pytest.fixture
def client(db_url: str, site: str) -> Iterator[Client]:
    with connect(db_url) as c:
        yield c


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path


def _finished(client: Client, iid: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.status(iid).status) in ("pending", "running"):
        assert time.monotonic() < deadline, f"{iid} still {status}"
        time.sleep(0.1)
    return status


def test_list_filter_and_open_an_instance(page: Page, client: Client, shots: Path) -> None:
    ok = client.start("greet", label="browser-ok")
    bad = client.start("broken", label="browser-bad")
    assert (_finished(client, ok), _finished(client, bad)) == ("completed", "failed")

    page.goto("/instances")
    expect(page.locator("#instances")).to_contain_text(ok)
    expect(page.locator("#instances")).to_contain_text(bad)
    page.screenshot(path=shots / "instances.png", full_page=True)

    page.select_option("select[name=status]", "failed")
    page.fill("input[name=label]", "browser-")
    page.click("button:has-text('Filter')")
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("#instances")).to_contain_text(bad)
    expect(page.locator("#instances")).not_to_contain_text(ok)
    page.screenshot(path=shots / "filtered.png", full_page=True)

    page.click(f"a:has-text('{bad}')")
    expect(page.locator("#status")).to_have_text("failed")
    expect(page.locator("#error")).to_contain_text("division by zero")
    expect(page.locator("#error")).to_contain_text("broken.df:2:")
    page.screenshot(path=shots / "failed.png", full_page=True)


def test_watch_a_step_go_from_running_to_done(page: Page, client: Client, shots: Path) -> None:
    iid = client.start("slow")
    page.goto(f"/instances/{iid}")
    first = page.locator("#tree tr[data-node]", has_text="pg_sleep").locator("td.status")
    expect(first).to_have_text("running", timeout=15_000)
    page.screenshot(path=shots / "running.png", full_page=True)
    # No reload: the tree polls until the instance has finished.
    expect(first).to_have_text("completed", timeout=15_000)
    expect(page.locator("#status")).to_have_text("completed")
    expect(page.locator("#result")).to_contain_text('"done": 1')
    expect(page.locator("#live")).not_to_have_attribute("hx-trigger", "every 1s")
    page.screenshot(path=shots / "completed.png", full_page=True)
    if os.environ.get("DFC_UI_SCREENSHOT"):
        DOCS_IMAGE.parent.mkdir(exist_ok=True)
        page.screenshot(path=DOCS_IMAGE)


def test_send_a_signal_from_the_page(page: Page, client: Client, shots: Path) -> None:
    iid = client.start("approve")
    page.goto(f"/instances/{iid}")
    expect(page.locator("#waiting")).to_contain_text("signal approval", timeout=15_000)
    page.fill("#signal-form input[name=name]", "approval")
    page.fill("#signal-form input[name=payload]", '{"approved": true, "by": "maria"}')
    page.click("#signal-form button")
    expect(page.locator("#message")).to_have_text("signal approval sent")
    expect(page.locator("#status")).to_have_text("completed", timeout=15_000)
    expect(page.locator("#result")).to_contain_text('"by": "maria"')
    page.screenshot(path=shots / "signalled.png", full_page=True)


def test_cancel_from_the_page(page: Page, client: Client, shots: Path) -> None:
    iid = client.start("approve")
    page.goto(f"/instances/{iid}")
    page.fill("#cancel-form input[name=reason]", "no longer needed")
    page.click("#cancel-form button")
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.locator("#live")).to_contain_text("no longer needed")
    assert client.status(iid).status == "cancelled"
    page.screenshot(path=shots / "cancelled.png", full_page=True)


def test_follow_a_version_diff(page: Page, shots: Path) -> None:
    page.goto("/workflows")
    page.screenshot(path=shots / "workflows.png", full_page=True)
    page.click("#workflows a:has-text('greet')")
    expect(page.locator("#versions")).to_contain_text("v2")
    page.screenshot(path=shots / "versions.png", full_page=True)
    page.click("#diff-form button")
    diff = page.locator("#diff")
    expect(diff).to_contain_text("greet v1")
    expect(diff.locator(".del")).to_contain_text(["again"])
    expect(diff.locator(".add")).to_contain_text(["twice"])
    page.screenshot(path=shots / "diff.png", full_page=True)
    page.go_back()
    page.click("#versions a:has-text('v1')")
    expect(page.locator("#plan")).to_contain_text("SELECT $a.answer AS again")
    page.screenshot(path=shots / "plan.png", full_page=True)


def test_health_shows_the_worker(page: Page, shots: Path) -> None:
    page.goto("/health")
    expect(page.locator("#workers")).to_contain_text(str(socket.gethostname())[:8])
    page.screenshot(path=shots / "health.png", full_page=True)
