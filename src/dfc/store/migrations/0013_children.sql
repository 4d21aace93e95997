-- 0013: child workflows, df.call and df.spawn (issue 12, docs/runtime.md "Child workflows").
--
-- A child is an instance like any other, started by a step of its parent through
-- dfc.start_instance with an idempotency key made of the parent's id and the step's node key,
-- in the transaction that records the step (dfc.runtime.children): a crash before that commit
-- starts nothing, one after it never starts the child again. The child row remembers its
-- parent: parent_id and parent_key (the calling step), and, for df.call, whose parent waits
-- for it, parent_signal: the name of the signal its end sends to the parent.
--
-- The end of a child (completed, failed or cancelled, by whatever path: the worker's finish,
-- dfc cancel, df.cancel, the end of its own parent) is one trigger, which sends the parent
-- that signal with the child's outcome as payload: the parent's queue row is poked, so a
-- waiting parent runs again at once, and one that is busy finds the outcome among its buffered
-- signals. A parent that ends, by the same trigger, cancels its df.call children that are
-- still unfinished (and theirs, the trigger firing again for each): a parent cancelled or
-- failed while it waited, or one that completed without waiting for a call any more (a race
-- won by another branch, when the worker did not cancel the loser's child itself, having
-- started it just then). df.spawn children run on.

ALTER TABLE dfc.instances ADD COLUMN parent_id text;
ALTER TABLE dfc.instances ADD COLUMN parent_key text;
ALTER TABLE dfc.instances ADD COLUMN parent_signal text;
ALTER TABLE dfc.instances ADD CONSTRAINT instances_parent_complete
    CHECK ((parent_id IS NULL) = (parent_key IS NULL)
           AND (parent_signal IS NULL OR parent_id IS NOT NULL));
-- No foreign key: retention deletes finished parents and children independently.
CREATE INDEX instances_parent ON dfc.instances (parent_id) WHERE parent_id IS NOT NULL;
COMMENT ON COLUMN dfc.instances.parent_id IS
    'The instance whose df.call or df.spawn step started this one (0013).';
COMMENT ON COLUMN dfc.instances.parent_key IS
    'The node key of the step of parent_id that started this instance (0013).';
COMMENT ON COLUMN dfc.instances.parent_signal IS
    'For a df.call child: the signal its end sends to parent_id with its outcome (0013).';

CREATE FUNCTION dfc.instance_ended() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    IF NEW.parent_signal IS NOT NULL THEN
        PERFORM dfc.signal_instance(
            NEW.parent_id, NEW.parent_signal,
            jsonb_build_object('child', NEW.id, 'status', NEW.status, 'result', NEW.result,
                               'error', NEW.error, 'reason', NEW.cancel_reason)::text);
    END IF;
    FOR c IN SELECT i.id FROM dfc.instances i
              WHERE i.parent_id = NEW.id AND i.parent_signal IS NOT NULL
                AND i.status IN ('pending', 'running')
              ORDER BY i.id LOOP
        PERFORM dfc.cancel_instance(c.id, 'its parent ' || NEW.id || ' ended ' || NEW.status);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER instances_ended AFTER UPDATE OF status ON dfc.instances
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION dfc.instance_ended();

-- 0009's view of what unfinished instances wait for: a parent waiting for its df.call children
-- says which ("child 1a2b3c4d"), not just "signal".
CREATE OR REPLACE VIEW dfc.waits AS
SELECT q.instance_id, i.workflow, i.label,
       CASE WHEN q.lease_owner IS NOT NULL AND q.lease_expires > now() THEN 'lease'
            WHEN q.gated_at IS NOT NULL THEN 'turn'
            WHEN q.run_at IS NULL THEN 'signal'
            WHEN q.run_at <= now() THEN 'queued'
            ELSE 'timer' END AS kind,
       CASE WHEN q.lease_owner IS NOT NULL AND q.lease_expires > now()
                THEN 'running on ' || q.lease_owner || ' (lease until ' || q.lease_expires || ')'
            WHEN q.lease_owner IS NOT NULL THEN 'lease of ' || q.lease_owner || ' expired'
            WHEN q.gated_at IS NOT NULL
                THEN 'its turn: ' || concat_ws(' and ',
                         'at most ' || q.flow_max || ' running instances of ' || q.flow,
                         'one running instance with concurrency key ' || q.flow_key)
            WHEN q.run_at IS NULL THEN coalesce(sig.waits, 'signal')
            WHEN q.run_at <= now() THEN 'a free worker'
            ELSE 'timer until ' || q.run_at || coalesce(' or ' || sig.waits, '') END
           AS waiting_for,
       CASE WHEN q.lease_owner IS NULL THEN q.run_at END AS until,
       q.lease_owner, q.lease_expires
  FROM dfc.queue q
  JOIN dfc.instances i ON i.id = q.instance_id
  JOIN dfc.workflows w ON w.name = i.workflow AND w.version = i.version
  LEFT JOIN LATERAL (
       SELECT nullif(concat_ws(' or ', 'signal ' || s.names, 'child ' || s.children), '')
              AS waits
         FROM (SELECT string_agg(DISTINCT w.plan #>> ARRAY['nodes', ns.node_id, 'config', 'name'],
                                 ', ')
                          FILTER (WHERE w.plan #>> ARRAY['nodes', ns.node_id, 'type'] = 'SIGNAL')
                          AS names,
                      string_agg(DISTINCT ns.detail ->> 'child', ', ')
                          FILTER (WHERE w.plan #>> ARRAY['nodes', ns.node_id, 'type'] = 'CALL')
                          AS children
                 FROM dfc.node_state ns
                WHERE ns.instance_id = q.instance_id AND ns.status = 'waiting'
                  AND w.plan #>> ARRAY['nodes', ns.node_id, 'type'] IN ('SIGNAL', 'CALL')) s
       ) sig ON true;
