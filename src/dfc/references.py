"""The syntax of references inside step text (SPEC §1.4), shared by the checker and the runtime.

One left-to-right pass over the original text finds ``{var}`` and ``$name[.col|.*][?]``. The name
is taken whole (possessive quantifiers: no backtracking to a shorter name) and must not be
followed by ``[A-Za-z0-9_$]``, so ``$a`` never matches inside ``$ab``, ``$1`` and ``$$`` never
match, and ``$tag$`` is a dollar quote. A ``?`` after ``.*`` is plain text.

Groups of `REFERENCE`: ``var`` for ``{var}``; ``name``, ``star``, ``col`` and ``q`` (null-safe
``?``) for ``$`` references.
"""

from __future__ import annotations

import re

SYSTEM_VARS = frozenset({"sys_instance_id", "sys_label"})
"""Variables every instance has."""

RESULT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
"""What a result name bound with ``|=> 'name'`` must look like."""

REFERENCE = re.compile(
    r"""
      \{ (?P<var>[A-Za-z_][A-Za-z0-9_]*+) \}
    | \$ (?P<name>[A-Za-z_][A-Za-z0-9_]*+) (?![A-Za-z0-9_$])
         (?: \.(?P<star>\*) | \.(?P<col>[A-Za-z_][A-Za-z0-9_]*+) )?
         (?P<q>\?)?
    """,
    re.VERBOSE,
)
