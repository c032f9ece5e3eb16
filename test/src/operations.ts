/**
 * The operations proof's tags. Every test of egress through proxies carries `[operations:proxy]`
 * in its title (or a describe block's), every test of signed agent updates `[operations:update]`,
 * every test of health, readiness and metrics `[operations:metrics]`; `test:operations` runs
 * exactly those tests (through tagged-runs.ts) and this module sums them up.
 */
import type { ReportedTest } from './tagged-runs.ts';

export const OPERATIONS_TAGS = ['proxy', 'update', 'metrics'] as const;
export type OperationsTag = (typeof OPERATIONS_TAGS)[number];

/** The literal every tagged file contains, for finding the files. */
export const OPERATIONS_MARKER = '[operations:';
/** A vitest `-t` pattern matching every tagged test's full name. */
export const OPERATIONS_PATTERN = `\\[operations:(${OPERATIONS_TAGS.join('|')})\\]`;
const TAG = new RegExp(OPERATIONS_PATTERN, 'g');

export interface OperationsSummary {
  proxy_cases: number;
  update_cases: number;
  /** Every `[operations:metrics]` test passed, and there was at least one. */
  metrics_ok: boolean;
  failed: number;
}

/** The operations tags in a test's full name, each once. */
export function operationsTagsOf(fullName: string): OperationsTag[] {
  const found = new Set([...fullName.matchAll(TAG)].map((match) => match[1]));
  return OPERATIONS_TAGS.filter((tag) => found.has(tag));
}

/**
 * Passing tests of the proxy and update tags, whether the metrics tests all passed, and the tagged
 * tests that failed (each counted once however many tags it carries). A skipped tagged test counts
 * neither way: it proves nothing.
 */
export function operationsSummary(tests: readonly ReportedTest[]): OperationsSummary {
  const tagged = (tag: OperationsTag) => tests.filter((test) => operationsTagsOf(test.name).includes(tag));
  const passing = (tag: OperationsTag) => tagged(tag).filter((test) => test.status === 'passed').length;
  const metrics = tagged('metrics');
  return {
    proxy_cases: passing('proxy'),
    update_cases: passing('update'),
    metrics_ok: metrics.some((test) => test.status === 'passed') && metrics.every((test) => test.status === 'passed'),
    failed: tests.filter((test) => test.status === 'failed' && operationsTagsOf(test.name).length > 0).length,
  };
}
