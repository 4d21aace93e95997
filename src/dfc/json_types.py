"""The one name for "a value that JSON can hold", used by every stage.

Results, plan configuration and records are JSON values; `Any` stands for them because mypy
cannot express a recursive union cheaply, and one alias keeps the intent readable and greppable.
"""

from __future__ import annotations

from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""None, bool, int, float, str, a list of JSON values or a dict of str to JSON values."""
