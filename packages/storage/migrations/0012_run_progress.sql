-- Live progress of a running run, as the agent last reported it: counters only (bytes, files),
-- never names or contents. Overwritten at each report; the receipt in `report` is what lasts.
ALTER TABLE runs ADD COLUMN progress jsonb;
ALTER TABLE runs ADD COLUMN progress_at timestamptz;
