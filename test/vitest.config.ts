import { createRequire } from 'node:module';
import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../vitest.shared.ts';

const require = createRequire(import.meta.url);

// Whole-system tests start real processes (control plane, agent, sshd) against one PostgreSQL
// server shared by the run; each test file takes a fresh database from it.
export default mergeConfig(
  shared,
  defineConfig({
    test: {
      include: ['src/**/*.test.ts', 'e2e/**/*.test.ts'],
      globalSetup: [require.resolve('@airlock/testing/postgres-global-setup')],
      testTimeout: 180_000,
      hookTimeout: 120_000,
    },
  }),
);
