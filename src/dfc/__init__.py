"""dfc: durable SQL workflows on PostgreSQL, written in pg_durable's DSL."""

from __future__ import annotations

__version__ = "0.1.0"
