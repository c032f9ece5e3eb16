import { afterAll, describe, expect, it } from 'vitest';
import { ByteText } from './canonical-bytes.ts';
import { jsonbText } from './jsonb-text.fixture.ts';
import {
  type AuditEventInput,
  type AuditRecord,
  ChainRuns,
  type ChainHead,
  chainEvent,
  GENESIS_HASH,
  hashEvent,
  IsoTimes,
  isoFromMicros,
  openPageVerifier,
  PAGE_COLUMNS,
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

/** Records as the JSON text `recordsFromPageText` reads: each a JSON array, joined by commas. */
function pageText(records: readonly AuditRecord[]): string {
  return records.map((r) => JSON.stringify(tuple(r))).join(',');
}

/** One column of a row in PostgreSQL's binary COPY format: its length, then its bytes; NULL is length -1. */
function column(value: Buffer | null): Buffer {
  const length = Buffer.alloc(4);
  length.writeInt32BE(value === null ? -1 : value.length);
  return value === null ? length : Buffer.concat([length, value]);
}

const int8 = (value: number): Buffer => {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64BE(BigInt(value));
  return bytes;
};
const text = (value: string | null): Buffer | null => (value === null ? null : Buffer.from(value, 'utf8'));

/** A row as PostgreSQL's binary COPY of `PAGE_COLUMNS` sends it; `columns` replaces any column's bytes. */
function row(r: AuditRecord, columns: Partial<Record<(typeof PAGE_COLUMNS)[number], Buffer | null>> = {}): Buffer {
  const values: Record<(typeof PAGE_COLUMNS)[number], Buffer | null> = {
    seq: int8(r.seq),
    tenant_id: r.tenantId === null ? null : Buffer.from(r.tenantId.replace(/-/g, ''), 'hex'),
    at: int8(micros(r.at) - Date.UTC(2000, 0, 1) * 1000),
    actor_type: text(r.actor.type),
    actor_id: text(r.actor.id),
    action: text(r.action),
    target: text(r.target),
    outcome: text(r.outcome),
    source_ip: text(r.sourceIp),
    meta: Buffer.concat([Buffer.from([1]), Buffer.from(jsonbText(r.meta), 'utf8')]),
    prev_hash: text(r.prevHash),
    hash: text(r.hash),
    ...columns,
  };
  const count = Buffer.alloc(2);
  count.writeInt16BE(PAGE_COLUMNS.length);
  return Buffer.concat([count, ...PAGE_COLUMNS.map((name) => column(values[name]))]);
}

const HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
const TRAILER = Buffer.from([0xff, 0xff]);

/** A page as PostgreSQL's binary COPY sends it: header, rows, trailer. */
function page(rows: readonly (AuditRecord | Buffer)[]): Uint8Array {
  return new Uint8Array(Buffer.concat([HEADER, ...rows.map((r) => (Buffer.isBuffer(r) ? r : row(r))), TRAILER]));
}

/** The chain verified in pages of `size` through `pages`, in the order given, then stitched. */
async function verifyInPages(pages: PageVerifier, records: readonly AuditRecord[], size: number, order: 'forward' | 'backward' = 'forward') {
  const texts: Uint8Array[] = [];
  for (let start = 0; start < records.length; start += size) texts.push(page(records.slice(start, start + size)));
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
    expect(recordsFromPageText('')).toEqual([]);
  });

  it('writes times exactly as isoFromMicros does', () => {
    const times = new IsoTimes();
    const base = Date.UTC(2025, 0, 1, 23, 59, 59) * 1000;
    const samples = [0, 1, 999, 1000, 999_999, 1_000_000, -1, -1_000_001, base, base + 1, base + 999_999, base + 1_000_000, Date.UTC(-1, 0, 1) * 1000 + 5, Date.UTC(12000, 0, 1) * 1000];
    for (let i = 0; i < 2_000; i++) samples.push(base + Math.floor(Math.random() * 5_000_000) - 2_500_000);
    const out = new ByteText();
    for (const sample of samples) {
      expect(times.iso(sample)).toBe(isoFromMicros(sample));
      out.length = 0;
      times.write(out, sample);
      expect(out.buffer.toString('latin1', 0, out.length)).toBe(isoFromMicros(sample));
    }
  });

  it('verifies a chain split into pages, in any order and each page shuffled, exactly as one pass does', async () => {
    const pages = openPageVerifier({ threads: 0 });
    for (const size of [1, 7, 40, 120, 500]) {
      expect(await verifyInPages(pages, records, size)).toEqual({ ok: true, count: 120 });
      expect(await verifyInPages(pages, records, size, 'backward')).toEqual({ ok: true, count: 120 });
    }
    const shuffled = [...records.slice(0, 60)].reverse().concat(records.slice(60));
    expect(await verifyInPages(pages, shuffled, 60)).toEqual({ ok: true, count: 120 });
    // Out of order, every record of the page is a run of its own: a gap still shows when they are stitched.
    expect((await verifyInPages(pages, shuffled.filter((record) => record.seq !== 30), 60)).ok).toBe(false);
    const relinked = shuffled.map((record) => (record.seq === 30 ? { ...record, prevHash: records[0]?.hash ?? '' } : record));
    expect((await verifyInPages(pages, relinked, 60)).ok).toBe(false);
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
    const summary = verifyPage(page([...records.slice(0, 5), ...other]));
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
    const [first] = records;
    if (!first) throw new Error('no records');
    const whole = page([first]);
    expect(verifyPage(whole)).toMatchObject({ ok: true, runs: [{ count: 1 }] });
    // An empty table still comes with a header and a trailer; no bytes at all is no page.
    expect(verifyPage(page([]))).toEqual({ ok: true, runs: [] });
    expect(verifyPage(new Uint8Array())).toMatchObject({ ok: false });
    for (let cut = 1; cut < whole.length; cut += 7) expect(verifyPage(whole.subarray(0, whole.length - cut))).toMatchObject({ ok: false });
    expect(verifyPage(Buffer.concat([whole, Buffer.from([0])]))).toMatchObject({ ok: false });
    expect(verifyPage(Buffer.concat([Buffer.from('PGCOPX'), whole.subarray(6)]))).toMatchObject({ ok: false });
    // A column too many or too few, a column of the wrong width, a meta that is not jsonb's binary form.
    const short = row(first);
    short.writeInt16BE(11);
    expect(verifyPage(page([short]))).toMatchObject({ ok: false });
    expect(verifyPage(page([row(first, { tenant_id: Buffer.alloc(15) })]))).toMatchObject({ ok: false });
    expect(verifyPage(page([row(first, { seq: Buffer.alloc(4) })]))).toMatchObject({ ok: false });
    expect(verifyPage(page([row(first, { seq: int8(2 ** 53) })]))).toMatchObject({ ok: false });
    expect(verifyPage(page([row(first, { at: int8(2 ** 62) })]))).toMatchObject({ ok: false });
    expect(verifyPage(page([row(first, { meta: Buffer.from(jsonbText(first.meta)) })]))).toMatchObject({ ok: false });
    expect(verifyPage(page([row(first, { meta: Buffer.from('\u0001{"a": ') })]))).toMatchObject({ ok: false, reason: 'unreadable meta' });
    expect(verifyPage(page([row(first, { prev_hash: null })]))).toMatchObject({ ok: false });
    expect(verifyPage(page([row(first, { hash: null })]))).toMatchObject({ ok: false });
  });

  it('recomputes each hash from the stored columns, whatever the stored hash claims', () => {
    const [first, second, third] = records;
    if (!first || !second || !third) throw new Error('no records');
    expect(verifyPage(page([first, second, third]))).toMatchObject({ ok: true });
    expect(verifyPage(page([{ ...first, hash: first.hash.toUpperCase() }]))).toMatchObject({ ok: false, reason: expect.stringMatching(/edited/) });
    expect(verifyPage(page([{ ...first, hash: `${first.hash} ` }]))).toMatchObject({ ok: false, reason: expect.stringMatching(/edited/) });
    expect(verifyPage(page([{ ...second, prevHash: `${second.prevHash} ` }]))).toMatchObject({ ok: false });
    // Each text column edited, or turned NULL, by one byte.
    for (const name of ['actor_type', 'actor_id', 'action', 'target', 'outcome', 'source_ip'] as const) {
      const edited = row(second, { [name]: Buffer.from('x') });
      expect({ name, summary: verifyPage(page([first, edited, third])) }).toMatchObject({ name, summary: { ok: false, seq: 2 } });
      expect({ name, summary: verifyPage(page([first, row(second, { [name]: null }), third])) }).toMatchObject({ name, summary: { ok: false, seq: 2 } });
    }
    expect(verifyPage(page([first, row(second, { tenant_id: null }), third]))).toMatchObject({ ok: false, seq: 2 });
    expect(verifyPage(page([first, row(second, { meta: Buffer.from('\u0001{}') }), third]))).toMatchObject({ ok: false, seq: 2 });
  });

  it('hashes NULL columns, escaped and unicode text, unicode meta and sub-millisecond times as the records were hashed', () => {
    const odd: AuditEventInput = {
      tenantId: null,
      actor: { type: 'system', id: null },
      action: 'odd-event',
      target: 'ünïcode "target"\\ \u001f\u001e\n\t\b\f\r\u007f\u2028😀',
      outcome: 'failure',
      sourceIp: null,
      // Keys that jsonb orders otherwise than code units do: by length first, and U+FFFF after an astral character.
      meta: { z: [1, 2.5, -0, 1e21, 0.1, null, true, false], 'é': { '\uffff': 1, '😀': 2, aa: 'ü"\\\n\u0001' }, '': 'empty key', aa: {}, b: [] },
    };
    const base = chainEvent(null, odd, new Date(Date.UTC(2025, 0, 1)));
    expect(verifyPage(page([base]))).toMatchObject({ ok: true, runs: [{ tenantId: null, count: 1 }] });
    // A time with microseconds is hashed with its six digits, and only with them.
    for (const at of ['2025-01-01T00:00:00.123456Z', '2025-01-01T00:00:00.000001Z', '1999-12-31T23:59:59.999999Z', '1969-12-31T23:59:59.999001Z']) {
      const unhashed = { ...base, at };
      const record = { ...unhashed, hash: hashEvent(unhashed.prevHash, unhashed) };
      expect({ at, summary: verifyPage(page([record])) }).toMatchObject({ at, summary: { ok: true } });
      const truncated = { ...unhashed, hash: hashEvent(unhashed.prevHash, { ...unhashed, at: `${at.slice(0, 23)}Z` }) };
      expect({ at, summary: verifyPage(page([truncated])) }).toMatchObject({ at, summary: { ok: false, reason: expect.stringMatching(/edited/) } });
    }
  });

  it('hashes the canonical text whatever order and spacing the meta object comes in', () => {
    const [first] = records;
    if (!first) throw new Error('no records');
    const meta = first.meta as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.keys(meta).reverse().map((key) => [key, meta[key]]));
    const jsonb = (value: unknown) => Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify(value, null, 2))]);
    expect(verifyPage(page([row(first, { meta: jsonb(reordered) })]))).toMatchObject({ ok: true, runs: [{ count: 1 }] });
    expect(verifyPage(page([row(first, { meta: jsonb({ ...reordered, extra: 1 }) })]))).toMatchObject({ ok: false, reason: expect.stringMatching(/edited/) });
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
    await expect(pool.verify(page([]))).rejects.toThrow(/closed/);
  });
});
