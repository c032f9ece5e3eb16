#!/usr/bin/env bash
# The demo (`npm run demo`, or `npm run demo -- --json`): control plane on the embedded database,
# an SFTP server with sample files, an enrolled agent, one encrypted delivery checked with gpg.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec node --import tsx test/demo/demo.ts "$@"
