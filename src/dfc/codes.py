"""The registry of diagnostic codes: one entry per code with its explanation.

Each stage declares its codes in its own ``codes.py`` (``dfc.syntax.codes``, ``dfc.check.codes``,
...) by calling `code(...)`. This base module imports no stage: `registered()` holds the codes of
the stages imported so far. The whole catalogue — for ``dfc check --explain CODE`` and the
generated ``docs/checks.md`` — is `dfc.catalogue`, which imports every stage's codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dfc.diagnostics import Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class Code:
    """A diagnostic code: what it means, an example that triggers it, and the fix."""

    code: str
    title: str
    severity: Severity
    explanation: str
    bad: str | None = None
    good: str | None = None


_REGISTRY: dict[str, Code] = {}


def code(
    code: str,
    title: str,
    severity: Severity,
    explanation: str,
    *,
    bad: str | None = None,
    good: str | None = None,
) -> str:
    """Register a code once and return it, so modules can write ``UNBOUND = code("DFC201", ...)``."""
    if code in _REGISTRY and _REGISTRY[code].title != title:
        raise ValueError(f"diagnostic code {code} registered twice")
    _REGISTRY[code] = Code(
        code=code,
        title=title,
        severity=severity,
        explanation=explanation.strip(),
        bad=bad,
        good=good,
    )
    return code


def registered() -> dict[str, Code]:
    """The codes registered so far (by the stages imported so far), sorted by code."""
    return dict(sorted(_REGISTRY.items()))
