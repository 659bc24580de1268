#!/usr/bin/env bash
# TEST HARNESS, NOT PRODUCTION CODE. Runs LiteLLM's real proxy (litellm[proxy]==1.108.7 from PyPI)
# on a private PostgreSQL on loopback, so that hookgate's tests can use it as the LiteLLM that
# hookgate fronts ("front door": hookgate signs users in and creates their LiteLLM user and key
# through LiteLLM's management API). Nothing here ships with hookgate.
#
# Prisma's native query engine cannot be downloaded here, so prisma-client-py talks to engine.mjs
# (beside this file): a Node shim serving the query-engine HTTP API over npm's
# @prisma/query-engine-wasm, built from the engine commit prisma-client-py 0.15.0 expects.
# NOTES.md beside this file records the LiteLLM API behaviour measured with this harness.
#
#   litellm.sh install   idempotent: Debian postgresql, nodejs/npm, python3-venv, curl if missing; a
#                        venv with litellm[proxy] and prisma (pip, constraints.txt); the shim's npm
#                        packages (npm ci --ignore-scripts); `prisma generate` offline; a private
#                        cluster with litellm-proxy-extras' migrations applied in one psql session
#   litellm.sh start     the private PostgreSQL on a free loopback port (unless LITELLM_DATABASE_URL
#                        is set), then the proxy on 127.0.0.1:$LITELLM_PORT; waits for
#                        /health/liveliness; writes URL, keys and PIDs to the state file and prints them
#   litellm.sh stop      stops only the PIDs that start recorded (and what is left in the proxy's session)
#   litellm.sh status    what is recorded, what is alive, what /health/liveliness answers (exit 1: down)
#   litellm.sh env       prints the state as `export` lines: `. <(bash tests/litellm/litellm.sh env)`
#   litellm.sh check     smoke test of the running proxy, one PASS/FAIL line per step: liveliness,
#                        /user/new, /key/generate, /chat/completions with that key, POST /login
#   litellm.sh migrate   applies the migrations to $LITELLM_DATABASE_URL (for `start` on your own database)
#   litellm.sh reset     replaces the private cluster with a fresh, migrated one (while stopped)
#   litellm.sh exec CMD  runs CMD with the venv, the Prisma settings and the state's variables
#                        (e.g. `litellm.sh exec python my_prisma_test.py`)
#
# Settings (environment). All are prefixed LITELLM_ so that hookgate's own variables (DATABASE_URL,
# UI_USERNAME, UI_PASSWORD, which hookgate reads too) never leak into the harness or back out of it:
#   LITELLM_RIG_DIR       where everything is installed and run. Default /tmp/hookgate-litellm-rig:
#                         outside the checkout so that every clone on the machine (a developer's, CI's
#                         fresh clone) reuses one ~1 GB install, survives `cargo clean`, and is
#                         reachable by the `postgres` user that runs the cluster when we are root
#   LITELLM_PORT          proxy port on 127.0.0.1 (default: a free one)
#   LITELLM_MASTER_KEY    default: the config's literal general_settings.master_key, else a random sk- key
#   LITELLM_CONFIG        a config.yaml of your own instead of the generated one (model mock-gpt); the
#                         proxy gets DATABASE_URL and LITELLM_MASTER_KEY in its environment for
#                         `os.environ/...` references
#   LITELLM_UI_USERNAME   default admin;   LITELLM_UI_PASSWORD  default: random (LiteLLM's /login)
#   LITELLM_FRESH_DB      1: start on an empty LiteLLM database (a copy of the migrated template,
#                         well under a second); default 0: the database persists across stop/start
#   LITELLM_DATABASE_URL  use this PostgreSQL (schema applied with `migrate`) instead of the private one
#   LITELLM_PG_PORT       the private PostgreSQL's port (default: a free one)
#   LITELLM_CPUS          a taskset CPU list for the proxy and its engine shim (default: unpinned)
#   LITELLM_START_TIMEOUT seconds to wait for /health/liveliness (default 240)
#   LITELLM_LOG           LiteLLM's own log level (e.g. WARNING silences uvicorn's access log)
#   PYTHON                the interpreter for the venv (default python3)
# Every other variable of the caller's environment reaches the proxy as it is (e.g.
# LITELLM_UI_SESSION_DURATION). One running proxy per LITELLM_RIG_DIR.
# Needs root or sudo only for apt-get; as root, PostgreSQL runs as the `postgres` user.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The repo's shell helpers (log, die, as_root, apt_install, free_port, stop_pid) when this file is
# in its checkout; the fallbacks below keep the script working when copied elsewhere.
if [ -f "$HERE/../../scripts/lib.sh" ]; then
    # shellcheck source=../../scripts/lib.sh
    source "$HERE/../../scripts/lib.sh"
fi
declare -F log >/dev/null || log() { printf '\n==> %s\n' "$*" >&2; }
declare -F die >/dev/null || die() { printf 'error: %s\n' "$*" >&2; exit 1; }
declare -F as_root >/dev/null || as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi
}
declare -F apt_install >/dev/null || apt_install() {
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "could not install $*"
}
declare -F free_port >/dev/null || free_port() { # below the ephemeral range (scripts/lib.sh)
    local port low
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "${low:-0}" -gt 21000 ] 2>/dev/null || low=60000
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % (low - 20000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    done
    die "no free port found"
}
declare -F stop_pid >/dev/null || stop_pid() { # SIGTERM, SIGKILL after 10 s; a zombie counts as gone
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        ps -o stat= -p "$pid" 2>/dev/null | grep -q Z && return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

DIR="${LITELLM_RIG_DIR:-/tmp/hookgate-litellm-rig}"
LITELLM_VERSION=1.108.7      # newest litellm whose [proxy] pins all resolve on the registries here
PRISMA_PY_VERSION=0.15.0     # expects Prisma CLI 5.17.0 and engine 393aa359 (package.json pins both)
PYTHON="${PYTHON:-python3}"
VENV="$DIR/venv"
SHIM="$DIR/shim"             # engine.mjs + node_modules (also the Prisma CLI, see PRISMA_BINARY_CACHE_DIR)
PG="$DIR/pg"                 # private cluster: data/, sockets, logs, migrations.sql
RUN="$DIR/run"               # config.yaml, proxy.log, state.env
STATE="$RUN/state.env"
DB_NAME=litellm              # the database the proxy uses in the private cluster
DB_TEMPLATE=litellm_template # migrated and never connected to: LITELLM_FRESH_DB copies it

say() { log "litellm: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# A process counts as gone once it is a zombie too (PID 1 in a sandbox may never reap it).
alive() { local st; [ -n "${1:-}" ] && st=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${st#Z}" = "$st" ]; }
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
# As root, the cluster belongs to `postgres` (initdb refuses root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# pkg_dir NAME: where a package of the venv lives (found without importing it).
pkg_dir() { "$VENV/bin/python" -c 'import importlib.util, os, sys; print(os.path.dirname(importlib.util.find_spec(sys.argv[1]).origin))' "$1"; }

# The environment prisma-client-py needs to use the shim and the pinned CLI, and never download.
prisma_env() {
    export PATH="$VENV/bin:$PATH"
    export PRISMA_QUERY_ENGINE_BINARY="$SHIM/query-engine" PRISMA_QUERY_ENGINE_LIBRARY="$SHIM/query-engine"
    export PRISMA_SCHEMA_ENGINE_BINARY="$SHIM/query-engine" PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING=1
    export PRISMA_BINARY_CACHE_DIR="$SHIM" PRISMA_HOME_DIR="$DIR/prisma-home"
    export PRISMA_NODEENV_CACHE_DIR="$DIR/prisma-home/nodeenv" PRISMA_HIDE_UPDATE_MESSAGE=1 CHECKPOINT_DISABLE=1
}

# ------------------------------------------------------------------------------------- install
install_system() {
    local missing=()
    [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || missing+=(postgresql)
    command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
    command -v curl >/dev/null || missing+=(curl)
    command -v flock >/dev/null || missing+=(util-linux)
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    [ ${#missing[@]} = 0 ] || { say "installing ${missing[*]} (apt)"; apt_install "${missing[@]}"; }
}

install_venv() {
    local constraints=() stamp
    [ -f "$HERE/constraints.txt" ] && constraints=(-c "$HERE/constraints.txt")
    stamp="litellm[proxy]==$LITELLM_VERSION prisma==$PRISMA_PY_VERSION $({ cat "$HERE/constraints.txt" 2>/dev/null || true; } | sha256sum | cut -c1-16)"
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.rig-stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
    local t; t=$(now)
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    rm -f "$VENV/.rig-stamp" "$VENV/.rig-generated"   # pip rewrites the prisma package: generate again
    "$VENV/bin/pip" install -q "${constraints[@]}" "litellm[proxy]==$LITELLM_VERSION" "prisma==$PRISMA_PY_VERSION" \
        || die "pip install of litellm[proxy]==$LITELLM_VERSION failed"
    echo "$stamp" >"$VENV/.rig-stamp"
    say "venv (litellm[proxy]==$LITELLM_VERSION, prisma==$PRISMA_PY_VERSION): $(since "$t")s"
}

install_shim() {
    mkdir -p "$SHIM"
    cp "$HERE/engine.mjs" "$HERE/query-engine" "$SHIM/"
    chmod +x "$SHIM/query-engine"
    if cmp -s "$HERE/package-lock.json" "$SHIM/package-lock.json" && [ -d "$SHIM/node_modules/@prisma/query-engine-wasm" ]; then return; fi
    local t; t=$(now)
    cp "$HERE/package.json" "$HERE/package-lock.json" "$SHIM/"
    # --ignore-scripts: @prisma/engines' postinstall would try to download native engines.
    (cd "$SHIM" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci of the engine shim failed"
    say "npm ci (engine shim + Prisma CLI 5.17.0): $(since "$t")s"
}

prisma_generate() {
    local schema sum
    schema=$(pkg_dir litellm)/proxy/schema.prisma
    [ -f "$schema" ] || die "no schema.prisma in the litellm package ($schema)"
    sum=$(sha256sum "$schema" | cut -c1-16)
    if [ "$(cat "$VENV/.rig-generated" 2>/dev/null)" = "$sum" ]; then return; fi
    local t; t=$(now)
    mkdir -p "$DIR/gen" && cp "$schema" "$DIR/gen/schema.prisma"
    # Offline: the env points every engine at the shim and the CLI at $SHIM/node_modules/prisma.
    (prisma_env && cd "$DIR/gen" && prisma generate --schema schema.prisma >"$DIR/gen/generate.log" 2>&1) \
        || { tail -n 20 "$DIR/gen/generate.log" >&2; die "prisma generate failed (log: $DIR/gen/generate.log)"; }
    "$VENV/bin/python" -c 'from prisma import Prisma' || die "the generated client does not import"
    echo "$sum" >"$VENV/.rig-generated"
    say "prisma generate: $(since "$t")s"
}

# migrations_sql FILE: every litellm-proxy-extras migration in folder-name byte order (as Prisma
# applies them), each file as written plus ';', then _prisma_migrations rows (sha256 checksums),
# so that one `psql -f` applies all. Not one transaction: some use CREATE INDEX CONCURRENTLY.
migrations_sql() {
    local out=$1 dir name
    dir=$(pkg_dir litellm_proxy_extras)/migrations
    [ -d "$dir" ] || die "no migrations folder in litellm-proxy-extras"
    {
        ls "$dir" | LC_ALL=C sort | while IFS= read -r name; do   # names may contain spaces
            [ -f "$dir/$name/migration.sql" ] || continue
            cat "$dir/$name/migration.sql"; printf '\n;\n'
        done
        cat <<'SQL'
CREATE TABLE IF NOT EXISTS "_prisma_migrations" ("id" VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ, "migration_name" VARCHAR(255) NOT NULL,
  "logs" TEXT, "rolled_back_at" TIMESTAMPTZ, "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0);
SQL
        ls "$dir" | LC_ALL=C sort | while IFS= read -r name; do
            [ -f "$dir/$name/migration.sql" ] || continue
            printf "INSERT INTO \"_prisma_migrations\" (id, checksum, finished_at, migration_name, applied_steps_count) VALUES (gen_random_uuid()::text, '%s', now(), '%s', 1);\n" \
                "$(sha256sum "$dir/$name/migration.sql" | cut -d' ' -f1)" "${name//\'/\'\'}"
        done
    } >"$out"
    grep -c '^INSERT INTO "_prisma_migrations"' "$out"
}

# pg_up PORT: start the private cluster on 127.0.0.1:PORT (sockets in $PG/sock); sets RIG_PG_PID.
# fsync=off: a throw-away test database (as scripts/lib.sh's start_postgres runs its own).
pg_up() {
    as_pg "$(pg_bin)/pg_ctl" -D "$PG/data" -l "$PG/postgres.log" -w -t 60 \
        -o "-p $1 -k $PG/sock -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null \
        || { tail -n 20 "$PG/postgres.log" >&2; die "PostgreSQL did not start"; }
    RIG_PG_PID=$(head -n 1 "$PG/data/postmaster.pid")
}
pg_psql() { # pg_psql PORT ARGS...: psql as the cluster's superuser over its socket
    local port=$1; shift
    "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG/sock" -p "$port" -U postgres "$@"
}
pg_down() { # fast shutdown by the postmaster's PID, only if it is our cluster
    local pid=$1
    alive "$pid" || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$PG/data" || { say "PID $pid is not our PostgreSQL; left alone"; return 0; }
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

install_cluster() {
    local extras stamp; extras=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm-proxy-extras"))')
    stamp="$extras $DB_TEMPLATE"
    if [ "$(cat "$PG/.rig-migrated" 2>/dev/null)" = "$stamp" ]; then return; fi
    local t port n; t=$(now)
    rm -rf "$PG"; mkdir -p "$PG/sock"
    [ "$(id -u)" = 0 ] && chown -R postgres "$PG"
    as_pg test -w "$PG" || die "the postgres user cannot write $PG (choose a LITELLM_RIG_DIR it can reach)"
    as_pg "$(pg_bin)/initdb" -D "$PG/data" -U postgres -A trust -E UTF8 --no-sync >"$PG/initdb.log" 2>&1 \
        || { cat "$PG/initdb.log" >&2; die "initdb failed"; }
    n=$(migrations_sql "$PG/migrations.sql")
    port=$(free_port); pg_up "$port"
    # The migrations go into the template; the proxy's database is a copy of it (FRESH_DB copies again).
    if pg_psql "$port" -d postgres -c "CREATE DATABASE $DB_TEMPLATE" \
        && pg_psql "$port" -d "$DB_TEMPLATE" -f "$PG/migrations.sql" >"$PG/migrate.log" 2>&1 \
        && pg_psql "$port" -d postgres -c "CREATE DATABASE $DB_NAME TEMPLATE $DB_TEMPLATE"; then
        pg_down "$RIG_PG_PID"; echo "$stamp" >"$PG/.rig-migrated"
        say "private cluster + $n migrations (litellm-proxy-extras $extras) in one psql session: $(since "$t")s"
    else
        pg_down "$RIG_PG_PID"; tail -n 20 "$PG/migrate.log" >&2; die "migrations failed (log: $PG/migrate.log)"
    fi
}

cmd_install() {
    local t0; t0=$(now)
    install_system
    mkdir -p "$DIR" "$RUN"
    # Two installs into one folder at once (two clones' test runs) would trample each other.
    exec 9>"$DIR/.install.lock"
    flock 9
    install_venv
    install_shim
    prisma_generate
    install_cluster
    flock -u 9
    say "install done in $(since "$t0")s ($DIR)"
}

cmd_reset() { # a fresh, migrated private cluster (everything LiteLLM stored is gone)
    load_state
    alive "$LITELLM_PG_PID" && die "running: '$0 stop' first"
    [ -x "$VENV/bin/python" ] || die "run '$0 install' first"
    rm -f "$PG/.rig-migrated"
    install_cluster
}

cmd_migrate() {
    [ -n "${LITELLM_DATABASE_URL:-}" ] || die "set LITELLM_DATABASE_URL to the database to migrate"
    [ -x "$VENV/bin/python" ] || die "run '$0 install' first"
    mkdir -p "$RUN"
    local n; n=$(migrations_sql "$RUN/migrations.sql")
    "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -f "$RUN/migrations.sql" "$LITELLM_DATABASE_URL" >"$RUN/migrate.log" 2>&1 \
        || { tail -n 20 "$RUN/migrate.log" >&2; die "migrations failed (log: $RUN/migrate.log)"; }
    say "$n migrations applied to LITELLM_DATABASE_URL"
}

# --------------------------------------------------------------------------------- start/stop
# The state file's variables (all LITELLM_*); unset ones are empty.
load_state() {
    LITELLM_PID="" LITELLM_SHIM_PID="" LITELLM_PG_PID="" LITELLM_URL=""
    # shellcheck disable=SC1090
    [ -f "$STATE" ] && . "$STATE"
    return 0
}

# The master key a config of the caller's names: a literal general_settings.master_key, or the
# variable that `os.environ/NAME` points at; empty when it names none.
config_master_key() {
    "$VENV/bin/python" - "$1" <<'PY'
import os, sys, yaml
with open(sys.argv[1]) as f:
    key = ((yaml.safe_load(f) or {}).get("general_settings") or {}).get("master_key") or ""
if isinstance(key, str) and key.startswith("os.environ/"):
    key = os.environ.get(key[len("os.environ/"):], "")
print(key)
PY
}

cmd_start() {
    load_state
    if alive "$LITELLM_PID"; then say "already running (PID $LITELLM_PID): $LITELLM_URL"; return 0; fi
    alive "$LITELLM_PG_PID" && die "a PostgreSQL from an earlier start still runs (PID $LITELLM_PG_PID): '$0 stop' first"
    [ -f "$VENV/.rig-generated" ] || die "run '$0 install' first"
    [ -n "${LITELLM_DATABASE_URL:-}" ] || [ -f "$PG/.rig-migrated" ] || die "run '$0 install' first"
    local port=${LITELLM_PORT:-$(free_port)}
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "127.0.0.1:$port is in use: set LITELLM_PORT"
    mkdir -p "$RUN"
    local config="${LITELLM_CONFIG:-$RUN/config.yaml}"
    [ -f "$config" ] || [ -z "${LITELLM_CONFIG:-}" ] || die "LITELLM_CONFIG=$config does not exist"
    config=$(readlink -f "$config")
    if [ -z "${LITELLM_CONFIG:-}" ]; then
        cat >"$config" <<'YAML'
# Written by tests/litellm/litellm.sh start: one mock model, no network calls.
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_key: mock-key
      mock_response: "hello from mock-gpt"
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  database_url: os.environ/DATABASE_URL
YAML
    fi
    # The key the proxy will really use: ours if given, else the one the config names, else random
    # (exported to the proxy, which the generated config reads through os.environ).
    local master="${LITELLM_MASTER_KEY:-}" named
    named=$(config_master_key "$config") || die "cannot read $config"
    if [ -n "$master" ] && [ -n "$named" ] && [ "$master" != "$named" ]; then
        die "LITELLM_MASTER_KEY differs from the master_key $config names (LiteLLM would use the config's)"
    fi
    [ -n "$master" ] || master=$named
    [ -n "$master" ] || master="sk-$(random_hex 24)"
    local ui_user="${LITELLM_UI_USERNAME:-admin}" ui_pass="${LITELLM_UI_PASSWORD:-pw-$(random_hex 12)}"

    local t0 pg_pid="" pg_port="" db_url="${LITELLM_DATABASE_URL:-}"; t0=$(now)
    if [ -z "$db_url" ]; then
        pg_port=${LITELLM_PG_PORT:-$(free_port)}
        while [ "$pg_port" = "$port" ] && [ -z "${LITELLM_PG_PORT:-}" ]; do pg_port=$(free_port); done
        pg_up "$pg_port"; pg_pid=$RIG_PG_PID
        db_url="postgresql://postgres@127.0.0.1:$pg_port/$DB_NAME"
        # Recorded at once, so that stop works even if what follows fails.
        write_state "$port" "" "" "$pg_pid" "$pg_port" "$db_url" "$master" "$ui_user" "$ui_pass" "$config"
        if [ "${LITELLM_FRESH_DB:-0}" = 1 ]; then
            pg_psql "$pg_port" -d postgres -c "DROP DATABASE IF EXISTS $DB_NAME" -c "CREATE DATABASE $DB_NAME TEMPLATE $DB_TEMPLATE" \
                || die "could not copy $DB_TEMPLATE to a fresh $DB_NAME"
        fi
        say "PostgreSQL on 127.0.0.1:$pg_port (PID $pg_pid)$([ "${LITELLM_FRESH_DB:-0}" = 1 ] && echo ', fresh database'): $(since "$t0")s"
    fi
    local pin=(); [ -n "${LITELLM_CPUS:-}" ] && pin=(taskset -c "$LITELLM_CPUS")
    printf '\n===== litellm.sh start %s: 127.0.0.1:%s, config %s\n' "$(date -u +%FT%TZ)" "$port" "$config" >>"$RUN/proxy.log"
    local t1; t1=$(now)
    (
        prisma_env
        export DATABASE_URL="$db_url" LITELLM_MASTER_KEY="$master" UI_USERNAME="$ui_user" UI_PASSWORD="$ui_pass"
        # The schema comes from install (migrations); the cost map is the bundled one: no network.
        export DISABLE_SCHEMA_UPDATE=true LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False
        cd "$RUN"
        # setsid: its own session (its PID is the session id, which stop uses to find leftovers),
        # so the proxy outlives this shell; exec keeps the PID.
        exec setsid "${pin[@]}" "$VENV/bin/litellm" --config "$config" --host 127.0.0.1 --port "$port" \
            </dev/null >>"$RUN/proxy.log" 2>&1
    ) &
    local pid=$! code=000
    write_state "$port" "$pid" "" "$pg_pid" "$pg_port" "$db_url" "$master" "$ui_user" "$ui_pass" "$config"
    for _ in $(seq 1 $((${LITELLM_START_TIMEOUT:-240} * 4))); do
        alive "$pid" || { tail -n 30 "$RUN/proxy.log" >&2; die "the proxy exited (log: $RUN/proxy.log); '$0 stop' cleans up"; }
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/health/liveliness" || true)
        [ "$code" = 200 ] && break
        sleep 0.25
    done
    [ "$code" = 200 ] || { tail -n 30 "$RUN/proxy.log" >&2; die "no 200 from /health/liveliness (log: $RUN/proxy.log); '$0 stop' cleans up"; }
    local proxy_s; proxy_s=$(since "$t1")
    # The engine shim is the proxy's child (the wrapper execs node, so it is node's PID).
    local shim_pid=""
    for _ in $(seq 1 40); do
        shim_pid=$(ps -o pid=,args= --ppid "$pid" | awk '/engine\.mjs/ {print $1; exit}')
        [ -n "$shim_pid" ] && break; sleep 0.25
    done
    write_state "$port" "$pid" "$shim_pid" "$pg_pid" "$pg_port" "$db_url" "$master" "$ui_user" "$ui_pass" "$config"
    local ready; ready=$(curl -s -m 5 -H "Authorization: Bearer $master" "http://127.0.0.1:$port/health/readiness" | tr -d '\n' | grep -o '"db": *"[^"]*"' || true)
    say "proxy answered /health/liveliness after ${proxy_s}s (total start $(since "$t0")s); readiness ${ready:-?}"
    say "proxy PID $pid, engine shim PID ${shim_pid:-?}, log $RUN/proxy.log, state $STATE"
    cmd_env
}

write_state() { # PORT PID SHIM_PID PG_PID PG_PORT DB_URL MASTER UI_USER UI_PASS CONFIG; mode 0600: it holds the master key
    ( umask 077
      { echo "# tests/litellm/litellm.sh state: what start started (stop kills only these PIDs) and how to reach it."
        printf '%s=%q\n' LITELLM_URL "http://127.0.0.1:$1" LITELLM_PORT "$1" LITELLM_MASTER_KEY "$7" \
            LITELLM_UI_USERNAME "$8" LITELLM_UI_PASSWORD "$9" LITELLM_DATABASE_URL "$6" \
            LITELLM_PID "$2" LITELLM_SHIM_PID "$3" LITELLM_PG_PID "$4" LITELLM_PG_PORT "$5" \
            LITELLM_CONFIG_FILE "${10}" LITELLM_LOG_FILE "$RUN/proxy.log" LITELLM_STATE_FILE "$STATE"
      } >"$STATE.tmp" && mv "$STATE.tmp" "$STATE" )
}

# stop_recorded PID PATTERN: stops a recorded PID (lib.sh's stop_pid) only while its command line
# still matches, so that a PID reused by another process is left alone.
stop_recorded() {
    local pid=$1 pattern=$2
    alive "$pid" || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || { say "PID $pid no longer runs $pattern; left alone"; return 0; }
    stop_pid "$pid"
}

cmd_stop() {
    load_state
    [ -f "$STATE" ] || { say "nothing recorded in $STATE"; return 0; }
    stop_recorded "$LITELLM_PID" "$VENV/bin/litellm"
    stop_recorded "$LITELLM_SHIM_PID" engine.mjs
    # Anything else still in the session start created (its id is the proxy's PID): none is
    # expected, but a child the proxy left behind would otherwise outlive it.
    if [ -n "$LITELLM_PID" ]; then
        local left
        for left in $(ps -o pid=,stat= -s "$LITELLM_PID" 2>/dev/null | awk '$2 !~ /^Z/ {print $1}'); do
            say "stopping PID $left, left in the proxy's session"; stop_pid "$left"
        done
    fi
    [ -n "$LITELLM_PG_PID" ] && pg_down "$LITELLM_PG_PID"
    rm -f "$STATE"
    say "stopped (proxy ${LITELLM_PID:-none}, shim ${LITELLM_SHIM_PID:-none}, PostgreSQL ${LITELLM_PG_PID:-external})"
}

cmd_status() {
    load_state
    [ -f "$STATE" ] || { echo "not started ($STATE absent)"; return 1; }
    local p
    for p in LITELLM_PID LITELLM_SHIM_PID LITELLM_PG_PID; do
        [ -n "${!p}" ] && echo "$p=${!p} $(alive "${!p}" && echo running || echo gone)"
    done
    echo "LITELLM_URL=$LITELLM_URL liveliness=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$LITELLM_URL/health/liveliness" || true)"
    alive "$LITELLM_PID"
}

# Runs a command with the rig's venv and Prisma settings, plus the state (DATABASE_URL, keys) if started.
cmd_exec() {
    [ $# -gt 0 ] || die "usage: $0 exec COMMAND [ARGS...]"
    load_state
    prisma_env
    if [ -f "$STATE" ]; then
        export LITELLM_URL LITELLM_MASTER_KEY LITELLM_UI_USERNAME LITELLM_UI_PASSWORD LITELLM_DATABASE_URL
        export DATABASE_URL="$LITELLM_DATABASE_URL"   # what prisma-client-py reads
    fi
    exec "$@"
}

cmd_env() { [ -f "$STATE" ] || die "not started ($STATE absent)"; grep -v '^#' "$STATE" | sed 's/^/export /'; }

# ------------------------------------------------------------------------------------- check
cmd_check() {
    load_state
    alive "$LITELLM_PID" || die "not running: '$0 start' first"
    local pass=0 fail=0 out code user key tmp py=("$VENV/bin/python")
    tmp=$(mktemp -d)
    ok() { echo "PASS $*"; pass=$((pass + 1)); }
    ko() { echo "FAIL $*"; fail=$((fail + 1)); }
    local url=$LITELLM_URL auth=(-H "Authorization: Bearer $LITELLM_MASTER_KEY" -H 'Content-Type: application/json')

    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health/liveliness")
    [ "$code" = 200 ] && ok "GET /health/liveliness → 200" || ko "GET /health/liveliness → $code"

    user="rig-check-$(random_hex 4)"
    code=$(curl -s -o "$tmp/user" -w '%{http_code}' "${auth[@]}" -X POST "$url/user/new" \
        -d "{\"user_id\": \"$user\", \"user_email\": \"$user@example.com\", \"user_role\": \"internal_user\", \"auto_create_key\": false}")
    [ "$code" = 200 ] && ok "POST /user/new ($user) → 200" || ko "POST /user/new → $code $(head -c 300 "$tmp/user")"

    code=$(curl -s -o "$tmp/key" -w '%{http_code}' "${auth[@]}" -X POST "$url/key/generate" \
        -d "{\"user_id\": \"$user\", \"models\": [\"mock-gpt\"]}")
    key=$("${py[@]}" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("key",""))' "$tmp/key" 2>/dev/null || true)
    [ "$code" = 200 ] && [ "${key#sk-}" != "$key" ] && ok "POST /key/generate → 200, key sk-…${key: -4}" || ko "POST /key/generate → $code $(head -c 300 "$tmp/key")"

    code=$(curl -s -o "$tmp/chat" -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        -X POST "$url/chat/completions" -d '{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}')
    out=$("${py[@]}" -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["message"]["content"])' "$tmp/chat" 2>/dev/null || true)
    [ "$code" = 200 ] && [ -n "$out" ] && ok "POST /chat/completions (mock-gpt, user key) → 200: \"$out\"" || ko "POST /chat/completions → $code $(head -c 300 "$tmp/chat")"

    code=$(curl -s -o /dev/null -D "$tmp/login" -w '%{http_code}' -X POST "$url/login" \
        --data-urlencode "username=$LITELLM_UI_USERNAME" --data-urlencode "password=$LITELLM_UI_PASSWORD")
    local cookie claims
    cookie=$(grep -i '^set-cookie: token=' "$tmp/login" | head -n 1 | sed -E 's/^[^=]*: token=([^;]*).*/\1/' | tr -d '\r')
    claims=$("${py[@]}" -c '
import base64, json, sys
p = sys.argv[1].split(".")[1]; p += "=" * (-len(p) % 4)
c = json.loads(base64.urlsafe_b64decode(p)); print(c.get("user_id"), c.get("user_role"), c.get("login_method"))' "$cookie" 2>/dev/null || true)
    case "$code" in
        30[0-9]) [ -n "$claims" ] && ok "POST /login (LITELLM_UI_USERNAME/PASSWORD) → $code + token cookie ($claims)" || ko "POST /login → $code without a token cookie" ;;
        *) ko "POST /login → $code" ;;
    esac
    rm -rf "$tmp"
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    check) cmd_check ;;
    migrate) cmd_migrate ;;
    reset) cmd_reset ;;
    exec) shift; cmd_exec "$@" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
