import { describe, expect, it } from 'vitest';
import type { Logger, SkippedEntry } from './contract.ts';
import { checkListedName, printableName, skipEntry } from './names.ts';
import { mockContext } from './testkit.ts';

const bytes = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : Buffer.from(part))));

describe('names that are not valid UTF-8', () => {
  it('[integrity #14] sorts raw names into ordinary, unsafe and not UTF-8', () => {
    expect(checkListedName(bytes('Müller.csv'))).toEqual({ kind: 'name', name: 'Müller.csv' });
    expect(checkListedName(bytes('M', [0xfc], 'ller.csv'))).toEqual({ kind: 'not-utf8', standIn: 'M?ller.csv', printable: 'M%FCller.csv' });
    // A real U+FFFD in valid UTF-8 is an ordinary name when the bytes are at hand.
    expect(checkListedName(bytes('a\uFFFD.csv'))).toEqual({ kind: 'name', name: 'a\uFFFD.csv' });
    expect(checkListedName(bytes('..'))).toEqual({ kind: 'none' });
    expect(checkListedName(bytes('a', [0x0a, 0xfc]))).toEqual({ kind: 'not-utf8', standIn: 'a??', printable: 'a%0A%FC' });
    // Longer than any file system's name: still reported, shown in part.
    expect(checkListedName(bytes([0xfc], 'x'.repeat(255)))).toEqual({ kind: 'not-utf8', standIn: `?${'x'.repeat(255)}`, printable: `%FC${'x'.repeat(254)}…` });
    // 255 bytes that are not UTF-8 are still a name of legal length, though the lossy decoding is three times as long.
    expect(checkListedName(Buffer.alloc(255, 0xfc))).toMatchObject({ kind: 'not-utf8', standIn: '?'.repeat(255) });
  });

  it('[integrity #14] takes a U+FFFD in an already decoded name as bytes that were lost', () => {
    expect(checkListedName('M\uFFFDller.csv')).toEqual({ kind: 'not-utf8', standIn: 'M?ller.csv', printable: 'M\uFFFDller.csv' });
    expect(checkListedName('Müller.csv')).toEqual({ kind: 'name', name: 'Müller.csv' });
    expect(checkListedName('../\uFFFD')).toEqual({ kind: 'not-utf8', standIn: '..??', printable: '../\uFFFD' });
  });


  it('sorts valid UTF-8 that is no safe path component as unsafe, with a stand-in that stays one component', () => {
    expect(checkListedName(bytes('bad\nname.csv'))).toEqual({ kind: 'unsafe', standIn: 'bad?name.csv', printable: 'bad%0Aname.csv' });
    expect(checkListedName('tab\tname.csv')).toEqual({ kind: 'unsafe', standIn: 'tab?name.csv', printable: 'tab%09name.csv' });
    expect(checkListedName('a\\b.csv')).toEqual({ kind: 'unsafe', standIn: 'a?b.csv', printable: 'a\\b.csv' });
    // What a hostile server may list never becomes more than one component.
    expect(checkListedName('/etc/passwd')).toEqual({ kind: 'unsafe', standIn: '?etc?passwd', printable: '/etc/passwd' });
    // Fullwidth full stops normalize (NFKC) to `..` on systems that normalize names.
    expect(checkListedName(bytes('\uFF0E\uFF0E'))).toEqual({ kind: 'unsafe', standIn: '\uFF0E\uFF0E', printable: '\uFF0E\uFF0E' });
    for (const none of ['.', '..', '']) {
      expect(checkListedName(none)).toEqual({ kind: 'none' });
      expect(checkListedName(Buffer.from(none))).toEqual({ kind: 'none' });
    }
  });

  it('[integrity #14] percent-encodes bytes that are not UTF-8, and % and control characters, and nothing else', () => {
    expect(printableName(bytes('M', [0xfc], 'ller.csv'))).toBe('M%FCller.csv');
    expect(printableName(bytes('Mü 100%', [0xe9]))).toBe('Mü 100%25%E9');
    // Overlong forms, surrogates, a truncated sequence and bytes past U+10FFFF are not UTF-8.
    expect(printableName(bytes([0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], 'x', [0xf4, 0x90, 0x80, 0x80]))).toBe('%C0%AF%ED%A0%80%E2%82x%F4%90%80%80');
    expect(printableName(bytes('😀', [0xff]))).toBe('😀%FF');
    expect(printableName('tab\there%\uFFFD')).toBe('tab%09here%25\uFFFD');
  });

  it('[integrity #14] hands a skipped entry to the host, or logs it when the host takes none', () => {
    const entry: SkippedEntry = { directory: '/in', name: 'M%FCller.csv', reason: 'name-not-utf8' };
    const taken: SkippedEntry[] = [];
    const warnings: Array<Record<string, unknown>> = [];
    const logger: Logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (meta) => void warnings.push(meta) };
    skipEntry(mockContext({ logger, skipped: (skipped) => void taken.push(skipped) }), entry);
    expect(taken).toEqual([entry]);
    expect(warnings).toEqual([]);
    skipEntry(mockContext({ logger }), entry);
    expect(warnings).toEqual([entry]);
  });
});
