/** Summarizes a V8 `.cpuprofile` (from `node --cpu-prof`): the functions with the most self time. */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export interface SelfTime {
  function: string;
  where: string;
  self_ms: number;
  self_pct: number;
}

function parseProfile(text: string): { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] } {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || !('nodes' in value) || !('samples' in value) || !('timeDeltas' in value)) {
    throw new Error('not a V8 CPU profile');
  }
  const { nodes, samples, timeDeltas } = value;
  if (!Array.isArray(nodes) || !Array.isArray(samples) || !Array.isArray(timeDeltas)) throw new Error('not a V8 CPU profile');
  // The shape is V8's own output format; only these fields are read.
  return { nodes: nodes as ProfileNode[], samples: samples as number[], timeDeltas: timeDeltas as number[] };
}

/**
 * The top `limit` functions by self time, aggregated by name and location over every profile given
 * (one per thread: the main thread and the seal workers).
 */
export async function topSelfTime(files: readonly string[], limit: number): Promise<SelfTime[]> {
  const labels = new Map<string, { function: string; where: string }>();
  const totals = new Map<string, number>();
  let all = 0;
  for (const file of files) all += addProfile(parseProfile(await readFile(file, 'utf8')), labels, totals);
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, micros]) => ({
      function: labels.get(key)?.function ?? key,
      where: labels.get(key)?.where ?? '',
      self_ms: Math.round(micros / 1000),
      self_pct: all === 0 ? 0 : Math.round((1000 * micros) / all) / 10,
    }));
}

/** Adds one profile's self times to `totals`; returns its total sampled time in microseconds. */
function addProfile(
  { nodes, samples, timeDeltas }: ReturnType<typeof parseProfile>,
  labels: Map<string, { function: string; where: string }>,
  totals: Map<string, number>,
): number {
  const keyOf = new Map<number, string>();
  for (const node of nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : `${url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '')}:${lineNumber + 1}`;
    const name = functionName === '' ? '(anonymous)' : functionName;
    const key = `${name} ${where}`;
    keyOf.set(node.id, key);
    labels.set(key, { function: name, where });
  }
  let all = 0;
  for (let i = 0; i < samples.length; i += 1) {
    const key = keyOf.get(samples[i] ?? -1);
    const delta = timeDeltas[i] ?? 0;
    all += delta;
    if (key !== undefined) totals.set(key, (totals.get(key) ?? 0) + delta);
  }
  return all;
}
