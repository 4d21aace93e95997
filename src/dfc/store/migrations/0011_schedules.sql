-- 0011: schedules (issue 12, SPEC §5.9, docs/runtime.md "Schedules").
--
-- One row per scheduled workflow. Every worker looks now and then for rows that are due
-- (`next_fire_at <= now()`, or with fires waiting behind an unfinished instance), locked
-- FOR UPDATE SKIP LOCKED: the worker holding the row starts the instances of the fire times due
-- and moves `next_fire_at` past them in the same transaction, so each fire time starts at most
-- one instance however many workers look, and a worker that dies mid-way starts none (the
-- transaction rolls back and the next look starts them).

CREATE TABLE dfc.schedules (
    workflow     text        PRIMARY KEY,
    cron         text        NOT NULL,
    timezone     text        NOT NULL,
    overlap      text        NOT NULL CHECK (overlap IN ('skip', 'queue', 'allow')),
    catchup      text        NOT NULL CHECK (catchup IN ('none', 'latest', 'all')),
    -- 'file': the `schedule` statement of the latest deployed version (`version`);
    -- 'command': set by `dfc schedule`, kept until replaced or removed.
    origin       text        NOT NULL CHECK (origin IN ('file', 'command')),
    version      int,
    -- The next fire time not yet handled; NULL until the first look after the schedule was set
    -- or changed, which counts from then (a new schedule does not catch up on its past).
    next_fire_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON dfc.schedules (next_fire_at);
COMMENT ON TABLE dfc.schedules IS
    'When workflows start by themselves: one schedule per workflow (SPEC §5.9).';

-- The fire times a schedule handled: the instance each started (NULL while it waits behind an
-- unfinished one, overlap queue). The key is the exactly-once promise written down: a second
-- start for one fire time would violate it and roll back.
CREATE TABLE dfc.schedule_fires (
    workflow    text        NOT NULL,
    fire_at     timestamptz NOT NULL,
    instance_id text        REFERENCES dfc.instances (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow, fire_at)
);
CREATE INDEX schedule_fires_instance ON dfc.schedule_fires (instance_id);
CREATE INDEX schedule_fires_waiting ON dfc.schedule_fires (workflow) WHERE instance_id IS NULL;
COMMENT ON TABLE dfc.schedule_fires IS
    'One row per fire time of a schedule that started (or queued) an instance.';
