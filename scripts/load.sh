#!/usr/bin/env bash
# The load test: sign-ins at concurrency 64 over 10,000 distinct users, on SQLite and on
# PostgreSQL, then checks that nothing was lost or leaked:
#   - zero errors (every response a 303);
#   - exact row counts: users = distinct users signed in, sessions and "allowed" events = the
#     303s the clients received (sign-ins stop 2 s before wrk does, so none is left in flight);
#   - RSS at the end within 20% of RSS after the warm-up;
#   - no file-descriptor growth.
#
#   bash scripts/load.sh                  # 60 s per backend (RELIABILITY.md's figures)
#   bash scripts/load.sh --duration 10    # the short version the test command runs
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

DURATION=60
# Long enough for SQLite's page caches and the allocator to reach their working size.
WARMUP=15
if [ "${1:-}" = "--duration" ]; then DURATION=$2; fi

prepare_release_run load wrk:wrk sqlite3:sqlite3 curl:curl

MASTER_KEY=$(random_master_key load)
write_seed_config "$WORK/config.yaml" "$BIN" "hook_concurrency: 128"
cp bench/load_users.lua "$WORK/load.lua"

PASSED=0
FAILED=0
verdict() {
    if [ "$1" = ok ]; then PASSED=$((PASSED + 1)); echo "ok      $2"; else FAILED=$((FAILED + 1)); echo "FAILED  $2"; fi
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# wrk_run SECONDS CONNECTIONS → "signed_in unavailable other socket_errors"
wrk_run() {
    SIGN_IN_SECONDS=$1 wrk -t 1 -c "$2" -d "$(($1 + 2))s" --timeout 20s -s "$WORK/load.lua" \
        "http://127.0.0.1:$PORT/sso/key/generate" >"$WORK/wrk.out" 2>&1 || true
    local line
    line=$(grep '^LOAD' "$WORK/wrk.out" || true)
    [ -n "$line" ] || { cat "$WORK/wrk.out" >&2; die "wrk printed no result"; }
    echo "$line" | sed -E 's/LOAD signed_in=([0-9]+) unavailable=([0-9]+) other=([0-9]+) socket_errors=([0-9]+)/\1 \2 \3 \4/'
}

# start_server DATABASE_URL LOG_NAME → sets PORT and SERVER_PID, returns once healthy
start_server() {
    PORT=$(free_port)
    (
        export DATABASE_URL=$1 LITELLM_MASTER_KEY=$MASTER_KEY HOOKGATE_LOG=warn
        exec "$BIN/hookgate" --config "$WORK/config.yaml" --host 127.0.0.1 --port "$PORT" >"$WORK/$2.log" 2>&1
    ) &
    SERVER_PID=$!
    wait_for_http "http://127.0.0.1:$PORT/health/readiness" 30 "hookgate"
}

run_backend() {
    local backend=$1 url=$2 count_sql
    start_server "$url" "$backend"

    log "$backend: warm-up ${WARMUP}s, then ${DURATION}s at concurrency 64 over 10,000 users"
    local warm_requests warm_503 warm_other warm_socket requests l_503 l_other l_socket
    read -r warm_requests warm_503 warm_other warm_socket < <(wrk_run "$WARMUP" 64)
    local warm_errors=$((warm_503 + warm_other + warm_socket))
    sleep 1
    local rss_warm fds_warm
    rss_warm=$(rss_kb "$SERVER_PID")
    fds_warm=$(fds "$SERVER_PID")
    read -r requests l_503 l_other l_socket < <(wrk_run "$DURATION" 64)
    local errors=$((l_503 + l_other + l_socket))
    local rps=$((requests / DURATION))
    sleep 1
    local rss_end fds_end
    rss_end=$(rss_kb "$SERVER_PID")
    fds_end=$(fds "$SERVER_PID")

    local total=$((warm_requests + requests))
    local distinct=$(( (warm_requests > requests ? warm_requests : requests) ))
    [ "$distinct" -gt 10000 ] && distinct=10000
    case $backend in
        sqlite) count_sql() { sqlite3 "$WORK/load.db" "$1"; } ;;
        postgres) count_sql() { psql "$url" -qAtc "$1"; } ;;
    esac
    local users sessions events
    users=$(count_sql "SELECT count(*) FROM users")
    sessions=$(count_sql "SELECT count(*) FROM sessions")
    events=$(count_sql "SELECT count(*) FROM sign_in_events WHERE outcome = 'allowed'")
    local others
    others=$(count_sql "SELECT count(*) FROM sign_in_events WHERE outcome <> 'allowed'")

    echo "$backend: $requests sign-ins in ${DURATION}s (${rps}/s) after $warm_requests in the warm-up; RSS $((rss_warm / 1024)) MB after warm-up, $((rss_end / 1024)) MB at the end; fds $fds_warm then $fds_end"
    [ "$warm_errors" = 0 ] && [ "$errors" = 0 ] && [ "$others" = 0 ] \
        && verdict ok "$backend: zero errors over $total sign-ins" \
        || verdict failed "$backend: errors: warm-up $warm_errors, load $errors, refused/failed events $others"
    [ "$users" = "$distinct" ] && [ "$sessions" = "$total" ] && [ "$events" = "$total" ] \
        && verdict ok "$backend: exact rows: $users users, $sessions sessions, $events events" \
        || verdict failed "$backend: rows: users $users (expected $distinct), sessions $sessions and events $events (expected $total)"
    [ $((rss_end * 100)) -le $((rss_warm * 120)) ] \
        && verdict ok "$backend: RSS within 20% ($((rss_warm / 1024)) → $((rss_end / 1024)) MB)" \
        || verdict failed "$backend: RSS grew from $rss_warm kB to $rss_end kB"
    [ "$fds_end" -le "$fds_warm" ] \
        && verdict ok "$backend: no file-descriptor growth ($fds_warm → $fds_end)" \
        || verdict failed "$backend: file descriptors grew from $fds_warm to $fds_end"
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}

# PostgreSQL stopped in the middle of a sign-in load: refused requests get 503, readiness says
# so, hookgate recovers without a restart, and the rows match what the clients saw.
outage() {
    local url=$1
    start_server "$url" outage
    psql "$url" -qAtc "TRUNCATE sessions, sign_in_events, team_members, users CASCADE" >/dev/null
    log "postgres outage: PostgreSQL stops 2 s into a 9 s load and comes back 3 s later"
    (wrk_run 9 16 >"$WORK/outage.result") &
    local wrk_pid=$!
    sleep 2
    pause_postgres
    sleep 1
    local ready_down
    ready_down=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PORT/health/readiness")
    sleep 2
    resume_postgres
    wait "$wrk_pid" || true
    sleep 1
    local ready_up ok unavailable other
    ready_up=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PORT/health/readiness")
    local socket
    read -r ok unavailable other socket <"$WORK/outage.result"
    other=$((other + socket))
    local sessions events after
    sessions=$(psql "$url" -qAtc "SELECT count(*) FROM sessions")
    events=$(psql "$url" -qAtc "SELECT count(*) FROM sign_in_events WHERE outcome = 'allowed'")
    after=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-forwarded-user: after-outage' "http://127.0.0.1:$PORT/sso/key/generate")
    echo "postgres outage: $ok signed in, $unavailable got 503, $other other; readiness $ready_down while down, $ready_up after"
    [ "$unavailable" -gt 0 ] && [ "$other" = 0 ] \
        && verdict ok "postgres outage: sign-ins during the outage got 503 ($unavailable), none anything else" \
        || verdict failed "postgres outage: 503s $unavailable, other statuses $other"
    [ "$ready_down" = 503 ] && [ "$ready_up" = 200 ] \
        && verdict ok "postgres outage: readiness 503 while down, 200 after" \
        || verdict failed "postgres outage: readiness $ready_down while down, $ready_up after"
    [ "$after" = 303 ] && [ "$ok" -gt 0 ] \
        && verdict ok "postgres outage: recovered without a restart" \
        || verdict failed "postgres outage: sign-in after the outage answered $after"
    [ "$sessions" = "$ok" ] && [ "$events" = "$ok" ] \
        && verdict ok "postgres outage: no partial rows ($sessions sessions and events for $ok sign-ins)" \
        || verdict failed "postgres outage: $sessions sessions and $events events for $ok sign-ins"
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}

run_backend sqlite "sqlite://$WORK/load.db"
start_postgres
psql "$HOOKGATE_TEST_POSTGRES_URL" -qAtc "CREATE DATABASE hookgate_load" >/dev/null
run_backend postgres "${HOOKGATE_TEST_POSTGRES_URL%/*}/hookgate_load"
outage "${HOOKGATE_TEST_POSTGRES_URL%/*}/hookgate_load"

echo "load: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
