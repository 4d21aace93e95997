-- Variables belong to a role (pg_durable 0.2.0), are copied into each instance at df.start and
-- cannot be changed from inside a workflow.
\c - regress_alice
SELECT df.clearvars();
SELECT df.setvar('greeting', 'Hello');
SELECT df.setvar('target', 'World');
SELECT df.setvar('greeting', 'Hi');
SELECT df.getvar('greeting') AS greeting, df.getvar('missing') AS missing;
SELECT name, value FROM df.vars ORDER BY name;
SELECT df.setvar('sys_label', 'x');
SELECT df.setvar('empty', '');
SELECT df.setvar('null', NULL);  -- refused: a NULL value (22004)
SELECT df.start('SELECT ''{greeting}, {target}!''', 'vars') AS id \gset
SELECT df.unsetvar('target') AS unset, df.unsetvar('never-set') AS unset_missing;
SELECT name FROM df.vars ORDER BY name;
-- another role has its own
\c - regress_bob
SELECT count(*) AS alices FROM df.vars;
SELECT df.getvar('greeting') AS greeting;
SELECT df.setvar('greeting', 'Bonjour');
\c - regress_alice
SELECT df.getvar('greeting') AS greeting;
-- the instance keeps what the role had when it started
\c - postgres
SELECT vars FROM dfc.instances WHERE id = :'id';
-- inside a workflow (a worker's step session sets dfc.in_workflow) they cannot change
\c - regress_alice
SET dfc.in_workflow = on;
SELECT df.setvar('x', '1');
SELECT df.unsetvar('greeting');
SELECT df.clearvars();
SELECT df.getvar('greeting') AS allowed;
SELECT df.await_instance(:'id');
SELECT df.start('SELECT 1', transaction_mode => 'new');
RESET dfc.in_workflow;
SELECT df.clearvars();
SELECT count(*) AS left_over FROM df.vars;
\c - regress_bob
SELECT df.clearvars();
