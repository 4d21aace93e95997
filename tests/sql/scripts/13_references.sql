-- needs: worker
-- Variables ({var}, {sys_instance_id}, {sys_label}) and every form of $name
-- (tests/e2e/sql/20_vars.sql, 21_typed_results.sql, the USER_GUIDE).
\c - regress_alice
CREATE TABLE var_log (id serial, msg text);
CREATE TABLE users (id int, name text, active boolean);
INSERT INTO users VALUES (1, 'Ann', true), (2, 'Bo', true), (3, 'Cy', false);
SELECT df.clearvars();
SELECT df.setvar('greeting', 'Hello');
SELECT df.setvar('target', 'World');
SELECT df.start(
    'SELECT ''{greeting}, {target}!'' as message' |=> 'msg'
    ~> 'INSERT INTO var_log (msg) VALUES ($msg)',
    'test-vars-simple'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start(
    'INSERT INTO var_log (msg) VALUES (''Instance: {sys_instance_id}, Label: {sys_label}'')
     RETURNING msg' |=> 'log_result',
    'test-sys-vars'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.setvar('table_name', 'users');
SELECT df.setvar('limit_val', '5');
SELECT df.start(
    'SELECT name FROM {table_name} LIMIT {limit_val}::int' |=> 'names'
    ~> 'INSERT INTO var_log (msg) VALUES (''Fetched from {table_name}'')',
    'test-vars-multi'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
-- a variable changed after df.start does not change the instance
SELECT df.start(df.sleep(1) ~> 'INSERT INTO var_log (msg) VALUES (''{greeting} again'')', 'test-vars-snapshot') AS instance_id \gset
SELECT df.setvar('greeting', 'Goodbye');
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.clearvars();
SELECT replace(msg, :'instance_id', '<id>') AS msg FROM var_log ORDER BY id;
-- $name: first column of the first row; $name.col, $name?, $name.col?, $name.*
SELECT df.start(
    $$SELECT 42 AS id, 'Alice' AS name$$ |=> 'user'
    ~> $$SELECT $user.id AS id, $user.name AS name, $user AS first$$,
    'refs-columns'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.start(
    $$SELECT NULL::text AS val$$ |=> 'x'
    ~> $$SELECT COALESCE($x.val?, 'fallback') AS v, COALESCE($x?, 'also') AS w$$,
    'refs-null-safe'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.start(
    $$SELECT id, name FROM users WHERE active$$ |=> 'batch'
    ~> $$SELECT count(*) AS n, string_agg(name, ',' ORDER BY id) AS names FROM $batch.*$$,
    'refs-rows'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
-- without ?, a missing row or a NULL fails the step
SELECT df.start($$SELECT id FROM users WHERE false$$ |=> 'none' ~> $$SELECT $none$$, 'refs-no-rows') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start($$SELECT NULL::int AS v$$ |=> 'n' ~> $$SELECT $n$$, 'refs-null') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
-- values keep their type: a numeric's digits, booleans, JSON
CREATE TABLE test_typed_roundtrip (id SERIAL, val NUMERIC(20, 8));
INSERT INTO test_typed_roundtrip (val) VALUES (9876543.12345678);
SELECT df.start(
    $$SELECT val FROM test_typed_roundtrip ORDER BY id LIMIT 1$$ |=> 'n'
    ~> $$INSERT INTO test_typed_roundtrip (val) SELECT $n::numeric$$,
    'test-typed-roundtrip'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT val FROM test_typed_roundtrip ORDER BY id;
SELECT df.start($$SELECT true AS b, '{"k": [1, 2]}'::jsonb AS j, 'it''s' AS s$$ |=> 'v' ~> $$SELECT $v.b AND true AS b, $v.j::jsonb->'k'->>1 AS k, $v.s AS s$$, 'refs-types') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
