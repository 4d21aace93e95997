-- needs: worker
-- Every step runs as the role that called df.start, never as the worker: with its privileges,
-- and with no way out of it (RESET ROLE, SET ROLE, SET SESSION AUTHORIZATION, set_config,
-- plain or in a DO block, all fail the step). Another role sees none of it.
\c - postgres
CREATE TABLE public.regress_private (secret text);
INSERT INTO public.regress_private VALUES ('the worker''s');
\c - regress_alice
CREATE TABLE alice_log (who text, note text);
SELECT df.start(
    'SELECT current_user AS who' |=> 'w'
    ~> 'INSERT INTO alice_log VALUES ($w, ''step'') RETURNING who',
    'who-runs'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id')::jsonb->'rows'->0->>'who' AS who;
SELECT who, note FROM alice_log;
-- the role's privileges, not the worker's
SELECT df.start('SELECT secret FROM public.regress_private', 'read-private') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT error LIKE '%permission denied for table regress_private%' AS denied
  FROM df.nodes WHERE instance_id = :'instance_id' AND node_type = 'SQL';
-- no way out of the role
CREATE TABLE escapes (attempt text, status text, refused boolean);
SELECT df.start('RESET ROLE' ~> 'INSERT INTO public.regress_private VALUES (''reset role'')', 'escape-reset-role') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'RESET ROLE', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT df.start('SET ROLE postgres' ~> 'INSERT INTO public.regress_private VALUES (''set role'')', 'escape-set-role') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'SET ROLE', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT df.start('SET SESSION AUTHORIZATION postgres' ~> 'INSERT INTO public.regress_private VALUES (''session authorization'')', 'escape-session-authorization') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'SET SESSION AUTHORIZATION', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT df.start($$SELECT set_config('role', 'postgres', false)$$ ~> 'INSERT INTO public.regress_private VALUES (''set_config'')', 'escape-set-config') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'set_config', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT df.start($step$DO $do$ BEGIN RESET ROLE; INSERT INTO public.regress_private VALUES ('do reset role'); END $do$$step$, 'escape-do-reset-role') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'DO: RESET ROLE', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT df.start($step$DO $do$ BEGIN EXECUTE 'SET ROLE postgres'; INSERT INTO public.regress_private VALUES ('do set role'); END $do$$step$, 'escape-do-set-role') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'DO: SET ROLE', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT df.start($step$DO $do$ BEGIN SET SESSION AUTHORIZATION postgres; INSERT INTO public.regress_private VALUES ('do session'); END $do$$step$, 'escape-do-session-authorization') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'DO: SET SESSION AUTHORIZATION', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT df.start('SELECT 1; RESET ROLE; INSERT INTO public.regress_private VALUES (''second statement'')', 'escape-second-statement') AS id \gset
SELECT df.await_instance(:'id') AS status \gset
INSERT INTO escapes SELECT 'a second statement', :'status', bool_or(error LIKE '%security-definer%') FROM df.nodes WHERE instance_id = :'id';
SELECT attempt, status, refused FROM escapes;
\c - postgres
SELECT secret FROM public.regress_private;
-- another role sees none of it, and cannot signal or cancel it
\c - regress_alice
SELECT df.start(df.wait_for_signal('go', 30), 'alice-waits') AS alice_id \gset
\c - regress_bob
SELECT count(*) AS seen FROM df.list_instances() WHERE instance_id = :'alice_id';
SELECT count(*) AS seen FROM df.instances;
SELECT count(*) AS seen FROM df.nodes;
SELECT df.signal(:'alice_id', 'go');
SELECT df.cancel(:'alice_id');
\c - regress_alice
SELECT df.signal(:'alice_id', 'go');
SELECT df.await_instance(:'alice_id') AS status;
\c - postgres
DROP TABLE public.regress_private;
