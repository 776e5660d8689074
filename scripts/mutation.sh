#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (not part of CI: minutes per module).
#
#   bash scripts/mutation.sh                  # every module below
#   bash scripts/mutation.sh tokens journal   # only these
#   MUTATION_JOBS=1 bash scripts/mutation.sh message   # one test process (default: 2)
#   MUTATION_ONLY='*_claim* *_fence*' bash scripts/mutation.sh delivery   # some functions
# Run again after an interruption (Ctrl-C), it goes on where the same module stopped;
# `rm -rf mutants` starts afresh.
#
# Each module is mutated alone and tested only by its own fast tests (the mapping
# below); the fault tests (tests/delivery/test_faults.py) are left out: too slow for this.
# mutmut copies the project into mutants/ and runs the tests there, against the mutated
# copy (the editable install's path to src/ is taken off sys.path). The score of each
# module is printed at the end: killed / mutants, where timeouts count as killed and
# mutants no test reaches count as survivors. `.venv/bin/mutmut show <name>` prints a
# mutant, `.venv/bin/mutmut results` lists the survivors of the last module run.
set -euo pipefail -f  # -f: the mutant name patterns are not file names
cd "$(dirname "$0")/.."

export CITESMAIL_TEST_PG_URL="${CITESMAIL_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
JOBS="${MUTATION_JOBS:-2}"
# A mutant that makes a run wait forever (a retry never due, a lock never freed) fails
# its test after this many seconds (pytest-timeout), instead of holding a worker until
# mutmut's CPU-time limit, which a waiting process hardly uses.
TEST_TIMEOUT="${MUTATION_TEST_TIMEOUT:-45}"
# The fast path's property tests run 1,000 examples in the suite; 100 per mutant here,
export CITESMAIL_FAST_PATH_EXAMPLES="${CITESMAIL_FAST_PATH_EXAMPLES:-100}"
# and a failing example is not shrunk (only the failure counts here, not its smallest case).
export CITESMAIL_FAST_PATH_SHRINK="${CITESMAIL_FAST_PATH_SHRINK:-0}"
ALL=(tokens journal message delivery audience/csvfile audience/importer audience/textfile
     audience/segments)

# module -> files mutated | tests run | extra pytest options | mutant name patterns
spec() {
  case "$1" in
    tokens) echo "src/citesmail/tokens.py|tests/test_message.py tests/web/test_public.py||";;
    journal) echo "src/citesmail/delivery/journal.py|tests/delivery/test_journal.py tests/delivery/test_store.py|-k journal|";;
    message) echo "src/citesmail/message.py|tests/test_message.py tests/test_message_fast_path.py tests/test_golden.py||";;
    # The send log's store: its SQL (store.py) and a send's life (sendlog.py); not the
    # thread engine (run.py), which the fault tests cover. On SQLite only: the store's
    # statements are the same on PostgreSQL, and twice the time.
    delivery) echo "src/citesmail/delivery/store.py src/citesmail/delivery/sendlog.py|tests/delivery/test_store.py tests/delivery/test_store_steps.py|-k 'not postgresql'|";;
    audience/csvfile|audience/importer|audience/textfile)
      echo "src/citesmail/$1.py|tests/audience/test_importer.py tests/audience/test_textfile.py tests/audience/test_importer_rows.py||";;
    audience/segments) echo "src/citesmail/audience/segments.py|tests/audience/test_segments.py||";;
    *) echo "unknown module: $1 (known: ${ALL[*]})" >&2; return 1;;
  esac
}

if [ $# -eq 0 ]; then set -- "${ALL[@]}"; fi
for module in "$@"; do spec "$module" >/dev/null; done  # refuse a typo before starting

[ -x .venv/bin/mutmut ] || .venv/bin/python -m pip install -q -e '.[test]'

SCORES=()
for module in "$@"; do
  IFS='|' read -r files tests options patterns <<<"$(spec "$module")"
  patterns="${MUTATION_ONLY:-$patterns}"  # mutant name patterns (fnmatch), space-separated
  echo "== $module: mutating $files, tested by $tests $options"
  # The results of an interrupted run of the same module are kept (mutmut goes on where it
  # stopped); those of another module (another test selection) must not be reused.
  if [ "$(cat mutants/.module 2>/dev/null)" != "$module" ]; then rm -rf mutants; fi
  mkdir -p mutants && echo "$module" >mutants/.module
  # mutmut takes its settings from pyproject.toml; the per-module ones are set here.
  MUT_FILES="$files" MUT_TESTS="$tests" MUT_OPTIONS="$options --timeout=$TEST_TIMEOUT" MUT_JOBS="$JOBS" \
  .venv/bin/python - $patterns <<'EOF'
import os
import shlex
import sys

from mutmut.__main__ import cli
from mutmut.configuration import config

cfg = config()
cfg.only_mutate = os.environ["MUT_FILES"].split()
cfg.pytest_add_cli_args_test_selection = os.environ["MUT_TESTS"].split()
cfg.pytest_add_cli_args = [*cfg.pytest_add_cli_args, *shlex.split(os.environ["MUT_OPTIONS"])]
try:
    cli(["run", "--max-children", os.environ["MUT_JOBS"], *sys.argv[1:]],
        standalone_mode=False)
except SystemExit as exc:
    if exc.code:
        raise
EOF
  score="$(MUT_FILES="$files" .venv/bin/python - $patterns <<'EOF'
import fnmatch
import json
import os
import sys
from pathlib import Path

from mutmut.stats import status_by_exit_code

patterns = sys.argv[1:] or ["*"]
codes = {}
for file in os.environ["MUT_FILES"].split():
    meta = Path("mutants") / f"{file}.meta"
    codes |= json.loads(meta.read_text())["exit_code_by_key"]
codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
status = {k: status_by_exit_code[v] for k, v in codes.items()}
killed = sum(s in ("killed", "timeout", "caught by type check") for s in status.values())
total = len(status)
for name, s in sorted(status.items()):
    if s not in ("killed", "timeout", "caught by type check"):
        print(f"   {s}: {name}", file=sys.stderr)
print(f"{killed} / {total} ({100 * killed / max(total, 1):.1f} %)")
EOF
)"
  SCORES+=("$(printf '%-20s %s' "$module" "$score")")
done

echo
echo "module               killed / mutants (score)"
printf '%s\n' "${SCORES[@]}"
