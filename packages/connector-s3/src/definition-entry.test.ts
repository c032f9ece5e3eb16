import { expect, it, vi } from 'vitest';

// The control plane imports `./definition`; the SDK is the runtime's alone.
vi.mock('@aws-sdk/client-s3', () => {
  throw new Error('the S3 SDK was loaded');
});
vi.mock('@aws-sdk/credential-providers', () => {
  throw new Error('the AWS credential chain was loaded');
});

it('the definition entry point loads no SDK', async () => {
  const { s3DestinationDefinition } = await import('./definition.ts');
  expect(s3DestinationDefinition.id).toBe('s3');
});
