-- 0002: what the durable engine needs on top of 0001 — queue wake-ups, indexes, the lease-checked
-- checkpoint, instance lifecycle functions shared by the Python API and the SQL surface, and the
-- monitoring views.
--
-- Queue convention (dfc.runtime.worker): while a worker holds an instance, dfc.queue.run_at equals
-- lease_expires, so "claimable" is just run_at <= now() (one index range scan, no matter how many
-- instances are held); a released instance has run_at = its next timer, or NULL when it only
-- waits for a signal.

-- A counter bumped by every signal: a worker remembers the value it saw and, on releasing an
-- instance, makes it runnable again if a signal arrived meanwhile (no lost wake-ups).
ALTER TABLE dfc.queue ADD COLUMN pokes bigint NOT NULL DEFAULT 0;

-- Step results keep their column order (SPEC §5.2): json stores the text as written, jsonb would
-- reorder object keys. (json is also cheaper to write and to read back.)
ALTER TABLE dfc.node_state ALTER COLUMN result TYPE json USING result::json;
ALTER TABLE dfc.instances ALTER COLUMN result TYPE json USING result::json;

-- The heartbeat extends the leases of one worker: UPDATE ... WHERE lease_owner = $1.
CREATE INDEX queue_lease_owner ON dfc.queue (lease_owner) WHERE lease_owner IS NOT NULL;

-- Record a node's state for the worker that holds the instance's lease, or fail.
--
-- Raises DF001 when the caller no longer holds the lease (cancelled, or taken over after a lease
-- expiry) and DF002 when the key already has a final record (another worker ran the step, or a
-- race loser was cancelled first). Either error rolls back the caller's transaction, including
-- a SQL step's own statements: that is the exactly-once fence.
CREATE OR REPLACE FUNCTION dfc.checkpoint(
    p_instance text, p_owner text, p_key text, p_node text, p_status text,
    p_result json, p_error jsonb, p_attempt integer, p_wake_at timestamptz, p_detail jsonb,
    p_history jsonb,
    OUT seq bigint, OUT pokes bigint)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT q.pokes INTO pokes FROM dfc.queue q
     WHERE q.instance_id = p_instance AND q.lease_owner = p_owner;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'instance % is not leased by %', p_instance, p_owner USING ERRCODE = 'DF001';
    END IF;
    INSERT INTO dfc.node_state AS ns
           (instance_id, key, node_id, status, result, error, attempt, wake_at, detail,
            started_at, finished_at)
    VALUES (p_instance, p_key, p_node, p_status, p_result, p_error, coalesce(p_attempt, 1),
            p_wake_at, p_detail, now(),
            CASE WHEN p_status IN ('running', 'waiting') THEN NULL ELSE clock_timestamp() END)
    ON CONFLICT (instance_id, key) DO UPDATE
       SET status = excluded.status, result = excluded.result, error = excluded.error,
           attempt = excluded.attempt, wake_at = excluded.wake_at, detail = excluded.detail,
           finished_at = excluded.finished_at, seq = DEFAULT
     WHERE ns.status IN ('running', 'waiting')
    RETURNING ns.seq INTO seq;
    IF seq IS NULL THEN
        RAISE EXCEPTION 'node % of instance % already has a final record', p_key, p_instance
              USING ERRCODE = 'DF002';
    END IF;
    IF p_history IS NOT NULL THEN
        INSERT INTO dfc.history (instance_id, event, node_id, key, detail)
        VALUES (p_instance, 'node_' || p_status, p_node, p_key, p_history);
    END IF;
END $$;

-- End an instance held by p_owner: store the outcome, drop its queue row, tell waiters.
CREATE OR REPLACE FUNCTION dfc.finish_instance(
    p_instance text, p_owner text, p_status text, p_result json, p_error jsonb,
    p_compensated boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM dfc.queue WHERE instance_id = p_instance AND lease_owner = p_owner;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'instance % is not leased by %', p_instance, p_owner USING ERRCODE = 'DF001';
    END IF;
    UPDATE dfc.instances
       SET status = p_status, result = p_result, error = p_error,
           compensated = coalesce(p_compensated, false),
           finished_at = now(), updated_at = now()
     WHERE id = p_instance;
    INSERT INTO dfc.history (instance_id, event, detail)
    VALUES (p_instance, p_status,
            CASE WHEN p_error IS NULL THEN NULL
                 ELSE jsonb_build_object('message', p_error->>'message', 'node', p_error->>'node',
                                         'at', p_error->>'at') END);
    PERFORM pg_notify('dfc_done', p_instance);
END $$;

-- Create an instance (status pending) and queue it, in the caller's transaction. Variables must
-- already be validated against the plan's params (dfc.runtime.instances.start does that).
CREATE OR REPLACE FUNCTION dfc.start_instance(
    p_workflow text, p_version integer, p_label text, p_vars jsonb, p_created_by text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_id text;
BEGIN
    LOOP
        v_id := substr(md5(random()::text || clock_timestamp()::text), 1, 8);
        INSERT INTO dfc.instances (id, workflow, version, label, vars, status, created_by)
        VALUES (v_id, p_workflow, p_version, p_label, coalesce(p_vars, '{}'), 'pending',
                coalesce(p_created_by, current_user))
        ON CONFLICT (id) DO NOTHING;
        EXIT WHEN FOUND;
    END LOOP;
    INSERT INTO dfc.queue (instance_id, run_at) VALUES (v_id, now());
    INSERT INTO dfc.history (instance_id, event, detail)
    VALUES (v_id, 'started', jsonb_build_object('workflow', p_workflow, 'version', p_version,
                                                'label', p_label));
    PERFORM pg_notify('dfc_work', v_id);
    RETURN v_id;
END $$;

-- Buffer a signal for an unfinished instance and wake it. Returns the instance's status before
-- the call ('pending' or 'running' when the signal was stored), or NULL when there is no such
-- instance; a finished instance's status means nothing was stored.
CREATE OR REPLACE FUNCTION dfc.signal_instance(p_instance text, p_name text, p_payload text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    -- Locking the queue row first orders this against finish/cancel (which delete it).
    UPDATE dfc.queue
       SET pokes = pokes + 1,
           run_at = CASE WHEN lease_owner IS NULL THEN now() ELSE run_at END
     WHERE instance_id = p_instance;
    IF NOT FOUND THEN
        SELECT status INTO v_status FROM dfc.instances WHERE id = p_instance;
        RETURN v_status;
    END IF;
    SELECT status INTO v_status FROM dfc.instances WHERE id = p_instance;
    INSERT INTO dfc.signals (instance_id, name, payload) VALUES (p_instance, p_name, p_payload);
    INSERT INTO dfc.history (instance_id, event, detail)
    VALUES (p_instance, 'signal_received', jsonb_build_object('name', p_name));
    PERFORM pg_notify('dfc_work', p_instance);
    RETURN v_status;
END $$;

-- Cancel an unfinished instance. Returns its status before the call (NULL: no such instance);
-- only 'pending' or 'running' means it was cancelled now. The worker holding it notices through
-- the notification, its next checkpoint (the lease is gone) or its next heartbeat.
CREATE OR REPLACE FUNCTION dfc.cancel_instance(p_instance text, p_reason text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    DELETE FROM dfc.queue WHERE instance_id = p_instance;
    SELECT status INTO v_status FROM dfc.instances WHERE id = p_instance FOR UPDATE;
    IF v_status IN ('pending', 'running') THEN
        UPDATE dfc.instances
           SET status = 'cancelled', cancel_reason = p_reason, finished_at = now(),
               updated_at = now()
         WHERE id = p_instance;
        INSERT INTO dfc.history (instance_id, event, detail)
        VALUES (p_instance, 'cancelled', jsonb_build_object('reason', p_reason));
        PERFORM pg_notify('dfc_work', p_instance);
        PERFORM pg_notify('dfc_done', p_instance);
    END IF;
    RETURN v_status;
END $$;

-- Monitoring -----------------------------------------------------------------------------------

-- Per node record, with its plan node type and timing.
CREATE OR REPLACE VIEW dfc.node_states AS
SELECT ns.instance_id, ns.key, ns.node_id,
       w.plan #>> ARRAY['nodes', ns.node_id, 'type'] AS node_type,
       ns.status, ns.attempt, ns.started_at, ns.finished_at,
       round(extract(epoch FROM ns.finished_at - ns.started_at) * 1000, 1) AS duration_ms,
       ns.wake_at, ns.error ->> 'message' AS error_message, ns.error ->> 'sqlstate' AS sqlstate,
       ns.result, ns.detail, ns.seq
  FROM dfc.node_state ns
  JOIN dfc.instances i ON i.id = ns.instance_id
  JOIN dfc.workflows w ON w.name = i.workflow AND w.version = i.version;

-- What each unfinished instance waits for: a worker (running under a lease), the queue (due),
-- a timer, or a signal.
CREATE OR REPLACE VIEW dfc.waits AS
SELECT q.instance_id, i.workflow, i.label,
       CASE WHEN q.lease_owner IS NOT NULL AND q.lease_expires > now() THEN 'lease'
            WHEN q.run_at IS NULL THEN 'signal'
            WHEN q.run_at <= now() THEN 'queued'
            ELSE 'timer' END AS kind,
       CASE WHEN q.lease_owner IS NOT NULL AND q.lease_expires > now()
                THEN 'running on ' || q.lease_owner || ' (lease until ' || q.lease_expires || ')'
            WHEN q.lease_owner IS NOT NULL THEN 'lease of ' || q.lease_owner || ' expired'
            WHEN q.run_at IS NULL THEN coalesce('signal ' || sig.names, 'signal')
            WHEN q.run_at <= now() THEN 'a free worker'
            ELSE 'timer until ' || q.run_at
                 || coalesce(' or signal ' || sig.names, '') END AS waiting_for,
       CASE WHEN q.lease_owner IS NULL THEN q.run_at END AS until,
       q.lease_owner, q.lease_expires
  FROM dfc.queue q
  JOIN dfc.instances i ON i.id = q.instance_id
  JOIN dfc.workflows w ON w.name = i.workflow AND w.version = i.version
  LEFT JOIN LATERAL (
       SELECT string_agg(DISTINCT w.plan #>> ARRAY['nodes', ns.node_id, 'config', 'name'], ', ')
              AS names
         FROM dfc.node_state ns
        WHERE ns.instance_id = q.instance_id AND ns.status = 'waiting'
          AND w.plan #>> ARRAY['nodes', ns.node_id, 'type'] = 'SIGNAL') sig ON true;

CREATE OR REPLACE VIEW dfc.instance_overview AS
SELECT i.id, i.workflow, i.version, i.label, i.status, i.created_at, i.started_at,
       i.finished_at, coalesce(i.finished_at, now()) - i.started_at AS duration,
       i.error ->> 'message' AS error_message, i.error ->> 'at' AS error_at, i.compensated,
       i.cancel_reason, wt.waiting_for
  FROM dfc.instances i
  LEFT JOIN dfc.waits wt ON wt.instance_id = i.id;
