/**
 * The agent's security log: `<dataDir>/security.log`, JSON Lines, mode 0600, append-only. Every
 * refusal of something the control plane (or someone in between) sent is recorded here first, on
 * the agent, where a compromised control plane cannot erase it; then it is reported, metadata only.
 * `security-reported.json` remembers how many lines the control plane has acknowledged.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { type SecurityEventInput, securityEventInput, type SecurityEventKind } from '@airlock/protocol';
import { appendLine, readIfExists, replaceFile } from './files.ts';

/** Events sent per flush; the rest wait for the next one. */
const FLUSH_BATCH = 100;

export type SecurityEvent = SecurityEventInput;

export class SecurityLog {
  readonly file: string;
  readonly #cursorFile: string;

  constructor(dataDir: string) {
    this.file = path.join(dataDir, 'security.log');
    this.#cursorFile = path.join(dataDir, 'security-reported.json');
  }

  async record(kind: SecurityEventKind, reason: string, options: { runId?: string; now?: Date } = {}): Promise<SecurityEvent> {
    const event: SecurityEvent = {
      id: randomUUID(),
      kind,
      at: (options.now ?? new Date()).toISOString(),
      ...(options.runId !== undefined ? { runId: options.runId } : {}),
      reason: reason.slice(0, 500),
    };
    await appendLine(this.file, JSON.stringify(event));
    return event;
  }

  /** Every event so far; a damaged line (a crash mid-append) is skipped. */
  async read(): Promise<SecurityEvent[]> {
    const text = (await readIfExists(this.file)) ?? '';
    const events: SecurityEvent[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const parsed = securityEventInput.safeParse(JSON.parse(line));
        if (parsed.success) events.push(parsed.data);
      } catch {
        continue;
      }
    }
    return events;
  }

  /** Sends what the control plane has not acknowledged, in order; stops at the first failure. */
  async flush(send: (event: SecurityEvent) => Promise<void>): Promise<number> {
    const events = await this.read();
    const cursorText = await readIfExists(this.#cursorFile);
    const cursor = cursorText === undefined ? 0 : z.object({ sent: z.number().int().nonnegative() }).parse(JSON.parse(cursorText)).sent;
    let sent = cursor;
    for (const event of events.slice(cursor, cursor + FLUSH_BATCH)) {
      await send(event);
      sent += 1;
      await replaceFile(this.#cursorFile, `${JSON.stringify({ sent })}\n`);
    }
    return sent - cursor;
  }
}
