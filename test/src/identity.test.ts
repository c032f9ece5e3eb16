import { describe, expect, it } from 'vitest';
import { identitySummary, identityTagsOf } from './identity.ts';
import { reportedTests } from './tagged-runs.ts';

const report = (tests: Array<{ fullName: string; status: string }>) => ({
  testResults: [{ name: '/repo/x.test.ts', assertionResults: tests.map((test) => ({ ...test, title: test.fullName })) }],
});

describe('identity report', () => {
  it('reads the identity tags from test names', () => {
    expect(identityTagsOf('sso > [identity:oidc] signs in')).toEqual(['oidc']);
    expect(identityTagsOf('[identity:mfa] [identity:oidc] [identity:mfa] both')).toEqual(['oidc', 'mfa']);
    expect(identityTagsOf('[identity:other] [integrity #3] none')).toEqual([]);
  });

  it('counts passing tests per tag and every failing tagged test once', () => {
    const tests = reportedTests(
      report([
        { fullName: 'a [identity:oidc] one', status: 'passed' },
        { fullName: 'b [identity:oidc] two', status: 'failed' },
        { fullName: 'c [identity:oauth] one', status: 'passed' },
        { fullName: 'd [identity:mfa] [identity:oidc] one', status: 'passed' },
        { fullName: 'e [identity:mfa] [identity:oauth] two', status: 'failed' },
        { fullName: 'f [identity:mfa] three', status: 'skipped' },
        { fullName: 'untagged', status: 'failed' },
      ]),
    );
    expect(identitySummary(tests)).toEqual({ oidc_cases: 2, oauth_cases: 1, mfa_cases: 1, failed: 2 });
  });

  it('refuses a report that is not one', () => {
    expect(() => reportedTests({ results: [] })).toThrow(/testResults/);
  });
});
