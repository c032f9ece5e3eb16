/**
 * A field scope: which fields of a CSV or JSON Lines file may leave the premises, and an optional
 * data contract they must meet. The schema is part of the integration spec, so it lives in
 * @airlock/protocol; this package applies it.
 */
export { fieldRule, fieldScope, type FieldRule, type FieldScope } from '@airlock/protocol';
