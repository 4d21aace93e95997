-- The graph builders and operators return pg_durable's JSON graph text (SPEC §7): compact,
-- keys in pg_durable's order, plain SQL text auto-wrapped as a SQL node, a text holding a
-- graph taken as that graph. Nothing is written until df.start.
\c - regress_alice
-- df.grant_usage put df on the role's search_path, so the operators need no qualification
SHOW search_path;
\pset format unaligned
\pset tuples_only on
-- one node of each type
SELECT df.sql('SELECT 1');
SELECT df.sql($$SELECT 'it''s' AS "q", E'\n' AS nl, 'é ✓' AS u$$);
SELECT 'SELECT 1' ~> 'SELECT 2';
SELECT df.seq('SELECT 1', 'SELECT 2') = ('SELECT 1' ~> 'SELECT 2') AS same;
SELECT df.then('SELECT 1', 'SELECT 2') = ('SELECT 1' ~> 'SELECT 2') AS same;
SELECT 'SELECT 1' |=> 'x';
SELECT df.as('SELECT 1', 'x') = ('SELECT 1' |=> 'x') AS same;
SELECT ('SELECT 1' |=> 'x') |=> 'y';
SELECT 'a' & 'b';
SELECT df.join3('a', 'b', 'c');
SELECT df.join('a', 'b', 'c', 'd');
SELECT 'a' | 'b';
SELECT df.if('c', 't', 'e');
SELECT 'c' ?> 't';
SELECT 'c' ?> 't' !> 'e';
SELECT df.if_rows('r', 't', 'e');
SELECT df.loop('b');
SELECT df.loop('b', 'c');
SELECT @> 'b';
SELECT df.break();
SELECT df.break('{"done": true}');
SELECT df.sleep(60);
SELECT df.wait_for_schedule('*/5 * * * *');
SELECT df.wait_for_schedule('0 9 * JAN-MAR MON-FRI');
SELECT df.wait_for_signal('go', 60);
SELECT df.wait_for_signal('go');
-- a text holding a graph is that graph; hand-written JSON is written out canonically, the
-- older envelope (condition and extra branches inside query) in the newer one
SELECT df.seq('{"query": "SELECT 1", "node_type": "SQL", "note": "dropped"}', 'SELECT 2');
SELECT df.seq('{"node_type":"IF","left_node":{"node_type":"SQL","query":"t"},"right_node":{"node_type":"SQL","query":"e"},"query":"{\"condition_node\":{\"node_type\":\"SQL\",\"query\":\"c\"}}"}', 'x');
SELECT df.seq('{"node_type":"JOIN","left_node":{"node_type":"SQL","query":"a"},"right_node":{"node_type":"SQL","query":"b"},"query":"{\"extra_nodes\":[{\"node_type\":\"SQL\",\"query\":\"c\"}]}"}', 'x');
-- JSON without node_type, and text that only starts like JSON, are SQL steps
SELECT df.seq('{"a": 1}', '{not json');
-- stored graphs start as they are: identical builders give identical text
CREATE TEMP TABLE stored AS SELECT 'SELECT 1' ~> 'INSERT INTO t VALUES (1)' AS g;
SELECT g = ('SELECT 1' ~> 'INSERT INTO t VALUES (1)') AS same FROM stored;
SELECT df.seq((SELECT g FROM stored), 'SELECT 3');
-- PostgreSQL gives these operators one precedence, left to right
SELECT ('a' ~> 'b' & 'c') = df.join(df.seq('a', 'b'), 'c') AS flat;
SELECT ('a' & 'b' ~> 'c') = df.seq(df.join('a', 'b'), 'c') AS flat;
SELECT ('a' ~> 'b' |=> 'n') = df.as(df.seq('a', 'b'), 'n') AS flat;
SELECT (@> 'a' ~> 'b') = df.seq(df.loop('a'), 'b') AS flat;
SELECT ('a' | 'b' & 'c') = df.join(df.race('a', 'b'), 'c') AS flat;
SELECT ('c' ?> 't' !> 'e') = df.if('c', 't', 'e') AS flat;
SELECT 'SELECT 1' OPERATOR(df.~>) 'SELECT 2' = ('SELECT 1' ~> 'SELECT 2') AS qualified;
-- HTTP needs include_http, which regress_bob has
\c - regress_bob
SELECT df.http('https://api.example.com/v1/items', 'get');
SELECT df.http('https://api.example.com/v1/items', body => '{"id": $x.id}', headers => '{"X-Run": "{sys_instance_id}"}', timeout_seconds => 5);
SELECT df.http('{base_url}/items');
SELECT df.http_multipart('https://api.example.com/upload', parts => '[{"name": "file", "data_b64": "aGk=", "filename": "a.txt"}]');
SELECT df.with_http_options(df.http('https://api.example.com/'), '{}') = df.http('https://api.example.com/') AS same;
\pset format aligned
\pset tuples_only off
-- errors: the checker's message where the checker of .df files has the rule
SELECT df.http('ftp://files.example.com/x');
SELECT df.http('api.example.com/x');
SELECT df.http('   ');
SELECT df.http('https://10.0.0.1/x');
SELECT df.http('http://[::1]:8080/x');
SELECT df.http('https://2130706433/');
SELECT df.http('https://api.example.com/', 'FETCH');
SELECT df.http('https://api.example.com/', headers => '["x"]');
SELECT df.http('https://api.example.com/', timeout_seconds => -1);
SELECT df.http_multipart('https://api.example.com/');
SELECT df.http_multipart('https://api.example.com/', parts => '{}');
SELECT df.http_multipart('https://api.example.com/', parts => '[{"name": "a"}]');
SELECT df.http_multipart('https://api.example.com/', parts => '[1]');
SELECT df.with_http_options('SELECT 1', '{"retries": 3}');
\c - regress_alice
SELECT df.http('https://api.example.com/');
SELECT df.sleep(-5);
SELECT 'SELECT 1' |=> 'bad-name';
SELECT 'SELECT 1' |=> '$x';
SELECT 'SELECT 1' |=> '1st';
SELECT 'SELECT 1' |=> '';
SELECT df.if_rows('my rows', 't', 'e');
SELECT df.wait_for_schedule('61 * * * *');
SELECT df.wait_for_schedule('* * *');
SELECT df.wait_for_schedule('0 25 * * *');
SELECT df.wait_for_schedule('0 0 * 13 *');
SELECT df.wait_for_schedule('0 0 * * FUNDAY');
SELECT df.wait_for_schedule('*/0 * * * *');
SELECT df.wait_for_schedule('');
SELECT df.wait_for_signal('');
SELECT df.wait_for_signal(NULL);
SELECT df.wait_for_signal('go', -1);
SELECT df.loop('SELECT 1', continue_on_failure => true);
SELECT df.loop(NULL);
-- `?>` alone is not a node; in a chain it must be parenthesised
SELECT df.seq('c' ?> 't', 'u');
SELECT 'c' ?> 't' ~> 'u' !> 'e';
SELECT 'c' ?> ('t' ~> 'u') !> 'e' = df.if('c', 't' ~> 'u', 'e') AS parenthesised;
SELECT 'x' !> 'e';
-- an object with an unknown node_type is an error, not a SQL step
SELECT df.seq('{"node_type": "NOT_A_NODE"}', 'x');
SELECT df.seq('{"node_type": 7}', 'x');
-- STRICT builders give NULL for NULL, as pg_durable's
SELECT df.seq(NULL, 'x') IS NULL AS is_null, df.sql(NULL) IS NULL AS sql_null;
