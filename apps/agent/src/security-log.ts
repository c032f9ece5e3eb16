/**
 * The agent's security log: `<dataDir>/security.log`, JSON Lines, mode 0600, append-only. Every
 * refusal of something the control plane (or someone in between) sent is recorded here first, on
 * the agent, where a compromised control plane cannot erase it; then it is reported, metadata only.
 * `security-reported.json` remembers how many lines the control plane has acknowledged.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { remoteErrorClass } from '@airlock/errors';
import { escapeUnprintable, type SecurityEventInput, securityEventInput, type SecurityEventKind, truncateText } from '@airlock/protocol';
import { appendLine, readIfExists, replaceFile } from './files.ts';

/** Events sent per flush; the rest wait for the next one. */
const FLUSH_BATCH = 100;

export type SecurityEvent = SecurityEventInput;

const REASON_MAX = 500;

/** A line of the log as written, before its reason is made reportable (older agents wrote it raw). */
const storedEvent = securityEventInput.extend({ reason: z.string() });

/**
 * The reason as the control plane accepts it: one printable line of at most 500 code points.
 * Reasons quote what was refused (a file name, a server's message), which an attacker may choose.
 */
function reportableReason(reason: string): string {
  const clean = truncateText(escapeUnprintable(reason), REASON_MAX);
  return clean === '' ? '(no reason given)' : clean;
}

export type Warn = (fields: Record<string, unknown>, message: string) => void;

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
      reason: reportableReason(reason),
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
        const parsed = storedEvent.safeParse(JSON.parse(line));
        if (parsed.success) events.push({ ...parsed.data, reason: reportableReason(parsed.data.reason) });
      } catch {
        continue;
      }
    }
    return events;
  }

  /**
   * Sends what the control plane has not acknowledged, in order; stops at the first failure, which
   * is thrown. An event refused as bad input (class `user`) would be refused forever and hold up every event
   * behind it, so it is passed over with a warning; it stays in this log.
   */
  async flush(send: (event: SecurityEvent) => Promise<void>, warn: Warn): Promise<number> {
    const events = await this.read();
    const cursorText = await readIfExists(this.#cursorFile);
    const cursor = cursorText === undefined ? 0 : z.object({ sent: z.number().int().nonnegative() }).parse(JSON.parse(cursorText)).sent;
    let sent = cursor;
    for (const event of events.slice(cursor, cursor + FLUSH_BATCH)) {
      try {
        await send(event);
      } catch (error) {
        const errorClass = remoteErrorClass(error);
        if (errorClass !== 'user') throw error;
        warn({ eventId: event.id, kind: event.kind, errorClass }, 'security event refused by the control plane as bad input; not reported (kept in security.log)');
      }
      sent += 1;
      await replaceFile(this.#cursorFile, `${JSON.stringify({ sent })}\n`);
    }
    return sent - cursor;
  }
}
