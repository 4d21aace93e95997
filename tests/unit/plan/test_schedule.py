"""The ``schedule`` statement in plans: defaults filled in, hashed, written as format 4, shown by
explain, printed back by ``dfc fmt`` as written."""

from __future__ import annotations

import pytest

from dfc.compiler import compile_source
from dfc.plan.explain import heading_lines
from dfc.plan.model import FORMAT, FORMAT_SCHEDULE, Plan, PlanFormatError, PlanSchedule
from dfc.source import SourceFile
from dfc.syntax import format_module, parse_text


def _plan(text: str) -> Plan:
    comp = compile_source(SourceFile("nightly.df", text))
    assert comp.plan is not None, [d.message for d in comp.diagnostics]
    return comp.plan


def test_unwritten_options_take_the_defaults() -> None:
    plan = _plan("schedule '0 3 * * *';\n'SELECT 1'\n")
    assert plan.schedule == PlanSchedule(
        cron="0 3 * * *", timezone="UTC", overlap="skip", catchup="latest"
    )
    assert plan.format == FORMAT_SCHEDULE
    assert plan.behaviour_json()["schedule"] == {
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "overlap": "skip",
        "catchup": "latest",
    }
    assert Plan.loads(plan.dumps()) == plan


def test_written_options_are_kept_in_any_order() -> None:
    plan = _plan(
        "schedule '*/5 * * * *' catchup all overlap queue timezone 'Europe/Paris';\n'SELECT 1'"
    )
    assert plan.schedule == PlanSchedule(
        cron="*/5 * * * *", timezone="Europe/Paris", overlap="queue", catchup="all"
    )
    assert heading_lines(plan) == [
        "schedule '*/5 * * * *' Europe/Paris, overlap queue, catchup all"
    ]


def test_the_hash_covers_the_schedule_and_a_plan_without_one_keeps_its_format() -> None:
    plain = _plan("'SELECT 1'")
    assert plain.format == FORMAT and "schedule" not in plain.behaviour_json()
    assert heading_lines(plain) == []
    scheduled = _plan("schedule '0 3 * * *';\n'SELECT 1'")
    assert len({plain.hash, scheduled.hash, _plan("schedule '0 4 * * *';\n'SELECT 1'").hash}) == 3
    # Spelling out a default is the same schedule.
    assert _plan("schedule '0 3 * * *' timezone 'UTC';\n'SELECT 1'").hash == scheduled.hash


def test_an_unknown_policy_in_a_stored_plan_is_refused() -> None:
    data = _plan("schedule '0 3 * * *';\n'SELECT 1'").to_json()
    data["schedule"] = {"cron": "0 3 * * *", "overlap": "sometimes"}
    with pytest.raises(PlanFormatError, match="schedule policy"):
        Plan.from_json(data)


@pytest.mark.parametrize(
    "text",
    [
        "schedule '0 3 * * *';\n\n'SELECT 1';\n",
        "schedule '0 3 * * *' timezone 'Europe/Paris' overlap allow catchup none;\n\n"
        "param n int = 1;\n\n'SELECT {n}';\n",
    ],
)
def test_fmt_prints_the_statement_as_written(text: str) -> None:
    module, diags = parse_text(text)
    assert module is not None and not diags
    assert format_module(module) == text


def test_fmt_puts_policies_as_lower_case_words() -> None:
    module, diags = parse_text("SCHEDULE '0 3 * * *' OVERLAP Queue;\n'SELECT 1'")
    assert module is not None and not diags
    assert format_module(module) == "schedule '0 3 * * *' overlap queue;\n\n'SELECT 1';\n"
