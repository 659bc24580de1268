#!/usr/bin/env bash
# Runs every hookgate test, from a fresh Debian machine (as root) or a developer's checkout.
#
# It builds the whole workspace (the server, the example plugins, the fixture plugins), then the
# two fixtures that need builds of their own (one with panic = "abort", one against an older
# plugin-api layout), then runs `cargo test` over the workspace.
set -euo pipefail

cd "$(dirname "$0")/.."
log() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null; then
    echo "cargo is not installed: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
fi

log "building the workspace (server, plugin-api, example and fixture plugins)"
cargo build --workspace --all-targets --locked

log "building the panic=abort fixture (target/panic-abort)"
cargo build --locked -p fixture_panic_abort --config 'profile.dev.panic="abort"' --target-dir target/panic-abort

log "building the older-layout fixture (target/older-layout)"
cargo build --locked -p fixture_incompatible --features older-layout --target-dir target/older-layout

log "running the tests"
cargo test --workspace --locked
