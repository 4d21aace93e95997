-- 0007: a dead worker's instances resume at once, not when their leases expire (SPEC §5.3).
--
-- Every worker holds, for its whole life, the session-level advisory lock
-- pg_advisory_lock(<dfc's lock space>, dfc.workers.lock_id) on a connection of its own, taken
-- before it registers here and claims anything (dfc.store.queue has the lock space and the
-- statements). PostgreSQL releases the lock when that session ends, so "the lock can be taken"
-- means "the worker is gone": a reaper in every worker looks for such workers about every second
-- and makes the instances they held due at once (docs/runtime.md, "Claiming and leases").
-- Leases stay as the safety net for workers whose sessions outlive them (a frozen process, a
-- host cut off from the network). The two-int4 form of the lock never collides with a user's
-- one-bigint advisory locks.
--
-- dfc.queue.owned_by: the worker that alone may claim the instance while it lives (`dfc run`
-- runs its instance in its own process, with its own settings); the reaper clears it when that
-- worker is gone, and a worker that stops clears its own.

CREATE SEQUENCE dfc.worker_locks AS integer MINVALUE 1 CYCLE;
COMMENT ON SEQUENCE dfc.worker_locks IS 'Advisory lock keys of workers (dfc.workers.lock_id).';

ALTER TABLE dfc.workers ADD COLUMN lock_id integer;
COMMENT ON COLUMN dfc.workers.lock_id IS
    'Second key of the session advisory lock the worker holds while it lives (0007); NULL for '
    'workers of older versions, which are recovered by lease expiry only.';

ALTER TABLE dfc.queue ADD COLUMN owned_by text;
COMMENT ON COLUMN dfc.queue.owned_by IS
    'dfc.workers.id of the only worker that may claim the instance while that worker lives '
    '(dfc run); NULL: any worker.';
-- The reaper and a stopping worker find the rows owned by a worker: WHERE owned_by = ANY(...).
CREATE INDEX queue_owned_by ON dfc.queue (owned_by) WHERE owned_by IS NOT NULL;
