import { describe, expect, it } from 'vitest';
import { formatIssues } from './issues.ts';

describe('formatIssues', () => {
  it('lists every issue with its path, under a prefix when given', () => {
    const issues = [
      { path: [], message: 'Unrecognized key: "credentialsRef"' },
      { path: ['credentialRef'], message: 'Invalid input' },
      { path: ['recipients', 0], message: 'too short' },
    ];
    expect(formatIssues(issues)).toBe('(root): Unrecognized key: "credentialsRef"; credentialRef: Invalid input; recipients.0: too short');
    expect(formatIssues(issues, 'source.config')).toBe(
      'source.config: Unrecognized key: "credentialsRef"; source.config.credentialRef: Invalid input; source.config.recipients.0: too short',
    );
  });
});
