"""dfc: durable SQL workflows on PostgreSQL, written in pg_durable's DSL.

The Python API for programs::

    import dfc

    with dfc.connect() as client:          # --db URL, DFC_DATABASE_URL, else the embedded server
        client.deploy("examples/batch_etl.df")
        instance = client.start("batch-etl", vars={"batch_size": "100"})
        print(client.wait(instance, timeout=60))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "connect"]

if TYPE_CHECKING:
    from dfc.client import Client, connect


def __getattr__(name: str) -> Any:
    # Lazy, so `import dfc` (and the CLI, which imports dfc for its version) stays cheap.
    if name in __all__:
        from dfc import client

        return getattr(client, name)
    raise AttributeError(f"module 'dfc' has no attribute {name!r}")
