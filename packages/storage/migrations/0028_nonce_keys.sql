-- A signed request's nonce is inserted by the statement that authenticates it, and only for an
-- agent that statement has just found current in its tenant; agents and tenants are never
-- deleted (an agent is revoked), and a nonce lives for the clock-skew window. The foreign keys
-- added nothing to that, yet each insert locked the agent's row and the tenant's row FOR KEY
-- SHARE: with every agent of a tenant authenticating at once, that one tenant row gathered a
-- multixact of lockers on every request.
ALTER TABLE request_nonces DROP CONSTRAINT IF EXISTS request_nonces_agent_id_fkey;
ALTER TABLE request_nonces DROP CONSTRAINT IF EXISTS request_nonces_tenant_id_fkey;
