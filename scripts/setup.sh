#!/usr/bin/env bash
# Makes a fresh clone ready: the system parts the tests use for real (OpenSSH sshd, PostgreSQL,
# GnuPG, Debian's Chromium for the console's browser tests, dpkg-deb and systemd-analyze for the
# release, squid and iptables for the proxy tests) and the npm dependencies, installed exactly from package-lock.json.
# Usage: scripts/setup.sh [--system]   (--system also installs missing Debian packages)
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=false
[ "${1:-}" = "--system" ] && want_system=true

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found $(node --version))" >&2
  exit 1
fi

if $want_system; then
  missing=()
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v gpg >/dev/null || missing+=(gnupg)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  # playwright-core drives this browser; no browser is ever downloaded.
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  # The release: dpkg-deb builds the .deb files, systemd-analyze audits their units.
  command -v dpkg-deb >/dev/null || missing+=(dpkg)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  # The proxy tests: a real squid (with its basic_ncsa_auth helper), openssl for its htpasswd file,
  # and iptables to block the agent's direct route.
  [ -x /usr/sbin/squid ] || missing+=(squid)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v iptables >/dev/null || missing+=(iptables)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: missing ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# npm ci is exact and clean; skip it when node_modules already matches the lock file.
stamp=node_modules/.airlock-lock.sha256
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "${CI:-}" = "true" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > "$stamp"
fi

# Each CLI's bin runs its bundle while it is newer than its sources (apps/agent/src/bundle.ts).
npm run -s -w @airlock/agent build
npm run -s -w @airlock/control-plane build
