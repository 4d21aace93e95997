-- needs: worker
-- df.start belongs to the caller's transaction (tests/e2e/sql/23_transactions.sql): the worker
-- runs it after commit, never after a rollback; transaction_mode => 'new' commits on its own.
\c - postgres
CREATE EXTENSION IF NOT EXISTS dblink;
\c - regress_alice
CREATE TABLE txn_test_log (id serial, msg text, instance_id text);
CREATE TABLE employees (id int PRIMARY KEY, name text);
CREATE TABLE audit_log (message text);
-- started inside a DO block: it runs once the block's transaction commits
DO $$
DECLARE
    inst_id text;
BEGIN
    inst_id := df.start('INSERT INTO txn_test_log (msg, instance_id) VALUES (''same_txn_df_ran'', ''{sys_instance_id}'')', 'txn-test-same-txn');
    PERFORM pg_sleep(0.5);
    IF EXISTS (SELECT 1 FROM txn_test_log) THEN
        RAISE EXCEPTION 'the instance ran before its start committed';
    END IF;
END $$;
SELECT instance_id AS id FROM df.list_instances(NULL, 1, 'txn-test-same-txn') \gset
SELECT df.await_instance(:'id') AS status;
SELECT msg, instance_id = :'id' AS own_id FROM txn_test_log;
-- rolled back: no instance, nothing runs
DO $$
BEGIN
    PERFORM df.start('INSERT INTO txn_test_log (msg) VALUES (''rollback_df_should_not_run'')', 'txn-test-rollback');
    RAISE EXCEPTION 'roll it back';
END $$;
SELECT count(*) AS instances FROM df.list_instances(NULL, 100, 'txn-test-rollback');
-- transaction_mode => 'new' survives the caller's rollback
BEGIN;
    INSERT INTO employees (id, name) VALUES (999, 'Test User');
    SELECT df.start(
        'INSERT INTO audit_log (message) VALUES (''Inserted employee 999'')',
        'audit',
        transaction_mode => 'new'
    ) AS id \gset
ROLLBACK;
SELECT df.await_instance(:'id') AS status;
SELECT count(*) AS employees FROM employees;
SELECT message FROM audit_log;
