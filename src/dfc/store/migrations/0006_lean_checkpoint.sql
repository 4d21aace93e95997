-- 0006: a leaner checkpoint — node history derived from node state instead of written twice.
--
-- Until 0005 every checkpoint wrote its node record and, beside it, a history row saying the
-- same thing (node_completed, node_failed, ...): a second heap tuple, a second index entry and
-- a second identity value per step, about a third of what PostgreSQL spent inside the
-- checkpoint (docs/performance.md). A final node record (completed, failed, cancelled,
-- skipped) is never changed once written, and it carries its status, its times, its error and
-- its detail, so its history event is read from it: the view dfc.events is dfc.history plus
-- one event per final node record. dfc.history keeps the instance's own events (started,
-- running, resumed, compiled, signal_received, completed, failed, cancelled) and the events
-- of records that are not final yet (node_running, node_waiting: they are overwritten later).

-- Same signature as 0002's (workers of 0002..0005 keep working); the history row is written
-- only for a record that is not final. The lease check stays a statement of its own: folded
-- into the INSERT (INSERT ... SELECT FROM dfc.queue) it cost the same, and the signal counter
-- it returns would then need a second look-up.
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
    IF p_history IS NOT NULL AND p_status IN ('running', 'waiting') THEN
        INSERT INTO dfc.history (instance_id, event, node_id, key, detail)
        VALUES (p_instance, 'node_' || p_status, p_node, p_key, p_history);
    END IF;
END $$;

-- The final node events written before this version are now read from node_state.
DELETE FROM dfc.history
 WHERE event IN ('node_completed', 'node_failed', 'node_cancelled', 'node_skipped');

-- An instance's event log: its own events and those of its records not final yet (dfc.history),
-- and one event per final node record, at the time it was written. ``ms`` is the time from the
-- record's first write (a step's: the start of its transaction) to its final one; ``status`` is
-- an HTTP step's response status.
CREATE VIEW dfc.events AS
SELECT h.instance_id, h.at, h.event, h.node_id, h.key, h.detail, h.seq
  FROM dfc.history h
UNION ALL
SELECT ns.instance_id, ns.finished_at, 'node_' || ns.status, ns.node_id, ns.key,
       jsonb_strip_nulls(jsonb_build_object(
           'ms', round(extract(epoch FROM ns.finished_at - ns.started_at) * 1000, 2),
           'message', ns.error ->> 'message',
           'sqlstate', ns.error ->> 'sqlstate',
           'status', CASE WHEN json_typeof(ns.result) = 'object' THEN ns.result -> 'status' END))
         || coalesce(ns.detail, '{}'),
       ns.seq
  FROM dfc.node_state ns
 WHERE ns.finished_at IS NOT NULL;
COMMENT ON VIEW dfc.events IS
    'Event log of each instance: dfc.history plus the events of final node records (0006).';

CREATE OR REPLACE FUNCTION df.metrics()
RETURNS TABLE (total_instances bigint, running_instances bigint, completed_instances bigint,
               failed_instances bigint, total_executions bigint, total_events bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*), count(*) FILTER (WHERE status = 'running'),
           count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
           count(*) FILTER (WHERE status <> 'pending'),
           (SELECT count(*) FROM dfc.history)
             + (SELECT count(*) FROM dfc.node_state WHERE finished_at IS NOT NULL)
      FROM dfc.instances
$$;
