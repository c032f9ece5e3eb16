/** The integration's options with defaults applied, and the names delivered files get. */
import { isSafeName, type SourceFile } from '@airlock/connector-api';
import { UserError } from '@airlock/errors';
import { integrationOptions, type IntegrationOptions, type IntegrationSpec } from '@airlock/protocol';

export function jobOptions(spec: IntegrationSpec): IntegrationOptions {
  const parsed = integrationOptions.safeParse({
    output: spec.output,
    selection: spec.selection,
    afterDelivery: spec.afterDelivery,
    concurrency: spec.concurrency,
  });
  if (!parsed.success) {
    throw new UserError(`integration options: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** `a.tar.gz` → stem `a.tar`, ext `gz`; a name with no dot after its first character has no ext. */
function splitName(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? { stem: name, ext: '' } : { stem: name.slice(0, dot), ext: name.slice(dot + 1) };
}

/** `YYYYMMDD` in UTC. */
function utcDate(date: Date): string {
  return date.toISOString().slice(0, 10).replaceAll('-', '');
}

/**
 * Fills a name template (`{name}`, `{stem}`, `{ext}`, `{date}`, `{runId}`). The result must be one
 * safe path component; anything else is the integration's mistake, a user error.
 */
export function renderName(template: string, file: SourceFile, run: { runId: string; date: Date }): string {
  const { stem, ext } = splitName(file.name);
  const values: Record<string, string> = { name: file.name, stem, ext, date: utcDate(run.date), runId: run.runId };
  const name = template.replace(/\{([a-zA-Z]+)\}/g, (whole, key: string) => values[key] ?? whole);
  if (!isSafeName(name)) throw new UserError(`name template ${JSON.stringify(template)} gives an unsafe file name for ${file.path}`);
  return name;
}
