#!/usr/bin/env bash
# Runs every hookgate test, from a fresh Debian machine (as root) or a developer's checkout.
#
# 1. Static checks, before anything long: `cargo fmt --all --check`, `cargo clippy --workspace
#    --all-targets --locked -- -D warnings`, and `cargo deny check` against deny.toml (cargo-deny
#    is installed from crates.io when missing or of another version). Its advisories check needs
#    the RustSec database, a git repository on github.com: where that cannot be reached, it is
#    skipped and the run says so (at the check and again at the end); where it can, a failure
#    fails the run. Licenses, bans and sources are always checked. The domain core
#    (hookgate-core) must have no storage, HTTP or runtime crate in its dependency graph.
# 2. Installs what the tests need and is missing (Debian's postgresql).
# 3. Starts a throw-away PostgreSQL on a free loopback port (stopped by PID on exit), so the
#    integration suite runs against SQLite and PostgreSQL.
# 4. Builds the whole workspace (the server, the example plugins, the fixture plugins), then the
#    two fixtures that need builds of their own (one with panic = "abort", one against an older
#    plugin-api layout).
# 5. Runs `cargo test` over the workspace.
# 6. Runs the SCIM conformance suite (scripts/scim-conformance.sh: PyPI's scim2-tester, pinned,
#    in a venv under target/, against the built binary; exceptions listed in docs/scim.md).
# 7. Runs the Windows test (tests/windows/run.sh): hookgate.exe and the example plugins as .dll
#    files, cross-built for x86_64-pc-windows-gnu into target/windows and run under Wine
#    (HOOKGATE_TEST_SKIP_WINDOWS=1 skips it and says so).
# 8. Runs the end-to-end suite (tests/e2e/run.sh), which installs and starts its own components
#    (Apache, Chromium, oidc-provider, and LiteLLM's real proxy through tests/litellm/litellm.sh).
# 9. Runs the 10-second load test (scripts/load.sh) and the smoke benchmark (scripts/bench.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

command -v cargo >/dev/null || die "cargo is not installed: install Rust (https://rustup.rs) and run this again"

# ---------------------------------------------------------------------------------------------
# Static checks: formatting, lints, the dependency policy (deny.toml). Each fails the run.

# cargo-deny's version, installed from crates.io (github.com, where its prebuilt binaries and the
# advisory database live, may be unreachable). The install builds it: ~5 minutes on two cores.
CARGO_DENY_VERSION=0.20.2
# The RustSec advisory database that `cargo deny check advisories` fetches (cargo-deny's default).
ADVISORY_DB_URL=https://github.com/RustSec/advisory-db

log "checking formatting (cargo fmt --all --check)"
cargo fmt --version >/dev/null 2>&1 \
    || die "rustfmt is not installed: run \`rustup component add rustfmt\` and run this again"
cargo fmt --all --check \
    || die "the code is not formatted as rustfmt.toml asks (diff above): run \`cargo fmt --all\` and commit the result"

log "linting (cargo clippy --workspace --all-targets --locked -- -D warnings)"
cargo clippy --version >/dev/null 2>&1 \
    || die "clippy is not installed: run \`rustup component add clippy\` and run this again"
cargo clippy --workspace --all-targets --locked -- -D warnings \
    || die "clippy found problems (above): fix them; every warning fails the run"

# The domain core (server/core) stays pure: no storage, HTTP or runtime crate anywhere in its
# dependency graph (ARCHITECTURE.md's first invariant).
log "checking that hookgate-core depends on no storage, HTTP or runtime crate (cargo tree)"
core_deps=$(cargo tree --locked -p hookgate-core -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
forbidden=$(printf '%s\n' "$core_deps" | grep -xE 'sea-orm.*|sqlx.*|rusqlite|libsqlite3-sys|tokio.*|axum.*|hyper.*|http|tower.*|reqwest|ureq' || true)
[ -z "$forbidden" ] \
    || die "hookgate-core (server/core) must not depend on storage, HTTP or runtime crates, but its graph has: $(echo $forbidden)"

# Storage (server/storage) sits below the pipeline: it never sees the server, HTTP or identity
# providers (ARCHITECTURE.md's first invariant).
log "checking that hookgate-storage depends on neither the server nor an HTTP crate (cargo tree)"
storage_deps=$(cargo tree --locked -p hookgate-storage -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
forbidden=$(printf '%s\n' "$storage_deps" | grep -xE 'hookgate|axum.*|hyper.*|http|tower.*|reqwest|ureq|openidconnect|askama' || true)
[ -z "$forbidden" ] \
    || die "hookgate-storage (server/storage) must not depend on the server or HTTP crates, but its graph has: $(echo $forbidden)"

if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    log "installing cargo-deny $CARGO_DENY_VERSION from crates.io (cargo install, a few minutes)"
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked \
        || die "could not install cargo-deny $CARGO_DENY_VERSION from crates.io"
fi

log "checking the dependency graph against deny.toml (cargo deny check licenses bans sources)"
cargo deny --locked check licenses bans sources \
    || die "cargo deny found dependencies that break deny.toml's policy (above): licenses, duplicate versions or sources"

ADVISORIES_SKIPPED=""
command -v git >/dev/null || die "git is not installed: cargo-deny fetches the advisory database with it (apt-get install git)"
if probe=$(GIT_TERMINAL_PROMPT=0 timeout 30 git ls-remote --exit-code "$ADVISORY_DB_URL" HEAD 2>&1); then
    log "checking for security advisories (cargo deny check advisories, database $ADVISORY_DB_URL)"
    cargo deny --locked check advisories \
        || die "cargo deny check advisories failed (above): a dependency has an advisory (update it, or ignore the advisory in deny.toml with the reason), or the database could not be fetched"
else
    ADVISORIES_SKIPPED="SKIPPED: cargo deny check advisories. The RustSec advisory database ($ADVISORY_DB_URL) cannot be reached from this machine (git ls-remote: $(printf '%s' "$probe" | tail -n 1)), so no dependency was checked for known vulnerabilities in this run; licenses, bans and sources were. Run \`cargo deny check advisories\` where github.com is reachable."
    printf '\n!!! %s\n' "$ADVISORIES_SKIPPED" >&2
fi

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

log "running the SCIM conformance suite (scim2-tester from PyPI, pinned; scripts/scim-conformance.sh)"
bash "$ROOT/scripts/scim-conformance.sh"

log "running the Windows test (hookgate.exe and .dll plugins under Wine; tests/windows/run.sh)"
bash "$ROOT/tests/windows/run.sh"

log "running the end-to-end suite (real OIDC provider, Apache mod_auth_openidc, Chromium, PostgreSQL)"
bash "$ROOT/tests/e2e/run.sh"

log "running the 10-second load test (RELIABILITY.md; the 60-second one is: bash scripts/load.sh)"
bash "$ROOT/scripts/load.sh" --duration 10

log "running the smoke benchmark (BENCHMARKS.md; the full one is: bash scripts/bench.sh)"
bash "$ROOT/scripts/bench.sh" --smoke

if [ -n "$ADVISORIES_SKIPPED" ]; then
    printf '\n!!! %s\n' "$ADVISORIES_SKIPPED" >&2
fi
