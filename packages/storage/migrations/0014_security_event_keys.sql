-- An agent chooses its security events' ids, so an id is unique only per agent: keyed globally, one
-- tenant's agent could take an id first and have another tenant's event with that id dropped.
ALTER TABLE agent_security_events DROP CONSTRAINT agent_security_events_pkey;
ALTER TABLE agent_security_events ADD PRIMARY KEY (agent_id, id);
