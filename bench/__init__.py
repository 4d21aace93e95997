"""dfc's benchmarks (SPEC §9): ``python -m bench`` runs them all and prints one table.

Workloads (``--only NAME,...``): ``throughput`` (steady-state steps/s of many instances at worker
concurrency 1, 8, 32), ``pgbench`` (the same one-row UPDATE on the same server, the reference),
``latency`` (per step of one sequential instance), ``fanout`` (a join of 1,000 branches, a loop
of 10,000 iterations), ``recovery`` (10,000 instances, SIGKILL, restart), ``memory`` (a worker
with 10,000 waiting instances), ``check`` (``dfc check`` of a 2,000-node file), ``start``
(start-to-first-step latency, starts per second), ``dbos`` (DBOS side by side, when installed).
See docs/performance.md for the figures and how to reproduce them.
"""
