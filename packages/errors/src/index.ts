/**
 * The shared error classes (errors.ts), and how they cross the wire (remote.ts), reach a person
 * (person.ts) and name a failed request (network.ts). Every layer throws one of these; exactly one
 * place per transport (the control plane's tRPC error formatter, the agent's run reporter and
 * CLIs) maps them.
 */
export * from './errors.ts';
export { errorClassOfStatus, errorOfClass, fromRemote, isErrorClass, remoteErrorClass } from './remote.ts';
export { formatIssues, type SchemaIssue } from './issues.ts';
export { asNetworkError, fetchNamingFailures, networkFailureOf } from './network.ts';
export { EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, forPerson, type PersonError, type PersonErrorCode, personErrorJson } from './person.ts';
