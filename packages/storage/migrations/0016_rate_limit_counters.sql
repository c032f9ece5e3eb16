-- Request rate-limit counters, shared by every replica on this database: one row per limit and
-- subject (an API key, a console user, an agent, a source address), counting the operations of its
-- current window. A window that has ended restarts at the next operation; rows of ended windows are
-- pruned. Not tenant data (a source address has no tenant), so no row-level security; unlogged,
-- since counters lost in a crash only forgive one window.
CREATE UNLOGGED TABLE rate_limit_counters (
  key text PRIMARY KEY,
  points integer NOT NULL,
  window_ends_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_counters_window_ends_at ON rate_limit_counters (window_ends_at);
