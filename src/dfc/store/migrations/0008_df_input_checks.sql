-- 0008: bad input to the df functions (issue 11, docs/sql.md "Bad input"): one clear error,
-- nothing written.
--
-- The rule. Builders and reads keep SQL's STRICT convention, as pg_durable does: a NULL
-- argument gives NULL (a NULL graph stays NULL until df.start refuses it; df.status of NULL is
-- NULL like that of an unknown id). Every function that writes or waits refuses a NULL where it
-- needs a value, with SQLSTATE 22004 and "<function> needs <argument>, not NULL" - before, a
-- NULL made df.signal, df.cancel, df.setvar and df.await_instance return NULL having done
-- nothing, and df.grant_usage / df.revoke_usage fail with a syntax error. A value quoted in a
-- message is cut to 64 characters, so a megabyte of garbage gives a one-line error.

-- The value, or a 22004 error naming the function and the argument it needs. STABLE, not
-- IMMUTABLE: an immutable one would be folded while planning, raising for a branch never taken.
CREATE FUNCTION df._required(p_function text, p_argument text, p_value anyelement)
RETURNS anyelement LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% needs %, not NULL', p_function, p_argument USING ERRCODE = '22004';
    END IF;
    RETURN p_value;
END $$;

-- A value as messages quote it: at most 64 characters, cut with an ellipsis.
CREATE FUNCTION df._quoted(p_value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(p_value) > 64 THEN left(p_value, 64) || '…' ELSE p_value END
$$;

-- == writes ======================================================================================

-- df.start: a NULL or blank workflow is refused before anything else is looked at (a blank one
-- used to start an instance with an empty SQL step, which could only fail).
CREATE OR REPLACE FUNCTION df.start(fut text, label text DEFAULT NULL, database text DEFAULT NULL,
                                    transaction_mode text DEFAULT 'caller',
                                    max_attempts integer DEFAULT 1,
                                    max_backoff interval DEFAULT '16 seconds',
                                    on_failure text DEFAULT 'fail')
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF btrim(df._required('df.start', 'a workflow', fut), E' \t\r\n') = '' THEN
        RAISE EXCEPTION 'df.start needs a workflow, not an empty text' USING ERRCODE = '22023',
              HINT = 'pass a SQL step or a graph, e.g. df.start(''SELECT 1'')';
    END IF;
    -- Values longer than any valid one are quoted cut in df._start's messages.
    RETURN df._start(current_user, fut, label, df._quoted(database),
                     df._quoted(btrim(transaction_mode)), max_attempts, max_backoff,
                     df._quoted(btrim(on_failure)));
END $$;

CREATE OR REPLACE FUNCTION df.signal(instance_id text, signal_name text,
                                     signal_data text DEFAULT '{}')
RETURNS text LANGUAGE sql CALLED ON NULL INPUT AS $$
    SELECT df._signal(current_user, df._required('df.signal', 'an instance_id', instance_id),
                      df._required('df.signal', 'a signal_name', signal_name),
                      df._required('df.signal', 'signal_data (leave it out to send {})',
                                   signal_data))
$$;

CREATE OR REPLACE FUNCTION df.cancel(instance_id text, reason text DEFAULT 'Cancelled by user')
RETURNS text LANGUAGE sql CALLED ON NULL INPUT AS $$
    SELECT df._cancel(current_user, df._required('df.cancel', 'an instance_id', instance_id),
                      df._required('df.cancel', 'a reason (leave it out for the default)',
                                   reason))
$$;

CREATE OR REPLACE FUNCTION df.grant_usage(p_role text, include_http boolean DEFAULT false,
                                          with_grant boolean DEFAULT false,
                                          set_search_path boolean DEFAULT true) RETURNS void
LANGUAGE sql AS $$
    SELECT df._grant_usage(current_user, df._required('df.grant_usage', 'a role name', p_role),
                           include_http, with_grant, set_search_path)
$$;

CREATE OR REPLACE FUNCTION df.revoke_usage(p_role text) RETURNS void LANGUAGE sql AS $$
    SELECT df._revoke_usage(current_user, df._required('df.revoke_usage', 'a role name', p_role))
$$;

-- Variables: a NULL name or value used to return NULL and set nothing; an empty name was stored
-- though no {name} in a step can refer to it.
CREATE FUNCTION df._check_var_name(p_function text, p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF btrim(df._required(p_function, 'a variable name', p_name)) = '' THEN
        RAISE EXCEPTION '% needs a variable name, not an empty text', p_function
              USING ERRCODE = '22023', HINT = 'steps refer to a variable as {name}';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION df.setvar(name text, value text) RETURNS text
LANGUAGE plpgsql CALLED ON NULL INPUT AS $$
#variable_conflict use_column
BEGIN
    PERFORM df._not_in_workflow('df.setvar() cannot be called inside a workflow - set variables '
                                'before starting the workflow');
    PERFORM df._check_var_name('df.setvar', name);
    PERFORM df._required('df.setvar', 'a value (df.unsetvar removes a variable)', value);
    IF name IN ('sys_instance_id', 'sys_label') THEN
        RAISE EXCEPTION '% is set by dfc and cannot be given', name
              USING ERRCODE = '22023', HINT = 'choose another name';
    END IF;
    INSERT INTO df.vars AS v (name, value) VALUES (setvar.name, setvar.value)
    ON CONFLICT (owner, name) DO UPDATE SET value = excluded.value;
    RETURN 'OK';
END $$;

CREATE OR REPLACE FUNCTION df.unsetvar(name text) RETURNS text
LANGUAGE plpgsql CALLED ON NULL INPUT AS $$
#variable_conflict use_column
BEGIN
    PERFORM df._not_in_workflow('df.unsetvar() cannot be called inside a workflow - manage '
                                'variables before starting the workflow');
    PERFORM df._required('df.unsetvar', 'a variable name', name);
    DELETE FROM df.vars v WHERE v.name = unsetvar.name;
    RETURN 'OK';
END $$;

-- == waits =======================================================================================

-- A NULL id or timeout used to return NULL at once, as if the instance had ended.
CREATE OR REPLACE FUNCTION df.await_instance(instance_id text, timeout_seconds integer DEFAULT 30)
RETURNS text LANGUAGE plpgsql CALLED ON NULL INPUT AS $$
DECLARE
    v_status text;
    v_deadline timestamptz;
BEGIN
    PERFORM df._not_in_workflow(
        'df.await_instance() cannot be called inside a workflow - it would block a worker '
        'thread (and self-deadlock if waiting on the current instance). Use df.signal() and '
        'df.wait_for_signal() for cross-workflow coordination.');
    PERFORM df._required('df.await_instance', 'an instance_id', instance_id);
    IF df._required('df.await_instance', 'timeout_seconds', timeout_seconds) <= 0 THEN
        RAISE EXCEPTION 'Timeout must be positive' USING ERRCODE = '22023';
    END IF;
    v_deadline := clock_timestamp() + make_interval(secs => timeout_seconds);
    LOOP
        SELECT i.status INTO v_status FROM df._instances i WHERE i.id = instance_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'Instance not found: %', df._quoted(instance_id)
                  USING ERRCODE = 'P0002';
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

CREATE OR REPLACE FUNCTION df.wait_for_completion(instance_id text,
                                                  timeout_seconds integer DEFAULT 30)
RETURNS text LANGUAGE plpgsql CALLED ON NULL INPUT AS $$
BEGIN
    RAISE WARNING 'df.wait_for_completion() is deprecated; use df.await_instance() instead';
    RETURN df.await_instance(instance_id, timeout_seconds);
END $$;

-- == messages that quoted any length =============================================================

CREATE OR REPLACE FUNCTION dfc.check_owner(p_role text, p_id text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_id = '' THEN
        RAISE EXCEPTION 'Instance ID cannot be empty' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dfc.instances i
                    WHERE i.id = p_id AND (i.created_by = p_role OR dfc.is_admin(p_role))) THEN
        RAISE EXCEPTION 'Instance not found or access denied: %', df._quoted(p_id)
              USING ERRCODE = '42501';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION df._check_method(p_method text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_method IS NULL OR upper(btrim(p_method)) IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD') THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '% is not an HTTP method dfc supports', quote_literal(df._quoted(p_method))
          USING ERRCODE = '22023', HINT = 'use one of GET, POST, PUT, PATCH, DELETE, HEAD';
END $$;

-- Pages newest first (migration 0005); a bad after_cursor is quoted cut.
CREATE OR REPLACE FUNCTION df.list_instances(status_filter text, limit_count integer,
                                             label_filter text, after_cursor text DEFAULT NULL)
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
            RAISE EXCEPTION 'after_cursor % is not a cursor df.list_instances returned',
                  df._quoted(after_cursor) USING ERRCODE = '22023';
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
