/**
 * How the conformance suite's results are read back: every suite's title starts with
 * `connector contract: <id>@<version> <source|destination>`, and this module turns vitest's JSON
 * report into the count of connectors and cases.
 */
import { CONTRACT_TITLE } from '@airlock/testing/connector-contract';

export interface ContractCase {
  /** The connector id (`sftp`), shared by its source and destination. */
  connector: string;
  name: string;
  status: 'passed' | 'failed' | 'skipped';
}

export interface ContractSummary {
  connectors: number;
  contract_cases: number;
  failed: number;
}

const SUITE = new RegExp(`^${CONTRACT_TITLE} ([a-z][a-z0-9-]*)@\\d+ (?:source|destination)\\b`);

function record(value: unknown): Readonly<Record<string, unknown>> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** The contract cases in one vitest `--reporter=json` report; other tests are ignored. */
export function contractCases(report: unknown): ContractCase[] {
  const files = record(report)?.['testResults'];
  if (!Array.isArray(files)) throw new Error('the vitest report has no testResults');
  const cases: ContractCase[] = [];
  for (const file of files) {
    const assertions = record(file)?.['assertionResults'];
    if (!Array.isArray(assertions)) continue;
    for (const assertion of assertions) {
      const entry = record(assertion);
      const ancestors = entry?.['ancestorTitles'];
      const title = Array.isArray(ancestors) ? ancestors.find((t): t is string => typeof t === 'string' && SUITE.test(t)) : undefined;
      const connector = title === undefined ? undefined : SUITE.exec(title)?.[1];
      if (connector === undefined) continue;
      const status = entry?.['status'];
      cases.push({
        connector,
        name: typeof entry?.['fullName'] === 'string' ? entry['fullName'] : title ?? '',
        status: status === 'passed' ? 'passed' : status === 'failed' ? 'failed' : 'skipped',
      });
    }
  }
  return cases;
}

/** A skipped case counts as failed: the suite registers only cases that apply, so none may be skipped. */
export function summarizeContract(cases: readonly ContractCase[]): ContractSummary {
  return {
    connectors: new Set(cases.map((c) => c.connector)).size,
    contract_cases: cases.length,
    failed: cases.filter((c) => c.status !== 'passed').length,
  };
}
