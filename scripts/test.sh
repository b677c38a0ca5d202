#!/usr/bin/env bash
# The whole test suite: sets up .venv if needed (idempotent), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-run
exec .venv/bin/python -m pytest "$@"
