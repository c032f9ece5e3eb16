/**
 * The local policy: the on-prem admin's ceiling for everything this agent will touch. A job from
 * the control plane is checked against it before any connection is made, and every listed file
 * again before it is opened, so a compromised control plane cannot widen what the agent reads or
 * where it writes. Paths are compared component by component (see @airlock/connector-api).
 *
 * The file has one section per registered connector, under `sources:` or `destinations:` by its
 * id, and each section's entries are parsed with that connector's own schema
 * (`definition.policy.entry`). A claim is judged by the sections of every connector declaring its
 * scheme, through each definition's `grant`; what a grant allows (paths, post-delivery actions,
 * recipient keys) is checked here the same way for every connector.
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
 *     script:                             # export scripts a job may run, exactly as written here
 *       - name: nightly-export
 *         command: /opt/erp/bin/export    # run without a shell
 *         args: ["--since", "{since}"]
 *         sha256: "<sha256 of /opt/erp/bin/export>"
 *         cwd: /var/lib/airlock/work
 *         params: { since: { pattern: "\\d{4}-\\d{2}-\\d{2}" } }
 *   destinations:
 *     local:
 *       - root: /srv/out
 *         recipients: ["<OpenPGP fingerprint>"] # more keys allowed for this destination only
 *     sftp:
 *       - host: partner.example.com
 *         hostKey: "SHA256:..."
 *         roots: ["/incoming"]
 *   recipients: ["<OpenPGP fingerprint>"] # keys data may be encrypted to, for every destination
 *   updates: remote                       # or manual: refuse every update the control plane offers
 */
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import { z } from 'zod';
import {
  type ConnectorRegistry,
  isWithin,
  matchPath,
  type PolicyGrant,
  recipientFingerprint,
  type RegisteredDestination,
  type RegisteredSource,
  type ResourceClaim,
  splitGlob,
} from '@airlock/connector-api';
import type { IntegrationOptions } from '@airlock/protocol';
import { formatIssues, PolicyViolationError, UnexpectedError, UserError } from '@airlock/errors';
import { builtInConnectors } from './connectors.ts';
import { readAdminFile } from './files.ts';

type Registered = RegisteredSource | RegisteredDestination;
type Kind = Registered['kind'];
const parentOf = (kind: Kind) => (kind === 'source' ? 'sources' : 'destinations');

/** Every entry as its connector's schema parsed it, by section (the connector id). */
export interface PolicyDocument {
  readonly sources: Readonly<Record<string, readonly unknown[]>>;
  readonly destinations: Readonly<Record<string, readonly unknown[]>>;
  /** Recipient keys allowed for every destination; a destination entry may add its own. */
  readonly recipients: readonly string[];
  /** `remote`: the control plane may offer signed updates; `manual`: only the on-prem admin installs versions. */
  readonly updates: 'remote' | 'manual';
}

/** One section per connector id; two versions of one connector share their section, so they must share its schema. */
function sections(definitions: readonly Registered[], kind: Kind): Map<string, Registered> {
  const byId = new Map<string, Registered>();
  for (const definition of definitions.filter((d) => d.kind === kind)) {
    const known = byId.get(definition.id);
    if (known && known.policy.entry !== definition.policy.entry) {
      throw new UnexpectedError(`${kind} connectors ${definition.id}@${known.version} and @${definition.version} need one policy section schema`);
    }
    byId.set(definition.id, definition);
  }
  return byId;
}

function policySchema(definitions: readonly Registered[]) {
  const section = (kind: Kind) =>
    z.strictObject(Object.fromEntries([...sections(definitions, kind)].map(([id, definition]) => [id, z.array(definition.policy.entry).default([])]))).prefault({});
  return z.strictObject({ sources: section('source'), destinations: section('destination'), recipients: z.array(recipientFingerprint).default([]), updates: z.enum(['remote', 'manual']).default('remote') });
}

type AfterDelivery = IntegrationOptions['afterDelivery'];
const KEEP: AfterDelivery = { action: 'keep' };

function allows(entry: PolicyGrant, afterDelivery: AfterDelivery): boolean {
  switch (afterDelivery.action) {
    case 'keep':
      return true;
    case 'delete':
      return entry.allowDelete === true;
    case 'archive': {
      const directory = afterDelivery.archiveDirectory;
      return directory !== undefined && (entry.allowArchiveTo ?? []).some((allowed) => isWithin(allowed, directory));
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
  if (claim.authority !== undefined) return `${claim.scheme}://${claim.authority}${claim.path}`;
  return claim.scheme === 'file' ? `file://${claim.path}` : `${claim.scheme}:${claim.path.slice(1)}`;
}

/** A grant with the entry it came from and the section (connector id) that holds it. */
interface Granting {
  readonly section: string;
  readonly entry: unknown;
  readonly grant: PolicyGrant;
}

export class LocalPolicy {
  readonly #definitions: readonly Registered[];

  constructor(
    readonly document: PolicyDocument,
    /** SHA-256 of the policy file, so reports can say which policy decided. */
    readonly digest: string,
    /** The connectors whose sections shaped the document: the agent's registry. */
    definitions: readonly Registered[],
  ) {
    this.#definitions = definitions;
  }

  /** Parses a policy file; its sections are those of `registry`'s connectors (the agent's own by default). */
  static parse(text: string, source = 'policy', registry: ConnectorRegistry = builtInConnectors()): LocalPolicy {
    let raw: unknown;
    try {
      raw = YAML.parse(text);
    } catch (error) {
      throw new UserError(`${source}: not valid YAML: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (raw !== null && typeof raw === 'object' && 'scripts' in raw) {
      throw new UserError(`${source}: approved scripts now live under sources.script (the script connector's section), not a top-level scripts:`);
    }
    const definitions = registry.definitions();
    const parsed = policySchema(definitions).safeParse(raw ?? {});
    if (!parsed.success) {
      throw new UserError(`${source}: ${formatIssues(parsed.error.issues)}`);
    }
    return new LocalPolicy(parsed.data, createHash('sha256').update(text).digest('hex'), definitions);
  }

  static async load(file: string, registry?: ConnectorRegistry): Promise<LocalPolicy> {
    const text = await readAdminFile(file, false);
    if (text === undefined) throw new UserError(`no local policy at ${file}: the agent runs nothing without one`);
    return LocalPolicy.parse(text, file, registry);
  }

  /** What every section of a connector declaring the claim's scheme grants for it. */
  #granting(kind: Kind, claim: ResourceClaim): Granting[] {
    const found: Granting[] = [];
    for (const [section, definition] of sections(this.#definitions, kind)) {
      if (definition.scheme.name !== claim.scheme) continue;
      for (const entry of this.document[parentOf(kind)][section] ?? []) {
        const grant = definition.policy.grant(entry, claim);
        if (grant) found.push({ section, entry, grant });
      }
    }
    return found;
  }

  /**
   * Before connecting: everything a source may read must lie inside an allowed pattern's base, and
   * an entry that allows that read must also allow the requested post-delivery action. Returns the
   * entries of `ref`'s own section that allowed it, for its runtime (`ctx.policy`).
   */
  checkSource(claims: ResourceClaim[], afterDelivery: AfterDelivery = KEEP, ref?: string): unknown[] {
    const allowing = new Set<Granting>();
    for (const claim of claims) {
      const entries = this.#granting('source', claim);
      if (entries.length === 0) {
        const what = claim.hostKey !== undefined ? `source ${describeClaim(claim)} (host key ${claim.hostKey})` : `source ${describeClaim(claim)}`;
        throw new PolicyRefusal('source', `${what} is not in the local policy`);
      }
      const requested = splitGlob(claim.path).base;
      const covering = entries.filter(({ grant }) => grant.paths.some((pattern) => isWithin(splitGlob(pattern).base, requested)));
      if (covering.length === 0) {
        throw new PolicyRefusal('source', `reading ${describeClaim(claim)} is outside the local policy`);
      }
      const permitted = covering.filter(({ grant }) => allows(grant, afterDelivery));
      if (permitted.length === 0) {
        throw new PolicyRefusal('source', `${describeAction(afterDelivery)} for ${describeClaim(claim)} is not allowed by the local policy`);
      }
      for (const granting of permitted) allowing.add(granting);
    }
    return entriesOf(allowing, ref);
  }

  /** Before opening: the exact file must match an allowed pattern of an entry that allows the post-action. */
  checkFile(claim: ResourceClaim, afterDelivery: AfterDelivery = KEEP): void {
    const matching = this.#granting('source', claim).filter(({ grant }) => grant.paths.some((pattern) => matchPath(pattern, claim.path)));
    if (matching.length === 0) {
      throw new PolicyRefusal('file', `reading ${describeClaim(claim)} is outside the local policy`);
    }
    if (!matching.some(({ grant }) => allows(grant, afterDelivery))) {
      throw new PolicyRefusal('file', `${describeAction(afterDelivery)} for ${describeClaim(claim)} is not allowed by the local policy`);
    }
  }

  /** The destination entries whose directories hold the claimed path. */
  #destinationEntries(claim: ResourceClaim): Granting[] {
    return this.#granting('destination', claim).filter(({ grant }) => grant.paths.some((root) => isWithin(root, claim.path)));
  }

  /** Every claim must lie in an entry's directories; returns `ref`'s own entries that allowed it. */
  checkDestination(claims: ResourceClaim[], ref?: string): unknown[] {
    const allowing = new Set<Granting>();
    for (const claim of claims) {
      const entries = this.#destinationEntries(claim);
      if (entries.length === 0) {
        throw new PolicyRefusal('destination', `writing to ${describeClaim(claim)} is outside the local policy`);
      }
      for (const granting of entries) allowing.add(granting);
    }
    return entriesOf(allowing, ref);
  }

  /**
   * Before a byte is read: every recipient key must be pinned here, globally or for the destination.
   * Recipient keys come from the control plane, so without this a compromised one could swap in its own.
   */
  checkRecipients(fingerprints: readonly string[], destination: ResourceClaim[]): void {
    for (const claim of destination) {
      const allowed = new Set([...this.document.recipients, ...this.#destinationEntries(claim).flatMap(({ grant }) => grant.recipients ?? [])]);
      const unpinned = fingerprints.filter((fingerprint) => !allowed.has(fingerprint.toUpperCase()));
      if (unpinned.length > 0) {
        throw new PolicyRefusal('recipient', `recipient key ${unpinned.join(', ')} is not pinned in the local policy for ${describeClaim(claim)}`);
      }
    }
  }
}

/** The entries of one connector's own section: another connector sharing the scheme has entries of another shape. */
function entriesOf(allowing: ReadonlySet<Granting>, ref: string | undefined): unknown[] {
  const section = ref?.slice(0, ref.lastIndexOf('@'));
  return [...allowing].filter((granting) => section === undefined || granting.section === section).map((granting) => granting.entry);
}
