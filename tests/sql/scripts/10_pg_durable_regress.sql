-- needs: worker
-- pg_durable's own regression tests (sql/*.sql and expected/*.out of the extension: simple,
-- sequence, parallel, conditional, variables), unchanged but for the role they run as.
\c - regress_alice
-- simple: a plain string is a SQL step
SELECT df.start('SELECT 42 as answer', 'test-simple-auto') AS instance_id \gset
SELECT df.wait_for_completion(:'instance_id') AS status;
SELECT df.result(:'instance_id')::jsonb->'rows'->0->'answer' AS answer;
SELECT df.start(df.sql('SELECT 1 as col1, ''a'' as col2 UNION ALL SELECT 2, ''b'''), 'test-simple-multi') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id')::jsonb->'rows'->0->'col2' AS row1_col2;
SELECT df.result(:'instance_id') AS result;
-- sequence
DROP TABLE IF EXISTS test_sequence_log;
CREATE TABLE test_sequence_log (id SERIAL, step INT, variant TEXT);
SELECT df.start(
    'INSERT INTO test_sequence_log (step, variant) VALUES (1, ''op'')'
    ~> 'INSERT INTO test_sequence_log (step, variant) VALUES (2, ''op'')'
    ~> 'INSERT INTO test_sequence_log (step, variant) VALUES (3, ''op'')',
    'test-sequence-op'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start(
    df.seq(
        df.seq(
            'INSERT INTO test_sequence_log (step, variant) VALUES (1, ''fn'')',
            'INSERT INTO test_sequence_log (step, variant) VALUES (2, ''fn'')'
        ),
        'INSERT INTO test_sequence_log (step, variant) VALUES (3, ''fn'')'
    ),
    'test-sequence-fn'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT step, variant FROM test_sequence_log ORDER BY id;
-- an INSERT without RETURNING returns no rows: row_count counts the rows returned
SELECT df.result(:'instance_id') AS result;
-- parallel
DROP TABLE IF EXISTS test_parallel_log;
CREATE TABLE test_parallel_log (id SERIAL, branch TEXT, variant TEXT);
SELECT df.start(
    df.join(
        'INSERT INTO test_parallel_log (branch, variant) VALUES (''A'', ''func'')',
        'INSERT INTO test_parallel_log (branch, variant) VALUES (''B'', ''func'')'
    ),
    'test-parallel-func'
) AS instance_id \gset
SELECT df.wait_for_completion(:'instance_id') AS status;
SELECT df.start(
    'INSERT INTO test_parallel_log (branch, variant) VALUES (''A'', ''op'')'
    & 'INSERT INTO test_parallel_log (branch, variant) VALUES (''B'', ''op'')',
    'test-parallel-op'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT branch, variant FROM test_parallel_log ORDER BY variant, branch;
-- conditional
DROP TABLE IF EXISTS test_cond_log;
CREATE TABLE test_cond_log (id SERIAL, branch TEXT, variant TEXT);
SELECT df.start(
    df.if(
        'SELECT true',
        'INSERT INTO test_cond_log (branch, variant) VALUES (''then'', ''true-func'')',
        'INSERT INTO test_cond_log (branch, variant) VALUES (''else'', ''true-func'')'
    ),
    'test-cond-true-func'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start(
    'SELECT true'
        ?> 'INSERT INTO test_cond_log (branch, variant) VALUES (''then'', ''true-op'')'
        !> 'INSERT INTO test_cond_log (branch, variant) VALUES (''else'', ''true-op'')',
    'test-cond-true-op'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start(
    df.if(
        'SELECT false',
        'INSERT INTO test_cond_log (branch, variant) VALUES (''then'', ''false-func'')',
        'INSERT INTO test_cond_log (branch, variant) VALUES (''else'', ''false-func'')'
    ),
    'test-cond-false-func'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start(
    'SELECT false'
        ?> 'INSERT INTO test_cond_log (branch, variant) VALUES (''then'', ''false-op'')'
        !> 'INSERT INTO test_cond_log (branch, variant) VALUES (''else'', ''false-op'')',
    'test-cond-false-op'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT branch, variant FROM test_cond_log ORDER BY id;
-- variables ($name references)
DROP TABLE IF EXISTS test_vars_log;
CREATE TABLE test_vars_log (id SERIAL, val TEXT, variant TEXT);
SELECT df.start(
    'SELECT 100 as num' |=> 'x'
    ~> 'INSERT INTO test_vars_log (val, variant) VALUES ($x::text, ''op'')',
    'test-variables-op'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start(
    df.seq(
        df.as('SELECT 200 as num', 'y'),
        'INSERT INTO test_vars_log (val, variant) VALUES ($y::text, ''fn'')'
    ),
    'test-variables-fn'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT val, variant FROM test_vars_log ORDER BY id;
-- a failing step fails the instance, whose result is then NULL
SELECT df.start('SELECT 1/0', 'cancel-consistency-fail') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.status(:'instance_id') AS status, df.result(:'instance_id') AS result;
SELECT status FROM df.list_instances('failed') WHERE instance_id = :'instance_id';
SELECT status FROM df.instance_info(:'instance_id');
SELECT node_type, status, result::jsonb->>'message' AS error FROM df.instance_nodes(:'instance_id');
-- a finished instance cannot be cancelled any more
SELECT df.start('SELECT 99', 'cancel-consistency-noop') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT replace(df.cancel(:'instance_id', 'should-be-ignored'), :'instance_id', '<id>') AS cancel;
SELECT df.status(:'instance_id') AS status;
