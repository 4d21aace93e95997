-- Rate limits (issue 12) and one rule for queueing an instance as a start does.
--
-- A workflow file's `df.start(..., rate_limit => '10/minute')` puts its starts one spacing apart
-- (period / count: a leaky bucket without burst, `dfc.rates`); the latest deployed version's limit
-- is the one in force (`dfc.store.registry`). dfc.flow_enqueue is the one place that queues an
-- instance: start_instance and `dfc retry` (`dfc.store.rewind`) both call it.

CREATE TABLE dfc.flow_rates (
    workflow text PRIMARY KEY,
    spacing interval NOT NULL CHECK (spacing > interval '0'),
    next_at timestamptz NOT NULL DEFAULT '-infinity'  -- the earliest the next start may run
);

-- The time the next instance of p_workflow may run under its rate limit, taken: the next one's
-- moves on by the spacing. now() for a workflow without a limit. The row lock orders concurrent
-- starts of one limited workflow; others touch no row.
CREATE FUNCTION dfc.flow_slot(p_workflow text) RETURNS timestamptz LANGUAGE sql AS $$
    WITH taken AS (
        UPDATE dfc.flow_rates SET next_at = greatest(next_at, now()) + spacing
         WHERE workflow = p_workflow
     RETURNING next_at - spacing AS slot
    )
    SELECT coalesce((SELECT slot FROM taken), now())
$$;

-- Queue an instance as a start does: under flow control (p_max, p_key; 0009) due when its slots
-- are free, else gated until flow_admit takes them; under a rate limit at its slot. Workers are
-- told of an instance due at once. Returns whether it got its slots (false: gated).
CREATE FUNCTION dfc.flow_enqueue(p_instance text, p_max integer, p_key text, p_pokes bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_workflow text;
    v_flow text;
    v_free boolean := true;
    v_at timestamptz;
BEGIN
    SELECT i.workflow INTO v_workflow FROM dfc.instances i WHERE i.id = p_instance;
    IF p_key IS NOT NULL OR p_max IS NOT NULL THEN
        v_flow := v_workflow;
        PERFORM dfc.flow_lock(v_flow);
        -- No need to look at the instances waiting: while one waits for the max_concurrent,
        -- the slots are all taken (every release admits who fits), so this one queues behind.
        v_free := dfc.flow_take(v_flow, p_instance, p_key, p_max);
    END IF;
    IF v_free THEN
        v_at := dfc.flow_slot(v_workflow);
    END IF;
    INSERT INTO dfc.queue (instance_id, run_at, pokes, flow, flow_max, flow_key, gated_at)
    VALUES (p_instance, v_at, p_pokes, v_flow, p_max, p_key,
            CASE WHEN NOT v_free THEN clock_timestamp() END);
    IF v_free AND v_at <= now() THEN
        PERFORM pg_notify('dfc_work', p_instance);
    END IF;
    RETURN v_free;
END $$;

-- Admitted instances run at their rate-limit slot.
CREATE OR REPLACE FUNCTION dfc.flow_admit(p_workflow text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c record;
    v_at timestamptz;
BEGIN
    FOR c IN SELECT q.instance_id, q.flow_key, q.flow_max FROM dfc.queue q
              WHERE q.flow = p_workflow AND q.gated_at IS NOT NULL
              ORDER BY q.gated_at, q.instance_id LOOP
        IF dfc.flow_take(p_workflow, c.instance_id, c.flow_key, c.flow_max) THEN
            v_at := dfc.flow_slot(p_workflow);
            UPDATE dfc.queue SET gated_at = NULL, run_at = v_at
             WHERE instance_id = c.instance_id;
            IF v_at <= now() THEN
                PERFORM pg_notify('dfc_work', c.instance_id);
            END IF;
        ELSIF c.flow_max IS NOT NULL AND coalesce((SELECT running FROM dfc.flow_running
                                                    WHERE workflow = p_workflow), 0) >= c.flow_max
        THEN
            EXIT;
        END IF;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION dfc.start_instance(
    p_workflow text, p_version integer, p_label text, p_vars jsonb, p_created_by text,
    p_graph text, p_options jsonb, p_idempotency_key text, p_scope text,
    p_concurrency_key text, p_max_concurrent integer,
    OUT instance text, OUT existing boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_free boolean := true;
BEGIN
    IF btrim(p_idempotency_key) = '' THEN
        RAISE EXCEPTION 'an idempotency key must not be empty' USING ERRCODE = '22023',
              HINT = 'leave it out to start without one, or use e.g. an order id';
    ELSIF octet_length(p_idempotency_key) > 1000 THEN
        -- An index entry holds about 2,700 bytes; past that PostgreSQL's own error is obscure.
        RAISE EXCEPTION 'an idempotency key must be at most 1000 bytes, not %',
              octet_length(p_idempotency_key) USING ERRCODE = '22023',
              HINT = 'use a shorter key, e.g. a hash of the long one';
    ELSIF btrim(p_concurrency_key) = '' THEN
        RAISE EXCEPTION 'a concurrency key must not be empty' USING ERRCODE = '22023',
              HINT = 'leave it out to start without one, or use e.g. a customer id';
    ELSIF octet_length(p_concurrency_key) > 1000 THEN
        RAISE EXCEPTION 'a concurrency key must be at most 1000 bytes, not %',
              octet_length(p_concurrency_key) USING ERRCODE = '22023',
              HINT = 'use a shorter key, e.g. a hash of the long one';
    ELSIF p_max_concurrent < 1 THEN
        RAISE EXCEPTION 'max_concurrent must be at least 1, not %', p_max_concurrent
              USING ERRCODE = '22023';
    ELSIF p_workflow IS NULL AND (p_concurrency_key IS NOT NULL OR p_max_concurrent IS NOT NULL)
    THEN
        RAISE EXCEPTION 'flow control needs a deployed workflow' USING ERRCODE = '0A000';
    END IF;
    existing := false;
    LOOP
        IF p_idempotency_key IS NOT NULL THEN
            -- A new statement: at READ COMMITTED it sees a row committed while the INSERT below
            -- waited for it.
            SELECT i.id INTO instance FROM dfc.instances i
             WHERE i.idempotency_scope = p_scope AND i.idempotency_key = p_idempotency_key;
            IF FOUND THEN
                existing := true;
                RETURN;
            END IF;
        END IF;
        instance := substr(md5(random()::text || clock_timestamp()::text), 1, 8);
        -- No conflict target: a taken id draws another, a taken key finds its instance above.
        INSERT INTO dfc.instances (id, workflow, version, label, vars, status, created_by, graph,
                                   options, idempotency_key, idempotency_scope, concurrency_key)
        VALUES (instance, p_workflow, p_version, p_label, coalesce(p_vars, '{}'), 'pending',
                coalesce(p_created_by, current_user), p_graph, p_options, p_idempotency_key,
                CASE WHEN p_idempotency_key IS NOT NULL THEN p_scope END, p_concurrency_key)
        ON CONFLICT DO NOTHING;
        EXIT WHEN FOUND;
    END LOOP;
    v_free := dfc.flow_enqueue(instance, p_max_concurrent, p_concurrency_key, 0);
    INSERT INTO dfc.history (instance_id, event, detail)
    VALUES (instance, 'started',
            jsonb_build_object('workflow', p_workflow, 'version', p_version, 'label', p_label)
            || jsonb_strip_nulls(jsonb_build_object('idempotency_key', p_idempotency_key,
                                                    'concurrency_key', p_concurrency_key,
                                                    'max_concurrent', p_max_concurrent)));
END $$;
