-- dfc schema, version 3: plans of format 2, the typed plan (see "Formats" in dfc.plan.model).
--
-- Format 2 keeps the layout of a node (nodes.ID.type, nodes.ID.config, ...), which the
-- monitoring views of version 2 read, but moves the checker's analysis of a SQL step (statement
-- kinds, output columns, references) out of its hashed configuration into "analysis", beside
-- the plan. The hash of every stored plan therefore changes. Right after this file, in the same
-- transaction, dfc.store.migrations runs dfc.store.registry.upgrade_plans_txn, which rewrites
-- every stored plan in format 2 with its new hash: deploying an unchanged workflow again then
-- finds the latest version's hash and changes nothing. Node ids do not change, so node_state,
-- history and the instances pinned to those versions keep their meaning.

COMMENT ON COLUMN dfc.workflows.plan IS
    'Plan.to_json() without "source" (kept in the source column); format 2 since migration 3.';
COMMENT ON COLUMN dfc.workflows.hash IS
    'Plan.hash: sha256 of what decides the plan''s behaviour (not its source, layout or analysis).';
