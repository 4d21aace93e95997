"""The one name for "a value that JSON can hold", used by every stage.

Results, plan configuration and records are JSON values; `Any` stands for them because mypy
cannot express a recursive union cheaply, and one alias keeps the intent readable and greppable.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""None, bool, int, float, str, a list of JSON values or a dict of str to JSON values."""


def canonical(value: JSON) -> str:
    """Canonical JSON text: sorted keys, no insignificant whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
