import { describe, expect, it } from 'vitest';
import { summarize, tagsOf, taggedTests, verdicts } from './integrity.ts';

const report = (tests: Array<{ fullName: string; status: string }>) => ({
  testResults: [{ name: '/repo/x.test.ts', assertionResults: tests.map((test) => ({ ...test, title: test.fullName })) }],
});

describe('integrity report', () => {
  it('reads finding numbers from test names', () => {
    expect(tagsOf('field filter > [integrity #6] keeps numbers')).toEqual([6]);
    expect(tagsOf('no tag here')).toEqual([]);
  });

  it('counts a finding fixed only when it has tests and all of them passed', () => {
    const tests = taggedTests(
      report([
        { fullName: 'a [integrity #1] one', status: 'passed' },
        { fullName: 'b [integrity #1] two', status: 'passed' },
        { fullName: 'c [integrity #2] one', status: 'passed' },
        { fullName: 'd [integrity #2] two', status: 'failed' },
        { fullName: 'e [integrity #3] one', status: 'skipped' },
        { fullName: 'untagged', status: 'failed' },
      ]),
    );
    expect(tests).toHaveLength(5);
    const summary = summarize(verdicts(tests));
    expect(summary.findings).toBe(23);
    expect(summary.fixed).toBe(1);
    expect(summary.open).toContain(2);
    expect(summary.open).toContain(3);
    expect(summary.open).toContain(4);
    expect(summary.open).not.toContain(1);
  });

  it('refuses a report that is not one', () => {
    expect(() => taggedTests({})).toThrow(/testResults/);
  });
});
