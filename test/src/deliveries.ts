/**
 * What a destination directory holds after a run, judged against the source and the run's report:
 * every file under a final name must decrypt (with gpg) to exactly the source, temporary files are
 * counted apart, and every file the report calls delivered must be on disk with the reported
 * ciphertext hash. Plaintext is hashed as gpg streams it and never written anywhere.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { gpgDecrypt } from '@airlock/testing';
import type { RunReport } from './agent-job.ts';

export interface ExpectedFile {
  /** The name the delivery must have: the source file's name plus `.pgp`. */
  readonly finalName: string;
  readonly plaintextSha256: string;
  readonly bytes: number;
}

export interface DeliveryCheck {
  /** Files under a final (non-temporary) name. */
  finalFiles: number;
  /** Final-name files that are incomplete: gpg cannot decrypt them, or they hold fewer bytes than the source. */
  partial: number;
  /** Final-name files that decrypt completely to something other than the source, or that should not exist. */
  corrupt: number;
  /** Temporary files left behind (hidden or `*partial*` names); never visible as deliveries. */
  tempLeftovers: number;
  /** Files the report lists as delivered that are not on disk under their final name with the reported hash. */
  misreported: number;
  /** Correct final-name files the report does not list (a failed run that still delivered). */
  unreported: number;
}

/** Temporary names start with a dot (`.name.<random>.airlock-partial`) or say they are partial. */
export function isTemporaryName(name: string): boolean {
  return name.startsWith('.') || /partial|\.tmp$/i.test(name);
}

export async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export async function inspectDeliveries(
  directory: string,
  report: RunReport | undefined,
  expected: readonly ExpectedFile[],
  recipientSecretKey: string,
): Promise<DeliveryCheck> {
  const check: DeliveryCheck = { finalFiles: 0, partial: 0, corrupt: 0, tempLeftovers: 0, misreported: 0, unreported: 0 };
  const entries = await readdir(directory, { withFileTypes: true });
  const good = new Map<string, string>();
  for (const entry of entries) {
    if (isTemporaryName(entry.name)) {
      check.tempLeftovers += 1;
      continue;
    }
    check.finalFiles += 1;
    const wanted = expected.find((file) => file.finalName === entry.name);
    if (wanted === undefined || !entry.isFile()) {
      check.corrupt += 1;
      continue;
    }
    const file = path.join(directory, entry.name);
    const decrypted = await gpgDecrypt(file, recipientSecretKey).catch(() => undefined);
    if (decrypted === undefined || decrypted.bytes < wanted.bytes) check.partial += 1;
    else if (decrypted.sha256 !== wanted.plaintextSha256 || decrypted.bytes !== wanted.bytes) check.corrupt += 1;
    else good.set(entry.name, await sha256OfFile(file));
  }
  const reported = new Set<string>();
  for (const file of report?.files ?? []) {
    const finalName = `${path.posix.basename(file.sourcePath)}.pgp`;
    reported.add(finalName);
    if (good.get(finalName) !== file.ciphertextSha256) check.misreported += 1;
  }
  // A run that says it succeeded has claimed every selected file.
  if (report?.status === 'succeeded') {
    check.misreported += expected.filter((file) => !reported.has(file.finalName)).length;
  }
  check.unreported = [...good.keys()].filter((name) => !reported.has(name)).length;
  return check;
}
