/**
 * Nonces of the job envelopes this agent accepted, kept until each envelope expires:
 * `<dataDir>/envelope-nonces.json`. A replayed envelope finds its nonce here and is refused.
 * Envelopes live at most an hour, so the file holds at most an hour of jobs.
 */
import path from 'node:path';
import { z } from 'zod';
import { readIfExists, replaceFile } from './files.ts';

const storeSchema = z.record(z.string(), z.number());

export class NonceStore {
  readonly #file: string;

  constructor(dataDir: string) {
    this.#file = path.join(dataDir, 'envelope-nonces.json');
  }

  /** Records `nonce` until `expiresAtMs`; false when it was already recorded (a replay). */
  async claim(nonce: string, expiresAtMs: number, nowMs: number): Promise<boolean> {
    const text = await readIfExists(this.#file);
    const parsed = text === undefined ? {} : storeSchema.parse(JSON.parse(text));
    const live = new Map(Object.entries(parsed).filter(([, expires]) => expires >= nowMs));
    if (live.has(nonce)) return false;
    live.set(nonce, expiresAtMs);
    await replaceFile(this.#file, JSON.stringify(Object.fromEntries(live)));
    return true;
  }
}
