/**
 * @airlock/connector-script: export scripts the local admin approved, for systems with no API and
 * no files. The agent builds `scriptSource(policy.scripts)` from its local policy.
 */
export { approvedScript, scriptParameter, type ApprovedScript } from './approved.ts';
export { buildArgv, redactTail, scriptSource } from './source.ts';
export { scriptSourceConfig, scriptSourceDefinition, type ScriptSourceConfig } from './definition.ts';
