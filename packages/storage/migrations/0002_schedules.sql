-- Schedules, and at most one active run per integration.

-- Where each scheduled integration stands. `cron`, `timezone` and `missed` copy the saved spec's
-- schedule, so a save can tell whether `next_run_at` must be recomputed.
CREATE TABLE integration_schedules (
  integration_id uuid PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  cron text NOT NULL,
  timezone text NOT NULL,
  missed text NOT NULL CHECK (missed IN ('run-once', 'skip')),
  next_run_at timestamptz NOT NULL,
  last_fired_at timestamptz
);
CREATE INDEX integration_schedules_due ON integration_schedules (next_run_at);

-- Runs queued twice for one integration before this rule existed: keep the one already running
-- (else the oldest) and close the others, so the index below can be built.
UPDATE runs SET status = 'failed', finished_at = now(), error_class = 'conflict'
WHERE status IN ('queued', 'running')
  AND id NOT IN (
    SELECT DISTINCT ON (integration_id) id FROM runs
    WHERE status IN ('queued', 'running')
    ORDER BY integration_id, (status = 'running') DESC, created_at
  );

-- Two runs of one integration never overlap: the database refuses a second queued or running run,
-- whichever replica or caller asks.
CREATE UNIQUE INDEX runs_one_active ON runs (integration_id) WHERE status IN ('queued', 'running');
