/**
 * The local policy: the on-prem admin's ceiling for everything this agent will touch. A job from
 * the control plane is checked against it before any connection is made, and every listed file
 * again before it is opened, so a compromised control plane cannot widen what the agent reads or
 * where it writes. Paths are compared component by component (see @airlock/connector-api).
 *
 *   sources:
 *     sftp:
 *       - host: sftp.example.internal
 *         port: 22
 *         hostKey: "SHA256:..."           # required: the pinned host key
 *         paths: ["/exports/**"]
 *         allowDelete: false              # may a job delete a source file after delivery? default no
 *         allowArchiveTo: ["/exports/done"] # directories a job may move delivered files into; default none
 *     local:
 *       - paths: ["/srv/in/*.csv"]
 *   destinations:
 *     local:
 *       - root: /srv/out
 *         recipients: ["<OpenPGP fingerprint>"] # more keys allowed for this destination only
 *     sftp:
 *       - host: partner.example.com
 *         hostKey: "SHA256:..."
 *         roots: ["/incoming"]
 *   recipients: ["<OpenPGP fingerprint>"] # keys data may be encrypted to, for every destination
 *   scripts:                              # export scripts a job may run, exactly as written here
 *     - name: nightly-export
 *       command: /opt/erp/bin/export      # run without a shell
 *       args: ["--since", "{since}"]
 *       sha256: "<sha256 of /opt/erp/bin/export>"
 *       cwd: /var/lib/airlock/work
 *       params: { since: { pattern: "\\d{4}-\\d{2}-\\d{2}" } }
 */
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import { z } from 'zod';
import { absolutePath, isWithin, matchPath, type ResourceClaim, splitGlob } from '@airlock/connector-api';
import { approvedScript } from '@airlock/connector-script';
import type { IntegrationOptions } from '@airlock/protocol';
import { formatIssues, PolicyViolationError, UserError } from '@airlock/errors';
import { readAdminFile } from './files.ts';

const absolute = absolutePath();

/** What a job may do to a source file once it is delivered. Reading never implies either. */
const postActionRights = {
  allowDelete: z.boolean().default(false),
  allowArchiveTo: z.array(absolute).default([]),
};

/** An SFTP server, named with the host key it must present. */
const sftpServer = {
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  hostKey: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a pinned OpenSSH SHA256 fingerprint'),
};

/** An OpenPGP primary-key fingerprint; spaces and case as gpg prints them are accepted. */
const recipientFingerprint = z
  .string()
  .transform((text) => text.replace(/\s+/g, '').toUpperCase())
  .pipe(z.string().regex(/^[0-9A-F]{40}$|^[0-9A-F]{64}$/, 'an OpenPGP fingerprint (40 or 64 hex digits)'));
const recipientPins = { recipients: z.array(recipientFingerprint).default([]) };

const policySchema = z.strictObject({
  sources: z
    .strictObject({
      sftp: z
        .array(
          z.strictObject({ ...sftpServer, paths: z.array(absolute).min(1), ...postActionRights }),
        )
        .default([]),
      local: z.array(z.strictObject({ paths: z.array(absolute).min(1), ...postActionRights })).default([]),
    })
    .default({ sftp: [], local: [] }),
  destinations: z
    .strictObject({
      local: z.array(z.strictObject({ root: absolute, ...recipientPins })).default([]),
      sftp: z
        .array(
          z.strictObject({ ...sftpServer, roots: z.array(absolute).min(1), ...recipientPins }),
        )
        .default([]),
    })
    .default({ local: [], sftp: [] }),
  /** Recipient keys allowed for every destination; a destination entry may add its own. */
  ...recipientPins,
  scripts: z.array(approvedScript).default([]),
});
export type PolicyDocument = z.infer<typeof policySchema>;

type SourceEntry = PolicyDocument['sources']['local'][number];
type AfterDelivery = IntegrationOptions['afterDelivery'];
const KEEP: AfterDelivery = { action: 'keep' };

function allows(entry: SourceEntry, afterDelivery: AfterDelivery): boolean {
  switch (afterDelivery.action) {
    case 'keep':
      return true;
    case 'delete':
      return entry.allowDelete;
    case 'archive': {
      const directory = afterDelivery.archiveDirectory;
      return directory !== undefined && entry.allowArchiveTo.some((allowed) => isWithin(allowed, directory));
    }
  }
}

function describeAction(afterDelivery: AfterDelivery): string {
  return afterDelivery.action === 'archive' ? `archiving to ${afterDelivery.archiveDirectory ?? '(none)'}` : afterDelivery.action;
}

export type ViolationKind = 'source' | 'destination' | 'file' | 'recipient';

export class PolicyRefusal extends PolicyViolationError {
  constructor(
    readonly kind: ViolationKind,
    message: string,
  ) {
    // Built from the job's claims and the policy's words: metadata, fit to show the control plane.
    super(message, { safeReason: `policy refused: ${message}` });
  }
}

function describeClaim(claim: ResourceClaim): string {
  return claim.scheme === 'script' ? `script:${claim.path.slice(1)}` : `${claim.scheme}://${claim.authority ?? ''}${claim.path}`;
}

export class LocalPolicy {
  constructor(
    readonly document: PolicyDocument,
    /** SHA-256 of the policy file, so reports can say which policy decided. */
    readonly digest: string,
  ) {}

  static parse(text: string, source = 'policy'): LocalPolicy {
    let raw: unknown;
    try {
      raw = YAML.parse(text);
    } catch (error) {
      throw new UserError(`${source}: not valid YAML: ${error instanceof Error ? error.message : String(error)}`);
    }
    const parsed = policySchema.safeParse(raw ?? {});
    if (!parsed.success) {
      throw new UserError(`${source}: ${formatIssues(parsed.error.issues)}`);
    }
    return new LocalPolicy(parsed.data, createHash('sha256').update(text).digest('hex'));
  }

  static async load(file: string): Promise<LocalPolicy> {
    const text = await readAdminFile(file, false);
    if (text === undefined) throw new UserError(`no local policy at ${file}: the agent runs nothing without one`);
    return LocalPolicy.parse(text, file);
  }

  /** The source entries for a claim's scheme and authority (and pinned host key), or none. */
  #sourceEntries(claim: ResourceClaim): SourceEntry[] {
    if (claim.scheme === 'file') return this.document.sources.local;
    if (claim.scheme === 'script') {
      // An approved script reads only its own output, and has nothing to delete or archive.
      const approved = this.document.scripts.some((script) => `/${script.name}` === claim.path);
      return approved ? [{ paths: [claim.path], allowDelete: false, allowArchiveTo: [] }] : [];
    }
    return this.document.sources.sftp.filter(
      (entry) => `${entry.host}:${entry.port}` === claim.authority && entry.hostKey === claim.hostKey,
    );
  }

  /**
   * Before connecting: everything a source may read must lie inside an allowed pattern's base, and
   * an entry that allows that read must also allow the requested post-delivery action.
   */
  checkSource(claims: ResourceClaim[], afterDelivery: AfterDelivery = KEEP): void {
    for (const claim of claims) {
      const entries = this.#sourceEntries(claim);
      if (entries.length === 0) {
        const what = claim.scheme === 'sftp' ? `source ${describeClaim(claim)} (host key ${claim.hostKey ?? 'n/a'})` : `source ${describeClaim(claim)}`;
        throw new PolicyRefusal('source', `${what} is not in the local policy`);
      }
      const requested = splitGlob(claim.path).base;
      const covering = entries.filter((entry) => entry.paths.some((pattern) => isWithin(splitGlob(pattern).base, requested)));
      if (covering.length === 0) {
        throw new PolicyRefusal('source', `reading ${describeClaim(claim)} is outside the local policy`);
      }
      if (!covering.some((entry) => allows(entry, afterDelivery))) {
        throw new PolicyRefusal('source', `${describeAction(afterDelivery)} for ${describeClaim(claim)} is not allowed by the local policy`);
      }
    }
  }

  /** Before opening: the exact file must match an allowed pattern of an entry that allows the post-action. */
  checkFile(claim: ResourceClaim, afterDelivery: AfterDelivery = KEEP): void {
    const matching = this.#sourceEntries(claim).filter((entry) => entry.paths.some((pattern) => matchPath(pattern, claim.path)));
    if (matching.length === 0) {
      throw new PolicyRefusal('file', `reading ${describeClaim(claim)} is outside the local policy`);
    }
    if (!matching.some((entry) => allows(entry, afterDelivery))) {
      throw new PolicyRefusal('file', `${describeAction(afterDelivery)} for ${describeClaim(claim)} is not allowed by the local policy`);
    }
  }

  /** The destination entries whose roots hold the claimed path, with the recipients each adds. */
  #destinationEntries(claim: ResourceClaim): Array<{ recipients: readonly string[] }> {
    const entries =
      claim.scheme === 'file'
        ? this.document.destinations.local.map((entry) => ({ roots: [entry.root], recipients: entry.recipients }))
        : claim.scheme === 'sftp'
          ? this.document.destinations.sftp.filter((entry) => `${entry.host}:${entry.port}` === claim.authority && entry.hostKey === claim.hostKey)
          : [];
    return entries.filter((entry) => entry.roots.some((root) => isWithin(root, claim.path)));
  }

  checkDestination(claims: ResourceClaim[]): void {
    for (const claim of claims) {
      if (this.#destinationEntries(claim).length === 0) {
        throw new PolicyRefusal('destination', `writing to ${describeClaim(claim)} is outside the local policy`);
      }
    }
  }

  /**
   * Before a byte is read: every recipient key must be pinned here, globally or for the destination.
   * Recipient keys come from the control plane, so without this a compromised one could swap in its own.
   */
  checkRecipients(fingerprints: readonly string[], destination: ResourceClaim[]): void {
    for (const claim of destination) {
      const allowed = new Set([...this.document.recipients, ...this.#destinationEntries(claim).flatMap((entry) => entry.recipients)]);
      const unpinned = fingerprints.filter((fingerprint) => !allowed.has(fingerprint.toUpperCase()));
      if (unpinned.length > 0) {
        throw new PolicyRefusal('recipient', `recipient key ${unpinned.join(', ')} is not pinned in the local policy for ${describeClaim(claim)}`);
      }
    }
  }
}
