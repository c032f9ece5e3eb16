import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { fieldFilter, fieldScope } from './index.ts';

const ROWS = 400_000;
const SECRET = 'SSN-CANARY';

function* rows(): Generator<Buffer> {
  yield Buffer.from('id,name,ssn,amount\n');
  let batch = '';
  for (let i = 1; i <= ROWS; i++) {
    batch += `${i},customer ${i},${SECRET}-${i},${(i % 1000) / 10}\n`;
    if (i % 2000 === 0) {
      yield Buffer.from(batch);
      batch = '';
    }
  }
  if (batch) yield Buffer.from(batch);
}

describe('a large CSV', () => {
  it('streams through the filter without the excluded column', async () => {
    let inBytes = 0;
    let outBytes = 0;
    let outRows = 0;
    let leaked = false;
    const source = Readable.from(rows()).on('data', (chunk: Buffer) => (inBytes += chunk.length));
    await pipeline(
      source,
      fieldFilter(fieldScope.parse({ format: 'csv', allow: ['id', 'amount'], rules: { id: { type: 'integer' }, amount: { type: 'number' } } })),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          outBytes += chunk.length;
          const text = chunk.toString('latin1');
          if (text.includes(SECRET) || text.includes('customer')) leaked = true;
          for (const char of text) if (char === '\n') outRows += 1;
          callback();
        },
      }),
    );
    expect(leaked).toBe(false);
    expect(outRows).toBe(ROWS + 1);
    expect(outBytes).toBeLessThan(inBytes / 2);
    process.stdout.write(`${JSON.stringify({ fieldScopeLargeCsv: { rows: ROWS, inMiB: +(inBytes / 2 ** 20).toFixed(1), outMiB: +(outBytes / 2 ** 20).toFixed(1), peakRssMiB: +(process.resourceUsage().maxRSS / 1024).toFixed(1) } })}\n`);
  });
});
