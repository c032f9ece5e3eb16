import { describe, expect, it } from 'vitest';
import { operationsSummary, operationsTagsOf } from './operations.ts';
import { reportedTests } from './tagged-runs.ts';

const report = (tests: Array<{ fullName: string; status: string }>) => ({
  testResults: [{ name: '/repo/x.test.ts', assertionResults: tests.map((test) => ({ ...test, title: test.fullName })) }],
});

describe('operations report', () => {
  it('reads the operations tags from test names', () => {
    expect(operationsTagsOf('egress > [operations:proxy] goes through squid')).toEqual(['proxy']);
    expect(operationsTagsOf('[operations:metrics] [operations:update] [operations:metrics] both')).toEqual(['update', 'metrics']);
    expect(operationsTagsOf('[operations:other] [identity:oidc] none')).toEqual([]);
  });

  it('counts passing proxy and update tests, and holds metrics_ok to every metrics test passing', () => {
    const tests = reportedTests(
      report([
        { fullName: 'a [operations:proxy] one', status: 'passed' },
        { fullName: 'b [operations:proxy] two', status: 'failed' },
        { fullName: 'c [operations:update] one', status: 'passed' },
        { fullName: 'd [operations:metrics] one', status: 'passed' },
        { fullName: 'e [operations:metrics] [operations:update] two', status: 'passed' },
        { fullName: 'f [operations:update] three', status: 'skipped' },
        { fullName: 'untagged', status: 'failed' },
      ]),
    );
    expect(operationsSummary(tests)).toEqual({ proxy_cases: 1, update_cases: 2, metrics_ok: true, failed: 1 });
  });

  it('is not metrics_ok with a failing metrics test, or with none that passed', () => {
    const failing = reportedTests(report([{ fullName: '[operations:metrics] a', status: 'passed' }, { fullName: '[operations:metrics] b', status: 'failed' }]));
    expect(operationsSummary(failing)).toMatchObject({ metrics_ok: false, failed: 1 });
    const skipped = reportedTests(report([{ fullName: '[operations:metrics] a', status: 'skipped' }]));
    expect(operationsSummary(skipped)).toMatchObject({ metrics_ok: false, failed: 0 });
    expect(operationsSummary([])).toEqual({ proxy_cases: 0, update_cases: 0, metrics_ok: false, failed: 0 });
  });
});
