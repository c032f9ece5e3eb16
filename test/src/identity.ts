/**
 * The identity proof's tags. Every test of single sign-on carries `[identity:oidc]` in its title
 * (or a describe block's), every test of OAuth 2.0 machine clients `[identity:oauth]`, every test
 * of second factors and passwords `[identity:mfa]`; `test:identity` runs exactly those tests
 * (through tagged-runs.ts) and this module counts them.
 */
import type { ReportedTest } from './tagged-runs.ts';

export const IDENTITY_TAGS = ['oidc', 'oauth', 'mfa'] as const;
export type IdentityTag = (typeof IDENTITY_TAGS)[number];

/** The literal every tagged file contains, for finding the files. */
export const IDENTITY_MARKER = '[identity:';
/** A vitest `-t` pattern matching every tagged test's full name. */
export const IDENTITY_PATTERN = `\\[identity:(${IDENTITY_TAGS.join('|')})\\]`;
const TAG = new RegExp(IDENTITY_PATTERN, 'g');

export interface IdentitySummary {
  oidc_cases: number;
  oauth_cases: number;
  mfa_cases: number;
  failed: number;
}

/** The identity tags in a test's full name, each once. */
export function identityTagsOf(fullName: string): IdentityTag[] {
  const found = new Set([...fullName.matchAll(TAG)].map((match) => match[1]));
  return IDENTITY_TAGS.filter((tag) => found.has(tag));
}

/**
 * Passing tests per tag, and the tagged tests that failed (each counted once however many tags it
 * carries). A skipped tagged test counts neither way: it proves nothing, and the runner refuses a
 * run in which every tagged test of a tag was skipped.
 */
export function identitySummary(tests: readonly ReportedTest[]): IdentitySummary {
  const passing = (tag: IdentityTag) => tests.filter((test) => test.status === 'passed' && identityTagsOf(test.name).includes(tag)).length;
  return {
    oidc_cases: passing('oidc'),
    oauth_cases: passing('oauth'),
    mfa_cases: passing('mfa'),
    failed: tests.filter((test) => test.status === 'failed' && identityTagsOf(test.name).length > 0).length,
  };
}
