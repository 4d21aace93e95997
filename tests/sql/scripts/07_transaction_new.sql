-- transaction_mode => 'new' commits df.start on a connection of its own (through dblink, as
-- the same role): the instance outlives the caller's rollback, and only committed variables
-- reach it.
\c - postgres
DROP EXTENSION IF EXISTS dblink;
\c - regress_alice
SELECT df.start('SELECT 1', 'no-dblink', transaction_mode => 'new');
\c - postgres
CREATE EXTENSION dblink;
\c - regress_alice
SELECT df.setvar('committed', 'yes');
BEGIN;
SELECT df.setvar('uncommitted', 'no');
SELECT df.start('SELECT 1', 'own-transaction', transaction_mode => 'NEW') AS id \gset
ROLLBACK;
SELECT label, status FROM df.instances WHERE id = :'id';
SELECT df.start('SELECT 1', 'checked-first', transaction_mode => 'new', max_attempts => 0);
\c - postgres
SELECT created_by, vars, graph FROM dfc.instances WHERE id = :'id';
DROP EXTENSION dblink;
\c - regress_alice
SELECT df.clearvars();
