/**
 * @airlock/connector-script: export scripts the local admin approved, for systems with no API and
 * no files. The agent registers `scriptSource`; which scripts it may run is the local policy's `sources.script`.
 */
export { approvedScript, scriptParameter, type ApprovedScript } from './approved.ts';
export { buildArgv, redactTail, scriptSource } from './source.ts';
export { scriptSourceConfig, scriptSourceDefinition, type ScriptSourceConfig } from './definition.ts';
