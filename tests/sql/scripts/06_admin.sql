-- Administration: df.grant_usage (schema usage, the role's step executors, include_http,
-- with_grant delegation, df on the search_path), df.revoke_usage and df.version.
\c - postgres
SELECT df.grant_usage('regress_carol');
SELECT df.grant_usage('regress_carol');
SELECT role, include_http, with_grant, granted_by FROM dfc.grants WHERE role = 'regress_carol';
SELECT has_schema_privilege('regress_carol', 'df', 'USAGE') AS usage,
       (SELECT count(*) FROM pg_proc
         WHERE pronamespace = 'dfc_run'::regnamespace AND proowner = 'regress_carol'::regrole) AS executors,
       (SELECT setconfig FROM pg_db_role_setting
         WHERE setrole = 'regress_carol'::regrole
           AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())) AS settings;
SELECT df.grant_usage('regress_no_such_role');
-- the executors belong to the role but live where it cannot reach them
\c - regress_carol
SHOW search_path;
SELECT 'a' ~> 'b' AS graph;
SELECT count(*) FROM dfc_run.nothing;
-- only administrators grant
SELECT df.grant_usage('regress_dave');
SELECT df.revoke_usage('regress_alice');
SELECT df.metrics();
-- a role granted with_grant may grant what it has
\c - regress_admin
SELECT df.grant_usage('regress_dave', include_http => true);
\c - regress_dave
SELECT df.http('https://api.example.com/') IS NOT NULL AS http;
SELECT df.start('SELECT 1') ~ '^[0-9a-f]{8}$' AS started;
\c - regress_admin
SELECT df.revoke_usage('regress_dave');
\c - regress_dave
SELECT df.start('SELECT 1');
\c - postgres
SELECT count(*) AS grants FROM dfc.grants WHERE role = 'regress_dave';
SELECT count(*) AS executors FROM pg_proc
 WHERE pronamespace = 'dfc_run'::regnamespace AND proowner = 'regress_dave'::regrole;
-- set_search_path => false leaves the role's settings alone
SELECT df.revoke_usage('regress_carol');
ALTER ROLE regress_carol IN DATABASE :"DBNAME" RESET search_path;
SELECT df.grant_usage('regress_carol', set_search_path => false);
SELECT count(*) AS settings FROM pg_db_role_setting WHERE setrole = 'regress_carol'::regrole;
SELECT df.revoke_usage('regress_carol');
SELECT has_schema_privilege('regress_carol', 'df', 'USAGE') AS usage;
-- dfc's version, and the schema's
SELECT df.version() ~ '^[0-9]+\.[0-9]+\.[0-9]+.* \(dfc schema [0-9]+\)$' AS version_shape;
\c - regress_alice
SELECT df.version() = (SELECT df.version()) AS callable;
-- pg_durable's no-op and its database setting
SELECT df.run() AS run_all, df.run('abc12345') AS run_one, df.target_database() = current_database() AS here;
