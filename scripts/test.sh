#!/usr/bin/env bash
# The one test command (README, .ci/run): prepares a fresh machine and runs the whole
# workspace test suite.
#   - rust target x86_64-unknown-linux-musl and musl-tools (the package test builds the zip);
#   - Azurite's npm packages when tools/azurite/package-lock.json exists (state-store tests);
#   - .venv-infra/: a Python venv with pycep-parser and checkov, pinned in
#     infra/tests/requirements.txt (tests/infra.rs parses and scans the Bicep templates).
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

# The template tests' tools, installed once (a fresh clone has no venv). tests/infra.rs fails,
# naming this step, when they are missing.
REQS=infra/tests/requirements.txt
if [ ! -x .venv-infra/bin/checkov ] || ! cmp -s "$REQS" .venv-infra/requirements.txt; then
    command -v python3 >/dev/null 2>&1 || { echo "test.sh: python3 is missing (needed for the template tests); install Python 3.9+ with venv" >&2; exit 1; }
    echo "test.sh: installing pycep-parser and checkov into .venv-infra ($REQS)"
    rm -rf .venv-infra
    python3 -m venv .venv-infra
    .venv-infra/bin/pip install --quiet --disable-pip-version-check -r "$REQS"
    cp "$REQS" .venv-infra/requirements.txt
fi

cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"

# ---- proof: dependency audit and fuzzing (docs/reliability.md) -----------------------------
# cargo-deny: bans, licences and sources (deny.toml). Advisories need GitHub (RustSec), which
# the build machines cannot reach: run `cargo deny --locked check advisories` where they can.
if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "test.sh: installing cargo-deny"
    cargo install cargo-deny --locked
fi
cargo deny --locked check bans licenses sources

# A short bounded run of every fuzz target when the nightly toolchain is there (the saved corpus
# is replayed on stable by tests/fuzz_corpus.rs either way). DSS_FUZZ_SECONDS per target
# (default 15; 0 skips). The run is seeded (DSS_FUZZ_SEED, default 1), so two runs on one
# commit mostly explore the same inputs; it is still bounded by time, so a slower machine stops
# earlier. New inputs go to a temporary directory, never into fuzz/corpus; a crash fails the run,
# leaves its input in fuzz/artifacts/<target>/ and prints it in base64 (a CI clone is thrown away).
FUZZ_SECONDS="${DSS_FUZZ_SECONDS:-15}"
FUZZ_SEED="${DSS_FUZZ_SEED:-1}"
if [ "$FUZZ_SECONDS" != 0 ] && rustup toolchain list | grep -q '^nightly'; then
    if ! command -v cargo-fuzz >/dev/null 2>&1; then
        echo "test.sh: installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
    FUZZ_TMP="$(mktemp -d)"
    trap 'rm -rf "$FUZZ_TMP"' EXIT
    (
        cd fuzz
        cargo +nightly fuzz build -s none
        for target in $(cargo +nightly fuzz list); do
            mkdir -p "$FUZZ_TMP/$target"
            echo "test.sh: fuzzing $target for ${FUZZ_SECONDS}s, seed $FUZZ_SEED"
            if ! cargo +nightly fuzz run -s none "$target" "$FUZZ_TMP/$target" "corpus/$target" -- \
                -seed="$FUZZ_SEED" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -timeout=10 \
                -print_final_stats=1 >"$FUZZ_TMP/$target.log" 2>&1; then
                grep -A3 -m1 'panicked at' "$FUZZ_TMP/$target.log" >&2 || true
                tail -n 60 "$FUZZ_TMP/$target.log" >&2
                for crash in "artifacts/$target"/*; do
                    [ -f "$crash" ] && [ "$(wc -c <"$crash")" -le 65536 ] || continue
                    echo "test.sh: $crash in base64 (decode into fuzz/corpus/$target/ to replay):" >&2
                    base64 -w 0 "$crash" >&2
                    echo >&2
                done
                echo "test.sh: fuzz target $target failed (input in fuzz/artifacts/$target/)" >&2
                exit 1
            fi
            grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units)' "$FUZZ_TMP/$target.log" || true
        done
    )
else
    echo "test.sh: no nightly toolchain (or DSS_FUZZ_SECONDS=0): fuzz runs skipped; the corpus was replayed by the tests"
fi
