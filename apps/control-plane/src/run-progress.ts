/**
 * What `airlock run now --wait` prints while it waits: on a terminal one line redrawn in place
 * (bytes, rate, files), otherwise a plain line whenever something changed, at most every few
 * seconds, so a log stays short.
 */
import { AGENT_HEALTHY_WITHIN_MS } from '@airlock/protocol';
import { printableLine } from './output.ts';

export interface ProgressView {
  status: string;
  progress: { bytesIn: number; bytesOut: number; filesDone: number; filesTotal?: number; at: string | null } | null;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 && Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Plain lines no more often than this, unless the status changes. */
const PLAIN_EVERY_MS = 5_000;

export class ProgressPrinter {
  readonly #tty: boolean;
  readonly #write: (text: string) => void;
  #last = { at: 0, bytesOut: 0, line: '', status: '' };
  #start: { at: number; bytesOut: number } | undefined;
  #drawn = false;

  constructor(out: { isTTY?: boolean; write: (text: string) => unknown }) {
    this.#tty = out.isTTY === true;
    this.#write = (text) => void out.write(text);
  }

  update(run: ProgressView, now = Date.now()): void {
    const p = run.progress;
    if (p && this.#start === undefined) this.#start = { at: now, bytesOut: p.bytesOut };
    const seconds = this.#start ? (now - this.#start.at) / 1000 : 0;
    const rate = p && this.#start && seconds > 0 ? (p.bytesOut - this.#start.bytesOut) / seconds : 0;
    const line = p
      ? `${run.status}: ${formatBytes(p.bytesIn)} read, ${formatBytes(p.bytesOut)} written, ${formatBytes(rate)}/s, ${p.filesDone}${p.filesTotal === undefined ? '' : `/${p.filesTotal}`} file(s)`
      : `${run.status}`;
    if (this.#tty) {
      // Redrawn in place: carriage return, then clear to the end of the line.
      this.#write(`\r\x1b[K${printableLine(line)}`);
      this.#drawn = true;
    } else if (run.status !== this.#last.status || (line !== this.#last.line && now - this.#last.at >= PLAIN_EVERY_MS)) {
      this.#write(`${printableLine(line)}\n`);
      this.#last = { at: now, bytesOut: p?.bytesOut ?? 0, line, status: run.status };
    }
  }

  /** A line of its own, above the progress line on a terminal. */
  note(text: string): void {
    this.#write(`${this.#tty && this.#drawn ? '\r\x1b[K' : ''}${printableLine(text)}\n`);
  }

  /** Ends the progress line so what follows starts on a fresh one. */
  done(): void {
    if (this.#tty && this.#drawn) this.#write('\n');
    this.#drawn = false;
  }
}

/** Why nothing may happen: the agent has not asked for work recently. Undefined while it is healthy. */
export function agentSilence(agent: { id: string; hostname: string; lastSeenAt: string | null } | undefined, now = Date.now()): string | undefined {
  if (!agent) return undefined;
  if (agent.lastSeenAt === null) return `agent ${agent.hostname} (${agent.id}) has never been seen: the run stays queued until it connects`;
  const ago = now - Date.parse(agent.lastSeenAt);
  if (ago <= AGENT_HEALTHY_WITHIN_MS) return undefined;
  return `agent ${agent.hostname} (${agent.id}) was last seen ${Math.round(ago / 1000)} s ago: the run stays queued until it asks for work`;
}
