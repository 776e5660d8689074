#!/usr/bin/env bash
# The README's first Quick start command: install citesmail, then in a fresh demo/
# workspace (built-in defaults: a SQLite file, an outbox folder instead of an SMTP
# server) import the example contacts and send the example replay announcement.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q .
citesmail=$PWD/.venv/bin/citesmail
rm -rf demo
"$citesmail" init demo
cd demo
"$citesmail" lists add partenaires --title "Partenaires AURA"
"$citesmail" contacts import ../examples/contacts.csv --list partenaires
"$citesmail" segments add partenaires-aura --list partenaires
"$citesmail" check
"$citesmail" send 2023-06-12-replay-cites-de-l-emploi --yes
"$citesmail" status
echo "The messages are in demo/outbox/new/ (a Maildir: open them with any mail client)."
echo
echo "citesmail is installed in .venv/bin. To type it as 'citesmail', run first:"
echo "    . .venv/bin/activate"
echo "then follow the README's walkthrough."
