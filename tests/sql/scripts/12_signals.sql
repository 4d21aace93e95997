-- needs: worker
-- Signals (tests/e2e/sql/07_signals.sql, the USER_GUIDE): with and without a timeout, with a
-- JSON or plain-text payload or none (pg_durable's default payload is '{}'), several at once.
-- dfc keeps a signal sent before its wait started, so no retry loop is needed.
\c - regress_alice
CREATE TABLE signal_test_log (id SERIAL PRIMARY KEY, msg TEXT, data JSONB, created_at TIMESTAMPTZ DEFAULT now());
-- basic
SELECT df.start(
    'SELECT 1' |=> 'start'
    ~> (df.wait_for_signal('go') |=> 'sig')
    ~> 'INSERT INTO signal_test_log (msg, data)
        VALUES (''received'', $sig::jsonb)',
    'test-signal-basic'
) AS instance_id \gset
SELECT df.signal(:'instance_id', 'go', '{"value": 42}');
SELECT df.await_instance(:'instance_id') AS status;
SELECT data->>'timed_out' AS timed_out, data->'data'->>'value' AS value, data->>'signal_name' AS name
  FROM signal_test_log WHERE msg = 'received';
-- a timeout completes the wait, with timed_out true
SELECT df.start(
    df.wait_for_signal('never_arrives', 1) |=> 'sig'
    ~> 'INSERT INTO signal_test_log (msg, data)
        VALUES (''timeout_result'', $sig::jsonb)',
    'test-signal-timeout'
) AS instance_id \gset
SELECT df.await_instance(:'instance_id', 10) AS status;
SELECT data FROM signal_test_log WHERE msg = 'timeout_result';
-- the payload
SELECT df.start(
    df.wait_for_signal('approval') |=> 'sig'
    ~> 'INSERT INTO signal_test_log (msg, data)
        VALUES (
            ''approval_received'',
            jsonb_build_object(
                ''approved'', ($sig::jsonb->''data''->>''approved'')::boolean,
                ''approver'', $sig::jsonb->''data''->>''approver''
            )
        )',
    'test-signal-data'
) AS instance_id \gset
SELECT df.signal(:'instance_id', 'approval', '{"approved": true, "approver": "jane@acme.com"}');
SELECT df.await_instance(:'instance_id') AS status;
SELECT data FROM signal_test_log WHERE msg = 'approval_received';
-- a payload that is not JSON arrives as a JSON string; no payload arrives as {}
SELECT df.start(df.wait_for_signal('plain_text') |=> 'sig' ~> 'INSERT INTO signal_test_log (msg, data) VALUES (''plain'', $sig::jsonb)', 'test-signal-text') AS instance_id \gset
SELECT df.signal(:'instance_id', 'plain_text', 'approve');
SELECT df.await_instance(:'instance_id') AS status;
SELECT jsonb_typeof(data->'data') AS kind, data->>'data' AS data FROM signal_test_log WHERE msg = 'plain';
SELECT df.start(df.wait_for_signal('poke') |=> 'sig' ~> 'INSERT INTO signal_test_log (msg, data) VALUES (''default'', $sig::jsonb)', 'test-signal-default') AS instance_id \gset
SELECT df.signal(:'instance_id', 'poke');
SELECT df.await_instance(:'instance_id') AS status;
SELECT data FROM signal_test_log WHERE msg = 'default';
-- a binding on a sequence binds its last step (flat parse: (('INSERT…' ~> wait) |=> 'decision') ~> df.if(…))
SELECT df.start(
    'INSERT INTO signal_test_log (msg) VALUES (''waiting-for-decision'')'
    ~> df.wait_for_signal('test_approval_then', 60) |=> 'decision'
    ~> df.if(
        'SELECT ($decision::jsonb->''data''->>''approved'')::boolean',
        $$INSERT INTO signal_test_log (msg, data) VALUES ('approved-after-then', $decision::jsonb)$$,
        $$INSERT INTO signal_test_log (msg, data) VALUES ('rejected-after-then', $decision::jsonb)$$
    ),
    'test-signal-then-named'
) AS instance_id \gset
SELECT df.signal(:'instance_id', 'test_approval_then', '{"approved": false}');
SELECT df.await_instance(:'instance_id') AS status;
SELECT msg FROM signal_test_log WHERE msg LIKE '%after-then' OR msg = 'waiting-for-decision' ORDER BY id;
-- several approvals at once
SELECT df.start(
    df.join3(df.wait_for_signal('legal_approval'), df.wait_for_signal('tech_approval'),
             df.wait_for_signal('mgmt_approval')) |=> 'approvals'
    ~> 'SELECT jsonb_array_length($approvals::jsonb) AS n',
    'multi-party'
) AS instance_id \gset
SELECT df.signal(:'instance_id', 'tech_approval', '{"ok": true}');
SELECT df.signal(:'instance_id', 'mgmt_approval', '{"ok": true}');
SELECT df.signal(:'instance_id', 'legal_approval', '{"ok": true}');
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
-- a wait that a race ends, and the explain of a finished wait
SELECT df.start(df.race(df.sleep(30), df.wait_for_signal('cancel')) ~> 'SELECT ''stopped'' AS how', 'race-signal') AS instance_id \gset
SELECT df.signal(:'instance_id', 'cancel');
SELECT df.await_instance(:'instance_id') AS status;
SELECT df.result(:'instance_id') AS result;
SELECT df.explain(:'instance_id');
