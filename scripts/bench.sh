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
# The full run ends with LiteLLM side by side (`--litellm` runs only that part;
# HOOKGATE_BENCH_SKIP_LITELLM=1 leaves it out): LiteLLM's real proxy (tests/litellm/litellm.sh,
# on its Wasm engine shim), pinned like hookgate, against hookgate on the same routes, and the
# latency a front-door sign-in adds to a plain one.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

SMOKE=0
ONLY_LITELLM=0
DURATION=10
CONCURRENCY=(1 8 32 128)
if [ "${1:-}" = "--smoke" ]; then
    SMOKE=1
    DURATION=2
    CONCURRENCY=(8)
elif [ "${1:-}" = "--litellm" ]; then
    ONLY_LITELLM=1
fi

prepare_release_run bench wrk:wrk taskset:util-linux curl:curl
[ "$(nproc)" -ge 2 ] || die "the benchmark pins the server and the load generator to separate cores: needs 2"

MASTER_KEY=$(random_master_key bench)
write_seed_config "$WORK/config.yaml" "$BIN"
for script in returning_user new_user login bearer; do
    cat "bench/$script.lua" bench/report.lua >"$WORK/$script.lua"
done
cp bench/report.lua "$WORK/ceiling.lua"

now_ms() { date +%s%3N; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# start_server DATABASE_URL [CONFIG] → sets SERVER_PID, PORT, STARTUP_MS, and RETURNING_KEY (the
# returning user's session key, which also drives user_info)
start_server() {
    PORT=$(free_port)
    local started config=${2:-$WORK/config.yaml}
    started=$(now_ms)
    (
        export DATABASE_URL=$1 LITELLM_MASTER_KEY=$MASTER_KEY HOOKGATE_LOG=warn
        exec taskset -c 0 "$BIN/hookgate" --config "$config" --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1
    ) &
    SERVER_PID=$!
    for _ in $(seq 1 3000); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/liveliness" 2>/dev/null && break
        sleep 0.001
    done
    STARTUP_MS=$(( $(now_ms) - started ))
    curl -fsS -o /dev/null -X POST -H "authorization: Bearer $MASTER_KEY" -H 'content-type: application/json' \
        -d '{"team_id": "staff"}' "http://127.0.0.1:$PORT/team/new" || die "could not create the team"
    # The returning user exists before the measurement.
    local cookie
    cookie=$(curl -fsS -o /dev/null -D - -H 'x-forwarded-user: returning' \
        -H 'x-forwarded-email: returning@example.test' -H 'x-forwarded-groups: staff' \
        "http://127.0.0.1:$PORT/sso/key/generate" | sed -n 's/^set-cookie: token=\([^;]*\).*/\1/ip')
    RETURNING_KEY=$(python3 -c 'import base64, json, sys; p = sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["key"])' "$cookie") \
        || die "could not read the session key of the returning user"
    { echo "wrk.headers[\"authorization\"] = \"Bearer $RETURNING_KEY\""; cat bench/report.lua; } >"$WORK/user_info.lua"
}

# load_url NAME CONCURRENCY URL → prints "rps p50_us p99_us errors" (any server, any URL)
load_url() {
    local script=$1 connections=$2 url=$3
    BENCH_PREFIX="$script-$connections-$RANDOM" taskset -c 1 wrk -t 1 -c "$connections" -d "${DURATION}s" \
        --timeout 10s -s "$WORK/$script.lua" "$url" >"$WORK/wrk.out" 2>&1 || true
    local line
    line=$(grep '^RESULT' "$WORK/wrk.out" || true)
    [ -n "$line" ] || { cat "$WORK/wrk.out" >&2; die "wrk printed no result"; }
    echo "$line" | sed -E 's/.*rps=([0-9.]+) p50_us=([0-9]+) p99_us=([0-9]+) requests=[0-9]+ errors=([0-9]+).*/\1 \2 \3 \4/'
}

# load NAME CONCURRENCY PATH → the same, on the hookgate started last
load() {
    load_url "$1" "$2" "http://127.0.0.1:$PORT$3"
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

# LiteLLM beside hookgate (see the header). Sets LL_ROWS.
LL_ROWS=()
LITELLM_STARTED=0
run_litellm() {
    local rig=$ROOT/tests/litellm/litellm.sh
    bash "$rig" status >/dev/null 2>&1 && die "a LiteLLM started by tests/litellm/litellm.sh already runs; stop it first"
    bash "$rig" install
    local ui_password="bench$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    log "starting LiteLLM pinned to CPU 0 (on the Wasm engine shim)"
    LITELLM_MASTER_KEY=$MASTER_KEY LITELLM_CPUS=0 LITELLM_LOG=WARNING LITELLM_FRESH_DB=1 \
        LITELLM_UI_USERNAME=admin LITELLM_UI_PASSWORD=$ui_password bash "$rig" start >"$WORK/litellm-start.txt"
    LITELLM_STARTED=1
    eval "$(bash "$rig" env)"
    local mk=(-H "Authorization: Bearer $MASTER_KEY" -H 'Content-Type: application/json')
    curl -fsS -o /dev/null "${mk[@]}" -X POST "$LITELLM_URL/user/new" \
        -d '{"user_id": "u1", "user_email": "u1@example.com", "user_role": "internal_user", "auto_create_key": false}'
    local ll_key
    ll_key=$(curl -fsS "${mk[@]}" -X POST "$LITELLM_URL/key/generate" -d '{"user_id": "u1"}' \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')

    row() { # SERVER SCENARIO CONNECTIONS rps p50 p99 errors
        LL_ROWS+=("| $1 | $2 | $3 | ${4%.*} | $(awk "BEGIN {printf \"%.2f\", $5/1000}") | $(awk "BEGIN {printf \"%.2f\", $6/1000}") | $7 |")
        printf '%-20s %-16s c=%-3s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %s\n' \
            "$1" "$2" "$3" "$4" "$(awk "BEGIN {print $5/1000}")" "$(awk "BEGIN {print $6/1000}")" "$7" >&2
    }
    local c
    for c in 1 8; do
        row litellm ceiling "$c" $(load_url ceiling "$c" "$LITELLM_URL/health/liveliness")
        row litellm login "$c" $(BENCH_USER=admin BENCH_PASSWORD=$ui_password load_url login "$c" "$LITELLM_URL/login")
        row litellm user_info "$c" $(BENCH_KEY=$ll_key load_url bearer "$c" "$LITELLM_URL/user/info?user_id=u1")
    done

    # hookgate on SQLite, the same routes, then as LiteLLM's front door (the added latency).
    local plain_config=$WORK/config.yaml front_config=$WORK/front-door.yaml
    write_seed_config "$front_config" "$BIN" "litellm_proxy_url: $LITELLM_URL"
    for mode in plain front_door; do
        local config=$plain_config
        [ "$mode" = front_door ] && config=$front_config
        UI_USERNAME=admin UI_PASSWORD=$ui_password start_server "sqlite://$WORK/litellm-$mode.db" "$config"
        for c in 1 8; do
            row "hookgate-$mode" header_sign_in "$c" $(load returning_user "$c" /sso/key/generate)
            [ "$mode" = plain ] || continue
            row hookgate login "$c" $(BENCH_USER=admin BENCH_PASSWORD=$ui_password load login "$c" /login)
            row hookgate user_info "$c" $(load user_info "$c" /user/info)
        done
        stop_pid "$SERVER_PID"
        SERVER_PID=""
    done

    # The shim's cost: one trivial query through prisma-client-py and the Wasm engine, against
    # the same query on a plain PostgreSQL connection.
    cat >"$WORK/prisma_timing.py" <<'PY'
import asyncio, statistics, time
from prisma import Prisma

async def main():
    db = Prisma()
    await db.connect()
    samples = []
    for i in range(550):
        t = time.perf_counter()
        await db.query_raw("SELECT 1")
        if i >= 50:
            samples.append(time.perf_counter() - t)
    print(f"prisma (Wasm engine shim) SELECT 1: median {statistics.median(samples) * 1e3:.3f} ms")
    await db.disconnect()

asyncio.run(main())
PY
    LL_SHIM=$(taskset -c 0 bash "$rig" exec python "$WORK/prisma_timing.py" 2>/dev/null | tail -n 1 || true)
    local pg_bin
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    echo 'SELECT 1;' >"$WORK/q.sql"
    LL_RAW=$("$pg_bin/pgbench" -n -h 127.0.0.1 -p "$LITELLM_PG_PORT" -U postgres -d postgres -f "$WORK/q.sql" -c 1 -T 3 2>/dev/null \
        | grep 'latency average' || true)
    bash "$rig" stop >/dev/null
    LITELLM_STARTED=0
}

SUMMARY=()
if [ "$ONLY_LITELLM" = 0 ]; then
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

fi

if [ "$SMOKE" = 0 ] && [ "${HOOKGATE_BENCH_SKIP_LITELLM:-0}" != 1 ]; then
    trap 'stop_pid "$SERVER_PID"; [ "$LITELLM_STARTED" = 1 ] && bash "$ROOT/tests/litellm/litellm.sh" stop; stop_postgres; rm -rf "$WORK"' EXIT
    run_litellm
    echo
    echo "LiteLLM 1.108.7 (on the Wasm engine shim) and hookgate (SQLite), each pinned to CPU 0:"
    echo
    echo "| server | scenario | connections | req/s | p50 ms | p99 ms | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${LL_ROWS[@]}"
    echo
    echo "The shim's cost on one trivial query: ${LL_SHIM:-not measured}; plain PostgreSQL (pgbench, one connection): ${LL_RAW:-not measured}"
elif [ "$SMOKE" = 0 ]; then
    log "LiteLLM side by side: SKIPPED (HOOKGATE_BENCH_SKIP_LITELLM=1)"
fi
[ "$ONLY_LITELLM" = 1 ] && exit 0

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
