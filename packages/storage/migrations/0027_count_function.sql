-- One operation counted on a shared rate-limit counter (fixed windows, atomic under concurrency),
-- with the count so far and when its window ends. The request limits call it on its own, and the
-- authentication of a signed agent request calls it inside the statement that claims the nonce, so
-- that request's count costs no round trip of its own.
CREATE FUNCTION airlock_count(counter_key text, at timestamptz, window_seconds integer)
RETURNS TABLE (points integer, window_ends_at timestamptz)
LANGUAGE sql VOLATILE AS $$
  INSERT INTO rate_limit_counters AS c (key, points, window_ends_at)
  VALUES (counter_key, 1, at + make_interval(secs => window_seconds))
  ON CONFLICT (key) DO UPDATE SET
    points = CASE WHEN c.window_ends_at <= at THEN 1 ELSE c.points + 1 END,
    window_ends_at = CASE WHEN c.window_ends_at <= at THEN EXCLUDED.window_ends_at ELSE c.window_ends_at END
  RETURNING c.points, c.window_ends_at
$$;
