import { describe, expect, it } from 'vitest';
import { agentSilence, formatBytes, ProgressPrinter } from './run-progress.ts';

function sink(isTTY: boolean) {
  const written: string[] = [];
  return { out: { isTTY, write: (text: string) => written.push(text) }, written };
}

const running = (bytesOut: number, filesDone: number) => ({ status: 'running', progress: { bytesIn: bytesOut, bytesOut, filesDone, filesTotal: 3, at: null } });

describe('run progress', () => {
  it('redraws one line on a terminal, with bytes, rate and files', () => {
    const { out, written } = sink(true);
    const printer = new ProgressPrinter(out);
    printer.update(running(0, 0), 0);
    printer.update(running(2 * 1024 * 1024, 1), 2_000);
    printer.done();
    expect(written[1]).toBe('\r\x1b[Krunning: 2.0 MiB read, 2.0 MiB written, 1.0 MiB/s, 1/3 file(s)');
    expect(written.at(-1)).toBe('\n');
  });

  it('prints plain lines otherwise: on each status change, and at most every few seconds', () => {
    const { out, written } = sink(false);
    const printer = new ProgressPrinter(out);
    printer.update({ status: 'queued', progress: null }, 0);
    printer.update({ status: 'queued', progress: null }, 500);
    printer.update(running(10, 0), 1_000);
    printer.update(running(20, 1), 2_000);
    printer.update(running(30, 2), 7_000);
    expect(written).toEqual(['queued\n', 'running: 10 B read, 10 B written, 0 B/s, 0/3 file(s)\n', 'running: 30 B read, 30 B written, 3.3 B/s, 2/3 file(s)\n']);
    expect(written.join('')).not.toContain('\r');
  });

  it('says when the agent has not been seen recently', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    expect(agentSilence({ id: 'a', hostname: 'h', lastSeenAt: null }, now)).toMatch(/never been seen/);
    expect(agentSilence({ id: 'a', hostname: 'h', lastSeenAt: '2026-01-01T00:00:00Z' }, now)).toBe('agent h (a) was last seen 600 s ago: the run stays queued until it asks for work');
    expect(agentSilence({ id: 'a', hostname: 'h', lastSeenAt: '2026-01-01T00:09:30Z' }, now)).toBeUndefined();
    expect(formatBytes(1536)).toBe('1.5 KiB');
  });
});
