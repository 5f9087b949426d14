#!/usr/bin/env bash
# The test command: sets up what is missing, then lint (ruff, buf) and the whole pytest suite.
# Tests start their own redis-server on free ports; nothing needs to be running beforehand.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh"

echo "== ruff"; .venv/bin/ruff check .
echo "== buf lint"; .tools/node_modules/.bin/buf lint
if git rev-parse --verify -q main >/dev/null; then
  echo "== buf breaking (against main)"
  # main's protos/ as the baseline: its module root holds the same file paths as ours.
  .tools/node_modules/.bin/buf breaking --against "$root/.git#branch=main,subdir=protos"
fi
# -rs lists every skip with its reason; tests/skip_policy.py fails the run on a skip outside its
# short allow-list when DENTALAI_STRICT_SKIPS=1 (.ci/run sets it: in CI every test must run).
echo "== pytest"; .venv/bin/python -m pytest -q -p no:cacheprovider -rs -p tests.skip_policy "$@"
