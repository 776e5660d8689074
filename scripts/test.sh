#!/usr/bin/env bash
# Installs everything the test suite needs, then runs it (README's Quick start, and CI).
#   - a virtualenv in .venv with citesmail and its test extras; then ruff and mypy
#   - Debian's Chromium for the browser tests, nsd (an authoritative DNS server) for
#     the `dns check` tests, SpamAssassin (its shipped rules, never sa-update)
#     for the spam score of the examples, and Dovecot (dovecot-imapd) for the
#     `inbox fetch` tests (apt-get, when missing and run as root); npm, which installs
#     axe-core into benchmarks/.cache for the accessibility tests of the sign-up and
#     preference pages; iptables, with which the standby test cuts a worker's network to
#     PostgreSQL on 127.0.0.1 (a chain of its own, removed after)
#   - the machine's PostgreSQL (127.0.0.1:5432, database test): started if it is down;
#     CITESMAIL_TEST_PG_URL points the database tests at it
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k render`.
# The tests run in two worker processes (CITESMAIL_TEST_WORKERS, 0 for none).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nsd ] || command -v nsd >/dev/null || missing+=(nsd)
command -v spamassassin >/dev/null || missing+=(spamassassin)
[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null || missing+=(dovecot-imapd)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/sbin/iptables ] || command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} missing; run 'sudo apt-get install ${missing[*]}'" >&2
  fi
fi

# axe-core, for the accessibility checks of serve's pages (and the deliverability benchmark)
AXE=benchmarks/.cache/node_modules/axe-core/axe.min.js
if [ ! -f "$AXE" ] && command -v npm >/dev/null; then
  npm install --no-audit --no-fund --silent --prefix benchmarks/.cache axe-core@4
fi

export CITESMAIL_TEST_PG_URL="${CITESMAIL_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ "$(id -u)" = 0 ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/ruff check .
.venv/bin/mypy  # strict, on src/ (settings in pyproject.toml)
# Two pytest workers (pytest-xdist): most tests wait on servers and child processes, so
# two share a 2-core machine well; CITESMAIL_TEST_WORKERS=0 runs them in this process.
exec .venv/bin/python -m pytest -n "${CITESMAIL_TEST_WORKERS:-2}" "$@"
