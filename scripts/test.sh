#!/usr/bin/env bash
# The one test command (README, .ci/run): prepares a fresh machine and runs the whole
# workspace test suite.
#   - rust target x86_64-unknown-linux-musl and musl-tools (the package test builds the zip);
#   - Azurite's npm packages when tools/azurite/package-lock.json exists (state-store tests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET=x86_64-unknown-linux-musl

if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "test.sh: adding rust target $TARGET"
    rustup target add "$TARGET"
fi

if ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing musl-tools"
        apt-get install -y musl-tools >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y musl-tools >/dev/null; }
    else
        echo "test.sh: missing x86_64-linux-musl-gcc; install it with: apt-get install -y musl-tools (as root)" >&2
        exit 1
    fi
fi

if [ -f tools/azurite/package-lock.json ] && [ ! -d tools/azurite/node_modules ]; then
    command -v npm >/dev/null 2>&1 || { echo "test.sh: npm is missing (needed for Azurite); install Node.js 20+" >&2; exit 1; }
    echo "test.sh: installing Azurite (npm ci)"
    npm ci --prefix tools/azurite --no-audit --no-fund
fi

cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"
