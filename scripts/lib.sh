# Shell helpers shared by scripts/test.sh and tests/e2e/run.sh. Source it; do not run it.

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root to run: $*"
    fi
}

apt_updated=0
# Installs Debian packages, running `apt-get update` once first.
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        as_root apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "could not install $*"
}

# A TCP port on 127.0.0.1 that nothing listens on, below the kernel's ephemeral range (where
# the outgoing connections of everything the tests start take their local ports: a port picked
# there could be taken between this check and the bind, as a LiteLLM proxy once found).
free_port() {
    local port low
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "${low:-0}" -gt 21000 ] 2>/dev/null || low=60000
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % (low - 20000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# Waits until `curl` gets a 2xx/3xx from a URL, up to a number of seconds.
wait_for_http() {
    local url=$1 seconds=${2:-30} what=${3:-$1}
    for _ in $(seq 1 $((seconds * 10))); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$what did not answer at $url within ${seconds}s"
}

# Stops a process by PID: SIGTERM, then SIGKILL after a grace period. Tolerates zombies (PID 1
# here may not reap orphans).
stop_pid() {
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

# ---------------------------------------------------------------------------------------------
# A throw-away PostgreSQL: start_postgres installs it if needed (Debian's postgresql), starts it on
# a free loopback port in a temporary folder and exports HOOKGATE_TEST_POSTGRES_URL; stop_postgres
# stops it by PID and removes the folder. Callers set `trap stop_postgres EXIT`.

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
    PG_BIN=$bin
    PG_RUN_AS=("${run_as[@]}")
    for attempt in 1 2 3; do
        port=$(free_port)
        PG_PORT=$port
        "${run_as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
            -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
            && break
        [ "$attempt" = 3 ] && { cat "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
    done
    PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    export HOOKGATE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (pid $PG_PID)"
}


# Stops the PostgreSQL started by start_postgres (fast shutdown: clients are disconnected) but
# keeps its data, for outage tests.
pause_postgres() {
    "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null || die "could not stop PostgreSQL"
}

# Starts it again on the same port and data.
resume_postgres() {
    "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
        || die "could not restart PostgreSQL"
    PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")
}

# For the load scripts: installs the Debian packages that provide the commands named ("wrk:wrk",
# "taskset:util-linux", …) when missing, builds the release server and example plugins into
# $BIN, and makes a scratch folder $WORK that is removed, with the server ($SERVER_PID) and
# PostgreSQL stopped, on exit. $1 names the scratch folder.
prepare_release_run() {
    local name=$1
    shift
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || { log "installing ${pair#*:}"; apt_install "${pair#*:}"; }
    done
    log "building release"
    cargo build --release --locked -p hookgate -p custom_sso -p custom_sso_handler
    BIN=$ROOT/target/release
    WORK=$(mktemp -d "/tmp/hookgate-$name.XXXXXX")
    SERVER_PID=""
    trap 'stop_pid "$SERVER_PID"; stop_postgres; rm -rf "$WORK"' EXIT
}

# A random master key for a throw-away server.
random_master_key() {
    echo "sk-$1-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
}

# Writes a config with both example hooks loaded from plugin folder $2, trusting the loopback
# proxy, plus any further `general_settings` lines given after it.
write_seed_config() {
    local file=$1 plugins=$2
    shift 2
    {
        echo "general_settings:"
        echo "  custom_sso: custom_sso.custom_sso_handler"
        echo "  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler"
        echo "  plugin_dirs: [\"$plugins\"]"
        echo "  trusted_proxy_ranges: [\"127.0.0.1/32\"]"
        for line in "$@"; do echo "  $line"; done
    } >"$file"
}
