/**
 * Scopes: what an agent may do, as action × resource grants, per tenant, to an agent or a group,
 * optionally expiring. Pure: no I/O. The control plane checks them when an integration is saved
 * and again at dispatch; the agent's local policy remains the ceiling. The schemes a resource may
 * name come from the connector registry (`schemesOf`), never from a list here.
 */
export * from './grammar.ts';
export * from './match.ts';
export * from './claims.ts';
