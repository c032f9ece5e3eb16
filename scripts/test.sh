#!/usr/bin/env bash
# The test command (`npm test`): sets up, then runs lint, typecheck and every test tier through
# turbo. Integration and system tests use real PostgreSQL, OpenSSH sshd and gpg; with CI=true a
# missing one is an error, never a silent fallback. The console is built and checked by its own
# lint and typecheck tasks; its browser tests (test/e2e/console.test.ts, Debian's Chromium) run in
# the system tests' `test` task, and alone with `npm run test:e2e:console`. Then the proofs that
# print one JSON line each, read from the reports of that run: the integrity findings' verdict per
# finding (`test:integrity`), the connector conformance count (`test:connectors`), the identity
# tests' counts per kind (single sign-on, OAuth 2.0 clients, second factors: `test:identity`) and
# the operations tests' (proxies, signed updates, health and metrics: `test:operations`). Last, the
# release: built (`npm run release`), its systemd units audited (`check:units`: the agent's
# exposure must be 2.0 or lower and `systemd-analyze verify` clean), and its .deb files installed
# on this machine for one delivery from /usr/bin, then removed and purged (`test:install`, as root;
# under CI=true, not being root is an error).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
export TURBO_TELEMETRY_DISABLED=1 TURBO_NO_UPDATE_NOTIFIER=1 DO_NOT_TRACK=1
# Every workspace's run also writes a JSON report here (vitest.shared.ts); the proofs below read
# those verdicts rather than running the same tests a second time.
AIRLOCK_TEST_REPORTS="$(mktemp -d)"
export AIRLOCK_TEST_REPORTS
trap 'rm -rf "$AIRLOCK_TEST_REPORTS"' EXIT
npx turbo run lint typecheck test --concurrency=2 --output-logs=new-only "$@"
# The integrity findings' regression tests, read back per finding (README, "Integrity").
npm run -s test:integrity -- --json --reports "$AIRLOCK_TEST_REPORTS"
# The connector conformance suite, read back as one count (README, "Connectors").
npm run -s test:connectors -- --json --reports "$AIRLOCK_TEST_REPORTS"
# Single sign-on, OAuth 2.0 clients and second factors, counted per tag (README, "Identity").
npm run -s test:identity -- --json --reports "$AIRLOCK_TEST_REPORTS"
# Egress through proxies, signed agent updates, and health, readiness and metrics, per tag (README, "Operations").
npm run -s test:operations -- --json --reports "$AIRLOCK_TEST_REPORTS"
# The release as users install it (README, "Install").
npm run -s release
npm run -s check:units -- --json
npm run -s test:install -- --json
