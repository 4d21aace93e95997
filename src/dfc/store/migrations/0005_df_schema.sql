-- 0005: pg_durable's SQL API (SPEC §7, docs/sql.md), in plain SQL and PL/pgSQL: schema df.
--
-- Builders (df.sql, df.seq, ~>, |=>, ...) turn text into pg_durable's JSON graph text; nothing
-- is written until df.start, which validates the graph and creates a pending instance that
-- carries it (dfc.instances.graph, no workflow version yet), in the caller's transaction; a
-- worker compiles the graph with the checker and emitter of .df files and runs every SQL step
-- as the role that called df.start (dfc.instances.created_by, migration 0004's executors).
--
-- Who may do what. Nothing here is granted to PUBLIC beyond what schema df's USAGE unlocks,
-- and only df.grant_usage grants that USAGE. Reading goes through the views df._instances and
-- df._node_state (security barriers owned by the schema owner): each shows the rows whose
-- created_by is current_user (superusers and the owner of schema dfc: all rows), so every
-- read function is SECURITY INVOKER and sees what its caller may see, nothing else. Writing
-- goes through SECURITY DEFINER functions (df._start, df._signal, df._cancel, df._grant_usage,
-- df._revoke_usage) that take the caller's role from their SECURITY INVOKER wrapper
-- (current_user there) and check it with dfc.acting_role: the session user must be a member of
-- that role (pg_durable 0.2.4's rule), so no one can act for a role they could not SET ROLE to.
-- Variables are rows of dfc.variables written through the auto-updatable view df.vars, which
-- shows and accepts only the caller's own (WITH CHECK OPTION).
--
-- Messages. A rule the checker of .df files also enforces (result names, seconds, cron, HTTP
-- arguments, `?>` without `!>`, break outside a loop, nesting depth) fails with the checker's
-- own message (tests/integration/test_sql_surface.py compares them); the rest uses pg_durable's
-- wording. Functions that only other functions of this file call are named df._* (callable by
-- users, harmless) or live in schema dfc (callable only by the definer functions).
--
-- Every object is schema-qualified and every SECURITY DEFINER function sets its search_path,
-- so no object of a caller's schemas can stand in for ours.

-- == storage ======================================================================================

CREATE TABLE dfc.grants (
    role         name        PRIMARY KEY,
    include_http bool        NOT NULL DEFAULT false,
    with_grant   bool        NOT NULL DEFAULT false,
    granted_by   name        NOT NULL DEFAULT current_user,
    granted_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dfc.grants IS
    'Roles given usage of the SQL surface by df.grant_usage (docs/sql.md).';

-- The variables of the SQL surface belong to a role (pg_durable 0.2.0), not to a session.
ALTER TABLE dfc.variables RENAME COLUMN session TO owner;
ALTER TABLE dfc.variables ALTER COLUMN owner SET DEFAULT current_user;
COMMENT ON TABLE dfc.variables IS
    'Variables of the SQL surface (df.setvar), per role; df.start copies its role''s into the '
    'instance''s vars.';

ALTER TABLE dfc.instances ADD COLUMN options jsonb;
COMMENT ON COLUMN dfc.instances.options IS
    'df.start''s options for compiling its graph: {"max_attempts": n, "max_backoff": seconds} '
    'when max_attempts > 1 (every SQL and HTTP step is then retried), else NULL.';

-- One way to create an instance, of a deployed version or of a graph (dfc.instances.graph).
CREATE FUNCTION dfc.start_instance(
    p_workflow text, p_version integer, p_label text, p_vars jsonb, p_created_by text,
    p_graph text, p_options jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_id text;
BEGIN
    LOOP
        v_id := substr(md5(random()::text || clock_timestamp()::text), 1, 8);
        INSERT INTO dfc.instances (id, workflow, version, label, vars, status, created_by, graph,
                                   options)
        VALUES (v_id, p_workflow, p_version, p_label, coalesce(p_vars, '{}'), 'pending',
                coalesce(p_created_by, current_user), p_graph, p_options)
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

CREATE OR REPLACE FUNCTION dfc.start_instance(
    p_workflow text, p_version integer, p_label text, p_vars jsonb, p_created_by text)
RETURNS text LANGUAGE sql AS $$
    SELECT dfc.start_instance(p_workflow, p_version, p_label, p_vars, p_created_by, NULL, NULL)
$$;

-- == who may do what ==============================================================================

-- Raise unless the session user may act as p_role (is a member of it, or a superuser).
CREATE FUNCTION dfc.acting_role(p_role text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role)
       OR NOT pg_has_role(session_user, p_role, 'MEMBER') THEN
        RAISE EXCEPTION 'session user "%" cannot act as role "%"', session_user, p_role
              USING ERRCODE = '42501';
    END IF;
    RETURN p_role;
END $$;

-- Superusers and the owner of schema dfc administer the SQL surface without a grant.
CREATE FUNCTION dfc.is_admin(p_role text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT r.rolsuper OR r.oid = n.nspowner
                       FROM pg_roles r, pg_namespace n
                      WHERE r.rolname = p_role AND n.nspname = 'dfc'), false)
$$;

CREATE FUNCTION dfc.may_start(p_role text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT dfc.is_admin(p_role) OR EXISTS (SELECT 1 FROM dfc.grants WHERE role = p_role)
$$;

CREATE FUNCTION dfc.may_http(p_role text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT dfc.is_admin(p_role)
        OR EXISTS (SELECT 1 FROM dfc.grants WHERE role = p_role AND include_http)
$$;

-- Raise unless p_role may act on instance p_id: the rule of the view df._instances, for the
-- role a definer function acts for.
CREATE FUNCTION dfc.check_owner(p_role text, p_id text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_id = '' THEN
        RAISE EXCEPTION 'Instance ID cannot be empty' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dfc.instances i
                    WHERE i.id = p_id AND (i.created_by = p_role OR dfc.is_admin(p_role))) THEN
        RAISE EXCEPTION 'Instance not found or access denied: %', p_id USING ERRCODE = '42501';
    END IF;
END $$;

CREATE SCHEMA df;
REVOKE ALL ON SCHEMA df FROM PUBLIC;
COMMENT ON SCHEMA df IS
    'pg_durable''s SQL API served by dfc (docs/sql.md); df.grant_usage gives a role access.';

-- Whether this session is a worker's, running a step (dfc.runtime sets the option).
CREATE FUNCTION df._in_workflow() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('dfc.in_workflow', true), '') = 'on'
$$;

CREATE FUNCTION df._may_http(p_role text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT dfc.may_http(p_role)
$$;

-- == what a role may see ==========================================================================

CREATE VIEW df._instances WITH (security_barrier) AS
SELECT i.id, i.workflow, i.version, i.label, i.vars, i.status, i.result, i.error,
       i.cancel_reason, i.created_at, i.started_at, i.finished_at, i.updated_at, i.created_by,
       i.graph, i.options, w.plan
  FROM dfc.instances i
  LEFT JOIN dfc.workflows w ON w.name = i.workflow AND w.version = i.version
 WHERE i.created_by = current_user::text OR (SELECT dfc.is_admin(current_user::text));
COMMENT ON VIEW df._instances IS
    'The instances the current role may see: its own (superusers and the dfc owner: all).';

CREATE VIEW df._node_state WITH (security_barrier) AS
SELECT ns.instance_id, ns.key, ns.node_id, ns.status, ns.result, ns.error, ns.attempt,
       ns.started_at, ns.finished_at, ns.seq
  FROM dfc.node_state ns
 WHERE ns.instance_id IN (SELECT id FROM df._instances);
COMMENT ON VIEW df._node_state IS 'Node records of the instances in df._instances.';

CREATE VIEW df.vars WITH (security_barrier) AS
SELECT v.name, v.value, v.owner
  FROM dfc.variables v
 WHERE v.owner = current_user::text
  WITH CHECK OPTION;
COMMENT ON VIEW df.vars IS
    'The current role''s variables (df.setvar), copied into each instance it starts.';

-- == the JSON graph ===============================================================================
--
-- A node is an object with node_type and, as its type needs, left_node, right_node,
-- condition_node, extra_nodes (children: nested objects), query (text) and result_name. Two
-- envelopes exist (pg_durable_api.md §2): older graphs keep condition_node / extra_nodes as
-- JSON text inside query. Builders write the newer one, with pg_durable's key order and no
-- spaces (serde_json's output), and df.start stores that canonical text (df._graph).

CREATE FUNCTION df._types() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['SQL', 'THEN', 'IF', 'JOIN', 'LOOP', 'BREAK', 'RACE', 'SLEEP', 'WAIT_SCHEDULE',
                 'HTTP', 'HTTP_MULTIPART', 'SIGNAL']
$$;

-- The JSON object a text holds, or NULL (not JSON, or not an object).
CREATE FUNCTION df._object(p_text text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb;
BEGIN
    IF p_text IS NULL OR left(ltrim(p_text, E' \t\r\n'), 1) <> '{' THEN
        RETURN NULL;
    END IF;
    v := p_text::jsonb;
    RETURN CASE WHEN jsonb_typeof(v) = 'object' THEN v END;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END $$;

CREATE FUNCTION df._unknown_type(p_type text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Invalid durable function: Unknown node_type ''%''. Valid types: %', p_type,
          array_to_string(df._types(), ', ') USING ERRCODE = '22023';
END $$;

-- The checker's IF_WITHOUT_ELSE, with more help where there is more to say.
CREATE FUNCTION df._no_else(p_more_help text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '`?>` without `!>`: this conditional has no else arm'
          USING ERRCODE = '22023',
                HINT = 'add `!> step`; a no-op else can be `!> ''SELECT 1''`' || p_more_help;
END $$;

CREATE FUNCTION df._malformed(p_type text, p_what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Malformed Durofut JSON with node_type ''%'': %', p_type, p_what
          USING ERRCODE = '22023';
END $$;

-- The graph a builder argument or df.start's first argument holds, or NULL when the text is a
-- SQL step (auto-wrap): any text that is not a JSON object with a node_type (pg_durable's rule).
-- An object with an unknown node_type, or a `?>` that no `!>` completed, is refused.
CREATE FUNCTION df._node(p_text text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := df._object(p_text);
BEGIN
    IF v IS NOT NULL AND v ? '_partial_if' THEN
        PERFORM df._no_else('. In SQL the operators have one precedence, left to right: write '
                            'c ?> (t ~> u) !> e for a then-arm of several steps');
    END IF;
    IF v IS NULL OR NOT v ? 'node_type' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v -> 'node_type') <> 'string' OR NOT (v ->> 'node_type') = ANY (df._types()) THEN
        PERFORM df._unknown_type(v ->> 'node_type');
    END IF;
    RETURN v;
END $$;

CREATE FUNCTION df._sql_node(p_query text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"node_type":"SQL","query":' || to_json(p_query)::text || '}'
$$;

-- The children and configuration of a node in the newer envelope, whichever it was written in.
CREATE FUNCTION df._envelope(
    n jsonb, OUT cond jsonb, OUT extras jsonb, OUT query text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_type text := n ->> 'node_type';
    v_old jsonb;
BEGIN
    cond := CASE WHEN jsonb_typeof(n -> 'condition_node') = 'object' THEN n -> 'condition_node' END;
    extras := CASE WHEN jsonb_typeof(n -> 'extra_nodes') = 'array' THEN n -> 'extra_nodes' END;
    query := n ->> 'query';
    IF v_type IN ('IF', 'LOOP', 'JOIN') AND query IS NOT NULL THEN
        v_old := df._object(query);
        IF v_old ? 'condition_node' AND v_type IN ('IF', 'LOOP') THEN
            cond := coalesce(cond, v_old -> 'condition_node');
            query := NULL;
        ELSIF v_old ? 'extra_nodes' AND v_type = 'JOIN' THEN
            extras := coalesce(extras, v_old -> 'extra_nodes');
            query := NULL;
        END IF;
    END IF;
END $$;

-- Check a graph and write it as canonical text (newer envelope, pg_durable's key order, no
-- spaces, unknown keys dropped); raises on the first problem. p_whole: the graph is a whole
-- workflow (df.start), so rules about the context apply too: df.break inside a loop, nesting
-- depth, node count. has_http: whether it calls HTTP.
--
-- Iterative (a chain of steps nests as deeply as it is long): the nodes are listed parents
-- first, then written children first.
CREATE FUNCTION df._graph(p_graph jsonb, p_whole boolean, OUT graph text, OUT has_http boolean)
LANGUAGE plpgsql AS $$
DECLARE
    nodes jsonb[] := ARRAY[p_graph];
    depth int[] := ARRAY[1];
    in_loop boolean[] := ARRAY[false];
    kid_left int[] := '{}';
    kid_right int[] := '{}';
    kid_cond int[] := '{}';
    kid_extra jsonb[] := '{}';
    config text[] := '{}';
    texts text[];
    n jsonb;
    t text;
    env record;
    i int := 1;
    k int;
    child jsonb;
    extra_ids jsonb;
    out_text text;
    max_nodes constant int := 10000;
BEGIN
    has_http := false;
    WHILE i <= cardinality(nodes) LOOP
        n := nodes[i];
        t := n ->> 'node_type';
        IF jsonb_typeof(n -> 'node_type') IS DISTINCT FROM 'string' OR NOT t = ANY (df._types()) THEN
            PERFORM df._unknown_type(coalesce(t, 'null'));
        END IF;
        env := df._envelope(n);
        IF p_whole AND depth[i] > 256 THEN
            RAISE EXCEPTION 'constructs are nested more than 256 levels deep here'
                  USING ERRCODE = '22023',
                        HINT = 'split the workflow into templates, or flatten the nesting';
        END IF;
        IF n ? 'result_name' AND jsonb_typeof(n -> 'result_name') <> 'null' THEN
            PERFORM df._check_result_name(n ->> 'result_name');
        END IF;
        -- The children this type has; each is appended to the list and numbered.
        kid_left[i] := NULL; kid_right[i] := NULL; kid_cond[i] := NULL; kid_extra[i] := NULL;
        FOR k, child IN
            SELECT s.k, s.c FROM (VALUES (1, n -> 'left_node'), (2, n -> 'right_node'),
                                         (3, env.cond)) s(k, c)
        LOOP
            IF child IS NULL OR jsonb_typeof(child) = 'null' THEN
                CONTINUE;
            END IF;
            IF t NOT IN ('THEN', 'JOIN', 'RACE', 'IF', 'LOOP') OR (k = 2 AND t = 'LOOP')
               OR (k = 3 AND t NOT IN ('IF', 'LOOP')) THEN
                CONTINUE;  -- not a child of this type (pg_durable ignores it as well)
            END IF;
            IF jsonb_typeof(child) <> 'object' THEN
                PERFORM df._malformed(t, CASE k WHEN 1 THEN 'left_node' WHEN 2 THEN 'right_node'
                                               ELSE 'condition_node' END || ' must be a node object');
            END IF;
            nodes := nodes || child;
            depth := depth || (depth[i] + CASE WHEN child ->> 'node_type' = t
                                                    AND t IN ('THEN', 'JOIN', 'RACE') THEN 0
                                               ELSE 1 END);
            in_loop := in_loop || (in_loop[i] OR t = 'LOOP');
            CASE k WHEN 1 THEN kid_left[i] := cardinality(nodes);
                   WHEN 2 THEN kid_right[i] := cardinality(nodes);
                   ELSE kid_cond[i] := cardinality(nodes); END CASE;
        END LOOP;
        IF t = 'JOIN' AND env.extras IS NOT NULL AND jsonb_array_length(env.extras) > 0 THEN
            extra_ids := '[]';
            FOR child IN SELECT e FROM jsonb_array_elements(env.extras) e LOOP
                IF jsonb_typeof(child) <> 'object' THEN
                    PERFORM df._malformed(t, 'extra_nodes must hold node objects');
                END IF;
                nodes := nodes || child;
                depth := depth || (depth[i] + CASE WHEN child ->> 'node_type' = 'JOIN' THEN 0
                                                   ELSE 1 END);
                in_loop := in_loop || in_loop[i];
                extra_ids := extra_ids || to_jsonb(cardinality(nodes));
            END LOOP;
            kid_extra[i] := extra_ids;
        END IF;
        IF p_whole AND cardinality(nodes) > max_nodes THEN
            RAISE EXCEPTION 'Workflow exceeds maximum node count of %', max_nodes
                  USING ERRCODE = '22023',
                        HINT = 'split it into several workflows that start one another';
        END IF;
        -- What each type needs.
        IF t IN ('THEN', 'JOIN', 'RACE') AND (kid_left[i] IS NULL OR kid_right[i] IS NULL) THEN
            PERFORM df._malformed(t, 'needs left_node and right_node');
        ELSIF t = 'LOOP' AND kid_left[i] IS NULL THEN
            PERFORM df._malformed(t, 'needs left_node (the body)');
        ELSIF t = 'IF' THEN
            IF kid_left[i] IS NULL THEN
                PERFORM df._malformed(t, 'needs left_node (the then branch)');
            ELSIF kid_right[i] IS NULL THEN
                PERFORM df._no_else('');
            ELSIF kid_cond[i] IS NULL THEN
                IF df._object(env.query) ->> 'condition_type' IS DISTINCT FROM 'result_has_rows' THEN
                    PERFORM df._malformed(t, 'needs condition_node, or a result_has_rows query');
                END IF;
                PERFORM df._check_result_name(df._object(env.query) ->> 'result_name');
            END IF;
        ELSIF t IN ('SQL', 'SLEEP', 'WAIT_SCHEDULE', 'SIGNAL', 'HTTP', 'HTTP_MULTIPART')
              AND env.query IS NULL THEN
            PERFORM df._malformed(t, 'needs query');
        END IF;
        IF t = 'BREAK' AND p_whole AND NOT in_loop[i] THEN
            RAISE EXCEPTION 'df.break is not inside a loop'
                  USING ERRCODE = '22023', HINT = 'df.break ends the nearest enclosing @> or df.loop';
        END IF;
        PERFORM df._check_config(t, env.query);
        has_http := has_http OR t IN ('HTTP', 'HTTP_MULTIPART');
        -- Only leaves and df.if_rows have a configuration.
        config[i] := CASE WHEN t IN ('THEN', 'JOIN', 'RACE', 'LOOP')
                               OR (t = 'IF' AND kid_cond[i] IS NOT NULL) THEN NULL
                          ELSE env.query END;
        i := i + 1;
    END LOOP;
    -- Write the nodes, children first.
    texts := array_fill(NULL::text, ARRAY[cardinality(nodes)]);
    FOR i IN REVERSE cardinality(nodes)..1 LOOP
        n := nodes[i];
        out_text := '{"node_type":' || to_json(n ->> 'node_type')::text;
        IF kid_left[i] IS NOT NULL THEN
            out_text := out_text || ',"left_node":' || texts[kid_left[i]];
            texts[kid_left[i]] := NULL;
        END IF;
        IF kid_right[i] IS NOT NULL THEN
            out_text := out_text || ',"right_node":' || texts[kid_right[i]];
            texts[kid_right[i]] := NULL;
        END IF;
        IF kid_cond[i] IS NOT NULL THEN
            out_text := out_text || ',"condition_node":' || texts[kid_cond[i]];
            texts[kid_cond[i]] := NULL;
        END IF;
        IF kid_extra[i] IS NOT NULL THEN
            out_text := out_text || ',"extra_nodes":['
                || (SELECT string_agg(texts[e::int], ',' ORDER BY o)
                      FROM jsonb_array_elements_text(kid_extra[i]) WITH ORDINALITY x(e, o))
                || ']';
        END IF;
        IF config[i] IS NOT NULL THEN
            out_text := out_text || ',"query":' || to_json(config[i])::text;
        END IF;
        IF n ? 'result_name' AND jsonb_typeof(n -> 'result_name') <> 'null' THEN
            out_text := out_text || ',"result_name":' || to_json(n ->> 'result_name')::text;
        END IF;
        texts[i] := out_text || '}';
    END LOOP;
    graph := texts[1];
END $$;

-- The canonical text of a builder argument: a SQL node for plain text, the graph it holds
-- otherwise. Text a builder wrote is kept as it is, so that a chain of builders never rewrites
-- what it already wrote; it starts with node_type, and the newer envelope never holds an
-- escaped "condition_node" or "extra_nodes" (an older one, or a query that mentions them, is
-- rewritten, correctly either way).
CREATE FUNCTION df._wrap(p_text text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    IF left(ltrim(p_text, E' \t\r\n'), 1) <> '{' THEN
        RETURN df._sql_node(p_text);
    END IF;
    v := df._node(p_text);
    IF v IS NULL THEN
        RETURN df._sql_node(p_text);
    ELSIF p_text LIKE '{"node_type":"%}' AND strpos(p_text, '\"condition_node\"') = 0
          AND strpos(p_text, '\"extra_nodes\"') = 0 THEN
        RETURN p_text;
    END IF;
    RETURN (df._graph(v, false)).graph;
END $$;

-- == checks shared with the checker of .df files (same messages) ==================================

CREATE FUNCTION df._check_result_name(p_name text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_fixed text;
    v_help text;
BEGIN
    IF p_name ~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN
        RETURN;
    END IF;
    p_name := coalesce(p_name, '');
    IF p_name ~ '^\$[A-Za-z_][A-Za-z0-9_]*$' THEN
        v_fixed := substr(p_name, 2);
        v_help := format('write the name without ''$'': ''%s'' (it is referenced as %s)',
                         v_fixed, p_name);
    ELSE
        v_fixed := regexp_replace(p_name, '[^[:alnum:]_]', '_', 'g');
        v_fixed := CASE WHEN v_fixed = '' THEN 'result'
                        WHEN v_fixed ~ '^[0-9]' THEN '_' || v_fixed ELSE v_fixed END;
        v_help := format('result names are letters, digits and _, not starting with a digit: ''%s''',
                         v_fixed);
    END IF;
    RAISE EXCEPTION '''%'' is not a valid result name', p_name
          USING ERRCODE = '22023', HINT = v_help;
END $$;

-- A number of seconds written as text (SLEEP's query, a timeout): whole and not negative.
CREATE FUNCTION df._check_seconds(p_what text, p_text text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v numeric;
BEGIN
    IF p_text IS NULL THEN
        RETURN;
    END IF;
    IF btrim(p_text) !~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$' THEN
        RAISE EXCEPTION '% needs a whole number of seconds, not %', p_what, p_text
              USING ERRCODE = '22023', HINT = 'write a number such as 30';
    END IF;
    v := btrim(p_text)::numeric;
    IF v < 0 THEN
        RAISE EXCEPTION '% cannot be negative (%)', p_what, p_text USING ERRCODE = '22023';
    ELSIF v <> trunc(v) THEN
        RAISE EXCEPTION '% must be a whole number of seconds (%)', p_what, p_text
              USING ERRCODE = '22023', HINT = format('round it, e.g. %s', round(v));
    END IF;
END $$;

-- A 5-field cron expression: minute hour day-of-month month day-of-week, each a list of
-- values, ranges a-b and steps */n or a-b/n, with names for months and days, L and LW for the
-- last day of the month, 5L and FRI#3 for the last and the third Friday (cronsim's syntax, which
-- the worker uses).
CREATE FUNCTION df._check_cron(p_cron text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_fields text[] := regexp_split_to_array(btrim(coalesce(p_cron, '')), '\s+');
    v_names constant text[] := ARRAY['minute', 'hour', 'day-of-month', 'month', 'day-of-week'];
    v_ranges constant text[] := ARRAY['0-59', '0-23', '1-31', '1-12 or JAN-DEC', '0-7 or SUN-SAT'];
    v_low constant int[] := ARRAY[0, 0, 1, 1, 0];
    v_high constant int[] := ARRAY[59, 23, 31, 12, 7];
    v_month constant text[] := ARRAY['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG',
                                     'SEP', 'OCT', 'NOV', 'DEC'];
    v_day constant text[] := ARRAY['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
    v_item text;
    v_m text[];
    v_ok boolean;
    v_a int;
    v_b int;
    f int;
BEGIN
    IF btrim(coalesce(p_cron, '')) = '' THEN
        RAISE EXCEPTION 'the cron expression is empty' USING ERRCODE = '22023';
    END IF;
    IF cardinality(v_fields) <> 5 THEN
        RAISE EXCEPTION 'a cron expression has 5 fields (minute hour day-of-month month '
                        'day-of-week), this one has %', cardinality(v_fields)
              USING ERRCODE = '22023', HINT = 'for example ''0 3 * * *'' is every day at 03:00';
    END IF;
    FOR f IN 1..5 LOOP
        v_ok := true;
        FOREACH v_item IN ARRAY string_to_array(v_fields[f], ',') LOOP
            -- The last day of the month (and weekday), the last or nth weekday of a month.
            IF (f = 3 AND upper(v_item) IN ('L', 'LW')) OR (f = 5 AND upper(v_item) ~ '^[0-7]L$')
               OR (f = 5 AND upper(v_item) ~ '^([0-7]|[A-Z]{3})#[1-5]$'
                   AND (upper(v_item) ~ '^[0-7]' OR upper(left(v_item, 3)) = ANY (v_day))) THEN
                CONTINUE;
            END IF;
            v_m := regexp_match(upper(v_item),
                                '^(\*|([0-9]+|[A-Z]{3})(-([0-9]+|[A-Z]{3}))?)(/([0-9]+))?$');
            IF v_m IS NULL OR v_m[6] = '0' OR (v_m[6] IS NOT NULL AND v_m[6]::numeric > 1000) THEN
                v_ok := false;
                EXIT;
            END IF;
            CONTINUE WHEN v_m[1] = '*';
            v_a := df._cron_value(v_m[2], f, v_month, v_day);
            v_b := CASE WHEN v_m[4] IS NULL THEN v_a ELSE df._cron_value(v_m[4], f, v_month, v_day) END;
            IF v_a IS NULL OR v_b IS NULL OR v_a < v_low[f] OR v_b > v_high[f] OR v_a > v_b THEN
                v_ok := false;
                EXIT;
            END IF;
        END LOOP;
        IF NOT v_ok OR v_fields[f] = '' THEN
            RAISE EXCEPTION 'invalid % field `%` in cron expression', v_names[f], v_fields[f]
                  USING ERRCODE = '22023',
                        HINT = format('the %s field takes values %s, as a value, range a-b, step '
                                      '*/n, or a list', v_names[f], v_ranges[f]);
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION df._cron_value(p_text text, p_field int, p_month text[], p_day text[])
RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_text ~ '^[0-9]+$' THEN CASE WHEN length(p_text) < 6 THEN p_text::int END
                WHEN p_field = 4 THEN array_position(p_month, p_text)
                WHEN p_field = 5 THEN array_position(p_day, p_text) - 1 END
$$;

-- An HTTP URL: http(s) or a leading {variable}; a host given as a bare IP address is refused
-- (pg_durable's egress rule: HTTP steps name their hosts; which hosts the worker lets a step
-- reach is its DFC_HTTP_ALLOW list, checked when the request is sent).
CREATE FUNCTION df._check_url(p_url text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v text := ltrim(coalesce(p_url, ''));
    v_host text;
BEGIN
    IF btrim(coalesce(p_url, '')) = '' THEN
        RAISE EXCEPTION 'the URL is empty' USING ERRCODE = '22023';
    END IF;
    IF v ~* '^https?://' THEN
        v_host := regexp_replace(substring(v FROM '^[^:]+://([^/?#]*)'), '^.*@', '');
        IF v_host LIKE '[%' THEN
            v_host := substring(v_host FROM '^(\[[^]]*\])');
        ELSE
            v_host := regexp_replace(v_host, ':[0-9]*$', '');
        END IF;
        IF v_host !~ '[{$]' AND (v_host ~ '^\[' OR v_host ~ '^[0-9]+(\.[0-9]+){0,3}\.?$'
                                 OR v_host ~* '^0x[0-9a-f]+$') THEN
            RAISE EXCEPTION 'the URL ''%'' names a bare IP address (%), which the egress rule refuses',
                  left(p_url, 60), v_host
                  USING ERRCODE = '22023',
                        HINT = 'HTTP steps call hosts by name: use the service''s host name '
                               '(the worker''s DFC_HTTP_ALLOW list decides which hosts it may reach)';
        END IF;
        RETURN;
    END IF;
    IF v ~ '^\{[A-Za-z_][A-Za-z0-9_]*\}' THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'the URL ''%'' does not start with http:// or https:// or a {variable}',
          left(p_url, 60)
          USING ERRCODE = '22023',
                HINT = 'write the scheme: ''https://'
                       || left(regexp_replace(v, '^.*://', ''), 40) || '''';
END $$;

CREATE FUNCTION df._check_method(p_method text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_method IS NULL OR upper(btrim(p_method)) IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD') THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '% is not an HTTP method dfc supports', quote_literal(p_method)
          USING ERRCODE = '22023', HINT = 'use one of GET, POST, PUT, PATCH, DELETE, HEAD';
END $$;

CREATE FUNCTION df._json_kind(p jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(p) WHEN 'object' THEN 'an object' WHEN 'array' THEN 'an array'
                WHEN 'string' THEN 'a string' WHEN 'boolean' THEN 'a boolean'
                WHEN 'number' THEN 'a number' ELSE 'null' END
$$;

CREATE FUNCTION df._check_headers(p_headers jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_headers IS NULL OR jsonb_typeof(p_headers) IN ('object', 'null') THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'HTTP headers must be a JSON object, not %', df._json_kind(p_headers)
          USING ERRCODE = '22023', HINT = 'write them as a JSON object: ''{"Name": "value"}''';
END $$;

CREATE FUNCTION df._check_parts(p_parts jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_help constant text := 'each part is {"name": ..., "data_b64": ...}, in a JSON array';
    v_part jsonb;
    v_i int;
    v_missing text;
BEGIN
    IF p_parts IS NULL OR jsonb_typeof(p_parts) = 'null' THEN
        RAISE EXCEPTION 'df.http_multipart needs parts: a JSON array of part objects'
              USING ERRCODE = '22023', HINT = v_help;
    END IF;
    IF jsonb_typeof(p_parts) <> 'array' THEN
        RAISE EXCEPTION 'multipart parts must be a JSON array, not %', df._json_kind(p_parts)
              USING ERRCODE = '22023', HINT = v_help;
    END IF;
    FOR v_part, v_i IN SELECT e, o FROM jsonb_array_elements(p_parts) WITH ORDINALITY x(e, o) LOOP
        IF jsonb_typeof(v_part) <> 'object' THEN
            RAISE EXCEPTION 'multipart part % is not an object', v_i
                  USING ERRCODE = '22023', HINT = v_help;
        END IF;
        SELECT string_agg(format('`%s`', k), ' and no ' ORDER BY o) INTO v_missing
          FROM unnest(ARRAY['name', 'data_b64']) WITH ORDINALITY u(k, o) WHERE NOT v_part ? k;
        IF v_missing IS NOT NULL THEN
            RAISE EXCEPTION 'multipart part % has no %', v_i, v_missing
                  USING ERRCODE = '22023', HINT = v_help;
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION df._check_http_privilege(p_role text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT df._may_http(p_role) THEN
        RAISE EXCEPTION 'df.http needs the include_http privilege, which role "%" does not have',
              p_role
              USING ERRCODE = '42501',
                    HINT = format('an administrator can grant it: SELECT df.grant_usage(%L, '
                                  'include_http => true)', p_role);
    END IF;
END $$;

-- The configuration (query) of a leaf node, by type.
CREATE FUNCTION df._check_config(p_type text, p_query text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    IF p_type IN ('SQL', 'THEN', 'JOIN', 'RACE', 'IF', 'LOOP') THEN
        RETURN;
    ELSIF p_type = 'SLEEP' THEN
        PERFORM df._check_seconds('df.sleep', p_query);
        RETURN;
    END IF;
    IF p_query IS NULL AND p_type = 'BREAK' THEN
        RETURN;
    END IF;
    v := df._object(p_query);
    IF v IS NULL THEN
        PERFORM df._malformed(p_type, 'query must be a JSON object');
    END IF;
    CASE p_type
    WHEN 'BREAK' THEN
        IF jsonb_typeof(v -> 'break_value') NOT IN ('string', 'null') THEN
            PERFORM df._malformed(p_type, 'break_value must be a string or null');
        END IF;
    WHEN 'WAIT_SCHEDULE' THEN
        IF jsonb_typeof(v -> 'cron_expr') IS DISTINCT FROM 'string' THEN
            PERFORM df._malformed(p_type, 'query needs cron_expr');
        END IF;
        PERFORM df._check_cron(v ->> 'cron_expr');
    WHEN 'SIGNAL' THEN
        IF jsonb_typeof(v -> 'signal_name') IS DISTINCT FROM 'string' THEN
            PERFORM df._malformed(p_type, 'query needs signal_name');
        END IF;
        PERFORM df._check_signal(v ->> 'signal_name', v ->> 'timeout_seconds');
    WHEN 'HTTP', 'HTTP_MULTIPART' THEN
        IF jsonb_typeof(v -> 'url') IS DISTINCT FROM 'string' THEN
            PERFORM df._malformed(p_type, 'query needs url');
        END IF;
        PERFORM df._check_url(v ->> 'url');
        PERFORM df._check_method(v ->> 'method');
        PERFORM df._check_headers(v -> 'headers');
        PERFORM df._check_seconds('the HTTP timeout', v ->> 'timeout_seconds');
        IF p_type = 'HTTP_MULTIPART' THEN
            PERFORM df._check_parts(v -> 'parts');
        END IF;
    END CASE;
END $$;

CREATE FUNCTION df._check_signal(p_name text, p_timeout text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF btrim(coalesce(p_name, '')) = '' THEN
        RAISE EXCEPTION 'the signal name is empty' USING ERRCODE = '22023';
    END IF;
    PERFORM df._check_seconds('the signal timeout', p_timeout);
END $$;

-- == builders =====================================================================================
--
-- pg_durable's signatures (names, defaults, STRICT or not). Each returns the canonical text of
-- the node it builds.

CREATE FUNCTION df.sql(query text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT df._sql_node(query)
$$;

CREATE FUNCTION df.seq(a text, b text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT '{"node_type":"THEN","left_node":' || df._wrap(a) || ',"right_node":' || df._wrap(b) || '}'
$$;

CREATE FUNCTION df.then(a text, b text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT df.seq(a, b)
$$;

CREATE FUNCTION df.as(fut text, name text) RETURNS text LANGUAGE plpgsql STRICT AS $$
DECLARE
    v text := df._wrap(fut);
BEGIN
    PERFORM df._check_result_name(name);
    -- Canonical text ends with its binding, if any (a name is an identifier, and a query's
    -- quotes are escaped): bound twice, the outer name wins.
    v := regexp_replace(v, ',"result_name":"[A-Za-z0-9_]*"}$', '}');
    RETURN left(v, -1) || ',"result_name":' || to_json(name)::text || '}';
END $$;

CREATE FUNCTION df.join(a text, b text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT '{"node_type":"JOIN","left_node":' || df._wrap(a) || ',"right_node":' || df._wrap(b) || '}'
$$;

-- dfc extension (SPEC §1.3): a join of any number of branches.
CREATE FUNCTION df.join(a text, b text, VARIADIC more text[]) RETURNS text
LANGUAGE sql STRICT AS $$
    SELECT '{"node_type":"JOIN","left_node":' || df._wrap(a) || ',"right_node":' || df._wrap(b)
        || coalesce(',"extra_nodes":[' || (SELECT string_agg(df._wrap(m), ',' ORDER BY o)
                                             FROM unnest(more) WITH ORDINALITY u(m, o)) || ']', '')
        || '}'
$$;

CREATE FUNCTION df.join3(a text, b text, c text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT df.join(a, b, VARIADIC ARRAY[c])
$$;

CREATE FUNCTION df.race(a text, b text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT '{"node_type":"RACE","left_node":' || df._wrap(a) || ',"right_node":' || df._wrap(b) || '}'
$$;

CREATE FUNCTION df.if(condition text, then_branch text, else_branch text) RETURNS text
LANGUAGE sql STRICT AS $$
    SELECT '{"node_type":"IF","left_node":' || df._wrap(then_branch) || ',"right_node":'
        || df._wrap(else_branch) || ',"condition_node":' || df._wrap(condition) || '}'
$$;

CREATE FUNCTION df.if_rows(result_name text, then_branch text, else_branch text) RETURNS text
LANGUAGE plpgsql STRICT AS $$
BEGIN
    PERFORM df._check_result_name(result_name);
    RETURN '{"node_type":"IF","left_node":' || df._wrap(then_branch) || ',"right_node":'
        || df._wrap(else_branch) || ',"query":'
        || to_json('{"condition_type":"result_has_rows","result_name":'
                   || to_json(result_name)::text || '}')::text || '}';
END $$;

CREATE FUNCTION df.loop(body text, condition text DEFAULT NULL,
                        continue_on_failure boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF body IS NULL THEN
        RAISE EXCEPTION 'df.loop needs a body' USING ERRCODE = '22004';
    END IF;
    IF continue_on_failure THEN
        RAISE EXCEPTION 'df.loop(..., continue_on_failure => true) is not supported by dfc'
              USING ERRCODE = '0A000',
                    HINT = 'a failing step fails the loop; catch it in SQL, or retry it with '
                           'df.start(..., max_attempts => n)';
    END IF;
    RETURN '{"node_type":"LOOP","left_node":' || df._wrap(body)
        || coalesce(',"condition_node":' || df._wrap(condition), '') || '}';
END $$;

CREATE FUNCTION df.break(value text DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT '{"node_type":"BREAK","query":'
        || to_json('{"break_value":' || coalesce(to_json(value)::text, 'null') || '}')::text || '}'
$$;

CREATE FUNCTION df.sleep(seconds bigint) RETURNS text LANGUAGE plpgsql STRICT AS $$
BEGIN
    PERFORM df._check_seconds('df.sleep', seconds::text);
    RETURN '{"node_type":"SLEEP","query":' || to_json(seconds::text)::text || '}';
END $$;

CREATE FUNCTION df.wait_for_schedule(cron_expr text) RETURNS text LANGUAGE plpgsql STRICT AS $$
BEGIN
    PERFORM df._check_cron(cron_expr);
    RETURN '{"node_type":"WAIT_SCHEDULE","query":'
        || to_json('{"cron_expr":' || to_json(cron_expr)::text || '}')::text || '}';
END $$;

CREATE FUNCTION df.wait_for_signal(name text, timeout_seconds integer DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM df._check_signal(name, timeout_seconds::text);
    RETURN '{"node_type":"SIGNAL","query":'
        || to_json('{"signal_name":' || to_json(name)::text || ',"timeout_seconds":'
                   || coalesce(timeout_seconds::text, 'null') || '}')::text || '}';
END $$;

-- The configuration of an HTTP node, in pg_durable's key order.
CREATE FUNCTION df._http_query(p_url text, p_method text, p_payload_key text, p_payload text,
                               p_headers jsonb, p_timeout integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"url":' || to_json(p_url)::text || ',"method":' || to_json(p_method)::text
        || ',"' || p_payload_key || '":' || coalesce(p_payload, 'null')
        || ',"headers":' || coalesce(p_headers::text, 'null')
        || ',"timeout_seconds":' || coalesce(p_timeout::text, 'null') || '}'
$$;

CREATE FUNCTION df.http(url text, method text DEFAULT 'POST', body text DEFAULT NULL,
                        headers jsonb DEFAULT NULL, timeout_seconds integer DEFAULT 30)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM df._check_http_privilege(current_user);
    PERFORM df._check_url(url);
    PERFORM df._check_method(method);
    PERFORM df._check_headers(headers);
    PERFORM df._check_seconds('the HTTP timeout', timeout_seconds::text);
    RETURN '{"node_type":"HTTP","query":'
        || to_json(df._http_query(url, upper(coalesce(method, 'POST')), 'body', to_json(body)::text,
                                  headers, timeout_seconds))::text || '}';
END $$;

CREATE FUNCTION df.http_multipart(url text, method text DEFAULT 'POST', parts jsonb DEFAULT NULL,
                                  headers jsonb DEFAULT NULL, timeout_seconds integer DEFAULT 30)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM df._check_http_privilege(current_user);
    PERFORM df._check_url(url);
    PERFORM df._check_method(method);
    PERFORM df._check_parts(parts);
    PERFORM df._check_headers(headers);
    PERFORM df._check_seconds('the HTTP timeout', timeout_seconds::text);
    RETURN '{"node_type":"HTTP_MULTIPART","query":'
        || to_json(df._http_query(url, upper(coalesce(method, 'POST')), 'parts', parts::text,
                                  headers, timeout_seconds))::text || '}';
END $$;

-- pg_durable 0.2.9: HTTP options other than none are not supported (dfc has none either).
CREATE FUNCTION df.with_http_options(fut text, options jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF options IS NOT NULL AND options <> '{}'::jsonb THEN
        RAISE EXCEPTION 'df.with_http_options: dfc supports no HTTP options (got %)', options
              USING ERRCODE = '0A000';
    END IF;
    RETURN df._wrap(fut);
END $$;

-- Operators ---------------------------------------------------------------------------------------
-- PostgreSQL gives user-defined operators one precedence, left to right (SPEC §1.2).

CREATE FUNCTION df.as_op(fut text, name text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT df.as(fut, name)
$$;

-- `cond ?> then`: an incomplete IF that only `!>` completes (pg_durable's object, as jsonb).
CREATE FUNCTION df.if_then_op(condition text, then_branch text) RETURNS text
LANGUAGE sql STRICT AS $$
    SELECT jsonb_build_object('_partial_if', true, 'condition', df._wrap(condition)::jsonb,
                              'then_branch', df._wrap(then_branch)::jsonb)::text
$$;

CREATE FUNCTION df.if_else_op(partial_if text, else_branch text) RETURNS text
LANGUAGE plpgsql STRICT AS $$
DECLARE
    v jsonb := df._object(partial_if);
BEGIN
    IF v IS NULL OR NOT v ? '_partial_if' THEN
        RAISE EXCEPTION 'Invalid if-then-else: left side of !> must be a ?> expression'
              USING ERRCODE = '22023',
                    HINT = 'in SQL the operators have one precedence, left to right: write '
                           'c ?> (t ~> u) !> e for a then-arm of several steps';
    END IF;
    RETURN df.if((v -> 'condition')::text, (v -> 'then_branch')::text, else_branch);
END $$;

CREATE FUNCTION df.loop_prefix_op(body text) RETURNS text LANGUAGE sql STRICT AS $$
    SELECT df.loop(body)
$$;

CREATE OPERATOR df.~> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.seq);
CREATE OPERATOR df.|=> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.as_op);
CREATE OPERATOR df.& (LEFTARG = text, RIGHTARG = text, FUNCTION = df.join);
CREATE OPERATOR df.| (LEFTARG = text, RIGHTARG = text, FUNCTION = df.race);
CREATE OPERATOR df.?> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.if_then_op);
CREATE OPERATOR df.!> (LEFTARG = text, RIGHTARG = text, FUNCTION = df.if_else_op);
CREATE OPERATOR df.@> (RIGHTARG = text, FUNCTION = df.loop_prefix_op);

-- == control ======================================================================================

-- Refuse what must not run inside a workflow step, with pg_durable's message.
CREATE FUNCTION df._not_in_workflow(p_message text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF df._in_workflow() THEN
        RAISE EXCEPTION '%', p_message USING ERRCODE = '0A000';
    END IF;
END $$;

-- A libpq connection-string value.
CREATE FUNCTION dfc.conninfo_value(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '''' || replace(replace(p, '\', '\\'), '''', '\''') || ''''
$$;

-- df.start with transaction_mode => 'new': the same call on a loopback connection as the same
-- role, through dblink, so that it commits on its own.
CREATE FUNCTION dfc.start_detached(
    p_role text, p_fut text, p_label text, p_max_attempts integer, p_max_backoff interval,
    p_on_failure text)
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
            format('SELECT df.start(%L, %L, NULL, ''caller'', %s, %L::interval, %L)',
                   p_fut, p_label, p_max_attempts, p_max_backoff, p_on_failure);
    RETURN v_id;
END $$;

CREATE FUNCTION df._start(
    p_role text, p_fut text, p_label text, p_database text, p_transaction_mode text,
    p_max_attempts integer, p_max_backoff interval, p_on_failure text)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_mode text := lower(btrim(coalesce(p_transaction_mode, 'caller')));
    v_on_failure text := lower(btrim(coalesce(p_on_failure, 'fail')));
    v_graph record;
    v_vars jsonb;
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
                                  v_on_failure);
    END IF;
    v_graph := df._graph(coalesce(df._node(p_fut), df._sql_node(p_fut)::jsonb), true);
    IF v_graph.has_http AND NOT dfc.may_http(p_role) THEN
        PERFORM df._check_http_privilege(p_role);
    END IF;
    SELECT coalesce(jsonb_object_agg(name, value), '{}') INTO v_vars
      FROM dfc.variables WHERE owner = p_role;
    RETURN dfc.start_instance(
        NULL, NULL, p_label, v_vars, p_role, v_graph.graph,
        CASE WHEN p_max_attempts > 1 THEN
            jsonb_build_object('max_attempts', p_max_attempts,
                               'max_backoff', extract(epoch FROM p_max_backoff)::float8)
        END);
END $$;

CREATE FUNCTION df.start(fut text, label text DEFAULT NULL, database text DEFAULT NULL,
                         transaction_mode text DEFAULT 'caller', max_attempts integer DEFAULT 1,
                         max_backoff interval DEFAULT '16 seconds', on_failure text DEFAULT 'fail')
RETURNS text LANGUAGE sql AS $$
    SELECT df._start(current_user, fut, label, database, transaction_mode, max_attempts,
                     max_backoff, on_failure)
$$;

CREATE FUNCTION df._signal(p_role text, p_id text, p_name text, p_data text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_before text;
BEGIN
    PERFORM dfc.acting_role(p_role);
    IF p_id <> '' AND btrim(p_name) = '' THEN
        RAISE EXCEPTION 'Signal name cannot be empty' USING ERRCODE = '22023';
    END IF;
    PERFORM dfc.check_owner(p_role, p_id);
    v_before := dfc.signal_instance(p_id, p_name, p_data);
    IF v_before NOT IN ('pending', 'running') THEN
        RAISE WARNING 'instance % is % already: the signal % was not delivered', p_id, v_before,
              p_name;
    END IF;
    RETURN 'OK';
END $$;

CREATE FUNCTION df.signal(instance_id text, signal_name text, signal_data text DEFAULT '{}')
RETURNS text LANGUAGE sql STRICT AS $$
    SELECT df._signal(current_user, instance_id, signal_name, signal_data)
$$;

CREATE FUNCTION df._cancel(p_role text, p_id text, p_reason text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_before text;
BEGIN
    PERFORM dfc.acting_role(p_role);
    PERFORM dfc.check_owner(p_role, p_id);
    v_before := dfc.cancel_instance(p_id, p_reason);
    IF v_before NOT IN ('pending', 'running') THEN
        RAISE NOTICE 'instance % is % already: nothing was cancelled', p_id, v_before;
    END IF;
    RETURN format('Instance %s cancelled: %s', p_id, p_reason);
END $$;

CREATE FUNCTION df.cancel(instance_id text, reason text DEFAULT 'Cancelled by user')
RETURNS text LANGUAGE sql STRICT AS $$
    SELECT df._cancel(current_user, instance_id, reason)
$$;

CREATE FUNCTION df.status(instance_id text) RETURNS text LANGUAGE sql STRICT STABLE AS $$
    SELECT i.status FROM df._instances i WHERE i.id = instance_id
$$;

-- The result of a completed instance as jsonb text (pg_durable's form), else NULL.
CREATE FUNCTION df.result(instance_id text) RETURNS text LANGUAGE sql STRICT STABLE AS $$
    SELECT coalesce(i.result::jsonb, 'null'::jsonb)::text
      FROM df._instances i WHERE i.id = instance_id AND i.status = 'completed'
$$;

CREATE FUNCTION df.await_instance(instance_id text, timeout_seconds integer DEFAULT 30)
RETURNS text LANGUAGE plpgsql STRICT AS $$
DECLARE
    v_status text;
    v_deadline timestamptz;
BEGIN
    PERFORM df._not_in_workflow(
        'df.await_instance() cannot be called inside a workflow - it would block a worker '
        'thread (and self-deadlock if waiting on the current instance). Use df.signal() and '
        'df.wait_for_signal() for cross-workflow coordination.');
    IF timeout_seconds <= 0 THEN
        RAISE EXCEPTION 'Timeout must be positive' USING ERRCODE = '22023';
    END IF;
    v_deadline := clock_timestamp() + make_interval(secs => timeout_seconds);
    LOOP
        SELECT i.status INTO v_status FROM df._instances i WHERE i.id = instance_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'Instance not found: %', instance_id USING ERRCODE = 'P0002';
        END IF;
        IF v_status IN ('completed', 'failed', 'cancelled') THEN
            RETURN v_status;
        END IF;
        EXIT WHEN clock_timestamp() >= v_deadline;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RAISE EXCEPTION 'Timeout after %s waiting for instance % (status: %). Check if a dfc worker '
                    'is running.', timeout_seconds, instance_id, v_status USING ERRCODE = '57014';
END $$;

CREATE FUNCTION df.wait_for_completion(instance_id text, timeout_seconds integer DEFAULT 30)
RETURNS text LANGUAGE plpgsql STRICT AS $$
BEGIN
    RAISE WARNING 'df.wait_for_completion() is deprecated; use df.await_instance() instead';
    RETURN df.await_instance(instance_id, timeout_seconds);
END $$;

-- pg_durable's no-op (its engine is always triggered); kept so that scripts calling it run.
CREATE FUNCTION df.run(instance_id text DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN instance_id IS NULL THEN 'Triggered run for all pending instances'
                ELSE 'Triggered run for instance: ' || instance_id END
$$;

CREATE FUNCTION df.target_database() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT current_database()::text
$$;

-- Variables ---------------------------------------------------------------------------------------

CREATE FUNCTION df.setvar(name text, value text) RETURNS text LANGUAGE plpgsql STRICT AS $$
#variable_conflict use_column
BEGIN
    PERFORM df._not_in_workflow('df.setvar() cannot be called inside a workflow - set variables '
                                'before starting the workflow');
    IF name IN ('sys_instance_id', 'sys_label') THEN
        RAISE EXCEPTION '% is set by dfc and cannot be given', name
              USING ERRCODE = '22023', HINT = 'choose another name';
    END IF;
    INSERT INTO df.vars AS v (name, value) VALUES (setvar.name, setvar.value)
    ON CONFLICT (owner, name) DO UPDATE SET value = excluded.value;
    RETURN 'OK';
END $$;

CREATE FUNCTION df.getvar(name text) RETURNS text LANGUAGE sql STRICT STABLE AS $$
    SELECT v.value FROM df.vars v WHERE v.name = getvar.name
$$;

CREATE FUNCTION df.unsetvar(name text) RETURNS text LANGUAGE plpgsql STRICT AS $$
#variable_conflict use_column
BEGIN
    PERFORM df._not_in_workflow('df.unsetvar() cannot be called inside a workflow - manage '
                                'variables before starting the workflow');
    DELETE FROM df.vars v WHERE v.name = unsetvar.name;
    RETURN 'OK';
END $$;

CREATE FUNCTION df.clearvars() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM df._not_in_workflow('df.clearvars() cannot be called inside a workflow - manage '
                                'variables before starting the workflow');
    DELETE FROM df.vars;
    RETURN 'OK';
END $$;

-- == inspection ===================================================================================
--
-- One table of nodes per instance, in pg_durable's shape (df.nodes): node ids, types, queries
-- (configurations with child ids), children, statuses and results. For a compiled instance it
-- is read from its plan and node records; for one not compiled yet, from its graph. df.explain
-- renders that table, df.instance_nodes lists it.

-- What an instance's output is (pg_durable's engine output): the result of a completed one, the
-- error of a failed one.
CREATE FUNCTION df._output(p_status text, p_result json, p_error jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_status WHEN 'completed' THEN coalesce(p_result::jsonb, 'null'::jsonb)::text
                         WHEN 'failed' THEN p_error ->> 'message' END
$$;

-- The nodes of a graph, numbered N1, N2, ... in pg_durable's order (a node, its left subtree,
-- its right subtree, then its condition and extra branches). Tolerant: any node_type is shown.
CREATE FUNCTION df._graph_nodes(p_graph jsonb)
RETURNS TABLE (node_id text, node_type text, query text, result_name text, left_node text,
               right_node text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    stack jsonb[] := ARRAY[p_graph];
    numbers int[] := ARRAY[1];
    n jsonb;
    m int;
    next_number int;
    env record;
    kids jsonb[];
    kid_ids text[];
    extras text[];
    j int;
BEGIN
    WHILE cardinality(stack) > 0 LOOP
        n := stack[cardinality(stack)];
        m := numbers[cardinality(numbers)];
        stack := stack[1:cardinality(stack) - 1];
        numbers := numbers[1:cardinality(numbers) - 1];
        env := df._envelope(n);
        kids := ARRAY[n -> 'left_node', n -> 'right_node', env.cond];
        IF env.extras IS NOT NULL THEN
            kids := kids || ARRAY(SELECT e FROM jsonb_array_elements(env.extras) e);
        END IF;
        -- Numbered depth first, in this order: a child's number follows its elder siblings'
        -- subtrees.
        kid_ids := array_fill(NULL::text, ARRAY[cardinality(kids)]);
        next_number := m + 1;
        FOR j IN 1..cardinality(kids) LOOP
            IF jsonb_typeof(kids[j]) = 'object' THEN
                kid_ids[j] := 'N' || next_number;
                next_number := next_number + df._subtree_size(kids[j]);
            END IF;
        END LOOP;
        extras := kid_ids[4:];
        node_id := 'N' || m;
        node_type := n ->> 'node_type';
        result_name := n ->> 'result_name';
        left_node := kid_ids[1];
        right_node := kid_ids[2];
        query := CASE
            WHEN kid_ids[3] IS NOT NULL THEN '{"condition_node":' || to_json(kid_ids[3])::text || '}'
            WHEN cardinality(extras) > 0 THEN '{"extra_nodes":' || to_json(extras)::text || '}'
            ELSE env.query END;
        RETURN NEXT;
        FOR j IN REVERSE cardinality(kids)..1 LOOP
            IF kid_ids[j] IS NOT NULL THEN
                stack := stack || kids[j];
                numbers := numbers || substr(kid_ids[j], 2)::int;
            END IF;
        END LOOP;
    END LOOP;
END $$;

CREATE FUNCTION df._subtree_size(p_node jsonb) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    stack jsonb[] := ARRAY[p_node];
    n jsonb;
    env record;
    size int := 0;
BEGIN
    WHILE cardinality(stack) > 0 LOOP
        n := stack[cardinality(stack)];
        stack := stack[1:cardinality(stack) - 1];
        size := size + 1;
        env := df._envelope(n);
        stack := stack || ARRAY(SELECT c FROM unnest(ARRAY[n -> 'left_node', n -> 'right_node', env.cond]) c
                                 WHERE jsonb_typeof(c) = 'object');
        IF env.extras IS NOT NULL THEN
            stack := stack || ARRAY(SELECT e FROM jsonb_array_elements(env.extras) e
                                     WHERE jsonb_typeof(e) = 'object');
        END IF;
    END LOOP;
    RETURN size;
END $$;

CREATE FUNCTION df._array_text(p_text text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN CASE WHEN jsonb_typeof(p_text::jsonb) = 'array' THEN p_text::jsonb::text END;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END $$;

-- The pg_durable configuration (df.nodes.query) of a plan node, children given by their ids.
CREATE FUNCTION df._plan_query(p_type text, p_config jsonb, p_kids text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_type = 'SQL' THEN p_config ->> 'query'
        WHEN p_type = 'IF' AND p_config ->> 'test' = 'rows' THEN
            '{"condition_type":"result_has_rows","result_name":'
            || to_json(p_config ->> 'result_name')::text || '}'
        WHEN p_type = 'IF' THEN '{"condition_node":' || to_json(p_kids[1])::text || '}'
        WHEN p_type = 'LOOP' AND cardinality(p_kids) > 1 THEN
            '{"condition_node":' || to_json(p_kids[2])::text || '}'
        WHEN p_type IN ('JOIN', 'RACE') AND cardinality(p_kids) > 2 THEN
            '{"extra_nodes":' || to_json(p_kids[3:])::text || '}'
        WHEN p_type = 'BREAK' THEN
            '{"break_value":' || coalesce(to_json(p_config ->> 'value')::text, 'null') || '}'
        WHEN p_type = 'SLEEP' THEN p_config ->> 'seconds'
        WHEN p_type = 'WAIT_SCHEDULE' THEN '{"cron_expr":' || to_json(p_config ->> 'cron')::text || '}'
        WHEN p_type = 'SIGNAL' THEN
            '{"signal_name":' || to_json(p_config ->> 'name')::text || ',"timeout_seconds":'
            || coalesce(p_config ->> 'timeout', 'null') || '}'
        WHEN p_type IN ('HTTP', 'HTTP_MULTIPART') THEN
            df._http_query(p_config ->> 'url', p_config ->> 'method',
                           CASE p_type WHEN 'HTTP' THEN 'body' ELSE 'parts' END,
                           CASE p_type WHEN 'HTTP' THEN to_json(p_config ->> 'body')::text
                                ELSE coalesce(df._array_text(p_config ->> 'parts'),
                                              to_json(p_config ->> 'parts')::text) END,
                           coalesce(df._object(p_config ->> 'headers'),
                                    to_jsonb(p_config ->> 'headers')),
                           (p_config ->> 'timeout')::int)
    END
$$;

-- The nodes of instance p_instance as pg_durable's df.nodes shows them, with statuses: the
-- stored one (pending, running, completed or failed; for composite nodes derived from their
-- children) and the inferred one, which also says `skipped` for nodes that will not run (the
-- untaken arm of an IF, what follows a failed step in a sequence, the losers of a decided
-- race), naming the node that decided it. Nothing for an instance the caller may not see.
--
-- dfc's own node kinds are left out: a df.retry or df.timeout is shown as the node it wraps (so
-- that df.start(..., max_attempts => n) shows the graph it was given) and a compensation
-- (`<->`) is not shown. Inside a loop, only the records of its latest iteration count.
CREATE FUNCTION df._node_rows(p_instance text)
RETURNS TABLE (node_id text, node_type text, query text, result_name text, left_node text,
               right_node text, status text, result jsonb, status_details jsonb,
               inferred_status text, inferred_status_from_ancestor_id text,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    inst record;
    plan_nodes jsonb;
    recs jsonb;
    ids text[] := '{}';
    pos jsonb := '{}';
    typ text[] := '{}';
    rows_test boolean[] := '{}';
    qry text[] := '{}';
    rname text[] := '{}';
    kid_list jsonb[] := '{}';
    st text[] := '{}';
    res jsonb[] := '{}';
    det jsonb[] := '{}';
    inf text[] := '{}';
    inf_from text[] := '{}';
    t_first timestamptz[] := '{}';
    t_last timestamptz[] := '{}';
    stack text[];
    v_id text;
    node jsonb;
    t text;
    k text[];
    r jsonb;
    i int;
    j int;
    kp int[];
    arm int;
    wrapper_name text;
BEGIN
    SELECT * INTO inst FROM df._instances x WHERE x.id = p_instance;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF inst.plan IS NULL THEN
        -- Not compiled yet (or its graph failed to compile): the graph's nodes, none started.
        RETURN QUERY
            SELECT g.node_id, g.node_type, g.query, g.result_name, g.left_node, g.right_node,
                   'pending'::text, NULL::jsonb, NULL::jsonb, 'pending'::text, NULL::text,
                   inst.created_at, coalesce(inst.updated_at, inst.created_at)
              FROM df._graph_nodes(inst.graph::jsonb) g;
        RETURN;
    END IF;
    plan_nodes := inst.plan -> 'nodes';
    -- The latest record of each node, leaving out those of superseded loop iterations (a key
    -- n2#3/n7 is node n7 in iteration 3 of loop n2; see dfc.runtime.keys).
    WITH recs_ AS (
        SELECT ns.*, string_to_array(ns.key, '/') AS parts
          FROM df._node_state ns WHERE ns.instance_id = p_instance),
    iterations AS (
        SELECT x.key, array_to_string(x.parts[1:u.o - 1] || split_part(u.seg, '#', 1), '/') AS loop_key,
               split_part(u.seg, '#', 2)::int AS n
          FROM recs_ x, unnest(x.parts) WITH ORDINALITY u(seg, o)
         WHERE u.seg ~ '#[0-9]{1,9}$'),
    stale AS (
        SELECT it.key FROM iterations it
         WHERE it.n < (SELECT max(it2.n) FROM iterations it2 WHERE it2.loop_key = it.loop_key))
    SELECT coalesce(jsonb_object_agg(l.node_id, jsonb_build_object(
               'status', l.status, 'result', l.result::jsonb, 'error', l.error, 'key', l.key,
               'started_at', l.started_at, 'finished_at', l.finished_at)), '{}')
      INTO recs
      FROM (SELECT DISTINCT ON (x.node_id) x.*
              FROM recs_ x WHERE x.key NOT IN (SELECT s.key FROM stale s)
             ORDER BY x.node_id, x.seq DESC) l;
    -- Walk the plan from its root, parents first, past dfc's wrappers.
    stack := ARRAY[inst.plan ->> 'root'];
    WHILE cardinality(stack) > 0 LOOP
        v_id := stack[cardinality(stack)];
        stack := stack[1:cardinality(stack) - 1];
        wrapper_name := NULL;
        WHILE plan_nodes -> v_id ->> 'type' IN ('RETRY', 'TIMEOUT') LOOP
            wrapper_name := coalesce(wrapper_name, plan_nodes -> v_id ->> 'result_name');
            v_id := plan_nodes -> v_id -> 'children' ->> 0;
        END LOOP;
        node := plan_nodes -> v_id;
        ids := ids || v_id;
        pos := pos || jsonb_build_object(v_id, cardinality(ids));
        t := node ->> 'type';
        k := ARRAY(SELECT df._plan_child(plan_nodes, e.v)
                     FROM jsonb_array_elements_text(coalesce(node -> 'children', '[]'))
                          WITH ORDINALITY e(v, o)
                    ORDER BY e.o);
        kid_list := kid_list || to_jsonb(k);
        typ := typ || t;
        rows_test := rows_test || (node -> 'config' ->> 'test' = 'rows');
        qry := qry || df._plan_query(t, node -> 'config', k);
        rname := rname || coalesce(wrapper_name, node ->> 'result_name');
        stack := stack || ARRAY(SELECT e.x FROM unnest(k) WITH ORDINALITY e(x, o) ORDER BY e.o DESC);
    END LOOP;
    -- Statuses and results, children first.
    FOR i IN REVERSE cardinality(ids)..1 LOOP
        t := typ[i];
        kp := df._positions(pos, kid_list[i]);
        r := recs -> ids[i];
        det[i] := NULL;
        inf[i] := NULL;
        IF t IN ('SQL', 'BREAK', 'SLEEP', 'WAIT_SCHEDULE', 'SIGNAL', 'HTTP', 'HTTP_MULTIPART') THEN
            st[i] := CASE WHEN r IS NULL OR r ->> 'status' = 'skipped' THEN 'pending'
                          WHEN r ->> 'status' = 'completed' THEN 'completed'
                          WHEN r ->> 'status' IN ('failed', 'cancelled') THEN 'failed'
                          ELSE 'running' END;
            res[i] := CASE st[i] WHEN 'completed' THEN coalesce(r -> 'result', 'null')
                                 WHEN 'failed' THEN r -> 'error' END;
            det[i] := CASE WHEN r IS NOT NULL THEN jsonb_build_object('execution_id', r ->> 'key') END;
            inf[i] := CASE WHEN r ->> 'status' = 'skipped' THEN 'skipped' END;
            t_first[i] := (r ->> 'started_at')::timestamptz;
            t_last[i] := coalesce((r ->> 'finished_at')::timestamptz, t_first[i]);
            CONTINUE;
        END IF;
        t_first[i] := (SELECT min(t_first[x]) FROM unnest(kp) x);
        t_last[i] := (SELECT max(t_last[x]) FROM unnest(kp) x);
        res[i] := NULL;
        IF t = 'THEN' THEN
            st[i] := CASE WHEN 'failed' IN (st[kp[1]], st[kp[2]]) THEN 'failed'
                          WHEN st[kp[2]] = 'completed' THEN 'completed'
                          WHEN st[kp[1]] = 'pending' AND st[kp[2]] = 'pending' THEN 'pending'
                          ELSE 'running' END;
            res[i] := CASE st[i] WHEN 'completed' THEN res[kp[2]]
                                 WHEN 'failed' THEN coalesce(res[kp[1]], res[kp[2]]) END;
        ELSIF t = 'IF' THEN
            -- A truthy test's children are [condition, then, else]; a rows test's [then, else].
            j := CASE WHEN rows_test[i] THEN 1 ELSE 2 END;
            arm := CASE WHEN st[kp[j]] <> 'pending' THEN kp[j]
                        WHEN st[kp[j + 1]] <> 'pending' THEN kp[j + 1] END;
            st[i] := CASE WHEN j = 2 AND st[kp[1]] = 'failed' THEN 'failed'
                          WHEN arm IS NOT NULL THEN st[arm]
                          WHEN j = 2 AND st[kp[1]] <> 'pending' THEN 'running'
                          ELSE 'pending' END;
            res[i] := CASE WHEN j = 2 AND st[kp[1]] = 'failed' THEN res[kp[1]]
                           WHEN arm IS NOT NULL THEN res[arm] END;
        ELSIF t = 'JOIN' THEN
            st[i] := CASE WHEN 'failed' = ANY (df._pick(st, kp)) THEN 'failed'
                          WHEN 'completed' = ALL (df._pick(st, kp)) THEN 'completed'
                          WHEN 'pending' = ALL (df._pick(st, kp)) THEN 'pending'
                          ELSE 'running' END;
            res[i] := CASE st[i]
                WHEN 'completed' THEN (SELECT jsonb_agg(res[e.x] ORDER BY e.o)
                                         FROM unnest(kp) WITH ORDINALITY e(x, o))
                WHEN 'failed' THEN (SELECT res[e.x] FROM unnest(kp) WITH ORDINALITY e(x, o)
                                     WHERE st[e.x] = 'failed' ORDER BY e.o LIMIT 1) END;
        ELSIF t = 'RACE' THEN
            arm := (SELECT e.x FROM unnest(kp) WITH ORDINALITY e(x, o)
                     WHERE st[e.x] = 'completed' ORDER BY e.o LIMIT 1);
            st[i] := CASE WHEN arm IS NOT NULL THEN 'completed'
                          WHEN 'failed' = ALL (df._pick(st, kp)) THEN 'failed'
                          WHEN 'pending' = ALL (df._pick(st, kp)) THEN 'pending'
                          ELSE 'running' END;
            res[i] := CASE WHEN arm IS NOT NULL THEN res[arm] END;
        ELSE  -- LOOP: it ends by a break or its condition, known from what follows it (below)
            st[i] := CASE WHEN 'failed' = ANY (df._pick(st, kp)) THEN 'failed'
                          WHEN 'pending' = ALL (df._pick(st, kp)) THEN 'pending'
                          ELSE 'running' END;
        END IF;
    END LOOP;
    IF inst.status = 'completed' THEN
        res[1] := coalesce(inst.result::jsonb, 'null'::jsonb);
    END IF;
    -- Parents first: a sequence whose second part started has finished its first part; then
    -- what will not run is skipped.
    FOR i IN 1..cardinality(ids) LOOP
        kp := df._positions(pos, kid_list[i]);
        IF typ[i] = 'THEN' AND st[kp[2]] <> 'pending' AND st[kp[1]] = 'running' THEN
            st[kp[1]] := 'completed';
        END IF;
        inf[i] := coalesce(inf[i], st[i]);
        IF inf[i] = 'skipped' THEN
            FOREACH j IN ARRAY kp LOOP
                IF st[j] IN ('pending', 'running') THEN
                    inf[j] := 'skipped';
                    inf_from[j] := coalesce(inf_from[i], ids[i]);
                END IF;
            END LOOP;
            CONTINUE;
        END IF;
        IF typ[i] = 'IF' THEN
            j := CASE WHEN rows_test[i] THEN 1 ELSE 2 END;
            arm := CASE WHEN st[kp[j]] <> 'pending' THEN kp[j + 1]
                        WHEN st[kp[j + 1]] <> 'pending' THEN kp[j] END;  -- the arm not taken
            IF arm IS NOT NULL AND st[arm] IN ('pending', 'running') THEN
                inf[arm] := 'skipped';
                inf_from[arm] := ids[i];
            END IF;
        ELSIF typ[i] = 'THEN' AND st[kp[1]] = 'failed' AND st[kp[2]] IN ('pending', 'running') THEN
            inf[kp[2]] := 'skipped';
            inf_from[kp[2]] := ids[i];
        ELSIF typ[i] = 'RACE' AND st[i] = 'completed' THEN
            FOREACH j IN ARRAY kp LOOP
                IF st[j] IN ('pending', 'running') THEN
                    inf[j] := 'skipped';
                    inf_from[j] := ids[i];
                END IF;
            END LOOP;
        END IF;
    END LOOP;
    -- Once the instance has ended nothing runs any more: what still ran completed with it, or
    -- was stopped (a race's loser, a step cut short by a failure or a cancellation).
    IF inst.status IN ('completed', 'failed', 'cancelled') THEN
        FOR i IN 1..cardinality(ids) LOOP
            IF st[i] = 'running' THEN
                st[i] := CASE WHEN inst.status = 'completed' AND inf[i] <> 'skipped' THEN 'completed'
                              ELSE 'failed' END;
                inf[i] := CASE WHEN inf[i] = 'skipped' THEN 'skipped' ELSE st[i] END;
            END IF;
        END LOOP;
    END IF;
    FOR i IN 1..cardinality(ids) LOOP
        kp := df._positions(pos, kid_list[i]);
        j := CASE WHEN typ[i] = 'IF' AND NOT rows_test[i] THEN 1 ELSE 0 END;  -- skip a condition
        node_id := ids[i];
        node_type := typ[i];
        query := qry[i];
        result_name := rname[i];
        left_node := ids[kp[1 + j]];
        right_node := CASE WHEN typ[i] = 'LOOP' THEN NULL ELSE ids[kp[2 + j]] END;
        status := st[i];
        result := CASE WHEN st[i] IN ('completed', 'failed') THEN res[i] END;
        status_details := det[i];
        inferred_status := inf[i];
        inferred_status_from_ancestor_id := inf_from[i];
        created_at := coalesce(t_first[i], inst.created_at);
        updated_at := coalesce(t_last[i], t_first[i], inst.created_at);
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION df._positions(p_pos jsonb, p_ids jsonb) RETURNS int[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg((p_pos ->> e.x)::int ORDER BY e.o), '{}')
      FROM jsonb_array_elements_text(p_ids) WITH ORDINALITY e(x, o)
$$;

CREATE FUNCTION df._pick(p_values text[], p_positions int[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(p_values[x] ORDER BY o), '{}')
      FROM unnest(p_positions) WITH ORDINALITY u(x, o)
$$;

-- A plan child's id, past dfc's wrappers (df.retry, df.timeout).
CREATE FUNCTION df._plan_child(p_nodes jsonb, p_id text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    WHILE p_nodes -> p_id ->> 'type' IN ('RETRY', 'TIMEOUT') LOOP
        p_id := p_nodes -> p_id -> 'children' ->> 0;
    END LOOP;
    RETURN p_id;
END $$;

-- Rendering (pg_durable's src/explain.rs, reproduced line for line) ------------------------------

CREATE FUNCTION df._mark(p_status text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_status WHEN 'completed' THEN ' ✓' WHEN 'failed' THEN ' ✗'
                         WHEN 'running' THEN ' ⏳' WHEN 'pending' THEN ' ○'
                         WHEN 'skipped' THEN ' ⊘' ELSE '' END
$$;

CREATE FUNCTION df._display(n jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_name text := coalesce(' |=> ''' || (n ->> 'result_name') || '''', '');
    v_query text := n ->> 'query';
    v_cfg jsonb := df._object(v_query);
    v text;
BEGIN
    CASE n ->> 'node_type'
    WHEN 'SQL' THEN
        v := coalesce(v_query, '?');
        RETURN 'SQL: ' || CASE WHEN octet_length(v) > 50 THEN left(v, 47) || '...' ELSE v END || v_name;
    WHEN 'SLEEP' THEN
        RETURN 'SLEEP ' || coalesce(v_query, '?') || 's' || v_name;
    WHEN 'WAIT_SCHEDULE' THEN
        RETURN 'WAIT ''' || coalesce(CASE WHEN jsonb_typeof(v_cfg -> 'cron_expr') = 'string'
                                          THEN v_cfg ->> 'cron_expr' END, '?') || '''' || v_name;
    WHEN 'HTTP', 'HTTP_MULTIPART' THEN
        IF v_cfg IS NULL THEN
            RETURN (n ->> 'node_type') || ' ? ?' || v_name;
        END IF;
        v := coalesce(CASE WHEN jsonb_typeof(v_cfg -> 'url') = 'string' THEN v_cfg ->> 'url' END, '?');
        RETURN (n ->> 'node_type') || ' '
            || coalesce(CASE WHEN jsonb_typeof(v_cfg -> 'method') = 'string' THEN v_cfg ->> 'method' END, 'POST')
            || ' ' || CASE WHEN octet_length(v) > 40 THEN left(v, 37) || '...' ELSE v END || v_name;
    WHEN 'SIGNAL' THEN
        RETURN 'SIGNAL '''
            || coalesce(CASE WHEN jsonb_typeof(v_cfg -> 'signal_name') = 'string'
                             THEN v_cfg ->> 'signal_name' END, '?') || ''''
            || CASE WHEN jsonb_typeof(v_cfg -> 'timeout_seconds') = 'number'
                         AND (v_cfg ->> 'timeout_seconds') ~ '^-?[0-9]+$'
                    THEN ' (' || (v_cfg ->> 'timeout_seconds') || 's)' ELSE '' END
            || v_name;
    WHEN 'LOOP' THEN
        RETURN CASE WHEN jsonb_typeof(v_cfg -> 'condition_node') = 'string' THEN 'LOOP (while)'
                    ELSE 'LOOP (infinite)' END || v_name;
    WHEN 'BREAK' THEN
        v := CASE WHEN jsonb_typeof(v_cfg -> 'break_value') = 'string' THEN v_cfg ->> 'break_value' END;
        RETURN CASE WHEN v IS NULL THEN 'BREAK'
                    WHEN octet_length(v) > 20 THEN 'BREAK ''' || left(v, 17) || '...'''
                    ELSE 'BREAK ''' || v || '''' END || v_name;
    WHEN 'IF' THEN
        RETURN 'IF' || v_name;
    WHEN 'JOIN' THEN
        RETURN 'JOIN (' || ((n ? 'left_node' AND n ->> 'left_node' IS NOT NULL)::int
                            + (n ? 'right_node' AND n ->> 'right_node' IS NOT NULL)::int
                            + coalesce(CASE WHEN jsonb_typeof(v_cfg -> 'extra_nodes') = 'array'
                                            THEN jsonb_array_length(v_cfg -> 'extra_nodes') END, 0))
            || ')' || v_name;
    WHEN 'THEN' THEN
        RETURN 'SEQUENCE';
    ELSE
        RETURN n ->> 'node_type';
    END CASE;
END $$;

-- The lines of the subtree at p_id (build_tree_recursive).
CREATE FUNCTION df._render_tree(p_id text, p_nodes jsonb, p_prefix text, p_last boolean,
                                p_status boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n jsonb := p_nodes -> p_id;
    v_connector text := CASE WHEN p_prefix = '' THEN '' WHEN p_last THEN '└─' ELSE '├─' END;
    v_out text := '';
    v_seq text[] := '{}';
    v_stack text[];
    v_x text;
    v_i int;
    m jsonb;
BEGIN
    IF n IS NULL THEN
        RETURN '';
    END IF;
    IF n ->> 'node_type' <> 'THEN' THEN
        v_out := p_prefix || v_connector || df._display(n)
            || CASE WHEN p_status THEN df._mark(n ->> 'status') ELSE '' END || E'\n';
        RETURN v_out || df._render_children(n, p_nodes,
            CASE WHEN p_prefix = '' THEN '    ' WHEN p_last THEN p_prefix || '    '
                 ELSE p_prefix || '│   ' END, p_status);
    END IF;
    -- A sequence is shown flat, one step a line after the first (collect_sequence).
    v_stack := ARRAY[p_id];
    WHILE cardinality(v_stack) > 0 LOOP
        v_x := v_stack[cardinality(v_stack)];
        v_stack := v_stack[1:cardinality(v_stack) - 1];
        m := p_nodes -> v_x;
        CONTINUE WHEN m IS NULL;
        IF m ->> 'node_type' = 'THEN' THEN
            IF m ->> 'right_node' IS NOT NULL THEN
                v_stack := v_stack || (m ->> 'right_node');
            END IF;
            IF m ->> 'left_node' IS NOT NULL THEN
                v_stack := v_stack || (m ->> 'left_node');
            END IF;
        ELSE
            v_seq := v_seq || v_x;
        END IF;
    END LOOP;
    FOR v_i IN 1..cardinality(v_seq) LOOP
        m := p_nodes -> v_seq[v_i];
        v_out := v_out || p_prefix || CASE WHEN v_i = 1 THEN v_connector ELSE '→ ' END
            || df._display(m) || CASE WHEN p_status THEN df._mark(m ->> 'status') ELSE '' END
            || E'\n';
        IF m ->> 'node_type' NOT IN ('THEN', 'SQL', 'SLEEP', 'WAIT_SCHEDULE', 'HTTP', 'HTTP_MULTIPART') THEN
            v_out := v_out || df._render_children(m, p_nodes, p_prefix || '    ', p_status);
        END IF;
    END LOOP;
    RETURN v_out;
END $$;

-- The lines under a node (render_children).
CREATE FUNCTION df._render_children(n jsonb, p_nodes jsonb, p_prefix text, p_status boolean)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_cfg jsonb := df._object(n ->> 'query');
    v_cond text := CASE WHEN jsonb_typeof(v_cfg -> 'condition_node') = 'string'
                        THEN v_cfg ->> 'condition_node' END;
    v_out text := '';
    v_branches text[] := '{}';
    v_i int;
BEGIN
    CASE n ->> 'node_type'
    WHEN 'LOOP' THEN
        IF n ->> 'left_node' IS NOT NULL THEN
            v_out := v_out || p_prefix || E'↻ body:\n'
                || df._render_tree(n ->> 'left_node', p_nodes, p_prefix || '  ', true, p_status);
        END IF;
        IF v_cond IS NOT NULL THEN
            v_out := v_out || p_prefix || E'? while:\n'
                || df._render_tree(v_cond, p_nodes, p_prefix || '  ', true, p_status);
        END IF;
    WHEN 'IF' THEN
        IF v_cond IS NOT NULL THEN
            v_out := v_out || p_prefix || E'? condition:\n'
                || df._render_tree(v_cond, p_nodes, p_prefix || '  ', true, p_status);
        END IF;
        IF n ->> 'left_node' IS NOT NULL THEN
            v_out := v_out || p_prefix || E'✓ then:\n'
                || df._render_tree(n ->> 'left_node', p_nodes, p_prefix || '  ', true, p_status);
        END IF;
        IF n ->> 'right_node' IS NOT NULL THEN
            v_out := v_out || p_prefix || E'✗ else:\n'
                || df._render_tree(n ->> 'right_node', p_nodes, p_prefix || '  ', true, p_status);
        END IF;
    WHEN 'JOIN', 'RACE' THEN
        IF n ->> 'left_node' IS NOT NULL THEN
            v_branches := v_branches || (n ->> 'left_node');
        END IF;
        IF n ->> 'right_node' IS NOT NULL THEN
            v_branches := v_branches || (n ->> 'right_node');
        END IF;
        IF n ->> 'node_type' = 'JOIN' AND jsonb_typeof(v_cfg -> 'extra_nodes') = 'array' THEN
            v_branches := v_branches || ARRAY(
                SELECT e FROM jsonb_array_elements_text(v_cfg -> 'extra_nodes') WITH ORDINALITY x(e, o)
                 ORDER BY o);
        END IF;
        FOR v_i IN 1..cardinality(v_branches) LOOP
            v_out := v_out || p_prefix || '║ branch ' || v_i || E':\n'
                || df._render_tree(v_branches[v_i], p_nodes, p_prefix || '  ',
                                   v_i = cardinality(v_branches), p_status);
        END LOOP;
    ELSE
        NULL;
    END CASE;
    RETURN v_out;
END $$;

-- The tree of a node table (id -> {node_type, query, result_name, left_node, right_node,
-- status}): lines padded to the longest plus 4, no newline at the end.
CREATE FUNCTION df._render(p_root text, p_nodes jsonb, p_status boolean) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    WITH lines AS (
        SELECT l, o FROM regexp_split_to_table(
                   rtrim(df._render_tree(p_root, p_nodes, '', true, p_status), E' \t\r\n'),
                   E'\r?\n') WITH ORDINALITY t(l, o))
    SELECT string_agg(rpad(l, (SELECT max(length(l)) FROM lines) + 4), E'\n' ORDER BY o)
      FROM lines
$$;

CREATE FUNCTION df._node_table(p_rows jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(r ->> 'node_id', r), '{}') FROM jsonb_array_elements(p_rows) r
$$;

CREATE FUNCTION df.explain(input text) RETURNS text LANGUAGE plpgsql STRICT AS $$
DECLARE
    v text := btrim(input, E' \t\r\n');
    v_graph jsonb;
    v_inst record;
    v_rows jsonb;
    v_out text;
    v_value text;
BEGIN
    IF v ~ '^[0-9a-fA-F]{8}$' THEN
        SELECT * INTO v_inst FROM df._instances WHERE id = v;
        IF NOT FOUND THEN
            RETURN format('Instance ''%s'' not found', v);
        END IF;
        SELECT jsonb_agg(jsonb_build_object(
                   'node_id', r.node_id, 'node_type', r.node_type, 'query', r.query,
                   'result_name', r.result_name, 'left_node', r.left_node,
                   'right_node', r.right_node, 'status', r.inferred_status))
          INTO v_rows FROM df._node_rows(v) r;
        IF v_rows IS NULL THEN
            RETURN format('No nodes found for instance ''%s''', v);
        END IF;
        v_out := format('Instance: %s%s', v, coalesce(' (' || v_inst.label || ')', '')) || E'\n'
            || 'Status:   '
            || CASE v_inst.status WHEN 'completed' THEN '✓' WHEN 'failed' THEN '✗'
                                  WHEN 'cancelled' THEN '✗' WHEN 'running' THEN '⏳' ELSE '○' END
            || ' ' || initcap(v_inst.status) || E'\n';
        v_value := df._output(v_inst.status, v_inst.result, v_inst.error);
        IF v_value IS NOT NULL THEN
            v_out := v_out || 'Output:   '
                || CASE WHEN octet_length(v_value) > 60 THEN left(v_value, 57) || '...'
                        ELSE v_value END || E'\n';
        END IF;
        RETURN v_out || E'\n' || df._render(v_rows -> 0 ->> 'node_id', df._node_table(v_rows), true);
    END IF;
    v_graph := df._object(v);
    IF v_graph IS NULL OR NOT v_graph ? 'node_type' THEN
        v_graph := NULL;
        IF v ~ '(~>|\|=>|\?>|!>|@>|df\.)' THEN
            BEGIN
                EXECUTE 'SELECT ' || v INTO v_value;  -- as pg_durable: the caller's own rights
            EXCEPTION WHEN OTHERS THEN
                RETURN 'Failed to evaluate expression: ' || SQLERRM;
            END;
            IF v_value IS NULL THEN
                RETURN 'Expression returned NULL';
            END IF;
            v_graph := df._object(v_value);
            IF v_graph IS NULL OR NOT v_graph ? 'node_type' THEN
                RETURN 'Failed to parse Durofut JSON: the expression did not build a graph';
            END IF;
        ELSIF upper(ltrim(v)) ~ ('^(SELECT |INSERT |UPDATE |DELETE |WITH |CREATE |ALTER |DROP |'
                                 'CALL |DO |TRUNCATE |GRANT |REVOKE |EXPLAIN |SELECT\n|INSERT\n|'
                                 'UPDATE\n|DELETE\n|WITH\n)') THEN
            v_graph := jsonb_build_object('node_type', 'SQL', 'query', v);
        ELSE
            RETURN E'Cannot explain input: not a valid Durofut JSON, instance ID, SQL statement, or DSL expression.\n'
                'Hint: DSL expressions use df.*() functions and operators like ~>, |=>, &, |.';
        END IF;
    END IF;
    SELECT jsonb_agg(to_jsonb(g)) INTO v_rows FROM df._graph_nodes(v_graph) g;
    RETURN df._render('N1', df._node_table(v_rows), false);
END $$;

CREATE FUNCTION df.instance_nodes(instance_id_param text)
RETURNS TABLE (node_id text, node_type text, query text, result_name text, left_node text,
               right_node text, status text, result text, status_details text,
               inferred_status text, inferred_status_from_ancestor_id text,
               updated_at timestamptz)
LANGUAGE sql STRICT STABLE AS $$
    SELECT r.node_id, r.node_type, r.query, r.result_name, r.left_node, r.right_node, r.status,
           r.result::text, r.status_details::text, r.inferred_status,
           r.inferred_status_from_ancestor_id, r.updated_at
      FROM df._node_rows(instance_id_param) r
$$;

-- pg_durable ≤ 0.2.3's shape, kept by 0.2.4 for compatibility (no inferred status).
CREATE FUNCTION df.instance_nodes(instance_id_param text, _last_n_executions integer)
RETURNS TABLE (execution_id bigint, node_id text, node_type text, query text, result_name text,
               left_node text, right_node text, status text, result text,
               updated_at timestamptz)
LANGUAGE sql STRICT STABLE AS $$
    SELECT 1::bigint, r.node_id, r.node_type, r.query, r.result_name, r.left_node, r.right_node,
           r.status, r.result::text, r.updated_at
      FROM df._node_rows(instance_id_param) r
$$;

CREATE VIEW df.instances WITH (security_barrier) AS
SELECT i.id, i.label,
       CASE WHEN i.plan IS NOT NULL THEN df._plan_child(i.plan -> 'nodes', i.plan ->> 'root') END
           AS root_node,
       i.status, to_regrole(i.created_by) AS submitted_by, current_database()::text AS database,
       i.created_at, coalesce(i.updated_at, i.finished_at, i.started_at, i.created_at) AS updated_at,
       CASE WHEN i.status = 'completed' THEN i.finished_at END AS completed_at
  FROM df._instances i;
COMMENT ON VIEW df.instances IS
    'The current role''s instances in pg_durable''s columns (dfc.instances holds them all).';

CREATE VIEW df.nodes WITH (security_barrier) AS
SELECT r.node_id AS id, i.id AS instance_id, r.node_type, r.query, r.result_name, r.left_node,
       r.right_node, r.status, CASE WHEN r.status IN ('completed', 'failed') THEN r.result END AS result,
       CASE WHEN r.status = 'failed' THEN r.result ->> 'message' END AS error,
       to_regrole(i.created_by) AS submitted_by, current_database()::text AS database,
       r.created_at, r.updated_at, r.status_details
  FROM df._instances i CROSS JOIN LATERAL df._node_rows(i.id) r;
COMMENT ON VIEW df.nodes IS
    'The nodes of the current role''s instances in pg_durable''s columns (df.explain shows them '
    'as a tree).';

CREATE FUNCTION df.list_instances(status_filter text DEFAULT NULL, limit_count integer DEFAULT 100)
RETURNS TABLE (instance_id text, label text, function_name text, status text,
               execution_count bigint, output text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM df._check_limit(limit_count);
    RETURN QUERY
        SELECT i.id, i.label, i.workflow, i.status, 1::bigint,
               df._output(i.status, i.result, i.error)
          FROM df._instances i
         WHERE status_filter IS NULL OR i.status = status_filter
         ORDER BY i.created_at DESC, i.id
         LIMIT limit_count;
END $$;

CREATE FUNCTION df._check_limit(p_limit integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'limit_count must be at least 1' USING ERRCODE = '22023';
    ELSIF p_limit > 1000 THEN
        RAISE EXCEPTION 'limit_count must be at most 1000, not %', p_limit
              USING ERRCODE = '22023', HINT = 'page through the rest with after_cursor';
    END IF;
END $$;

-- Pages newest first: next_cursor (the same on every row of a page, NULL on the last page) is
-- passed as after_cursor to get the next one.
CREATE FUNCTION df.list_instances(status_filter text, limit_count integer, label_filter text,
                                  after_cursor text DEFAULT NULL)
RETURNS TABLE (instance_id text, label text, function_name text, status text,
               execution_count bigint, output text, created_at timestamptz,
               completed_at timestamptz, next_cursor text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_after_at numeric;
    v_after_id text;
    v_next text;
BEGIN
    PERFORM df._check_limit(limit_count);
    IF after_cursor IS NOT NULL THEN
        BEGIN
            v_after_id := convert_from(decode(after_cursor, 'hex'), 'UTF8');
            v_after_at := split_part(v_after_id, ',', 1)::numeric;
            v_after_id := split_part(v_after_id, ',', 2);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'after_cursor % is not a cursor df.list_instances returned', after_cursor
                  USING ERRCODE = '22023';
        END;
    END IF;
    RETURN QUERY
        WITH page AS (
            SELECT i.*, extract(epoch FROM i.created_at) AS at_us
              FROM df._instances i
             WHERE (status_filter IS NULL OR i.status = status_filter)
               AND (label_filter IS NULL OR i.label = label_filter)
               AND (after_cursor IS NULL OR extract(epoch FROM i.created_at) < v_after_at
                    OR (extract(epoch FROM i.created_at) = v_after_at AND i.id > v_after_id))
             ORDER BY i.created_at DESC, i.id
             LIMIT limit_count + 1),
        numbered AS (SELECT p.*, row_number() OVER (ORDER BY p.created_at DESC, p.id) AS n,
                            count(*) OVER () AS total FROM page p)
        SELECT x.id, x.label, x.workflow, x.status, 1::bigint,
               df._output(x.status, x.result, x.error), x.created_at,
               CASE WHEN x.status = 'completed' THEN x.finished_at END,
               CASE WHEN x.total > limit_count THEN
                   (SELECT encode(convert_to(y.at_us::text || ',' || y.id, 'UTF8'), 'hex')
                      FROM numbered y WHERE y.n = limit_count) END
          FROM numbered x WHERE x.n <= limit_count ORDER BY x.n;
END $$;

CREATE FUNCTION df.instance_info(instance_id text)
RETURNS TABLE (instance_id text, label text, function_name text, function_version text,
               current_execution_id bigint, status text, output text)
LANGUAGE sql STRICT STABLE AS $$
    SELECT i.id, i.label, i.workflow, i.version::text, 1::bigint, i.status,
           df._output(i.status, i.result, i.error)
      FROM df._instances i WHERE i.id = instance_info.instance_id
$$;

-- System-wide counts (not limited to the caller's instances): superusers, the dfc owner and
-- roles granted usage with_grant.
CREATE FUNCTION df.metrics()
RETURNS TABLE (total_instances bigint, running_instances bigint, completed_instances bigint,
               failed_instances bigint, total_executions bigint, total_events bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*), count(*) FILTER (WHERE status = 'running'),
           count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
           count(*) FILTER (WHERE status <> 'pending'), (SELECT count(*) FROM dfc.history)
      FROM dfc.instances
$$;

-- == administration ===============================================================================

CREATE FUNCTION df._grant_usage(p_caller text, p_role text, p_include_http boolean,
                                p_with_grant boolean, p_set_search_path boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_role regrole := quote_ident(p_role)::regrole;  -- role "x" does not exist
    v_grantor dfc.grants;
    v_path text;
BEGIN
    PERFORM dfc.acting_role(p_caller);
    SELECT * INTO v_grantor FROM dfc.grants WHERE role = p_caller;
    IF NOT dfc.is_admin(p_caller) AND NOT coalesce(v_grantor.with_grant, false) THEN
        RAISE EXCEPTION 'role "%" may not grant usage of the df schema', p_caller
              USING ERRCODE = '42501',
                    HINT = 'superusers, the owner of schema dfc and roles granted usage with '
                           'with_grant => true may';
    END IF;
    IF p_include_http AND NOT dfc.may_http(p_caller) THEN
        RAISE EXCEPTION 'role "%" may not grant include_http, which it does not have', p_caller
              USING ERRCODE = '42501';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA df TO %s', v_role);
    IF p_with_grant THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION df.metrics() TO %s', v_role);
    END IF;
    INSERT INTO dfc.grants AS g (role, include_http, with_grant, granted_by)
    VALUES (p_role, coalesce(p_include_http, false), coalesce(p_with_grant, false), p_caller)
    ON CONFLICT (role) DO UPDATE
       SET include_http = g.include_http OR excluded.include_http,
           with_grant = g.with_grant OR excluded.with_grant,
           granted_by = excluded.granted_by, granted_at = now();
    PERFORM dfc.create_executor(v_role);
    IF coalesce(p_set_search_path, true) THEN
        SELECT substring(c FROM '^search_path=(.*)$') INTO v_path
          FROM pg_db_role_setting s, pg_database d, unnest(s.setconfig) c
         WHERE s.setrole = v_role AND s.setdatabase = d.oid AND d.datname = current_database()
           AND c LIKE 'search_path=%';
        IF v_path IS NULL OR NOT 'df' = ANY (string_to_array(replace(v_path, ' ', ''), ',')) THEN
            BEGIN
                EXECUTE format('ALTER ROLE %s IN DATABASE %I SET search_path = %s', v_role,
                               current_database(),
                               coalesce(v_path || ', df', '"$user", public, df'));
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE WARNING 'could not add df to the search_path of role "%": %', p_role, SQLERRM
                      USING HINT = 'the operators ~>, |=>, ... live in schema df: add it to the '
                                   'role''s search_path yourself';
            END;
        END IF;
    END IF;
    RAISE NOTICE 'dfc: granted df usage privileges to "%"', p_role;
END $$;

CREATE FUNCTION df.grant_usage(p_role text, include_http boolean DEFAULT false,
                               with_grant boolean DEFAULT false,
                               set_search_path boolean DEFAULT true) RETURNS void
LANGUAGE sql AS $$
    SELECT df._grant_usage(current_user, p_role, include_http, with_grant, set_search_path)
$$;

CREATE FUNCTION df._revoke_usage(p_caller text, p_role text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_role regrole := quote_ident(p_role)::regrole;
BEGIN
    PERFORM dfc.acting_role(p_caller);
    IF NOT dfc.is_admin(p_caller)
       AND NOT EXISTS (SELECT 1 FROM dfc.grants WHERE role = p_caller AND with_grant) THEN
        RAISE EXCEPTION 'role "%" may not revoke usage of the df schema', p_caller
              USING ERRCODE = '42501',
                    HINT = 'superusers, the owner of schema dfc and roles granted usage with '
                           'with_grant => true may';
    END IF;
    EXECUTE format('REVOKE USAGE ON SCHEMA df FROM %s', v_role);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION df.metrics() FROM %s', v_role);
    DELETE FROM dfc.grants WHERE role = p_role;
    PERFORM dfc.drop_executor(v_role);
    RAISE NOTICE 'dfc: revoked df usage privileges granted by "%" from "%"', p_caller, p_role;
END $$;

CREATE FUNCTION df.revoke_usage(p_role text) RETURNS void LANGUAGE sql AS $$
    SELECT df._revoke_usage(current_user, p_role)
$$;

-- dfc's version (recorded by the dfc that last migrated the schema) and the schema's.
CREATE FUNCTION df.version() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT value #>> '{}' FROM dfc.settings WHERE key = 'dfc_version'), 'unknown')
        || ' (dfc schema ' || (SELECT max(version) FROM dfc.schema_migrations) || ')'
$$;

-- == privileges ===================================================================================
-- Schema df's USAGE (given by df.grant_usage) is the gate; past it, everything is the caller's
-- own. df.metrics counts everyone's instances: admins only.

GRANT SELECT ON df._instances, df._node_state, df.instances, df.nodes TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON df.vars TO PUBLIC;
REVOKE EXECUTE ON FUNCTION df.metrics() FROM PUBLIC;
-- dfc.is_admin stays callable: the views run it as their caller.
REVOKE EXECUTE ON FUNCTION dfc.acting_role(text), dfc.may_start(text),
    dfc.may_http(text), dfc.check_owner(text, text), dfc.start_detached(
        text, text, text, integer, interval, text) FROM PUBLIC;
