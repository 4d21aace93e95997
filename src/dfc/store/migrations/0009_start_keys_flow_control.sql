-- 0009: idempotent starts and flow control (docs/runtime.md, "Idempotent starts and flow
-- control").
--
-- == idempotency keys ============================================================================
--
-- A start may carry an idempotency key. Keys are unique per workflow name (the scope): the same
-- order id may key both a `charge` and a `ship` instance. An instance started from SQL has no
-- workflow yet when it starts; its scope is the name its graph will be deployed as,
-- 'sql:' || coalesce(label, 'unlabelled') (dfc.compiler.graph_workflow_name; the tests check
-- that the two agree). A key is remembered as long as its instance row exists: retention
-- deletes it with the instance.
--
-- Two transactions starting with the same key at once give one instance: the second one's
-- INSERT waits on the first one's index entry, and once that commits it finds the row and
-- returns its id (at READ COMMITTED; at REPEATABLE READ or SERIALIZABLE PostgreSQL raises a
-- serialization failure instead, to be retried like any other).

ALTER TABLE dfc.instances ADD COLUMN idempotency_key text;
ALTER TABLE dfc.instances ADD COLUMN idempotency_scope text;
ALTER TABLE dfc.instances ADD CONSTRAINT instances_key_has_scope
    CHECK (idempotency_key IS NULL OR idempotency_scope IS NOT NULL);
CREATE UNIQUE INDEX instances_idempotency ON dfc.instances (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
COMMENT ON COLUMN dfc.instances.idempotency_key IS
    'The key given at start (0009): another start with the same key in the same scope returns '
    'this instance instead of starting one.';
COMMENT ON COLUMN dfc.instances.idempotency_scope IS
    'The workflow name the idempotency key belongs to (for df.start: sql:<label>).';

-- == flow control ================================================================================
--
-- An instance may start under limits: its version's `max_concurrent` (a workflow file option,
-- plan.options) allows at most that many running instances of the workflow, and a concurrency
-- key given at start allows at most one running instance of the workflow per key. "Running"
-- means started and not finished: an instance holds its slots while it sleeps or waits.
--
-- The limits gate the step from pending to running, and are enforced where instances come and
-- go - at start, finish and cancel - not in the claim: an instance over a limit is queued with
-- run_at NULL and gated_at set, so no claim ever sees it (the claim, the hottest statement, is
-- unchanged), and the finish or cancel that frees a slot admits the next ones (run_at = now()).
-- Every change of a workflow's slots happens under the transaction advisory lock
-- (1684431686 = 'dfcF', hashtext(workflow)), so any number of workers and starters agree; the
-- counters are rows, so a start at REPEATABLE READ that raced another gets a serialization
-- failure rather than a slot too many.

ALTER TABLE dfc.instances ADD COLUMN concurrency_key text;
COMMENT ON COLUMN dfc.instances.concurrency_key IS
    'The concurrency key given at start (0009): at most one instance of the workflow with this '
    'key runs at a time.';

-- What the queue row of an instance under a limit carries: its workflow (flow), its limits
-- (flow_max, flow_key), and, while it waits for a slot, since when (gated_at; run_at is NULL).
-- The finish of an instance whose row has a flow gives its slots back; an instance queued by
-- other means (no flow) holds none.
ALTER TABLE dfc.queue ADD COLUMN flow text;
ALTER TABLE dfc.queue ADD COLUMN flow_max integer;
ALTER TABLE dfc.queue ADD COLUMN flow_key text;
ALTER TABLE dfc.queue ADD COLUMN gated_at timestamptz;
COMMENT ON COLUMN dfc.queue.gated_at IS
    'Set while the instance waits for a slot of its workflow''s limits (run_at is then NULL).';
CREATE INDEX queue_gated ON dfc.queue (flow, gated_at) WHERE gated_at IS NOT NULL;

-- Slots held: instances of each workflow counted toward a max_concurrent, and keys taken.
CREATE TABLE dfc.flow_running (
    workflow text PRIMARY KEY,
    running  integer NOT NULL CHECK (running >= 0)
);
COMMENT ON TABLE dfc.flow_running IS
    'Per workflow, its running instances that started under a max_concurrent (0009).';
CREATE TABLE dfc.flow_keys (
    workflow text NOT NULL,
    key      text NOT NULL,
    instance text NOT NULL,
    PRIMARY KEY (workflow, key)
);
COMMENT ON TABLE dfc.flow_keys IS
    'Per workflow, the concurrency keys taken by a running instance, and which (0009).';

CREATE FUNCTION dfc.flow_lock(p_workflow text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1684431686, hashtext(p_workflow))
$$;

-- Take the slots an instance needs, under dfc.flow_lock: true when it may run now. Both are
-- writes that conflict with a concurrent change, never reads: at REPEATABLE READ a key freed
-- after the snapshot is taken (the deleted row does not conflict) and a counter changed after
-- it raises a serialization failure, so no isolation level sees a stale slot.
CREATE FUNCTION dfc.flow_take(p_workflow text, p_instance text, p_key text, p_max integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        INSERT INTO dfc.flow_keys (workflow, key, instance) VALUES (p_workflow, p_key, p_instance)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    IF p_max IS NOT NULL THEN
        INSERT INTO dfc.flow_running AS r (workflow, running) VALUES (p_workflow, 1)
        ON CONFLICT (workflow) DO UPDATE SET running = r.running + 1 WHERE r.running < p_max;
        IF NOT FOUND THEN
            DELETE FROM dfc.flow_keys
             WHERE workflow = p_workflow AND key = p_key AND instance = p_instance;
            RETURN false;
        END IF;
    END IF;
    RETURN true;
END $$;

-- Admit the waiting instances of a workflow that fit now, oldest first, under dfc.flow_lock.
-- One waiting for the max_concurrent stops the walk (they start in order); one whose key is
-- taken is passed over (a busy key holds up only its own instances).
CREATE FUNCTION dfc.flow_admit(p_workflow text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT q.instance_id, q.flow_key, q.flow_max FROM dfc.queue q
              WHERE q.flow = p_workflow AND q.gated_at IS NOT NULL
              ORDER BY q.gated_at, q.instance_id LOOP
        IF dfc.flow_take(p_workflow, c.instance_id, c.flow_key, c.flow_max) THEN
            UPDATE dfc.queue SET gated_at = NULL, run_at = now()
             WHERE instance_id = c.instance_id;
            PERFORM pg_notify('dfc_work', c.instance_id);
        ELSIF c.flow_max IS NOT NULL AND coalesce((SELECT running FROM dfc.flow_running
                                                    WHERE workflow = p_workflow), 0) >= c.flow_max
        THEN
            EXIT;
        END IF;
    END LOOP;
END $$;

-- Give back the slots of an instance that ran (finished or cancelled) and admit who fits now.
CREATE FUNCTION dfc.flow_release(p_workflow text, p_instance text, p_key text, p_max integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dfc.flow_lock(p_workflow);
    IF p_max IS NOT NULL THEN
        UPDATE dfc.flow_running SET running = running - 1
         WHERE workflow = p_workflow AND running > 0;
    END IF;
    IF p_key IS NOT NULL THEN
        DELETE FROM dfc.flow_keys
         WHERE workflow = p_workflow AND key = p_key AND instance = p_instance;
    END IF;
    PERFORM dfc.flow_admit(p_workflow);
END $$;

-- Create an instance and queue it, in the caller's transaction; or, when an instance with this
-- idempotency key exists in p_scope, return that one's id with existing = true and write
-- nothing (the caller decides whether its parameters match). p_max_concurrent and
-- p_concurrency_key put it under flow control: it is due at once when its slots are free,
-- else it waits for them.
CREATE FUNCTION dfc.start_instance(
    p_workflow text, p_version integer, p_label text, p_vars jsonb, p_created_by text,
    p_graph text, p_options jsonb, p_idempotency_key text, p_scope text,
    p_concurrency_key text, p_max_concurrent integer,
    OUT instance text, OUT existing boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_flow text;
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
    IF p_concurrency_key IS NOT NULL OR p_max_concurrent IS NOT NULL THEN
        v_flow := p_workflow;
        PERFORM dfc.flow_lock(v_flow);
        -- No need to look at the instances waiting: while one waits for the max_concurrent,
        -- the slots are all taken (every release admits who fits), so this one queues behind.
        v_free := dfc.flow_take(v_flow, instance, p_concurrency_key, p_max_concurrent);
    END IF;
    INSERT INTO dfc.queue (instance_id, run_at, flow, flow_max, flow_key, gated_at)
    VALUES (instance, CASE WHEN v_free THEN now() END, v_flow, p_max_concurrent,
            p_concurrency_key, CASE WHEN NOT v_free THEN clock_timestamp() END);
    INSERT INTO dfc.history (instance_id, event, detail)
    VALUES (instance, 'started',
            jsonb_build_object('workflow', p_workflow, 'version', p_version, 'label', p_label)
            || jsonb_strip_nulls(jsonb_build_object('idempotency_key', p_idempotency_key,
                                                    'concurrency_key', p_concurrency_key,
                                                    'max_concurrent', p_max_concurrent)));
    IF v_free THEN
        PERFORM pg_notify('dfc_work', instance);
    END IF;
END $$;

-- The earlier signatures (0002, 0005) start without a key.
CREATE OR REPLACE FUNCTION dfc.start_instance(
    p_workflow text, p_version integer, p_label text, p_vars jsonb, p_created_by text,
    p_graph text, p_options jsonb)
RETURNS text LANGUAGE sql AS $$
    SELECT (dfc.start_instance(p_workflow, p_version, p_label, p_vars, p_created_by, p_graph,
                               p_options, NULL, NULL, NULL, NULL)).instance
$$;

-- 0002's finish, giving back the slots of an instance under flow control.
CREATE OR REPLACE FUNCTION dfc.finish_instance(
    p_instance text, p_owner text, p_status text, p_result json, p_error jsonb,
    p_compensated boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_queued dfc.queue;
BEGIN
    DELETE FROM dfc.queue WHERE instance_id = p_instance AND lease_owner = p_owner
    RETURNING * INTO v_queued;
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
    IF v_queued.flow IS NOT NULL THEN
        PERFORM dfc.flow_release(v_queued.flow, p_instance, v_queued.flow_key, v_queued.flow_max);
    END IF;
    PERFORM pg_notify('dfc_done', p_instance);
END $$;

-- 0002's cancel: a cancelled instance that held slots gives them back (one still waiting for
-- them held none).
CREATE OR REPLACE FUNCTION dfc.cancel_instance(p_instance text, p_reason text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_queued dfc.queue;
BEGIN
    DELETE FROM dfc.queue WHERE instance_id = p_instance RETURNING * INTO v_queued;
    SELECT status INTO v_status FROM dfc.instances WHERE id = p_instance FOR UPDATE;
    IF v_status IN ('pending', 'running') THEN
        UPDATE dfc.instances
           SET status = 'cancelled', cancel_reason = p_reason, finished_at = now(),
               updated_at = now()
         WHERE id = p_instance;
        INSERT INTO dfc.history (instance_id, event, detail)
        VALUES (p_instance, 'cancelled', jsonb_build_object('reason', p_reason));
        IF v_queued.flow IS NOT NULL AND v_queued.gated_at IS NULL THEN
            PERFORM dfc.flow_release(v_queued.flow, p_instance, v_queued.flow_key,
                                     v_queued.flow_max);
        END IF;
        PERFORM pg_notify('dfc_work', p_instance);
        PERFORM pg_notify('dfc_done', p_instance);
    END IF;
    RETURN v_status;
END $$;

-- 0002's signal: a signal wakes an instance, but not past its turn (one waiting for a slot keeps
-- the signal buffered until it is admitted).
CREATE OR REPLACE FUNCTION dfc.signal_instance(p_instance text, p_name text, p_payload text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    -- Locking the queue row first orders this against finish/cancel (which delete it).
    UPDATE dfc.queue
       SET pokes = pokes + 1,
           run_at = CASE WHEN lease_owner IS NULL AND gated_at IS NULL THEN now() ELSE run_at END
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

-- 0002's view of what unfinished instances wait for, with the flow-control wait.
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

-- == df.start(..., idempotency_key => 'k') =======================================================

-- transaction_mode => 'new' passes the key on to the call it makes on its own connection.
DROP FUNCTION dfc.start_detached(text, text, text, integer, interval, text);
CREATE FUNCTION dfc.start_detached(
    p_role text, p_fut text, p_label text, p_max_attempts integer, p_max_backoff interval,
    p_on_failure text, p_idempotency_key text)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_schema text;
    v_socket text := btrim(split_part(current_setting('unix_socket_directories', true), ',', 1));
    v_conn text;
    v_id text;
BEGIN
    SELECT n.nspname INTO v_schema
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'dblink';
    IF v_schema IS NULL THEN
        RAISE EXCEPTION 'df.start(..., transaction_mode => ''new'') needs the dblink extension, '
                        'which is not installed in database "%"', current_database()
              USING ERRCODE = '0A000',
                    HINT = 'ask an administrator to run CREATE EXTENSION dblink; or start it in '
                           'its own transaction (the default mode commits with yours)';
    END IF;
    v_conn := format('dbname=%s user=%s host=%s port=%s application_name=%s',
                     dfc.conninfo_value(current_database()), dfc.conninfo_value(p_role),
                     dfc.conninfo_value(CASE WHEN v_socket = '' THEN 'localhost' ELSE v_socket END),
                     dfc.conninfo_value(current_setting('port')),
                     dfc.conninfo_value('dfc df.start'));
    EXECUTE format('SELECT id FROM %I.dblink($1, $2) AS t(id text)', v_schema)
       INTO v_id
      USING v_conn,
            format('SELECT df.start(%L, %L, NULL, ''caller'', %s, %L::interval, %L, %L)',
                   p_fut, p_label, p_max_attempts, p_max_backoff, p_on_failure,
                   p_idempotency_key);
    RETURN v_id;
END $$;
REVOKE EXECUTE ON FUNCTION dfc.start_detached(text, text, text, integer, interval, text, text)
    FROM PUBLIC;

-- 0005's df._start with the key: a second start with the same key (in scope sql:<label>)
-- returns the first instance's id if it is the same start - same graph, variables, options and
-- role - and is refused otherwise (SQLSTATE 23505), since a key reused for another start is a
-- bug the caller wants to hear about; another role's instance is not named.
CREATE FUNCTION df._start(
    p_role text, p_fut text, p_label text, p_database text, p_transaction_mode text,
    p_max_attempts integer, p_max_backoff interval, p_on_failure text, p_idempotency_key text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_mode text := lower(btrim(coalesce(p_transaction_mode, 'caller')));
    v_on_failure text := lower(btrim(coalesce(p_on_failure, 'fail')));
    v_graph record;
    v_vars jsonb;
    v_options jsonb;
    v_started record;
    v_first dfc.instances;
BEGIN
    PERFORM dfc.acting_role(p_role);
    IF v_mode NOT IN ('caller', 'new') THEN
        RAISE EXCEPTION 'invalid transaction_mode "%" for df.start(): expected ''caller'' or ''new''',
              p_transaction_mode USING ERRCODE = '22023';
    END IF;
    IF p_max_attempts IS NULL OR p_max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be at least 1, not %', coalesce(p_max_attempts::text, 'NULL')
              USING ERRCODE = '22023';
    END IF;
    IF p_max_backoff IS NULL OR p_max_backoff <= interval '0' THEN
        RAISE EXCEPTION 'max_backoff must be a positive interval, not %',
              coalesce(p_max_backoff::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF v_on_failure = 'continue' THEN
        RAISE EXCEPTION 'df.start(..., on_failure => ''continue'') is not supported by dfc'
              USING ERRCODE = '0A000',
                    HINT = 'a step that still fails after max_attempts fails the instance '
                           '(on_failure => ''fail'', dfc''s default)';
    ELSIF v_on_failure <> 'fail' THEN
        RAISE EXCEPTION 'invalid on_failure "%" for df.start(): expected ''continue'' or ''fail''',
              p_on_failure USING ERRCODE = '22023';
    END IF;
    IF p_database IS NOT NULL AND p_database <> current_database() THEN
        IF NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = p_database) THEN
            RAISE EXCEPTION 'database "%" does not exist', p_database USING ERRCODE = '3D000';
        END IF;
        RAISE EXCEPTION 'df.start cannot run a workflow in database "%": dfc runs the steps of '
                        'an instance in the database that holds it', p_database
              USING ERRCODE = '0A000',
                    HINT = format('a step and its checkpoint commit together, which needs one '
                                  'database; run `dfc db migrate` against %I and call df.start '
                                  'there', p_database);
    END IF;
    IF NOT dfc.may_start(p_role) THEN
        RAISE EXCEPTION 'role "%" may not start workflows: it has not been granted usage of the '
                        'df schema', p_role
              USING ERRCODE = '42501',
                    HINT = format('an administrator can grant it: SELECT df.grant_usage(%L)', p_role);
    END IF;
    IF p_fut IS NULL THEN
        RAISE EXCEPTION 'df.start needs a workflow, not NULL' USING ERRCODE = '22004';
    END IF;
    IF v_mode = 'new' THEN
        PERFORM df._not_in_workflow(
            'df.start() with transaction_mode => ''new'' cannot be called inside a workflow - a '
            'df.sql() node already runs as a single autocommitted statement, so a plain '
            'df.start() there is already independent of any caller transaction');
        RETURN dfc.start_detached(p_role, p_fut, p_label, p_max_attempts, p_max_backoff,
                                  v_on_failure, p_idempotency_key);
    END IF;
    v_graph := df._graph(coalesce(df._node(p_fut), df._sql_node(p_fut)::jsonb), true);
    IF v_graph.has_http AND NOT dfc.may_http(p_role) THEN
        PERFORM df._check_http_privilege(p_role);
    END IF;
    SELECT coalesce(jsonb_object_agg(name, value), '{}') INTO v_vars
      FROM dfc.variables WHERE owner = p_role;
    v_options := CASE WHEN p_max_attempts > 1 THEN
                     jsonb_build_object('max_attempts', p_max_attempts,
                                        'max_backoff', extract(epoch FROM p_max_backoff)::float8)
                 END;
    SELECT * INTO v_started FROM dfc.start_instance(
        NULL, NULL, p_label, v_vars, p_role, v_graph.graph, v_options, p_idempotency_key,
        'sql:' || coalesce(p_label, 'unlabelled'), NULL, NULL);
    IF v_started.existing THEN
        SELECT * INTO v_first FROM dfc.instances WHERE id = v_started.instance;
        IF v_first.created_by <> p_role THEN
            RAISE EXCEPTION 'idempotency key % of workflow % was used by another role',
                  quote_literal(df._quoted(p_idempotency_key)),
                  quote_literal('sql:' || coalesce(p_label, 'unlabelled'))
                  USING ERRCODE = '23505',
                        HINT = 'keys are shared by the roles starting a label: use another key';
        END IF;
        IF v_first.graph IS DISTINCT FROM v_graph.graph OR v_first.vars <> v_vars
           OR v_first.options IS DISTINCT FROM v_options THEN
            RAISE EXCEPTION 'idempotency key % already started instance % with another %',
                  quote_literal(df._quoted(p_idempotency_key)), v_first.id,
                  CASE WHEN v_first.graph IS DISTINCT FROM v_graph.graph THEN 'workflow'
                       WHEN v_first.vars <> v_vars THEN 'set of variables'
                       ELSE 'max_attempts or max_backoff' END
                  USING ERRCODE = '23505',
                        HINT = 'a key names one start: repeat the same call to get that '
                               'instance back, or use a new key for a different start';
        END IF;
    END IF;
    RETURN v_started.instance;
END $$;

-- 0005's signature, which callers of the definer may still use, starts without a key.
CREATE OR REPLACE FUNCTION df._start(
    p_role text, p_fut text, p_label text, p_database text, p_transaction_mode text,
    p_max_attempts integer, p_max_backoff interval, p_on_failure text)
RETURNS text LANGUAGE sql AS $$
    SELECT df._start(p_role, p_fut, p_label, p_database, p_transaction_mode, p_max_attempts,
                     p_max_backoff, p_on_failure, NULL)
$$;

-- pg_durable's seven parameters keep their places; the key comes last.
DROP FUNCTION df.start(text, text, text, text, integer, interval, text);
CREATE FUNCTION df.start(fut text, label text DEFAULT NULL, database text DEFAULT NULL,
                         transaction_mode text DEFAULT 'caller', max_attempts integer DEFAULT 1,
                         max_backoff interval DEFAULT '16 seconds', on_failure text DEFAULT 'fail',
                         idempotency_key text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF btrim(df._required('df.start', 'a workflow', fut), E' \t\r\n') = '' THEN
        RAISE EXCEPTION 'df.start needs a workflow, not an empty text' USING ERRCODE = '22023',
              HINT = 'pass a SQL step or a graph, e.g. df.start(''SELECT 1'')';
    END IF;
    -- Values longer than any valid one are quoted cut in df._start's messages.
    RETURN df._start(current_user, fut, label, df._quoted(database),
                     df._quoted(btrim(transaction_mode)), max_attempts, max_backoff,
                     df._quoted(btrim(on_failure)), idempotency_key);
END $$;

-- == showing the key =============================================================================

-- The view every df read goes through gets the key as its last column; df.instance_info shows
-- it after pg_durable's columns (a script selecting those by name is unaffected).
CREATE OR REPLACE VIEW df._instances WITH (security_barrier) AS
SELECT i.id, i.workflow, i.version, i.label, i.vars, i.status, i.result, i.error,
       i.cancel_reason, i.created_at, i.started_at, i.finished_at, i.updated_at, i.created_by,
       i.graph, i.options, w.plan, i.idempotency_key
  FROM dfc.instances i
  LEFT JOIN dfc.workflows w ON w.name = i.workflow AND w.version = i.version
 WHERE i.created_by = current_user::text OR (SELECT dfc.is_admin(current_user::text));

DROP FUNCTION df.instance_info(text);
CREATE FUNCTION df.instance_info(instance_id text)
RETURNS TABLE (instance_id text, label text, function_name text, function_version text,
               current_execution_id bigint, status text, output text, idempotency_key text)
LANGUAGE sql STRICT STABLE AS $$
    SELECT i.id, i.label, i.workflow, i.version::text, 1::bigint, i.status,
           df._output(i.status, i.result, i.error), i.idempotency_key
      FROM df._instances i WHERE i.id = instance_info.instance_id
$$;
