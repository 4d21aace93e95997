"""`dfc.rates`: the text of a rate limit and the spacing it puts between starts."""

from __future__ import annotations

import pytest

from dfc.rates import spacing


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10/minute", 6.0),
        ("4/second", 0.25),
        (" 1 / hour ", 3600.0),
        ("2/day", 43200.0),
        ("3/min", 20.0),
        ("5/s", 0.2),
        ("60/minutes", 1.0),
        ("1/H", 3600.0),
    ],
)
def test_spacing(text: str, seconds: float) -> None:
    assert spacing(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "0/minute", "10/fortnight", "-1/s", "1.5/s", "ten/s"])
def test_not_a_rate_limit(text: str) -> None:
    assert spacing(text) is None
