-- Inspection in pg_durable's shapes (df.list_instances, df.instance_info, df.instance_nodes,
-- df.nodes, df.instances, df.explain, df.status, df.result, df.metrics) over instances written
-- here directly, as a worker would have left them: what the functions infer from dfc's node
-- records (composite statuses, `skipped` arms, the latest loop iteration) does not depend on
-- one running.
\c - postgres
INSERT INTO dfc.workflows (name, version, hash, plan, source) VALUES
    ('regress_p1', 1, 'p1', $json${"format":2,"name":"regress_p1","root":"n1","nodes":{"n1":{"children":["n2","n8"],"type":"THEN"},"n10":{"config":{"autocommit":false,"query":"SELECT 2"},"type":"SQL"},"n11":{"children":["n12","n13"],"type":"RACE"},"n12":{"config":{"autocommit":false,"query":"SELECT 3"},"type":"SQL"},"n13":{"config":{"seconds":10},"type":"SLEEP"},"n2":{"children":["n3","n4"],"type":"THEN"},"n3":{"config":{"autocommit":false,"query":"SELECT 1 AS n"},"result_name":"a","type":"SQL"},"n4":{"children":["n5","n6","n7"],"config":{"test":"truthy"},"type":"IF"},"n5":{"config":{"autocommit":false,"query":"SELECT $a > 0"},"type":"SQL"},"n6":{"config":{"autocommit":false,"query":"SELECT 'yes'"},"type":"SQL"},"n7":{"config":{"autocommit":false,"query":"SELECT 'no'"},"type":"SQL"},"n8":{"children":["n9","n10","n11"],"type":"JOIN"},"n9":{"config":{"autocommit":false,"query":"SELECT 1"},"type":"SQL"}},"params":[]}$json$, NULL),
    ('regress_p2', 1, 'p2', $json${"format":2,"name":"regress_p2","root":"n1","nodes":{"n1":{"children":["n2","n10"],"type":"THEN"},"n10":{"children":["n11","n12"],"config":{"result_name":"r","test":"rows"},"type":"IF"},"n11":{"config":{"autocommit":false,"query":"SELECT $r.w"},"type":"SQL"},"n12":{"config":{"autocommit":false,"query":"SELECT 0"},"type":"SQL"},"n2":{"children":["n3","n8"],"type":"THEN"},"n3":{"children":["n4","n7"],"type":"LOOP"},"n4":{"children":["n5","n6"],"type":"THEN"},"n5":{"config":{"autocommit":false,"query":"SELECT 1 AS v"},"result_name":"x","type":"SQL"},"n6":{"config":{"seconds":1},"type":"SLEEP"},"n7":{"config":{"autocommit":false,"query":"SELECT $x.v < 3"},"type":"SQL"},"n8":{"children":["n9"],"config":{"attempts":3,"backoff":1,"factor":2,"jitter":true,"max_backoff":300},"result_name":"r","type":"RETRY"},"n9":{"config":{"autocommit":false,"query":"SELECT 2 AS w"},"type":"SQL"}},"params":[]}$json$, NULL);
INSERT INTO dfc.instances (id, workflow, version, label, status, result, error, created_at,
                           started_at, finished_at, created_by) VALUES
    ('a1000001', 'regress_p1', 1, 'done', 'completed',
     '[{"rows": [{"?column?": 1}], "row_count": 1}, {"rows": [{"?column?": 2}], "row_count": 1}, {"rows": [{"?column?": 3}], "row_count": 1}]',
     NULL, '2000-01-01 00:00:01+00', '2000-01-01 00:00:01+00', '2000-01-01 00:00:02+00', 'regress_alice'),
    ('a1000002', 'regress_p1', 1, 'broken', 'failed', NULL,
     '{"message": "division by zero", "node": "n3", "sqlstate": "22012"}',
     '2000-01-01 00:00:02+00', '2000-01-01 00:00:02+00', '2000-01-01 00:00:03+00', 'regress_alice'),
    ('a1000003', 'regress_p1', 1, NULL, 'running', NULL, NULL,
     '2000-01-01 00:00:03+00', '2000-01-01 00:00:03+00', NULL, 'regress_alice'),
    ('a1000004', 'regress_p2', 1, 'looping', 'running', NULL, NULL,
     '2000-01-01 00:00:04+00', '2000-01-01 00:00:04+00', NULL, 'regress_alice'),
    ('a1000005', 'regress_p2', 1, 'looped', 'completed', '{"rows": [{"?column?": 2}], "row_count": 1}', NULL,
     '2000-01-01 00:00:05+00', '2000-01-01 00:00:05+00', '2000-01-01 00:00:09+00', 'regress_alice'),
    ('b1000001', 'regress_p1', 1, 'bobs', 'completed', '[]', NULL,
     '2000-01-01 00:00:06+00', '2000-01-01 00:00:06+00', '2000-01-01 00:00:07+00', 'regress_bob');
INSERT INTO dfc.node_state (instance_id, key, node_id, status, result, error, wake_at, started_at, finished_at) VALUES
    ('a1000001', 'n3', 'n3', 'completed', '{"rows":[{"n":1}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:01+00', '2000-01-01 00:00:01.1+00'),
    ('a1000001', 'n5', 'n5', 'completed', '{"rows":[{"?column?":true}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:01.1+00', '2000-01-01 00:00:01.2+00'),
    ('a1000001', 'n6', 'n6', 'completed', '{"rows":[{"?column?":"yes"}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:01.2+00', '2000-01-01 00:00:01.3+00'),
    ('a1000001', 'n9', 'n9', 'completed', '{"rows":[{"?column?":1}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:01.3+00', '2000-01-01 00:00:01.4+00'),
    ('a1000001', 'n10', 'n10', 'completed', '{"rows":[{"?column?":2}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:01.3+00', '2000-01-01 00:00:01.4+00'),
    ('a1000001', 'n12', 'n12', 'completed', '{"rows":[{"?column?":3}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:01.3+00', '2000-01-01 00:00:01.5+00'),
    ('a1000001', 'n13', 'n13', 'cancelled', NULL, '{"message": "cancelled: another branch of the race finished first"}', NULL, '2000-01-01 00:00:01.3+00', '2000-01-01 00:00:01.5+00'),
    ('a1000002', 'n3', 'n3', 'failed', NULL, '{"message": "division by zero", "sqlstate": "22012"}', NULL, '2000-01-01 00:00:02+00', '2000-01-01 00:00:02.1+00'),
    ('a1000003', 'n3', 'n3', 'completed', '{"rows":[{"n":1}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:03+00', '2000-01-01 00:00:03.1+00'),
    ('a1000003', 'n5', 'n5', 'running', NULL, NULL, NULL, '2000-01-01 00:00:03.1+00', NULL),
    ('a1000004', 'n3#1/n5', 'n5', 'completed', '{"rows":[{"v":1}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:04+00', '2000-01-01 00:00:04.1+00'),
    ('a1000004', 'n3#1/n6', 'n6', 'completed', '{"slept": true, "seconds": 1}', NULL, NULL, '2000-01-01 00:00:04.1+00', '2000-01-01 00:00:05.1+00'),
    ('a1000004', 'n3#1/n7', 'n7', 'completed', '{"rows":[{"?column?":true}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:05.1+00', '2000-01-01 00:00:05.2+00'),
    ('a1000004', 'n3#2/n5', 'n5', 'completed', '{"rows":[{"v":1}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:05.2+00', '2000-01-01 00:00:05.3+00'),
    ('a1000004', 'n3#2/n6', 'n6', 'waiting', NULL, NULL, '2000-01-01 00:00:06.3+00', '2000-01-01 00:00:05.3+00', NULL),
    ('a1000005', 'n3#3/n5', 'n5', 'completed', '{"rows":[{"v":1}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:07+00', '2000-01-01 00:00:07.1+00'),
    ('a1000005', 'n3#3/n6', 'n6', 'completed', '{"slept": true, "seconds": 1}', NULL, NULL, '2000-01-01 00:00:07.1+00', '2000-01-01 00:00:08.1+00'),
    ('a1000005', 'n3#3/n7', 'n7', 'completed', '{"rows":[{"?column?":false}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:08.1+00', '2000-01-01 00:00:08.2+00'),
    ('a1000005', 'n8@1/n9', 'n9', 'failed', NULL, '{"message": "deadlock detected"}', NULL, '2000-01-01 00:00:08.2+00', '2000-01-01 00:00:08.3+00'),
    ('a1000005', 'n8@2/n9', 'n9', 'completed', '{"rows":[{"w":2}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:08.3+00', '2000-01-01 00:00:08.4+00'),
    ('a1000005', 'n11', 'n11', 'completed', '{"rows":[{"?column?":2}],"row_count":1}', NULL, NULL, '2000-01-01 00:00:08.4+00', '2000-01-01 00:00:08.5+00');
\c - regress_alice
-- one row per instance, newest first; output is the result of a completed instance, the error
-- of a failed one
SELECT * FROM df.list_instances() WHERE instance_id LIKE 'a10000%';
SELECT instance_id, status FROM df.list_instances('completed') WHERE instance_id LIKE 'a10000%';
SELECT count(*) AS bobs FROM df.list_instances() WHERE instance_id = 'b1000001';
SELECT df.list_instances(NULL, 0);
SELECT df.list_instances(NULL, 1001);
-- pages: next_cursor is the same on each row of a page, NULL on the last one
SELECT instance_id, label, created_at, completed_at, next_cursor IS NOT NULL AS more
  FROM df.list_instances('completed', 1, 'done');
SELECT instance_id, next_cursor IS NOT NULL AS more FROM df.list_instances(NULL, 1, 'looping');
SELECT next_cursor AS cursor FROM df.list_instances('completed', 1, NULL) LIMIT 1 \gset
SELECT instance_id, status FROM df.list_instances('completed', 1, NULL, :'cursor');
SELECT df.list_instances(NULL, 1, NULL, 'not a cursor');
SELECT * FROM df.instance_info('a1000001');
SELECT * FROM df.instance_info('a1000002');
SELECT df.status('a1000001') AS status, df.result('a1000001') AS result;
SELECT df.status('a1000002') AS status, df.result('a1000002') AS result;
SELECT df.status('nosuchid') AS status, df.result('nosuchid') AS result;
SELECT df.await_instance('a1000001') AS status;
SELECT df.await_instance('a1000002', 1) AS status;
SELECT df.await_instance('a1000003', 1);
SELECT df.await_instance('a1000003', 0);
SELECT df.await_instance('nosuchid', 1);
SELECT df.wait_for_completion('a1000005') AS status;
SELECT id, label, root_node, status, submitted_by, database = current_database() AS here, created_at,
       updated_at, completed_at
  FROM df.instances WHERE id LIKE 'a10000%' ORDER BY id;
-- nodes: a completed run (the else arm not taken is skipped; the race's loser was cancelled)
SELECT node_id, node_type, query, result_name, left_node, right_node, status, result,
       status_details, inferred_status, inferred_status_from_ancestor_id
  FROM df.instance_nodes('a1000001') ORDER BY length(node_id), node_id;
SELECT df.explain('a1000001');
-- a failed run: what follows the failed step is skipped
SELECT node_id, node_type, status, result, inferred_status, inferred_status_from_ancestor_id
  FROM df.instance_nodes('a1000002') ORDER BY length(node_id), node_id;
SELECT df.explain('a1000002');
SELECT id, instance_id, node_type, status, error FROM df.nodes
 WHERE instance_id = 'a1000002' AND status = 'failed' ORDER BY id;
-- a running one: the condition runs, neither arm is decided
SELECT node_id, status, inferred_status FROM df.instance_nodes('a1000003') ORDER BY length(node_id), node_id;
SELECT df.explain('a1000003');
-- a loop in its second iteration: the first iteration's records no longer count; df.retry is
-- shown as the step it retries
SELECT node_id, node_type, query, result_name, left_node, right_node, status, status_details, inferred_status
  FROM df.instance_nodes('a1000004') ORDER BY length(node_id), node_id;
SELECT df.explain('a1000004');
SELECT df.explain('a1000005');
SELECT execution_id, node_id, node_type, status, result FROM df.instance_nodes('a1000005', 5)
 ORDER BY length(node_id), node_id;
-- an instance df.start wrote, not compiled by a worker yet: its graph's nodes
SELECT df.start('SELECT 1' |=> 'a' ~> (df.sleep(5) | df.wait_for_signal('go')) ~> df.join3('SELECT 2', 'SELECT 3', 'SELECT 4'), 'fresh') AS id \gset
SELECT node_id, node_type, query, result_name, left_node, right_node, status, inferred_status
  FROM df.instance_nodes(:'id') ORDER BY length(node_id), node_id;
SELECT df.explain(:'id');
SELECT id, root_node, status FROM df.instances WHERE id = :'id';
-- other roles' instances are not found
SELECT df.explain('b1000001');
SELECT count(*) FROM df.nodes WHERE instance_id = 'b1000001';
-- df.explain of a graph, DSL text or SQL: a dry run
SELECT df.explain('SELECT 1' |=> 'a' ~> 'SELECT 2' |=> 'b' ~> df.if('SELECT $a > 0', 'SELECT ''yes''', 'SELECT ''no'''));
SELECT df.explain($$ df.loop('SELECT process_batch()' |=> 'batch' ~> ('$batch.done' ?> df.break('{"status": "complete", "total": 42}') !> df.sleep(5)), 'SELECT true') $$);
\c - regress_bob
SELECT df.explain($$ df.if_rows('r', df.http_multipart('https://api.example.com/a/very/long/path/to/upload', parts => '[{"name": "a", "data_b64": ""}]'), df.wait_for_schedule('0 * * * *')) $$);
\c - regress_alice
SELECT df.explain($$ df.http('https://api.example.com/') $$);
SELECT df.explain('INSERT INTO audit_log (message) VALUES (''a message long enough to be cut short'')');
SELECT df.explain('{"node_type":"NOT_A_NODE"}');
SELECT df.explain('{"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},"right_node":{"node_type":"SQL","query":"e"},"query":"{\"condition_node\":{\"node_type\":\"SQL\",\"query\":\"c\"}}"}');
SELECT df.explain('hello world');
SELECT df.explain($$ df.sql((1/0)::text) $$);
SELECT df.explain($$ df.sql(NULL) $$);
SELECT df.explain($$ 'c' ?> 't' $$);
-- system-wide counts are for administrators
SELECT * FROM df.metrics();
\c - regress_admin
SELECT total_instances >= 6 AS counted, completed_instances >= 3 AS completed,
       failed_instances >= 1 AS failed, total_events >= 0 AS events
  FROM df.metrics();
