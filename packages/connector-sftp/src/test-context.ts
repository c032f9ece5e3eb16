/** Shared by this package's tests: a connector context that records log lines, and a SHA-256 of a stream. */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ConnectorContext, Logger } from '@airlock/connector-api';

export interface LogLine {
  level: string;
  meta: Record<string, unknown>;
  message: string;
}

export function mockContext(
  secret: Record<string, string>,
  signal: AbortSignal = new AbortController().signal,
): ConnectorContext & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (meta: Record<string, unknown>, message: string): void => {
      lines.push({ level, meta, message });
    };
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { signal, logger, secret: async () => secret, lines };
}

export function sha256Of(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
