-- An admin can cancel a run that is stuck queued (agent offline or revoked) or running (agent lost),
-- which also releases the one-active-run-per-integration rule.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'));
