import { createRequire } from 'node:module';
import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';

const require = createRequire(import.meta.url);

export default mergeConfig(
  shared,
  defineConfig({ test: { globalSetup: [require.resolve('@airlock/testing/postgres-global-setup')] } }),
);
