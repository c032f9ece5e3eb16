/**
 * The integrity findings and how their regression tests are read back. Every regression test of
 * finding N carries `[integrity #N]` in its title (or a describe block's); the runner runs exactly
 * those tests and this module turns vitest's JSON report into the per-finding verdict.
 */
import { type ReportedTest, reportedTests } from './tagged-runs.ts';

export type { TestStatus } from './tagged-runs.ts';

/** The findings of the integrity review, by number. */
export const FINDINGS: Readonly<Record<number, string>> = {
  1: 'group runs never ran',
  2: 'a second process on the embedded database broke the audit chain',
  3: 'integrations saved that could never run',
  4: 'CSV cell content in the agent log',
  5: 'memory grew with an unclosed CSV quote',
  6: 'JSON Lines numbers rewritten',
  7: 'Latin-1 bytes became U+FFFD',
  8: 'a scope matching no column delivered blank rows',
  9: 'real-world CSV refused, loose number and date rules',
  10: 'two keys in one armored file became one recipient',
  11: 'v4 keys with RFC 9580 X25519/X448 accepted',
  12: 'Brainpool, DSA, RSA-1024 and user-ID-less keys refused with wrong reasons',
  13: 'a key preferring only 3DES/CAST5 silently got AES-128',
  14: 'a file name that is not UTF-8 failed every run',
  15: 'login could be stalled by anyone',
  16: 'API keys outlived their creator',
  17: 'console sessions had no rate limit',
  18: 'terminal escape injection in CLI output',
  19: 'NUL or lone surrogates gave HTTP 500',
  20: 'session cookie planting',
  21: 'email addresses global across tenants',
  22: "one tenant's agent could drop another's security events",
  23: 'webhook probing, NAT64 targets, throttle pruning, unaudited canGrant refusals',
};

export const TAG_PATTERN = '\\[integrity #';
const TAG = /\[integrity #(\d+)\]/g;

export interface TaggedTest extends ReportedTest {
  finding: number;
}

export interface FindingVerdict {
  finding: number;
  title: string;
  fixed: boolean;
  tests: TaggedTest[];
}

export interface IntegritySummary {
  findings: number;
  fixed: number;
  open: number[];
}

/** The finding numbers a test's full name is tagged with. */
export function tagsOf(fullName: string): number[] {
  return [...fullName.matchAll(TAG)].map((match) => Number(match[1]));
}

/** The tagged tests in one vitest `--reporter=json` report; untagged tests (filtered out by `-t`) are ignored. */
export function taggedTests(report: unknown): TaggedTest[] {
  return findingsOf(reportedTests(report));
}

/** One entry per finding a test is tagged with; untagged tests drop out. */
export function findingsOf(tests: readonly ReportedTest[]): TaggedTest[] {
  return tests.flatMap((test) => tagsOf(test.name).map((finding) => ({ ...test, finding })));
}

/** A finding is fixed when it has at least one regression test and every one of them passed. */
export function verdicts(tests: readonly TaggedTest[]): FindingVerdict[] {
  return Object.entries(FINDINGS).map(([number, title]) => {
    const finding = Number(number);
    const mine = tests.filter((test) => test.finding === finding);
    return { finding, title, fixed: mine.length > 0 && mine.every((test) => test.status === 'passed'), tests: mine };
  });
}

export function summarize(found: readonly FindingVerdict[]): IntegritySummary {
  return {
    findings: found.length,
    fixed: found.filter((verdict) => verdict.fixed).length,
    open: found.filter((verdict) => !verdict.fixed).map((verdict) => verdict.finding),
  };
}
