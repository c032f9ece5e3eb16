import { describe, expect, it } from 'vitest';
import { contractCases, summarizeContract } from './connector-contract.ts';

const report = (tests: Array<{ suite: string; title: string; status: string }>) => ({
  testResults: [
    {
      name: '/x/contract.integration.test.ts',
      assertionResults: tests.map((t) => ({ ancestorTitles: [t.suite], title: t.title, fullName: `${t.suite} ${t.title}`, status: t.status })),
    },
  ],
});

describe('reading the conformance suite back', () => {
  it('counts connectors by id across source and destination, and every case that did not pass', () => {
    const cases = contractCases(
      report([
        { suite: 'connector contract: sftp@1 source', title: 'a', status: 'passed' },
        { suite: 'connector contract: sftp@1 destination', title: 'b', status: 'passed' },
        { suite: 'connector contract: local@1 destination', title: 'c', status: 'failed' },
        { suite: 'connector contract: script@1 source', title: 'd', status: 'skipped' },
        { suite: 'sftp destination against OpenSSH', title: 'not a contract case', status: 'failed' },
      ]),
    );
    expect(summarizeContract(cases)).toEqual({ connectors: 3, contract_cases: 4, failed: 2 });
  });

  it('refuses a report without results', () => {
    expect(() => contractCases({})).toThrow(/no testResults/);
  });
});
