-- 0006: the options df.start gives for compiling an instance's graph.
--
-- {"max_attempts": n, "max_backoff": seconds} when df.start(..., max_attempts => n) asked for
-- retries (n > 1), else NULL. Migration 0005 (the SQL surface) may create the column first.
ALTER TABLE dfc.instances ADD COLUMN IF NOT EXISTS options jsonb;
COMMENT ON COLUMN dfc.instances.options IS
    'df.start''s options for compiling its graph: {"max_attempts": n, "max_backoff": seconds} '
    'when max_attempts > 1 (every SQL and HTTP step is then retried), else NULL.';
