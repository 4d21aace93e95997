-- needs: worker
-- pg_durable's documented workflows: race, if_rows, loops ending by a break or a condition, an
-- endless loop cancelled, and the shapes of join and race results (tests/e2e/sql/03_loops.sql,
-- 17_race.sql, 22_cancel_status_consistency.sql, the USER_GUIDE).
\c - regress_alice
-- race: the first branch to finish wins, the other is cancelled
CREATE TABLE test_race_log (id SERIAL, branch TEXT, variant TEXT, ts TIMESTAMP DEFAULT now());
SELECT df.start(
    df.race(
        'INSERT INTO test_race_log (branch, variant) VALUES (''fast'', ''func'') RETURNING ''fast'' AS winner',
        df.sleep(10) ~> 'INSERT INTO test_race_log (branch, variant) VALUES (''slow'', ''func'') RETURNING ''slow'''
    ),
    'test-race-func'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.start(
    'INSERT INTO test_race_log (branch, variant) VALUES (''fast'', ''op'') RETURNING ''fast'''
    | (df.sleep(10) ~> 'INSERT INTO test_race_log (branch, variant) VALUES (''slow'', ''op'') RETURNING ''slow'''),
    'test-race-op'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT branch, variant FROM test_race_log ORDER BY id;
SELECT node_type, inferred_status FROM df.instance_nodes(:'instance_id')
 ORDER BY length(node_id), node_id;
-- if_rows: no SQL of its own, it asks whether a bound result has rows
CREATE TABLE orders (id int PRIMARY KEY, status text);
CREATE TABLE logs (id serial, msg text);
INSERT INTO orders VALUES (1, 'pending'), (2, 'shipped');
SELECT df.start(
    $$SELECT id FROM orders WHERE status = 'pending'$$ |=> 'pending'
    ~> df.if_rows(
        'pending',
        $$UPDATE orders SET status = 'processing' WHERE id = $pending.id$$,
        $$INSERT INTO logs (msg) VALUES ('No pending orders')$$
    ),
    'check-pending'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.start(
    $$SELECT id FROM orders WHERE status = 'pending'$$ |=> 'pending'
    ~> df.if_rows(
        'pending',
        $$UPDATE orders SET status = 'processing' WHERE id = $pending.id$$,
        $$INSERT INTO logs (msg) VALUES ('No pending orders')$$
    ),
    'check-pending-again'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT id, status FROM orders ORDER BY id;
SELECT msg FROM logs ORDER BY id;
SELECT node_type, query, inferred_status, inferred_status_from_ancestor_id IS NOT NULL AS decided
  FROM df.instance_nodes(:'instance_id') ORDER BY length(node_id), node_id;
-- a loop left by df.break, whose value is the loop's result
CREATE TABLE test_break_log (id SERIAL, iteration INT, test_name TEXT, ts TIMESTAMP DEFAULT now());
SELECT df.start(
    df.loop(
        'INSERT INTO test_break_log (iteration, test_name) VALUES ((SELECT COALESCE(MAX(iteration), 0) + 1 FROM test_break_log WHERE test_name = ''break_test''), ''break_test'')'
        ~> (
            'SELECT COUNT(*) >= 3 FROM test_break_log WHERE test_name = ''break_test'''
                ?> df.break('{"reason": "reached 3 iterations"}')
                !> df.sleep(1)
        )
    ),
    'test-break'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id', 50) AS status;
SELECT count(*) AS iterations FROM test_break_log WHERE test_name = 'break_test';
SELECT df.result(:'instance_id') AS result;
-- a loop with a condition, checked after each iteration (do-while)
SELECT df.start(
    df.loop(
        'INSERT INTO test_break_log (iteration, test_name) VALUES ((SELECT COALESCE(MAX(iteration), 0) + 1 FROM test_break_log WHERE test_name = ''while_test''), ''while_test'')'
        ~> df.sleep(1),
        'SELECT COUNT(*) < 3 FROM test_break_log WHERE test_name = ''while_test'''
    ),
    'test-while-loop'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id', 50) AS status;
SELECT count(*) AS iterations FROM test_break_log WHERE test_name = 'while_test';
SELECT df.explain(:'instance_id');
-- an endless loop (@>) runs until it is cancelled; its status is cancelled everywhere at once
CREATE TABLE _cancel_log (id SERIAL);
SELECT df.start(
    @> ('INSERT INTO _cancel_log DEFAULT VALUES' ~> df.sleep(1)),
    'cancel-consistency-running'
) AS instance_id \gset
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN (SELECT count(*) FROM _cancel_log) >= 2;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT count(*) >= 2 AS looped FROM _cancel_log;
SELECT replace(df.cancel(:'instance_id', 'consistency-test'), :'instance_id', '<id>') AS cancel;
SELECT df.status(:'instance_id') AS status,
       (SELECT status FROM df.list_instances() WHERE instance_id = :'instance_id') AS listed,
       (SELECT status FROM df.instance_info(:'instance_id')) AS info,
       df.await_instance(:'instance_id') AS awaited;
SELECT count(*) AS rows_then FROM _cancel_log \gset
SELECT pg_sleep(1.5);
SELECT count(*) = :rows_then AS stopped FROM _cancel_log;
-- join results: one element per branch, in order; a chain of & nests (one precedence)
SELECT df.start('SELECT 1 AS a' & 'SELECT 2 AS b', 'join-two') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.start('SELECT 1 AS a' & 'SELECT 2 AS b' & 'SELECT 3 AS c', 'join-chain') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.start(df.join3('SELECT 1 AS a', 'SELECT 2 AS b', 'SELECT 3 AS c'), 'join-three') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.start(df.join3('SELECT 1 AS a', 'SELECT 2 AS b', 'SELECT 3 AS c') |=> 'j' ~> 'SELECT $j::jsonb->2->''rows''->0->>''c'' AS c', 'join-bound') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.start(('SELECT 1 AS a' | (df.sleep(5) ~> 'SELECT 2 AS b')) |=> 'r' ~> 'SELECT $r AS winner', 'race-bound') AS instance_id \gset
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
