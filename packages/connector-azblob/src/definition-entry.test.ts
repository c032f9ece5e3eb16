import { expect, it, vi } from 'vitest';

// The control plane imports `./definition`; the SDK is the runtime's alone.
vi.mock('@azure/storage-blob', () => {
  throw new Error('the Azure Storage SDK was loaded');
});
vi.mock('@aws-sdk/crc64-nvme', () => {
  throw new Error('the CRC64 module was loaded');
});

it('the definition entry point loads no SDK', async () => {
  const { azblobDestinationDefinition } = await import('./definition.ts');
  expect(azblobDestinationDefinition.id).toBe('azblob');
});
