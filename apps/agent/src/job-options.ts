/** The integration's options with defaults applied, and the names delivered files get. */
import { formatIssues, UserError } from '@airlock/errors';
import { integrationOptions, type IntegrationOptions, type IntegrationSpec } from '@airlock/protocol';

// The control plane checks templates with the same rules when an integration is saved.
export { renderName } from '@airlock/connector-api';

export function jobOptions(spec: IntegrationSpec): IntegrationOptions {
  const parsed = integrationOptions.safeParse({
    output: spec.output,
    selection: spec.selection,
    afterDelivery: spec.afterDelivery,
    concurrency: spec.concurrency,
  });
  if (!parsed.success) throw new UserError(`integration options: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}
