-- 0004: instances started from SQL, and running every instance as the role that started it.
--
-- An instance started with df.start(...) (the SQL surface, migration 0005) carries the graph it
-- was given, in pg_durable's JSON form, and no workflow version yet: a worker compiles the graph
-- with the same checker and emitter as .df files, deploys the plan and pins the instance to it
-- before running its first step.
ALTER TABLE dfc.instances ALTER COLUMN workflow DROP NOT NULL;
ALTER TABLE dfc.instances ALTER COLUMN version DROP NOT NULL;
ALTER TABLE dfc.instances ADD COLUMN graph text;
ALTER TABLE dfc.instances ADD CONSTRAINT instances_version_or_graph
    CHECK ((workflow IS NOT NULL AND version IS NOT NULL) OR graph IS NOT NULL);
COMMENT ON COLUMN dfc.instances.graph IS
    'The pg_durable JSON graph given to df.start; NULL for instances of a deployed workflow.';
COMMENT ON COLUMN dfc.instances.created_by IS
    'The role that started the instance; every SQL step runs with its privileges.';

-- Where the worker runs a step as another role. A step must not be able to leave that role:
-- PostgreSQL refuses SET ROLE, RESET ROLE and SET SESSION AUTHORIZATION inside a SECURITY
-- DEFINER function (also in DO blocks and functions it calls), so each role that may start
-- instances gets two such functions, owned by it: rows_<oid> for statements that return rows
-- (the caller gives the column definition list), exec_<oid> for the others (returns the affected
-- row count of the last statement). The schema is usable by nobody but its owner, so the roles
-- that own these functions cannot name them to alter or replace them.
CREATE SCHEMA dfc_run;
REVOKE ALL ON SCHEMA dfc_run FROM PUBLIC;
COMMENT ON SCHEMA dfc_run IS
    'Per-role step executors (dfc.create_executor): the worker runs steps as their role here.';

-- Create (or re-create) the executors of p_role. The caller must be able to give objects to
-- p_role (a superuser, or a member of p_role). Called by df.grant_usage.
CREATE OR REPLACE FUNCTION dfc.create_executor(p_role regrole)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_rows text := format('dfc_run.%I', 'rows_' || p_role::oid);
    v_exec text := format('dfc_run.%I', 'exec_' || p_role::oid);
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION %s(q text) RETURNS SETOF record LANGUAGE plpgsql '
        'SECURITY DEFINER AS $body$BEGIN RETURN QUERY EXECUTE q; END$body$', v_rows);
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION %s(q text) RETURNS bigint LANGUAGE plpgsql '
        'SECURITY DEFINER AS $body$DECLARE n bigint; BEGIN EXECUTE q; '
        'GET DIAGNOSTICS n = ROW_COUNT; RETURN n; END$body$', v_exec);
    EXECUTE format('REVOKE ALL ON FUNCTION %s(text) FROM PUBLIC', v_rows);
    EXECUTE format('REVOKE ALL ON FUNCTION %s(text) FROM PUBLIC', v_exec);
    EXECUTE format('ALTER FUNCTION %s(text) OWNER TO %s', v_rows, p_role);
    EXECUTE format('ALTER FUNCTION %s(text) OWNER TO %s', v_exec, p_role);
END $$;

-- Drop the executors of p_role (df.revoke_usage); a no-op when it has none.
CREATE OR REPLACE FUNCTION dfc.drop_executor(p_role regrole)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP FUNCTION IF EXISTS dfc_run.%I(text)', 'rows_' || p_role::oid);
    EXECUTE format('DROP FUNCTION IF EXISTS dfc_run.%I(text)', 'exec_' || p_role::oid);
END $$;
