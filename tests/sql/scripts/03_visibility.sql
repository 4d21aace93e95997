-- A role sees, signals and cancels only its own instances (superusers see all); the views are
-- security barriers, and the functions that write act only for the calling role.
\c - regress_alice
SELECT df.start('SELECT 1', 'alice-only') AS alice_id \gset
SELECT count(*) AS mine FROM df.instances WHERE id = :'alice_id';
\c - regress_bob
SELECT count(*) AS seen FROM df.instances WHERE id = :'alice_id';
SELECT count(*) AS seen FROM df.nodes WHERE instance_id = :'alice_id';
SELECT count(*) AS seen FROM df.list_instances() WHERE instance_id = :'alice_id';
SELECT count(*) AS seen FROM df.list_instances(NULL, 100, 'alice-only');
SELECT * FROM df.instance_info(:'alice_id');
SELECT node_id FROM df.instance_nodes(:'alice_id');
SELECT node_id FROM df.instance_nodes(:'alice_id', 5);
SELECT df.status(:'alice_id') AS status, df.result(:'alice_id') AS result;
SELECT df.explain(:'alice_id');
SELECT df.signal(:'alice_id', 'go');
SELECT df.cancel(:'alice_id');
SELECT df.await_instance(:'alice_id', 1);
-- nor through dfc's own tables, nor the definers behind df.signal and df.cancel
SELECT * FROM dfc.instances;
SELECT count(*) FROM df._instances WHERE id = :'alice_id';
SELECT count(*) FROM df._node_state WHERE instance_id = :'alice_id';
SELECT df._signal('regress_alice', :'alice_id', 'go', '{}');
SELECT df._cancel('regress_alice', :'alice_id', 'x');
-- a function in the WHERE clause sees only rows past the barrier
CREATE FUNCTION pg_temp.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN RAISE NOTICE 'peeked at %', $1; RETURN true; END $$;
SELECT count(*) FROM df.instances WHERE pg_temp.peek(id) AND id = :'alice_id';
-- variables: another role's cannot be written, read or taken
SELECT df.setvar('secret', 'bob''s');
INSERT INTO df.vars (name, value, owner) VALUES ('x', '1', 'regress_alice');
UPDATE df.vars SET owner = 'regress_alice' WHERE name = 'secret';
SELECT name, value, owner FROM df.vars;
SELECT df.clearvars();
-- the owner
\c - regress_alice
SELECT df.status(:'alice_id') AS status;
SELECT replace(df.cancel(:'alice_id', 'done looking'), :'alice_id', '<id>') AS cancel;
SELECT df.status(:'alice_id') AS status;
SELECT replace(df.cancel(:'alice_id', 'again'), :'alice_id', '<id>') AS cancel;
SELECT df.signal(:'alice_id', 'go');
SELECT df.await_instance(:'alice_id') AS status;
SELECT status FROM df.list_instances('cancelled') WHERE instance_id = :'alice_id';
SELECT df.signal('', 'go');
SELECT df.signal(:'alice_id', '');
SELECT df.cancel('');
SELECT df.signal(:'alice_id', 'go', NULL);  -- refused: NULL data (22004)
-- superusers see every role's instances
\c - postgres
SELECT count(*) AS seen FROM df.instances WHERE id = :'alice_id';
SELECT df.status(:'alice_id') AS status;
