#!/usr/bin/env bash
# Runs every hookgate test, from a fresh Debian machine (as root) or a developer's checkout.
#
# 1. Installs what the tests need and is missing (Debian's postgresql).
# 2. Starts a throw-away PostgreSQL on a free loopback port (stopped by PID on exit), so the
#    integration suite runs against SQLite and PostgreSQL.
# 3. Builds the whole workspace (the server, the example plugins, the fixture plugins), then the
#    two fixtures that need builds of their own (one with panic = "abort", one against an older
#    plugin-api layout).
# 4. Runs `cargo test` over the workspace.
# 5. Runs the Windows test (tests/windows/run.sh): hookgate.exe and the example plugins as .dll
#    files, cross-built for x86_64-pc-windows-gnu into target/windows and run under Wine
#    (HOOKGATE_TEST_SKIP_WINDOWS=1 skips it and says so).
# 6. Runs the end-to-end suite (tests/e2e/run.sh), which installs and starts its own components
#    (Apache, Chromium, oidc-provider, and LiteLLM's real proxy through tests/litellm/litellm.sh).
# 7. Runs the 10-second load test (scripts/load.sh) and the smoke benchmark (scripts/bench.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

command -v cargo >/dev/null || die "cargo is not installed: install Rust (https://rustup.rs) and run this again"

# PostgreSQL for the server tests (stopped by PID on exit).
trap stop_postgres EXIT
start_postgres


# ---------------------------------------------------------------------------------------------
# Build and test

log "building the workspace (server, plugin-api, example and fixture plugins)"
cargo build --workspace --all-targets --locked

log "building the panic=abort fixture (target/panic-abort)"
cargo build --locked -p fixture_panic_abort --config 'profile.dev.panic="abort"' --target-dir target/panic-abort

log "building the older-layout fixture (target/older-layout)"
cargo build --locked -p fixture_incompatible --features older-layout --target-dir target/older-layout

log "running the tests"
cd "$ROOT"
cargo test --workspace --locked

log "running the Windows test (hookgate.exe and .dll plugins under Wine; tests/windows/run.sh)"
bash "$ROOT/tests/windows/run.sh"

log "running the end-to-end suite (real OIDC provider, Apache mod_auth_openidc, Chromium, PostgreSQL)"
bash "$ROOT/tests/e2e/run.sh"

log "running the 10-second load test (RELIABILITY.md; the 60-second one is: bash scripts/load.sh)"
bash "$ROOT/scripts/load.sh" --duration 10

log "running the smoke benchmark (BENCHMARKS.md; the full one is: bash scripts/bench.sh)"
bash "$ROOT/scripts/bench.sh" --smoke
