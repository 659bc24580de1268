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
# 5. Runs the end-to-end suite (tests/e2e/run.sh), which installs and starts its own components.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

command -v cargo >/dev/null || die "cargo is not installed: install Rust (https://rustup.rs) and run this again"

# ---------------------------------------------------------------------------------------------
# PostgreSQL

PG_DIR=""
PG_PID=""
stop_postgres() {
    if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
        kill -INT "$PG_PID" 2>/dev/null || true   # fast shutdown
        for _ in $(seq 1 100); do
            kill -0 "$PG_PID" 2>/dev/null || break
            # A stopped postmaster may linger as a zombie where PID 1 does not reap.
            ps -o stat= -p "$PG_PID" 2>/dev/null | grep -q Z && break
            sleep 0.1
        done
    fi
    if [ -n "$PG_DIR" ]; then rm -rf "$PG_DIR"; fi
}
trap stop_postgres EXIT

start_postgres() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        log "installing PostgreSQL (Debian's postgresql)"
        apt_install postgresql
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    local run_as=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "the postgres user is missing (reinstall the postgresql package)"
        run_as=(runuser -u postgres --)
    fi
    PG_DIR=$(mktemp -d /tmp/hookgate-pg.XXXXXX)
    chmod 755 "$PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
    "${run_as[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    local port
    for attempt in 1 2 3; do
        port=$(free_port)
        "${run_as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
            -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
            && break
        [ "$attempt" = 3 ] && { cat "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
    done
    PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    export HOOKGATE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (pid $PG_PID)"
}

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

log "running the end-to-end suite (real OIDC provider, Apache mod_auth_openidc, Chromium, PostgreSQL)"
bash "$ROOT/tests/e2e/run.sh"
