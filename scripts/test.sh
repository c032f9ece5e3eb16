#!/usr/bin/env bash
# The test command (`npm test`): sets up, then runs lint, typecheck and every test tier through
# turbo. Integration and system tests use real PostgreSQL, OpenSSH sshd and gpg; with CI=true a
# missing one is an error, never a silent fallback. The console is built and checked by its own
# lint and typecheck tasks; its browser tests (test/e2e/console.test.ts, Debian's Chromium) run in
# the system tests' `test` task, and alone with `npm run test:e2e:console`. Last, the integrity
# findings' regression tests print their per-finding verdict (`npm run -s test:integrity -- --json`),
# and the identity tests (single sign-on, OAuth 2.0 clients, second factors) their counts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
export TURBO_TELEMETRY_DISABLED=1 TURBO_NO_UPDATE_NOTIFIER=1 DO_NOT_TRACK=1
npx turbo run lint typecheck test --concurrency=2 --output-logs=new-only "$@"
# The integrity findings' regression tests once more, read back per finding (README, "Integrity").
npm run -s test:integrity -- --json
# Single sign-on, OAuth 2.0 clients and second factors, counted per tag (README, "Identity").
npm run -s test:identity -- --json
