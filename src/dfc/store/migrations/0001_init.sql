-- dfc schema, version 1: the workflow registry, instances and their execution state.
--
-- Every per-instance table has instance_id as the first column of its primary key, so the
-- schema can be distributed by instance id (e.g. Citus, with dfc.instances colocated by id).
-- node_state and history carry no foreign key to dfc.instances on purpose: they are written on
-- every step, and a foreign key check (an index probe plus a KEY SHARE row lock on the instance)
-- would be paid each time; retention deletes them explicitly (dfc.store.retention).
--
-- Migrations run inside a transaction with the version bump; they must not contain
-- transaction control or statements that cannot run in a transaction block.

CREATE TABLE dfc.workflows (
    name        text        NOT NULL,
    version     int         NOT NULL CHECK (version > 0),
    hash        text        NOT NULL,
    plan        jsonb       NOT NULL,  -- Plan.to_json() without "source" (kept in the column below)
    source      text,
    dev         bool        NOT NULL DEFAULT false,  -- deployed by `dfc run`, not `dfc deploy`
    deployed_at timestamptz NOT NULL DEFAULT now(),
    deployed_by text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, version)
);
CREATE INDEX workflows_name_hash ON dfc.workflows (name, hash);
COMMENT ON TABLE dfc.workflows IS
    'The workflow registry: one row per deployed version of a workflow (SPEC §4).';

CREATE TABLE dfc.instances (
    id            text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{8}$'),
    workflow      text        NOT NULL,
    version       int         NOT NULL,
    label         text,
    vars          jsonb       NOT NULL DEFAULT '{}',
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    result        jsonb,
    error         jsonb,      -- {message, node_id, span, sqlstate, ...}
    compensated   bool        NOT NULL DEFAULT false,
    cancel_reason text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz,
    created_by    text        NOT NULL DEFAULT current_user,
    FOREIGN KEY (workflow, version) REFERENCES dfc.workflows (name, version)
);
CREATE INDEX instances_status_created ON dfc.instances (status, created_at DESC);
CREATE INDEX instances_created ON dfc.instances (created_at DESC);
CREATE INDEX instances_workflow_created ON dfc.instances (workflow, version, created_at DESC);
CREATE INDEX instances_finished ON dfc.instances (finished_at) WHERE finished_at IS NOT NULL;
COMMENT ON TABLE dfc.instances IS
    'One row per started workflow instance, pinned to the version it started with (SPEC §5.1).';

CREATE TABLE dfc.queue (
    instance_id   text        PRIMARY KEY REFERENCES dfc.instances (id) ON DELETE CASCADE,
    run_at        timestamptz,  -- NULL: waits only for a signal
    lease_owner   text,         -- dfc.workers.id of the worker holding it
    lease_expires timestamptz,
    claimed_at    timestamptz
);
CREATE INDEX queue_run_at ON dfc.queue (run_at) WHERE run_at IS NOT NULL;
COMMENT ON TABLE dfc.queue IS
    'Work to do: a row exists while its instance is unfinished; workers claim rows with '
    'FOR UPDATE SKIP LOCKED in run_at order and hold them through leases (SPEC §5.3).';

CREATE TABLE dfc.node_state (
    instance_id text        NOT NULL,
    key         text        NOT NULL,  -- node id plus loop-iteration / retry path
    node_id     text        NOT NULL,
    status      text        NOT NULL,  -- running | waiting | completed | failed | cancelled | skipped
    result      jsonb,
    error       jsonb,
    attempt     int         NOT NULL DEFAULT 1,
    wake_at     timestamptz,
    detail      jsonb,
    started_at  timestamptz,
    finished_at timestamptz,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (instance_id, key)
);
COMMENT ON TABLE dfc.node_state IS
    'Checkpointed state of each node execution of each instance (SPEC §5.2, §6).';

CREATE TABLE dfc.signals (
    instance_id text        NOT NULL REFERENCES dfc.instances (id) ON DELETE CASCADE,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    name        text        NOT NULL,
    payload     text,
    sent_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    consumed_by text,       -- node_state.key of the wait that took it
    consumed_at timestamptz,
    PRIMARY KEY (instance_id, seq)
);
CREATE INDEX signals_unconsumed ON dfc.signals (instance_id, name, seq) WHERE consumed_by IS NULL;
COMMENT ON TABLE dfc.signals IS
    'Signals sent to instances, buffered until a wait consumes them in order of arrival.';

CREATE TABLE dfc.history (
    instance_id text        NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    event       text        NOT NULL,
    node_id     text,
    key         text,
    detail      jsonb,
    PRIMARY KEY (instance_id, seq)
);
COMMENT ON TABLE dfc.history IS 'Append-only event log of each instance.';

CREATE TABLE dfc.variables (
    session text NOT NULL,
    name    text NOT NULL,
    value   text,
    PRIMARY KEY (session, name)
);
COMMENT ON TABLE dfc.variables IS 'Session variables of the SQL surface (df.setvar / df.getvar).';

CREATE TABLE dfc.workers (
    id           text        PRIMARY KEY,
    host         text,
    pid          int,
    started_at   timestamptz,
    heartbeat_at timestamptz,
    concurrency  int
);
COMMENT ON TABLE dfc.workers IS 'Running (and recently stopped) workers with their heartbeats.';

CREATE TABLE dfc.settings (
    key   text  PRIMARY KEY,
    value jsonb
);
COMMENT ON TABLE dfc.settings IS 'Database-wide dfc settings (docs/operations.md).';

-- Finished instances older than this many days are deleted with their state and history;
-- null keeps them forever.
INSERT INTO dfc.settings (key, value) VALUES ('retention_days', '30');
