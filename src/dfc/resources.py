"""Where the files that ship beside the code live: the grammar and the standard library.

In a checkout they are ``grammar/`` and ``stdlib/`` at the top of the repository; in an
installed wheel they are ``dfc/_data/grammar`` and ``dfc/_data/stdlib`` (see pyproject.toml).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """The directory of shipped data ``name`` ("grammar" or "stdlib")."""
    for candidate in (_PKG / "_data" / name, _PKG.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"dfc's {name}/ directory is missing from this installation")


def grammar_path() -> Path:
    return data_dir("grammar") / "durable.lark"


def stdlib_dir() -> Path:
    return data_dir("stdlib")
