/**
 * @airlock/field-scopes: column and field allowlists with an optional data contract, for CSV and
 * JSON Lines, as a streaming transform the agent puts before encryption.
 */
export { fieldRule, fieldScope, type FieldRule, type FieldScope } from './contract.ts';
export { DataContractError, fieldFilter } from './filter.ts';
