"""The kit as a user gets it: installed with dfc, loaded by pytest through its entry point, in
a project of their own (pytest's `pytester` runs a separate pytest session in a temporary
directory, in a subprocess, with no conftest of ours)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from dfc.testing import duration

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.db, pytest.mark.timeout(240)]

WORKFLOW = """\
param customer text = 'acme';

df.start(
    'SELECT ''{customer}'' AS customer' |=> 'c'
    ~> df.sleep(86400)
    ~> df.http('https://crm.example.com/remind', 'POST', '{"customer": "$c.customer"}')
    ~> df.wait_for_schedule('0 9 * * 1')
    ~> 'SELECT ''done'' AS state',
    'reminder'
);
"""

USER_TEST = """\
import time
from pathlib import Path

WORKFLOW = Path(__file__).parent / "reminder.df"


def test_reminder(dfc_env):
    dfc_env.http.fake("POST", "https://crm.example.com/remind", json={"queued": True})
    dfc_env.deploy(WORKFLOW)
    iid = dfc_env.start("reminder", customer="globex")
    began = time.perf_counter()
    assert dfc_env.result(iid) == {"rows": [{"state": "done"}], "row_count": 1}
    print(f"WALL {time.perf_counter() - began:.3f}")
    (request,) = dfc_env.http.requests
    assert request.json() == {"customer": "globex"}


def test_each_test_has_its_own_database(dfc_env):
    assert dfc_env.sql("SELECT count(*) FROM dfc.instances") == [(0,)]
"""


def _project(pytester: pytest.Pytester) -> None:
    pytester.makefile(".df", reminder=WORKFLOW)
    pytester.makepyfile(test_reminder=USER_TEST)


def test_an_installed_project_gets_the_fixture_and_an_embedded_server(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=2)
    (wall,) = [float(m[1]) for line in result.outlines if (m := re.search(r"WALL (\S+)", line))]
    print(f"a day of sleep, an HTTP fake and a weekly cron in the user's test: {wall:.3f} s")


def test_the_database_server_can_be_given(pytester: pytest.Pytester, pg_server: object) -> None:
    _project(pytester)
    url = pg_server.socket_url  # type: ignore[attr-defined]
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--dfc-db={url}")
    result.assert_outcomes(passed=2)


def test_the_plugin_is_listed_with_its_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--dfc-db=URL*"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("1w", timedelta(weeks=1)),
        ("1.5m", timedelta(seconds=90)),
        ("250ms", timedelta(milliseconds=250)),
        (timedelta(minutes=3), timedelta(minutes=3)),
        (30, timedelta(seconds=30)),
    ],
)
def test_durations(text: str | timedelta | int, expected: timedelta) -> None:
    assert duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "2 hours", "h", "-1s", "1h x"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        duration(text)
