-- Per-tenant audit chains.
--
-- Until now one global chain, behind the one row of audit_head, ordered every tenant's appends,
-- and its sequence number told every tenant how much the others did. From here on each tenant has
-- a chain of its own, and events without a tenant (refused anonymous requests, bootstrap) have the
-- system chain; an append locks only its chain's head row.
--
-- The existing data stays as it was written: the global chain is frozen as the legacy epoch, and
-- audit_head keeps its final head (seq L, hash H) for good. Its records and the v1 checkpoints that
-- signed them verify exactly as before. Every new chain starts from that frozen head: its first
-- record has seq L + 1 and prevHash H, so a tenant's sequence numbers keep growing across the
-- change (paging by seq still works) and each chain is bound to the whole legacy history. On a
-- database with no events, L is 0 and H the genesis hash, so chains start at 1 from genesis.
-- Tree checkpoints (audit_tree_checkpoints) sign a Merkle root over every chain's head together
-- with (L, H), so the legacy records after its last v1 checkpoint are signed by the first of them.
--
-- A record's hash is unchanged in form: SHA-256 over prevHash and the canonical JSON of the record,
-- which holds tenantId and the chain's own seq, so a record cannot be moved to another chain.

-- The frozen legacy head: no append moves it any more, and nobody may.
CREATE TRIGGER audit_head_frozen BEFORE UPDATE OR DELETE ON audit_head
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_head FROM airlock_app;

-- seq is unique per chain now, not across the table. Legacy records were unique globally, so they
-- satisfy both indexes as they stand. NULLs are distinct in the first, hence the second.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
DROP INDEX audit_events_tenant;
CREATE UNIQUE INDEX audit_events_tenant_chain ON audit_events (tenant_id, seq);
CREATE UNIQUE INDEX audit_events_system_chain ON audit_events (seq) WHERE tenant_id IS NULL;
-- Whole-trail verification still walks the legacy records in their global order. The bound is the
-- frozen head's seq, a number read from the table itself; DDL takes no bind parameters.
DO $$
BEGIN
  EXECUTE format('CREATE INDEX audit_events_legacy ON audit_events (seq) WHERE seq <= %L::bigint', (SELECT seq FROM audit_head WHERE singleton));
END
$$;

-- The order records were written in across chains, for reading the whole trail as it was written
-- (a test's "every event since", an operator's query). Not hashed, and never shown to a tenant:
-- it counts every tenant's events. Existing rows are numbered in their legacy seq order.
ALTER TABLE audit_events ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;

-- One head per chain, keyed by the tenant id or, for the system chain, the nil uuid. The row is
-- created by a chain's first append, starting at the legacy head.
CREATE TABLE audit_chain_heads (
  chain uuid PRIMARY KEY,
  tenant_id uuid,
  seq bigint NOT NULL,
  hash text NOT NULL,
  CHECK (chain = coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid))
);
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_chain_heads_tenant ON audit_chain_heads
  USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY audit_chain_heads_system ON audit_chain_heads
  USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

-- One round trip per append, as in 0010, but the lock taken is the chain's own head row.
CREATE OR REPLACE FUNCTION audit_append(
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
DECLARE
  v_chain uuid := coalesce(p_tenant_id, '00000000-0000-0000-0000-000000000000'::uuid);
BEGIN
  SELECT h.seq + 1, h.hash INTO seq, prev_hash FROM audit_chain_heads h WHERE h.chain = v_chain FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO audit_chain_heads (chain, tenant_id, seq, hash)
      SELECT v_chain, p_tenant_id, l.seq, l.hash FROM audit_head l WHERE l.singleton
      ON CONFLICT (chain) DO NOTHING;
    SELECT h.seq + 1, h.hash INTO seq, prev_hash FROM audit_chain_heads h WHERE h.chain = v_chain FOR UPDATE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'audit head missing: run migrations';
    END IF;
  END IF;
  hash := encode(sha256(convert_to(
    prev_hash || E'\n' || p_before || '"' || prev_hash || '","seq":' || seq::text || p_after, 'UTF8')), 'hex');
  INSERT INTO audit_events (seq, tenant_id, at, actor_type, actor_id, action, target, outcome, source_ip, meta, prev_hash, hash)
    VALUES (seq, p_tenant_id, p_at::timestamptz, p_actor_type, p_actor_id, p_action, p_target, p_outcome, p_source_ip, p_meta,
            prev_hash, hash);
  UPDATE audit_chain_heads h SET seq = audit_append.seq, hash = audit_append.hash WHERE h.chain = v_chain;
END;
$$;

-- Signed tree checkpoints: number, time, leaf count, Merkle root over every chain head, and the
-- frozen legacy head, signed by key_id. Append-only like the chain.
CREATE TABLE audit_tree_checkpoints (
  number bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  size integer NOT NULL,
  root text NOT NULL,
  legacy_seq bigint NOT NULL,
  legacy_hash text NOT NULL,
  key_id text NOT NULL,
  signature text NOT NULL
);
-- The leaves of each checkpoint, stored only where a chain moved since the previous one: the
-- leaves of checkpoint n are, per chain, the row with the greatest number at or below n. That keeps
-- storage in step with activity rather than with tenants times checkpoints.
CREATE TABLE audit_checkpoint_leaves (
  chain uuid NOT NULL,
  number bigint NOT NULL REFERENCES audit_tree_checkpoints (number),
  tenant_id uuid,
  seq bigint NOT NULL,
  hash text NOT NULL,
  PRIMARY KEY (chain, number)
);
CREATE INDEX audit_checkpoint_leaves_number ON audit_checkpoint_leaves (number);
ALTER TABLE audit_checkpoint_leaves ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoint_leaves FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_checkpoint_leaves_tenant ON audit_checkpoint_leaves
  USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY audit_checkpoint_leaves_system ON audit_checkpoint_leaves
  USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
CREATE TRIGGER audit_tree_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_tree_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_tree_checkpoints_no_truncate BEFORE TRUNCATE ON audit_tree_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoint_leaves_no_update BEFORE UPDATE OR DELETE ON audit_checkpoint_leaves
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoint_leaves_no_truncate BEFORE TRUNCATE ON audit_checkpoint_leaves
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_tree_checkpoints, audit_checkpoint_leaves FROM airlock_app;
-- The legacy v1 checkpoints are complete: the legacy chain no longer moves.
REVOKE INSERT ON audit_checkpoints FROM airlock_app;

-- The alert engine reads each chain from its own cursor: within a chain, records commit in seq
-- order (the head row lock), across chains they do not, so one global cursor would skip some.
-- A chain without a row here starts at the engine's legacy cursor, alert_engine.audit_seq.
CREATE TABLE alert_engine_chains (
  chain uuid PRIMARY KEY,
  seq bigint NOT NULL
);
-- Chains with legacy records the engine has not read yet get a head now, so the engine finds them.
INSERT INTO audit_chain_heads (chain, tenant_id, seq, hash)
  SELECT DISTINCT coalesce(e.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), e.tenant_id, h.seq, h.hash
  FROM audit_events e CROSS JOIN audit_head h CROSS JOIN alert_engine a
  WHERE e.seq > a.audit_seq;
