import { afterAll, describe, expect, it } from 'vitest';
import {
  type AuditEventInput,
  type AuditRecord,
  ChainRuns,
  type ChainHead,
  chainEvent,
  GENESIS_HASH,
  IsoTimes,
  isoFromMicros,
  openPageVerifier,
  type PageVerifier,
  type AuditTuple,
  recordsFromPageText,
  verifyChain,
  verifyPage,
} from './index.ts';

const TENANT = '7f0c1a1e-9a4e-4c1b-8d1e-1a2b3c4d5e6f';

function input(i: number): AuditEventInput {
  return {
    tenantId: TENANT,
    actor: { type: 'api-key', id: 'k1' },
    action: 'integration-save',
    target: `integration:${i}`,
    outcome: 'success',
    sourceIp: '192.0.2.1',
    meta: { name: `nightly-${i}`, version: i % 5, nested: { zeta: [1, 'é"\\'], alpha: null } },
  };
}

function buildChain(n: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  let head: ChainHead | null = null;
  for (let i = 0; i < n; i++) {
    const record = chainEvent(head, input(i), new Date(Date.UTC(2025, 0, 1) + i));
    records.push(record);
    head = { seq: record.seq, hash: record.hash };
  }
  return records;
}

/** Microseconds since the epoch of an ISO time with three or six fractional digits. */
function micros(at: string): number {
  const extra = at.length > 24 ? Number(at.slice(23, -1)) : 0;
  return Date.parse(`${at.slice(0, 23)}Z`) * 1000 + extra;
}

function tuple(r: AuditRecord): AuditTuple {
  return [r.seq, r.tenantId, micros(r.at), r.actor.type, r.actor.id, r.action, r.target, r.outcome, r.sourceIp, r.meta, r.prevHash, r.hash];
}

/**
 * A page's text as the database sends it: each record a JSON array, `at` in microseconds. Spaced
 * as PostgreSQL writes it (", " between values, ": " after keys, jsonb's key order) or compact.
 */
function pageText(records: readonly AuditRecord[], spacing: 'postgres' | 'compact' = 'postgres'): string {
  return records
    .map((r) => {
      if (spacing === 'compact') return JSON.stringify(tuple(r));
      const meta = r.meta as Record<string, unknown>;
      // jsonb orders keys by length, then bytes.
      const jsonbOrder = Object.fromEntries(Object.keys(meta).sort((a, b) => a.length - b.length || (a < b ? -1 : 1)).map((key) => [key, meta[key]]));
      return JSON.stringify([...tuple(r).slice(0, 9), jsonbOrder, r.prevHash, r.hash], null, 1).replace(/\n */g, ' ').replace(/\[ /g, '[').replace(/ \]/g, ']').replace(/\{ /g, '{').replace(/ \}/g, '}');
    })
    .join(',');
}

/** The chain verified in pages of `size` through `pages`, in the order given, then stitched. */
async function verifyInPages(pages: PageVerifier, records: readonly AuditRecord[], size: number, order: 'forward' | 'backward' = 'forward') {
  const texts: string[] = [];
  for (let start = 0; start < records.length; start += size) texts.push(pageText(records.slice(start, start + size)));
  if (order === 'backward') texts.reverse();
  const runs = new ChainRuns();
  for (const summary of await Promise.all(texts.map((text) => pages.verify(text)))) {
    if (!summary.ok) return summary;
    for (const run of summary.runs) {
      if (run.tenantId !== TENANT) return { ok: false as const, reason: 'another chain' };
      runs.add(run);
    }
  }
  const last = records.reduce<ChainHead>((head, record) => (record.seq > head.seq ? { seq: record.seq, hash: record.hash } : head), { seq: 0, hash: GENESIS_HASH });
  return runs.result({ seq: 0, hash: GENESIS_HASH }, last);
}

const tamperings: [string, (records: AuditRecord[]) => AuditRecord[]][] = [
  ['an edited target', (r) => r.map((x) => (x.seq === 30 ? { ...x, target: 'integration:other' } : x))],
  ['an edited actor', (r) => r.map((x) => (x.seq === 31 ? { ...x, actor: { type: 'admin', id: 'k1' } } : x))],
  ['an edited meta value', (r) => r.map((x) => (x.seq === 50 ? { ...x, meta: { ...x.meta, version: 99 } } : x))],
  ['an edited time (one microsecond)', (r) => r.map((x) => (x.seq === 7 ? { ...x, at: x.at.replace('Z', '001Z') } : x))],
  ['a deleted record at a page boundary', (r) => r.filter((x) => x.seq !== 41)],
  ['the last record of a page deleted', (r) => r.filter((x) => x.seq !== 40)],
  ['two records swapping seq across a boundary', (r) => r.map((x) => (x.seq === 40 ? { ...x, seq: 41 } : x.seq === 41 ? { ...x, seq: 40 } : x))],
  ['a record given twice', (r) => [...r.slice(0, 50), r[45] as AuditRecord, ...r.slice(50)]],
  ['a record moved to another tenant', (r) => r.map((x) => (x.seq === 90 ? { ...x, tenantId: '00000000-0000-0000-0000-000000000001' } : x))],
  ['a first record that does not start at genesis', (r) => r.slice(1)],
  ['a relinked record with a recomputed hash', (r) => r.map((x) => (x.seq === 61 ? { ...chainEvent({ seq: 60, hash: x.prevHash }, { ...input(61), action: 'forged-action' }, new Date(x.at)) } : x))],
];

describe('verifyPage and ChainRuns', () => {
  const records = buildChain(120);

  it('reads a page back as the records it was written from', () => {
    expect(recordsFromPageText(pageText(records.slice(0, 3)))).toEqual(records.slice(0, 3));
    expect(recordsFromPageText(pageText(records.slice(0, 3), 'compact'))).toEqual(records.slice(0, 3));
    expect(recordsFromPageText('')).toEqual([]);
  });

  it('writes times exactly as isoFromMicros does', () => {
    const times = new IsoTimes();
    const base = Date.UTC(2025, 0, 1, 23, 59, 59) * 1000;
    const samples = [0, 1, 999, 1000, 999_999, 1_000_000, -1, -1_000_001, base, base + 1, base + 999_999, base + 1_000_000, Date.UTC(-1, 0, 1) * 1000 + 5, Date.UTC(12000, 0, 1) * 1000];
    for (let i = 0; i < 2_000; i++) samples.push(base + Math.floor(Math.random() * 5_000_000) - 2_500_000);
    for (const sample of samples) expect(times.iso(sample)).toBe(isoFromMicros(sample));
  });

  it('verifies a chain split into pages, in any order and each page shuffled, exactly as one pass does', async () => {
    const pages = openPageVerifier({ threads: 0 });
    for (const size of [1, 7, 40, 120, 500]) {
      expect(await verifyInPages(pages, records, size)).toEqual({ ok: true, count: 120 });
      expect(await verifyInPages(pages, records, size, 'backward')).toEqual({ ok: true, count: 120 });
    }
    const shuffled = [...records.slice(0, 60)].reverse().concat(records.slice(60));
    expect(await verifyInPages(pages, shuffled, 60)).toEqual({ ok: true, count: 120 });
  });

  it('cuts a page of two chains into one run each', () => {
    const system = buildChain(3).map((record) => ({ ...record, tenantId: null }));
    // Rebuilt as the system chain's own records, so each still hashes.
    let head: ChainHead | null = null;
    const other = system.map((record) => {
      const next = chainEvent(head, { ...input(record.seq), tenantId: null }, new Date(record.at));
      head = { seq: next.seq, hash: next.hash };
      return next;
    });
    const summary = verifyPage(pageText([...records.slice(0, 5), ...other]));
    expect(summary).toMatchObject({ ok: true, runs: [{ tenantId: TENANT, count: 5 }, { tenantId: null, count: 3 }] });
  });

  it.each(tamperings)('flags %s, as a one-pass verify does', async (_name, tamper) => {
    const forged = tamper(records);
    expect(verifyChain(forged).ok).toBe(false);
    const pages = openPageVerifier({ threads: 0 });
    for (const size of [1, 40, 120]) {
      expect((await verifyInPages(pages, forged, size)).ok).toBe(false);
      expect((await verifyInPages(pages, forged, size, 'backward')).ok).toBe(false);
    }
  });

  it('fails a page it cannot read instead of throwing', () => {
    expect(verifyPage('[1, 2')).toMatchObject({ ok: false });
    expect(verifyPage('')).toEqual({ ok: true, runs: [] });
  });

  it('reads pages however they are spaced', () => {
    expect(verifyPage(pageText(records, 'compact'))).toMatchObject({ ok: true, runs: [{ count: 120 }] });
    expect(verifyPage(pageText(records).replace(/,/g, ' ,\n'))).toMatchObject({ ok: true, runs: [{ count: 120 }] });
  });

  it('fails a page whose stored hash or prevHash carries other text, which might pass off text as another record', () => {
    const [first, second, third] = records;
    if (!first || !second || !third) throw new Error('no records');
    expect(verifyPage(pageText([first, second, third]))).toMatchObject({ ok: true });
    // The second record deleted and smuggled in inside the first one's hash column: JSON escapes it.
    const smuggled = { ...first, hash: `${first.hash}"],${pageText([second])},["` };
    expect(verifyPage(pageText([smuggled, third]))).toMatchObject({ ok: false, seq: 1, reason: expect.stringMatching(/edited/) });
    expect(verifyPage(pageText([{ ...first, hash: first.hash.toUpperCase() }]))).toMatchObject({ ok: false, reason: expect.stringMatching(/edited/) });
    expect(verifyPage(pageText([{ ...second, prevHash: `${second.prevHash} ` }]))).toMatchObject({ ok: false });
    expect(verifyPage(`${pageText([first])},`)).toMatchObject({ ok: false });
    expect(verifyPage(pageText([first]).slice(0, -1))).toMatchObject({ ok: false });
    expect(verifyPage(pageText([first]).replace('"api-key"', '7'))).toMatchObject({ ok: false });
  });

  it('hashes the canonical text whatever order and spacing the meta object comes in', () => {
    const [first] = records;
    if (!first) throw new Error('no records');
    const meta = first.meta as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.keys(meta).reverse().map((key) => [key, meta[key]]));
    const text = (m: unknown) => JSON.stringify([...tuple(first).slice(0, 9), m, first.prevHash, first.hash], null, 2);
    expect(verifyPage(text(reordered))).toMatchObject({ ok: true, runs: [{ count: 1 }] });
    expect(verifyPage(text({ ...reordered, extra: 1 }))).toMatchObject({ ok: false, reason: expect.stringMatching(/edited/) });
  });
});

describe('openPageVerifier on worker threads', () => {
  const pools: PageVerifier[] = [];
  afterAll(async () => {
    for (const pool of pools) await pool.close();
  });

  it('starts workers and gives the same answers as the calling thread, for intact and tampered chains', async () => {
    const pool = openPageVerifier({ threads: 2 });
    pools.push(pool);
    expect(pool.threads).toBe(2);
    const records = buildChain(200);
    expect(await verifyInPages(pool, records, 30, 'backward')).toEqual({ ok: true, count: 200 });
    for (const [name, tamper] of tamperings) {
      const forged = tamper(records);
      const inThread = await verifyInPages(openPageVerifier({ threads: 0 }), forged, 30);
      const onWorkers = await verifyInPages(pool, forged, 30);
      expect({ name, ok: onWorkers.ok }).toEqual({ name, ok: false });
      expect(onWorkers).toEqual(inThread);
    }
  });

  it('refuses work once closed', async () => {
    const pool = openPageVerifier({ threads: 1 });
    await pool.close();
    await expect(pool.verify('')).rejects.toThrow(/closed/);
  });
});
