#!/usr/bin/env bash
# Sign-in throughput and latency, measured side by side in one run (see BENCHMARKS.md).
#
#   bash scripts/bench.sh            # the full run: 10 s per cell, concurrency 1, 8, 32, 128
#   bash scripts/bench.sh --smoke    # a short run for CI: loose ratio checks, no absolute times
#
# Builds release, starts hookgate on SQLite (then on PostgreSQL) with the example plugins pinned
# to CPU 0, and drives it with wrk pinned to CPU 1 over loopback:
#   ceiling    GET /health/liveliness (the same binary, no hook, no database)
#   returning  header sign-in of an existing user (hooks + lookup + session + event + JWT + 303)
#   new        header sign-in of a new user on every request
#   user_info  GET /user/info with the returning user's session key (the session check + reads)
# plus startup time to healthy, RSS idle and under load, and the plugin per-call bench.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

SMOKE=0
DURATION=10
CONCURRENCY=(1 8 32 128)
if [ "${1:-}" = "--smoke" ]; then
    SMOKE=1
    DURATION=2
    CONCURRENCY=(8)
fi

prepare_release_run bench wrk:wrk taskset:util-linux curl:curl
[ "$(nproc)" -ge 2 ] || die "the benchmark pins the server and the load generator to separate cores: needs 2"

MASTER_KEY=$(random_master_key bench)
write_seed_config "$WORK/config.yaml" "$BIN"
for script in returning_user new_user; do
    cat "bench/$script.lua" bench/report.lua >"$WORK/$script.lua"
done
cp bench/report.lua "$WORK/ceiling.lua"

now_ms() { date +%s%3N; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# start_server DATABASE_URL → sets SERVER_PID, PORT, STARTUP_MS
start_server() {
    PORT=$(free_port)
    local started
    started=$(now_ms)
    (
        export DATABASE_URL=$1 LITELLM_MASTER_KEY=$MASTER_KEY HOOKGATE_LOG=warn
        exec taskset -c 0 "$BIN/hookgate" --config "$WORK/config.yaml" --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1
    ) &
    SERVER_PID=$!
    for _ in $(seq 1 3000); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/liveliness" 2>/dev/null && break
        sleep 0.001
    done
    STARTUP_MS=$(( $(now_ms) - started ))
    curl -fsS -o /dev/null -X POST -H "authorization: Bearer $MASTER_KEY" -H 'content-type: application/json' \
        -d '{"team_id": "staff"}' "http://127.0.0.1:$PORT/team/new" || die "could not create the team"
    # The returning user exists before the measurement; its session key drives user_info.
    local cookie key
    cookie=$(curl -fsS -o /dev/null -D - -H 'x-forwarded-user: returning' \
        -H 'x-forwarded-email: returning@example.test' -H 'x-forwarded-groups: staff' \
        "http://127.0.0.1:$PORT/sso/key/generate" | sed -n 's/^set-cookie: token=\([^;]*\).*/\1/ip')
    key=$(python3 -c 'import base64, json, sys; p = sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["key"])' "$cookie") \
        || die "could not read the session key of the returning user"
    { echo "wrk.headers[\"authorization\"] = \"Bearer $key\""; cat bench/report.lua; } >"$WORK/user_info.lua"
}

# load NAME CONCURRENCY PATH → prints "rps p50_us p99_us errors"
load() {
    local script=$1 connections=$2 path=$3
    BENCH_PREFIX="$script-$connections-$RANDOM" taskset -c 1 wrk -t 1 -c "$connections" -d "${DURATION}s" \
        --timeout 10s -s "$WORK/$script.lua" "http://127.0.0.1:$PORT$path" >"$WORK/wrk.out" 2>&1 || true
    local line
    line=$(grep '^RESULT' "$WORK/wrk.out" || true)
    [ -n "$line" ] || { cat "$WORK/wrk.out" >&2; die "wrk printed no result"; }
    echo "$line" | sed -E 's/.*rps=([0-9.]+) p50_us=([0-9]+) p99_us=([0-9]+) requests=[0-9]+ errors=([0-9]+).*/\1 \2 \3 \4/'
}

ROWS=()
declare -A RPS
run_backend() {
    local backend=$1 url=$2
    start_server "$url"
    local idle_rss
    idle_rss=$(rss_kb "$SERVER_PID")
    log "$backend: healthy after ${STARTUP_MS} ms, RSS idle $((idle_rss / 1024)) MB"
    for connections in "${CONCURRENCY[@]}"; do
        for scenario in ceiling returning_user new_user user_info; do
            [ "$scenario" = ceiling ] && [ "$backend" != sqlite ] && continue
            local path=/sso/key/generate
            [ "$scenario" = ceiling ] && path=/health/liveliness
            [ "$scenario" = user_info ] && path=/user/info
            read -r rps p50 p99 errors < <(load "$scenario" "$connections" "$path")
            RPS[$backend-$scenario-$connections]=$rps
            ROWS+=("| $backend | $scenario | $connections | ${rps%.*} | $(awk "BEGIN {printf \"%.2f\", $p50/1000}") | $(awk "BEGIN {printf \"%.2f\", $p99/1000}") | $errors |")
            printf '%-8s %-15s c=%-4s %9.0f req/s  p50 %6.2f ms  p99 %7.2f ms  errors %s\n' \
                "$backend" "$scenario" "$connections" "$rps" "$(awk "BEGIN {print $p50/1000}")" "$(awk "BEGIN {print $p99/1000}")" "$errors" >&2
        done
    done
    local load_rss
    load_rss=$(hwm_kb "$SERVER_PID")
    SUMMARY+=("| $backend | ${STARTUP_MS} ms | $((idle_rss / 1024)) MB | $((load_rss / 1024)) MB |")
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}

SUMMARY=()
run_backend sqlite "sqlite://$WORK/bench.db"
if [ "$SMOKE" = 0 ]; then
    start_postgres
    run_backend postgres "$HOOKGATE_TEST_POSTGRES_URL"
fi

echo
echo "| backend | scenario | connections | req/s | p50 ms | p99 ms | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| backend | startup to healthy | RSS idle | RSS peak under load |"
echo "|---|---:|---:|---:|"
printf '%s\n' "${SUMMARY[@]}"
echo
echo "Ratios to the ceiling route at the same concurrency (SQLite):"
for connections in "${CONCURRENCY[@]}"; do
    ceiling=${RPS[sqlite-ceiling-$connections]}
    for scenario in returning_user new_user user_info; do
        echo "  c=$connections $scenario: $(awk "BEGIN {printf \"%.1f%%\", 100 * ${RPS[sqlite-$scenario-$connections]} / $ceiling}")"
    done
done

if [ "$SMOKE" = 1 ]; then
    # Loose (a 2-core VM is noisy): sign-ins must stay a real fraction of the trivial route
    # (about 2% in BENCHMARKS.md; under 0.5% means something broke), and be error-free.
    for row in "${ROWS[@]}"; do
        errors=$(echo "$row" | awk -F'|' '{gsub(/ /, "", $8); print $8}')
        [ "$errors" = 0 ] || die "the smoke benchmark saw errors: $row"
    done
    ratio=$(awk "BEGIN {print (${RPS[sqlite-returning_user-8]} / ${RPS[sqlite-ceiling-8]} >= 0.005) ? 1 : 0}")
    [ "$ratio" = 1 ] || die "returning-user sign-ins fell below 0.5% of the ceiling route"
    log "smoke benchmark: ratios within bounds"
else
    log "per-call hook cost (cargo bench -p hookgate --bench hooks)"
    cargo bench --locked -p hookgate --bench hooks 2>/dev/null | tail -n 8
fi
