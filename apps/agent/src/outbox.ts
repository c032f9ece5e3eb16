/**
 * Run reports wait here until the control plane has them, so a report survives a network outage
 * or a restart. Reports are metadata only (sizes, hashes, fingerprints), never file contents.
 */
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { runReport, type RunReport } from '@airlock/protocol';

export class Outbox {
  readonly #dir: string;

  constructor(dataDir: string) {
    this.#dir = path.join(dataDir, 'outbox');
  }

  async put(report: RunReport): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const name = `${Date.now().toString().padStart(15, '0')}-${report.runId}.json`;
    const temp = path.join(this.#dir, `.${name}.tmp`);
    // Durable before it is visible, so a crash leaves either the whole report or none.
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(report));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path.join(this.#dir, name));
  }

  /** How many reports are waiting. */
  async depth(): Promise<number> {
    return (await this.#waiting()).length;
  }

  /** Whether no report is waiting. */
  async isEmpty(): Promise<boolean> {
    return (await this.#waiting()).length === 0;
  }

  /** Sends every waiting report in order; stops at the first failure and keeps the rest. */
  async flush(send: (report: RunReport) => Promise<void>): Promise<number> {
    const names = await this.#waiting();
    let sent = 0;
    for (const name of names) {
      const file = path.join(this.#dir, name);
      let raw: unknown = null;
      try {
        raw = JSON.parse(await readFile(file, 'utf8'));
      } catch {
        // Damaged on disk: dropping it must not block every later report.
      }
      const parsed = runReport.safeParse(raw);
      if (parsed.success) await send(parsed.data);
      await rm(file, { force: true });
      sent += 1;
    }
    return sent;
  }

  /** The waiting reports' file names, oldest first. */
  async #waiting(): Promise<string[]> {
    try {
      return (await readdir(this.#dir)).filter((name) => name.endsWith('.json') && !name.startsWith('.')).sort();
    } catch {
      return [];
    }
  }
}
