#!/usr/bin/env bash
# Builds the zip Azure Functions deploys: host.json at the root, one folder per function with its
# function.json, and the handler `defender-sentinel-sync` (static musl build, rustls, mode 0755).
#
#   scripts/package.sh            -> dist/defender-sentinel-sync.zip (and the unpacked tree in dist/app/)
#
# Installs what it needs when it can (rustup target x86_64-unknown-linux-musl; `apt-get install
# -y musl-tools` when running as root), otherwise says exactly what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=x86_64-unknown-linux-musl
BIN=defender-sentinel-sync
OUT="${PACKAGE_OUT_DIR:-$ROOT/dist}"
cd "$ROOT"

ensure_musl_target() {
    if rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then return; fi
    echo "package: adding rust target $TARGET" >&2
    rustup target add "$TARGET" || {
        echo "package: missing rust target $TARGET; run: rustup target add $TARGET" >&2; exit 1; }
}

ensure_musl_gcc() {
    # aws-lc-sys (rustls' crypto) compiles C code and needs the musl cross compiler wrapper.
    if command -v x86_64-linux-musl-gcc >/dev/null 2>&1; then return; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "package: installing musl-tools (apt-get)" >&2
        apt-get install -y musl-tools >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y musl-tools >/dev/null; }
    fi
    command -v x86_64-linux-musl-gcc >/dev/null 2>&1 || {
        echo "package: missing x86_64-linux-musl-gcc; install it with: apt-get install -y musl-tools (as root)" >&2; exit 1; }
}

ensure_tools() {
    command -v zip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 || {
        echo "package: need 'zip' or 'python3' to write the zip; install one (apt-get install -y zip)" >&2; exit 1; }
}

ensure_musl_target
ensure_musl_gcc
ensure_tools

# No default features: the `demo` feature (simulators, fake host) stays out of the package.
cargo build --release --locked --no-default-features --target "$TARGET" --bin "$BIN"

APP="$OUT/app"
rm -rf "$APP" && mkdir -p "$APP"
install -m 0755 "target/$TARGET/release/$BIN" "$APP/$BIN"
install -m 0644 host.json "$APP/host.json"
for dir in function-defs/*/; do
    name="$(basename "$dir")"
    mkdir -p "$APP/$name"
    install -m 0644 "$dir/function.json" "$APP/$name/function.json"
done

ZIP="$OUT/$BIN.zip"
rm -f "$ZIP"
# zip stores Unix modes (the exec bit) by default; -X drops extra timestamps for a steadier zip.
(cd "$APP" && if command -v zip >/dev/null 2>&1; then zip -q -X -r "$ZIP" .; else
    python3 - "$ZIP" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for base, _, files in os.walk("."):
        for f in sorted(files):
            p = os.path.join(base, f)
            info = zipfile.ZipInfo(os.path.relpath(p, "."))
            info.external_attr = (os.stat(p).st_mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, open(p, "rb").read())
PY
fi)
echo "package: wrote $ZIP"
