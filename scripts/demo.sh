#!/usr/bin/env bash
# The demo: the whole forward sync on this machine against the built-in simulators, with its
# state in Azurite (installed here on first run; needs Node 20+ and npm). No Azure account.
# Options go to the demo: scripts/demo.sh --incidents 40 --seed 3
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x tools/azurite/node_modules/.bin/azurite-table ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "Installing Azurite (npm ci --prefix tools/azurite) …" >&2
        npm ci --prefix tools/azurite --no-audit --no-fund >&2
    else
        echo "npm not found: the demo keeps its state in memory instead of Azurite." >&2
    fi
fi
exec cargo run --release -- demo "$@"
