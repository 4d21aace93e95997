-- needs: worker
-- What must not run inside a workflow fails its step with pg_durable's message
-- (tests/e2e/sql/09_graph_and_validation.sql, 20_vars.sql); a plain df.start inside a step
-- starts an independent instance, as the same role.
\c - regress_alice
SELECT df.start('SELECT df.setvar(''illegal_var'', ''should_fail'')', 'test-setvar-blocked') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT result::text LIKE '%cannot be called inside a workflow%' AS refused FROM df.instance_nodes(:'instance_id');
SELECT df.start('SELECT df.await_instance(''{sys_instance_id}'')', 'test-await-blocked') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT result::text LIKE '%cannot be called inside a workflow%' AS refused FROM df.instance_nodes(:'instance_id');
SELECT df.start($$SELECT df.start('SELECT 1', transaction_mode => 'new')$$, 'test-new-blocked') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT result::text LIKE '%cannot be called inside a workflow%' AS refused FROM df.instance_nodes(:'instance_id');
SELECT df.start($$SELECT df.start('SELECT current_user AS who', 'child') AS child$$, 'parent') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id')::jsonb->'rows'->0->>'child' AS child \gset
SELECT df.await_instance(:'child') AS child_status;
SELECT df.result(:'child')::jsonb->'rows'->0->>'who' AS who;
