import { describe, expect, it } from 'vitest';
import {
  assertAuditable,
  type AuditEventInput,
  type AuditRecord,
  AuditValidationError,
  canonicalJson,
  canonicalRecordJson,
  chainEvent,
  type ChainHead,
  GENESIS_HASH,
  hashEvent,
  redactMeta,
  verifyChain,
} from './index.ts';

function input(action: string, meta: AuditEventInput['meta'] = {}): AuditEventInput {
  return {
    tenantId: 't1',
    actor: { type: 'admin', id: 'u1' },
    action,
    target: 'agent:a1',
    outcome: 'success',
    sourceIp: '192.0.2.1',
    meta,
  };
}

function buildChain(n: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  let head: ChainHead | null = null;
  for (let i = 0; i < n; i++) {
    const record = chainEvent(head, input('agent-enroll', { n: i }), new Date(Date.UTC(2025, 0, 1, 0, 0, i)));
    records.push(record);
    head = { seq: record.seq, hash: record.hash };
  }
  return records;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth and omits whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x', null], c: true } })).toBe('{"a":{"c":true,"d":[1,"x",null]},"b":1}');
  });

  it('writes a lone surrogate as U+FFFD, which PostgreSQL accepts, and keeps valid pairs', () => {
    expect(canonicalJson({ name: 'a\ud800b' })).toBe('{"name":"a\ufffdb"}');
    expect(canonicalJson({ name: 'x\udc00' })).toBe('{"name":"x\ufffd"}');
    expect(canonicalJson({ name: '"\ud83d\ude00"' })).toBe(JSON.stringify({ name: '"\ud83d\ude00"' }));
  });

  it('is independent of insertion order', () => {
    expect(canonicalJson({ x: 1, y: 2 })).toBe(canonicalJson({ y: 2, x: 1 }));
  });

  it('escapes strings like JSON', () => {
    expect(canonicalJson('a"\n\u0000')).toBe('"a\\"\\n\\u0000"');
  });

  it.each([
    ['undefined', undefined],
    ['a nested undefined', { a: undefined }],
    ['a function', { f: () => 1 }],
    ['NaN', Number.NaN],
    ['Infinity', { n: Number.POSITIVE_INFINITY }],
    ['a bigint', 1n],
    ['a symbol', Symbol('s')],
    ['a Date', new Date(0)],
    ['an array hole', new Array<number>(2)],
  ])('rejects %s', (_label, value) => {
    expect(() => canonicalJson(value)).toThrow(AuditValidationError);
  });

  it('rejects cycles but allows repeated references', () => {
    const shared = { a: 1 };
    expect(canonicalJson({ x: shared, y: shared })).toBe('{"x":{"a":1},"y":{"a":1}}');
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(/cycle/);
  });
});

describe('assertAuditable', () => {
  it.each(['agent-enroll', 'request-signature-invalid', 'login', 'job-run2'])('accepts %s', (action) => {
    expect(assertAuditable(action)).toBe(action);
  });

  it.each(['', 'Agent-enroll', 'agent_enroll', 'agent--enroll', '-agent', 'agent-', 'agent enroll', '1agent', 'a'.repeat(65)])(
    'refuses %j',
    (action) => {
      expect(() => assertAuditable(action)).toThrow(AuditValidationError);
    },
  );
});

describe('redactMeta', () => {
  it('passes metadata through unchanged', () => {
    const meta = { size: 10, sha256: 'ab', fingerprints: ['F00'], metadata: { reason: 'x' }, keyId: 'AB' };
    expect(redactMeta(meta)).toBe(meta);
  });

  it('errs on the side of refusing: any key containing a forbidden word', () => {
    expect(() => redactMeta({ tokenPrefix: 'ak_' })).toThrow(/tokenPrefix/);
  });

  it.each(['password', 'secret', 'apiToken', 'privateKey', 'private_key', 'privatekey', 'passphrase', 'content', 'fileContents', 'data', 'raw-data', 'PASSWORD'])(
    'refuses the key %s',
    (key) => {
      expect(() => redactMeta({ [key]: 'x' })).toThrow(AuditValidationError);
    },
  );

  it('looks into nested objects and arrays and never echoes the value', () => {
    expect(() => redactMeta({ a: [{ b: { secret: 'hunter2' } }] })).toThrow(/meta\.a\[0\]\.b\.secret/);
    expect(() => redactMeta({ a: [{ b: { secret: 'hunter2' } }] })).not.toThrow(/hunter2/);
  });
});

describe('hash chain', () => {
  it('starts at genesis and links each record to the previous one', () => {
    const [first, second] = buildChain(2);
    expect(first?.seq).toBe(1);
    expect(first?.prevHash).toBe(GENESIS_HASH);
    expect(second?.prevHash).toBe(first?.hash);
    expect(first?.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('hashes prevHash, a newline and the canonical fields', () => {
    const [record] = buildChain(1);
    if (!record) throw new Error('no record');
    const { hash, ...rest } = record;
    expect(hashEvent(GENESIS_HASH, rest)).toBe(hash);
    expect(hashEvent('1'.repeat(64), rest)).not.toBe(hash);
  });

  it('writes the same bytes as canonicalJson of the hashed fields', () => {
    const odd = chainEvent(null, {
      ...input('agent-enroll', { z: [1, 2.5, -0, 1e21, null, true], a: { 'é': 'ü"\\\n\u2028😀', b: {} }, '': 'empty key' }),
      actor: { type: 'system', id: null },
      tenantId: null,
      sourceIp: null,
      target: null,
    });
    for (const record of [...buildChain(3), odd]) {
      const { hash: _hash, ...rest } = record;
      const extra = { ...rest, actor: { ...rest.actor, ignored: 'x' } };
      expect(canonicalRecordJson(extra)).toBe(canonicalJson({ ...rest, actor: { type: rest.actor.type, id: rest.actor.id } }));
    }
  });

  it('refuses to chain an unauditable action or secret meta', () => {
    expect(() => chainEvent(null, input('Bad_Action'))).toThrow(AuditValidationError);
    expect(() => chainEvent(null, input('agent-enroll', { password: 'x' }))).toThrow(AuditValidationError);
  });

  it('verifies an intact chain and reports its head', () => {
    const records = buildChain(5);
    const last = records[4];
    expect(verifyChain(records)).toEqual({ ok: true, count: 5, head: { seq: 5, hash: last?.hash } });
    expect(verifyChain([])).toEqual({ ok: true, count: 0, head: null });
  });

  it('detects an edited record', () => {
    const records = buildChain(5);
    const edited = records.map((r) => (r.seq === 3 ? { ...r, outcome: 'denied' as const } : r));
    expect(verifyChain(edited)).toMatchObject({ ok: false, seq: 3, reason: expect.stringMatching(/edited/) });
  });

  it('detects an edit inside meta and inside actor', () => {
    const records = buildChain(3);
    const metaEdit = records.map((r) => (r.seq === 2 ? { ...r, meta: { n: 99 } } : r));
    expect(verifyChain(metaEdit)).toMatchObject({ ok: false, seq: 2 });
    const actorEdit = records.map((r) => (r.seq === 2 ? { ...r, actor: { type: 'system' as const, id: null } } : r));
    expect(verifyChain(actorEdit)).toMatchObject({ ok: false, seq: 2 });
  });

  it('detects an edited record whose hash was recomputed', () => {
    const records = buildChain(4);
    const target = records[1];
    if (!target) throw new Error('no record');
    const { hash: _old, ...rest } = { ...target, target: 'agent:other' };
    const forged = { ...rest, hash: hashEvent(rest.prevHash, rest) };
    const tampered = records.map((r) => (r.seq === 2 ? forged : r));
    expect(verifyChain(tampered)).toMatchObject({ ok: false, seq: 3, reason: expect.stringMatching(/prevHash/) });
  });

  it('detects a deleted record', () => {
    const records = buildChain(5).filter((r) => r.seq !== 3);
    expect(verifyChain(records)).toMatchObject({ ok: false, seq: 4, reason: expect.stringMatching(/expected seq 3/) });
  });

  it('detects a deleted first record', () => {
    const records = buildChain(3).slice(1);
    expect(verifyChain(records)).toMatchObject({ ok: false, seq: 2 });
  });

  it('detects reordered records', () => {
    const records = buildChain(5);
    const [a, b, c, d, e] = records;
    if (!a || !b || !c || !d || !e) throw new Error('short chain');
    expect(verifyChain([a, c, b, d, e])).toMatchObject({ ok: false, seq: 3 });
  });

  it('detects an inserted record', () => {
    const records = buildChain(4);
    const second = records[1];
    if (!second) throw new Error('no record');
    // A forged record correctly chained onto #2 and given seq 3 still breaks the link to the real #3.
    const inserted = chainEvent({ seq: second.seq, hash: second.hash }, input('agent-revoke'));
    const withInsert = [...records.slice(0, 2), inserted, ...records.slice(2)];
    expect(verifyChain(withInsert)).toMatchObject({ ok: false, seq: 3 });
  });

  it('detects a swapped prevHash and a malformed hash', () => {
    const records = buildChain(2);
    const badPrev = records.map((r) => (r.seq === 1 ? { ...r, prevHash: '1'.repeat(64) } : r));
    expect(verifyChain(badPrev)).toMatchObject({ ok: false, seq: 1, reason: expect.stringMatching(/prevHash/) });
    const badHash = records.map((r) => (r.seq === 2 ? { ...r, hash: 'XYZ' } : r));
    expect(verifyChain(badHash)).toMatchObject({ ok: false, seq: 2 });
  });

  it('verifies a segment after a trusted checkpoint', () => {
    const records = buildChain(6);
    const checkpoint = records[2];
    if (!checkpoint) throw new Error('no record');
    const after = { seq: checkpoint.seq, hash: checkpoint.hash };
    expect(verifyChain(records.slice(3), { after })).toMatchObject({ ok: true, count: 3, head: { seq: 6 } });
    expect(verifyChain(records.slice(3), { after: { ...after, hash: GENESIS_HASH } })).toMatchObject({ ok: false, seq: 4 });
  });

  it('accepts any iterable', () => {
    const records = buildChain(3);
    function* generate(): Generator<AuditRecord> {
      yield* records;
    }
    expect(verifyChain(generate())).toMatchObject({ ok: true, count: 3 });
  });
});
