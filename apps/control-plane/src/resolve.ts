/**
 * Admins name integrations by name or id, and runs by id or by their integration (its latest run).
 * A UUID is taken as an id; anything else as a name, looked up in the caller's tenant.
 */
import { NotFoundError } from '@airlock/errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

interface IntegrationLister {
  integrations: { list: { query: () => Promise<ReadonlyArray<{ id: string; name: string }>> } };
}

interface RunLister extends IntegrationLister {
  runs: { list: { query: (input: { integrationId?: string; limit: number }) => Promise<ReadonlyArray<{ id: string }>> } };
}

/** The id of the integration named `ref` (a name or an id). */
export async function integrationId(client: IntegrationLister, ref: string): Promise<string> {
  if (isUuid(ref)) return ref;
  const found = (await client.integrations.list.query()).find((integration) => integration.name === ref);
  if (!found) throw new NotFoundError(`no integration named ${JSON.stringify(ref)} (see \`airlock integration list\`)`);
  return found.id;
}

/** The id of the run `ref` names: a run id, or an integration (by name) for its latest run. */
export async function runId(client: RunLister, ref: string): Promise<string> {
  if (isUuid(ref)) return ref;
  const id = await integrationId(client, ref);
  const [latest] = await client.runs.list.query({ integrationId: id, limit: 1 });
  if (!latest) throw new NotFoundError(`integration ${JSON.stringify(ref)} has no runs yet`);
  return latest.id;
}
