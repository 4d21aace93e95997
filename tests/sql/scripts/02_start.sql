-- df.start: everything SQL can check is checked before anything is written, with the checker's
-- messages; the start belongs to the caller's transaction; what it stores for the worker.
\c - regress_alice
SELECT count(*) AS before FROM df.instances \gset
-- the graph
SELECT df.start('{"node_type":"NOT_A_NODE"}');
SELECT df.start('{"node_type":"THEN","left_node":{"node_type":"SQL","query":"SELECT 1"}}');
SELECT df.start('{"node_type":"THEN","left_node":"SELECT 1","right_node":{"node_type":"SQL","query":"SELECT 2"}}');
SELECT df.start('{"node_type":"LOOP"}');
SELECT df.start('{"node_type":"SQL"}');
SELECT df.start('{"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},"right_node":{"node_type":"SQL","query":"e"}}');
SELECT df.start('{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":["c"]}');
SELECT df.start(df.break());
SELECT df.start('SELECT 1' ~> df.break('done'));
SELECT df.start('c' ?> 't');
SELECT df.start('{"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},"condition_node":{"node_type":"SQL","query":"c"}}');
SELECT df.start('{"node_type":"SQL","query":"SELECT 1","result_name":"a b"}');
SELECT df.start('{"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},"right_node":{"node_type":"SQL","query":"e"},"query":"{\"condition_type\":\"result_has_rows\",\"result_name\":\"$r\"}"}');
SELECT df.start('{"node_type":"SLEEP","query":"-5"}');
SELECT df.start('{"node_type":"SLEEP","query":"soon"}');
SELECT df.start('{"node_type":"SLEEP","query":"1.5"}');
SELECT df.start('{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"* * * *\"}"}');
SELECT df.start('{"node_type":"WAIT_SCHEDULE","query":"{\"cron_expr\":\"0 0 32 * *\"}"}');
SELECT df.start('{"node_type":"SIGNAL","query":"{\"signal_name\":\" \"}"}');
SELECT df.start('{"node_type":"SIGNAL","query":"{\"signal_name\":\"go\",\"timeout_seconds\":-2}"}');
SELECT df.start(df.loop('{"node_type":"BREAK","query":"{\"break_value\":{\"a\":1}}"}'));
SELECT df.start('{"node_type":"SLEEP","query":"{}"}' ~> 'SELECT 1');
-- HTTP nodes need include_http, however they were written
SELECT df.start('{"node_type":"HTTP","query":"{\"url\":\"https://api.example.com/\"}"}');
-- nesting deeper than 256 constructs (a chain of one operator is one level), more than 10,000 nodes
SELECT df.start(repeat('{"node_type":"LOOP","left_node":', 257) || '{"node_type":"SQL","query":"SELECT 1"}' || repeat('}', 257));
SELECT df.start('{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"extra_nodes":[' || (SELECT string_agg('{"node_type":"SQL","query":"x"}', ',') FROM generate_series(1, 9999)) || ']}');
-- the options
SELECT df.start('SELECT 1', transaction_mode => 'later');
SELECT df.start('SELECT 1', max_attempts => 0);
SELECT df.start('SELECT 1', max_backoff => '0 seconds');
SELECT df.start('SELECT 1', on_failure => 'continue');
SELECT df.start('SELECT 1', on_failure => 'retry');
SELECT df.start('SELECT 1', database => 'no_such_database');
SELECT df.start('SELECT 1', 'label', 'postgres');
SELECT df.start(NULL);
-- none of these wrote anything
SELECT count(*) - :before AS written FROM df.instances;
-- a rollback discards the start: no worker ever sees it
BEGIN;
SELECT df.start('SELECT 1', 'rolled-back') ~ '^[0-9a-f]{8}$' AS started;
SELECT count(*) - :before AS written FROM df.instances;
ROLLBACK;
SELECT count(*) - :before AS written, count(*) FILTER (WHERE label = 'rolled-back') AS rolled_back FROM df.instances;
-- database => NULL or this database, any case of transaction_mode
SELECT df.start('SELECT 1', 'here', current_database(), 'CALLER') ~ '^[0-9a-f]{8}$' AS started;
-- what is stored: the graph in canonical form, the role's variables, the role, the options
SELECT df.setvar('region', 'eu');
SELECT df.start('{"right_node": {"query": "SELECT $x", "node_type": "SQL"}, "node_type": "THEN", "left_node": {"node_type": "SQL", "query": "SELECT 1", "result_name": "x"}}', 'stored', max_attempts => 3, max_backoff => '10 seconds') AS id \gset
SELECT df.start(df.if('SELECT true', 'SELECT 1', 'SELECT 2') & df.wait_for_signal('go', 5), 'plain') AS id2 \gset
SELECT df.clearvars();
SELECT df.status(:'id') AS status, df.result(:'id') AS result;
\c - postgres
SELECT label, status, workflow, version, graph, vars, created_by, options
  FROM dfc.instances WHERE id IN (:'id', :'id2') ORDER BY label DESC;
SELECT count(*) AS queued FROM dfc.queue WHERE instance_id IN (:'id', :'id2');
SELECT event, detail FROM dfc.history WHERE instance_id = :'id';
-- a role with USAGE on schema df but never granted usage by df.grant_usage, and one without
GRANT USAGE ON SCHEMA df TO regress_carol;
\c - regress_carol
SELECT df.start('SELECT 1');
\c - postgres
REVOKE USAGE ON SCHEMA df FROM regress_carol;
\c - regress_carol
SELECT df.start('SELECT 1');
-- the definer behind df.start acts only for roles the session user may become
\c - regress_alice
SELECT df._start('regress_bob', 'SELECT 1', NULL, NULL, 'caller', 1, '16 seconds', 'fail');
