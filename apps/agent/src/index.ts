export { buildProgram, main } from './cli.ts';
export { runJob, type TransferDeps } from './transfer.ts';
export { LocalPolicy, PolicyRefusal } from './policy.ts';
export { builtInConnectors } from './connectors.ts';
export { loadSecrets } from './secrets.ts';
export { runDaemon, AGENT_VERSION } from './daemon.ts';
export { createAgentClient, createEnrollmentClient } from './control-channel.ts';
export { reconnectDelay, retryAfterOf } from './retry.ts';
export { AgentMetrics, type AgentMetricsOptions } from './metrics.ts';
