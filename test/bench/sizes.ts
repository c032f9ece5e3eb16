/** Byte sizes as the bench CLIs take them: `64MiB`, `256MiB`, `2GiB`, `512KiB` or plain bytes. */
const UNITS: Readonly<Record<string, number>> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

export function parseSize(text: string): number {
  const match = /^(\d+)(B|KiB|MiB|GiB)?$/.exec(text.trim());
  const unit = UNITS[match?.[2] ?? ''];
  if (match === null || match[1] === undefined || unit === undefined) {
    throw new Error(`not a size: ${JSON.stringify(text)} (use e.g. 64MiB, 256MiB, 2GiB)`);
  }
  const size = Number(match[1]) * unit;
  if (!Number.isSafeInteger(size) || size <= 0 || size > 64 * 1024 ** 3) throw new Error(`size ${text} is out of range (1 B to 64 GiB)`);
  return size;
}
