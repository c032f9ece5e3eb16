-- One round trip per audit append. The application sends the record's canonical JSON around the
-- two fields only the chain head decides (packages/audit canonicalRecordParts); this function locks
-- the head, fills in prevHash and seq, hashes exactly as hashEvent does
-- (SHA-256 hex of prevHash || '\n' || canonical JSON), inserts and moves the head. The row lock is
-- held until the caller's transaction ends, as before, but no longer across client round trips.
-- sha256() is built in since PostgreSQL 11 (no pgcrypto), and so in PGlite too.
CREATE FUNCTION audit_append(
  p_tenant_id uuid,
  p_at text,
  p_actor_type text,
  p_actor_id text,
  p_action text,
  p_target text,
  p_outcome text,
  p_source_ip text,
  p_meta jsonb,
  p_before text,
  p_after text,
  OUT seq bigint,
  OUT prev_hash text,
  OUT hash text
) LANGUAGE plpgsql AS $$
BEGIN
  SELECT h.seq + 1, h.hash INTO seq, prev_hash FROM audit_head h WHERE h.singleton FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'audit head missing: run migrations';
  END IF;
  hash := encode(sha256(convert_to(
    prev_hash || E'\n' || p_before || '"' || prev_hash || '","seq":' || seq::text || p_after, 'UTF8')), 'hex');
  INSERT INTO audit_events (seq, tenant_id, at, actor_type, actor_id, action, target, outcome, source_ip, meta, prev_hash, hash)
    VALUES (seq, p_tenant_id, p_at::timestamptz, p_actor_type, p_actor_id, p_action, p_target, p_outcome, p_source_ip, p_meta,
            prev_hash, hash);
  UPDATE audit_head h SET seq = audit_append.seq, hash = audit_append.hash WHERE h.singleton;
END;
$$;
