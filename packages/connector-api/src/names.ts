/**
 * Names a source lists that it cannot handle safely. A name that is not valid UTF-8 cannot be
 * carried through the job's paths, the ledger and the receipts (all strings), and a lossy decoding
 * of it names another file or none. A name with a control character, a slash or a backslash, or
 * one that Unicode normalization turns into `..` or a separator (see `isSafeName`), is never
 * joined into a path. Such an entry is never opened, only reported, so that no file is passed over
 * in silence.
 */
import type { ConnectorContext, SkippedEntry } from './contract.ts';
import { isSafeName } from './paths.ts';

const MAX_NAME_BYTES = 255;
/** What a decoder that is not strict puts in place of bytes that are not UTF-8. */
const REPLACEMENT = '\uFFFD';
/** A stand-in that matches the selection's `*` and `?` (but no literal) where bytes were lost or unsafe. */
const STAND_IN = '?';
// Control characters and separators: what a stand-in must not carry into a path.
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARACTERS = /[\u0000-\u001f\u007f/\\]/g;

export type ListedName =
  | { readonly kind: 'name'; readonly name: string }
  /** `.`, `..` or empty: the directory itself or its parent, never an entry of its own. */
  | { readonly kind: 'none' }
  | {
      /** `not-utf8`: the name's bytes are not valid UTF-8; `unsafe`: they are, but the name is no safe path component. */
      readonly kind: 'not-utf8' | 'unsafe';
      /** The name with each undecodable sequence and each unsafe character as `?`: only to decide whether the selection would take it. */
      readonly standIn: string;
      /** For people: see `printableName`, cut to the first 255 bytes (`…` after) when longer. */
      readonly printable: string;
    };

const strict = new TextDecoder('utf-8', { fatal: true });

function decodeStrict(raw: Uint8Array): string | undefined {
  try {
    return strict.decode(raw);
  } catch {
    return undefined;
  }
}

/**
 * Sorts a directory entry's name: an ordinary name (see `isSafeName`), `.` or `..`, an unsafe one,
 * or one that is not valid UTF-8. Give the raw bytes where the system offers them; a string is
 * taken to come from a lossy decoder (ssh2 decodes SFTP names that way), so any U+FFFD in it counts
 * as bytes that were not UTF-8, even where the server's name really held that character: the two
 * cannot be told apart, and opening the wrong one is worse than skipping both.
 */
export function checkListedName(raw: string | Uint8Array): ListedName {
  const decoded = typeof raw === 'string' ? raw : decodeStrict(raw);
  const utf8 = decoded !== undefined && (typeof raw !== 'string' || !decoded.includes(REPLACEMENT));
  if (utf8 && isSafeName(decoded)) return { kind: 'name', name: decoded };
  if (raw.length === 0 || decoded === '.' || decoded === '..') return { kind: 'none' };
  const lossy = utf8 ? decoded : (typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8')).replaceAll(REPLACEMENT, STAND_IN);
  const byteLength = typeof raw === 'string' ? Buffer.byteLength(lossy) : raw.byteLength;
  // A report carries the name: one longer than any file system's is shown in part.
  const printable = byteLength > MAX_NAME_BYTES ? `${printableName(Buffer.from(raw).subarray(0, MAX_NAME_BYTES))}…` : printableName(raw);
  return { kind: utf8 ? 'unsafe' : 'not-utf8', standIn: lossy.replace(UNSAFE_CHARACTERS, STAND_IN), printable };
}

/** The length of the valid UTF-8 sequence at `i` (RFC 3629: shortest form, no surrogates), or 0. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const lead = bytes[i] ?? 0x100;
  const continuation = (at: number, low = 0x80, high = 0xbf) => {
    const byte = bytes[at];
    return byte !== undefined && byte >= low && byte <= high;
  };
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return continuation(i + 1) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    const low = lead === 0xe0 ? 0xa0 : 0x80;
    const high = lead === 0xed ? 0x9f : 0xbf;
    return continuation(i + 1, low, high) && continuation(i + 2) ? 3 : 0;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    const low = lead === 0xf0 ? 0x90 : 0x80;
    const high = lead === 0xf4 ? 0x8f : 0xbf;
    return continuation(i + 1, low, high) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  return 0;
}

const percent = (byte: number) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;

/** `%` and control characters percent-encoded, so that a rendering is unambiguous and one line. */
function escapeText(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    out += char === '%' || code < 0x20 || code === 0x7f ? percent(code) : char;
  }
  return out;
}

/**
 * A name rendered for logs and reports, never for opening: valid UTF-8 as text, every byte that is
 * not part of it percent-encoded (`M\xfcller.csv` → `M%FCller.csv`), and `%` and control
 * characters percent-encoded too. A name that was decoded lossily keeps its U+FFFD: its bytes are gone.
 */
export function printableName(raw: string | Uint8Array): string {
  if (typeof raw === 'string') return escapeText(raw);
  let out = '';
  let i = 0;
  while (i < raw.length) {
    const length = sequenceLength(raw, i);
    if (length === 0) {
      out += percent(raw[i] ?? 0);
      i += 1;
    } else {
      out += escapeText(Buffer.from(raw.subarray(i, i + length)).toString('utf8'));
      i += length;
    }
  }
  return out;
}

/** The report of an entry listed in `directory` whose name is not one to use. */
export function skippedEntry(directory: string, listed: Extract<ListedName, { kind: 'not-utf8' | 'unsafe' }>): SkippedEntry {
  return { directory, name: listed.printable, reason: listed.kind === 'unsafe' ? 'name-unsafe' : 'name-not-utf8' };
}

/**
 * Passes over an entry the selection would have taken: the host logs it and lists it in the run's
 * report. The run goes on with the other files; the entry stays where it is and is reported again
 * by every later run until someone renames it.
 */
export function skipEntry(ctx: ConnectorContext, entry: SkippedEntry): void {
  if (ctx.skipped) ctx.skipped(entry);
  else ctx.logger.warn({ ...entry }, 'skipped a directory entry because of its name');
}
