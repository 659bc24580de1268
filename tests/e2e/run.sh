#!/usr/bin/env bash
# hookgate's end-to-end suite, as an operator deploys it:
#   A. Chromium → Apache + mod_auth_openidc (against oidc-provider) → hookgate (header hook)
#   B. Chromium → hookgate as the OIDC relying party → oidc-provider → back
#   C. two hookgate replicas sharing PostgreSQL: a login begun on one finishes on the other
#   D. the front door: hookgate signs people into LiteLLM's real proxy (tests/litellm/litellm.sh)
#      on one public host where Apache routes /sso/ to hookgate and everything else to LiteLLM
#      (D9: the identity provider's groups decide LiteLLM teams, added, made and removed; D10: a
#      SCIM deactivation refuses the user's very next request to LiteLLM and to hookgate)
#      (set HOOKGATE_E2E_SKIP_LITELLM=1 to skip D; without it, no LiteLLM is a failure)
# It installs what is missing (Debian: apache2, libapache2-mod-auth-openidc, chromium, curl;
# npm: the pinned packages of package-lock.json), starts everything on free loopback ports,
# stops what it started by PID, and fails loudly when a component cannot be had.
#
# Needs: the built workspace (target/debug: hookgate and the example plugins) and a PostgreSQL
# admin URL in HOOKGATE_TEST_POSTGRES_URL (scripts/test.sh provides both).
# Screenshots go to $HOOKGATE_E2E_SCREENSHOTS (default target/e2e-screenshots).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
source "$ROOT/scripts/lib.sh"

[ -n "${HOOKGATE_TEST_POSTGRES_URL:-}" ] || die "HOOKGATE_TEST_POSTGRES_URL is not set: run scripts/test.sh"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
[ -x "$BIN/hookgate" ] || die "$BIN/hookgate is missing: run scripts/test.sh (it builds the workspace first)"
SHOTS=${HOOKGATE_E2E_SCREENSHOTS:-$ROOT/target/e2e-screenshots}
mkdir -p "$SHOTS"

# --- components ------------------------------------------------------------------------------
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v psql >/dev/null || missing+=(postgresql-client)
[ -x /usr/sbin/apache2 ] || missing+=(apache2)
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing+=(libapache2-mod-auth-openidc)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi
command -v node >/dev/null || die "node is not installed (Node.js 20 or later is needed for oidc-provider)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $node_major is too old: oidc-provider 9 needs 20 or later"
if [ ! -d "$HERE/node_modules/oidc-provider" ] || [ ! -d "$HERE/node_modules/playwright-core" ]; then
    log "installing oidc-provider and playwright-core (npm ci)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
fi

# --- processes -------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/hookgate-e2e.XXXXXX)
# The groups scenario D9 gives its user between sign-ins (provider.mjs reads it at each one).
E2E_GROUPS_FILE="$WORK/groups.json"
# Scenario D10's SCIM bearer token (hookgate G's general_settings.scim_token).
SCIM_TOKEN="e2e-scim-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
chmod 755 "$WORK"
PIDS=()
APACHE_PID_FILE="$WORK/apache.pid"
FD_APACHE_PID_FILE="$WORK/apache-front-door.pid"
LITELLM_SH="$ROOT/tests/litellm/litellm.sh"
LITELLM_STARTED=0
LITELLM_START_PID=""
cleanup() {
    local status=$?
    if [ -f "$APACHE_PID_FILE" ]; then stop_pid "$(cat "$APACHE_PID_FILE")"; fi
    if [ -f "$FD_APACHE_PID_FILE" ]; then stop_pid "$(cat "$FD_APACHE_PID_FILE")"; fi
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "$LITELLM_STARTED" = 1 ]; then
        stop_pid "$LITELLM_START_PID"
        # Only what this run's `start` recorded (scenario D6 may have stopped it already).
        bash "$LITELLM_SH" stop >"$WORK/litellm-stop.txt" 2>&1 || echo "warning: litellm.sh stop failed" >&2
    fi
    if [ "$status" != 0 ]; then
        echo "--- logs of the failed run ($WORK) ---" >&2
        for log_file in "$WORK"/*.log; do
            echo "=== $log_file" >&2
            tail -n 40 "$log_file" >&2 || true
        done
        if [ "$LITELLM_STARTED" = 1 ]; then
            echo "=== LiteLLM's proxy log (${LITELLM_RIG_DIR:-/tmp/hookgate-litellm-rig}/run/proxy.log)" >&2
            tail -n 40 "${LITELLM_RIG_DIR:-/tmp/hookgate-litellm-rig}/run/proxy.log" >&2 || true
        fi
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Ports are chosen up front and bound later (LiteLLM's come up while the others start): no two
# of this run's may be the same.
CHOSEN_PORTS=" "
# pick_ports NAME...: sets each variable to a free port not chosen before in this run.
pick_ports() {
    local name port
    for name in "$@"; do
        for _ in $(seq 1 20); do
            port=$(free_port)
            case "$CHOSEN_PORTS" in *" $port "*) port="" ;; esac
            [ -n "$port" ] && break
        done
        [ -n "$port" ] || die "no distinct free port found"
        CHOSEN_PORTS+="$port "
        printf -v "$name" %s "$port"
    done
}
pick_ports IDP_PORT PROXY_PORT A_PORT R1_PORT R2_PORT
MASTER_KEY=$(random_master_key e2e)
# Scenario D: the public host (Apache) in its two variants, the two front-door hookgates, LiteLLM.
#   FD_PORT       the public host, header-hook variant: mod_auth_openidc guards /sso/
#   FD_OIDC_PORT  the public host, OIDC variant: hookgate is the relying party itself
#   F_PORT        hookgate F (header hook, front door); G_PORT: hookgate G (OIDC, front door)
#   LITELLM_PORT  LiteLLM's proxy; LITELLM_PG_PORT: its private PostgreSQL
pick_ports FD_PORT FD_OIDC_PORT F_PORT G_PORT LITELLM_PORT LITELLM_PG_PORT

# --- LiteLLM (scenario D) --------------------------------------------------------------------
# Installed (idempotent; ~50 s cold, 0.2 s warm) and started now, in the background, because its
# start takes ~17 s: the rest of the stack comes up meanwhile. Its master key is the one hookgate
# uses (hookgate F and G read it from LITELLM_MASTER_KEY): hookgate calls LiteLLM's management API
# with it and signs the `token` cookie with it, as LiteLLM itself does.
FRONT_DOOR=1
if [ "${HOOKGATE_E2E_SKIP_LITELLM:-0}" = 1 ]; then
    FRONT_DOOR=0
    log "HOOKGATE_E2E_SKIP_LITELLM=1: scenario D (the front door against the real LiteLLM) is SKIPPED"
else
    if bash "$LITELLM_SH" status >/dev/null 2>&1; then
        die "a LiteLLM started by tests/litellm/litellm.sh already runs (LITELLM_RIG_DIR ${LITELLM_RIG_DIR:-/tmp/hookgate-litellm-rig}); stop it with 'bash tests/litellm/litellm.sh stop', or set HOOKGATE_E2E_SKIP_LITELLM=1"
    fi
    log "LiteLLM: install (tests/litellm/litellm.sh install)"
    bash "$LITELLM_SH" install >"$WORK/litellm-install.log" 2>&1 \
        || { tail -n 30 "$WORK/litellm-install.log" >&2; die "LiteLLM could not be installed (set HOOKGATE_E2E_SKIP_LITELLM=1 to skip scenario D)"; }
    log "LiteLLM on 127.0.0.1:$LITELLM_PORT (starting in the background)"
    LITELLM_STARTED=1
    (
        # The harness's own config (one mock model, mock-gpt) with hookgate's master key.
        unset LITELLM_CONFIG
        export LITELLM_MASTER_KEY="$MASTER_KEY" LITELLM_PORT LITELLM_PG_PORT LITELLM_FRESH_DB=1
        exec bash "$LITELLM_SH" start
    ) >"$WORK/litellm-start.log" 2>&1 &
    LITELLM_START_PID=$!
fi

# One database for every replica.
DB_NAME="hookgate_e2e_$$"
psql "$HOOKGATE_TEST_POSTGRES_URL" -qAtc "CREATE DATABASE $DB_NAME" >/dev/null || die "cannot create the e2e database"
DATABASE_URL="${HOOKGATE_TEST_POSTGRES_URL%/*}/$DB_NAME"

log "oidc-provider on 127.0.0.1:$IDP_PORT"
(
    cd "$HERE"
    export IDP_PORT PROXY_REDIRECT_URI="http://localhost:$PROXY_PORT/oauth2/callback,http://localhost:$FD_PORT/oauth2/callback"
    export HOOKGATE_REDIRECT_URIS="http://localhost:$R1_PORT/sso/callback,http://localhost:$R2_PORT/sso/callback,http://localhost:$FD_OIDC_PORT/sso/callback"
    export E2E_GROUPS_FILE
    exec node provider.mjs >"$WORK/idp.log" 2>&1
) &
PIDS+=($!)
wait_for_http "http://127.0.0.1:$IDP_PORT/.well-known/openid-configuration" 30 "oidc-provider"

# hookgate A: the header hook behind the proxy. R1, R2: OIDC relying parties.
write_seed_config "$WORK/header.yaml" "$BIN"
cat >"$WORK/oidc.yaml" <<YAML
general_settings:
  custom_sso: custom_sso.custom_sso_handler
  plugin_dirs: ["$BIN"]
YAML
start_hookgate() {
    local name=$1 port=$2 config=$3
    shift 3
    (
        export DATABASE_URL LITELLM_MASTER_KEY="$MASTER_KEY" HOOKGATE_LOG=info "$@"
        exec "$BIN/hookgate" --config "$config" --host 127.0.0.1 --port "$port" >"$WORK/$name.log" 2>&1
    ) &
    PIDS+=($!)
    wait_for_http "http://127.0.0.1:$port/health/readiness" 60 "hookgate $name"
}
# The replicas start one after the other only to keep the logs apart: starting together is safe
# (migrations take a PostgreSQL advisory lock; see management::replicas_starting_together…).
log "hookgate A (header hook) on 127.0.0.1:$A_PORT"
start_hookgate a "$A_PORT" "$WORK/header.yaml"
oidc_env=(GENERIC_CLIENT_ID=e2e-hookgate GENERIC_CLIENT_SECRET=e2e-hookgate-secret
          "GENERIC_ISSUER=http://127.0.0.1:$IDP_PORT" "GENERIC_SCOPE=openid email profile groups")
log "hookgate replicas R1, R2 (OIDC) on 127.0.0.1:$R1_PORT, :$R2_PORT"
# Each replica's public URL (PROXY_BASE_URL, required with OIDC) is the address the browser uses.
start_hookgate r1 "$R1_PORT" "$WORK/oidc.yaml" "${oidc_env[@]}" "PROXY_BASE_URL=http://localhost:$R1_PORT"
start_hookgate r2 "$R2_PORT" "$WORK/oidc.yaml" "${oidc_env[@]}" "PROXY_BASE_URL=http://localhost:$R2_PORT"

log "Apache with mod_auth_openidc on localhost:$PROXY_PORT"
MODULES=/usr/lib/apache2/modules
# Every spelling of a header name with each '-' written as '-' or '_' (X-Forwarded-User,
# X_Forwarded-User, X-Forwarded_User, X_Forwarded_User); case does not matter to Apache.
header_spellings() {
    local -a parts spellings next
    local part prefix
    IFS=- read -ra parts <<<"$1"
    spellings=("${parts[0]}")
    for part in "${parts[@]:1}"; do
        next=()
        for prefix in "${spellings[@]}"; do next+=("$prefix-$part" "${prefix}_$part"); done
        spellings=("${next[@]}")
    done
    printf '%s\n' "${spellings[@]}"
}
IDENTITY_HEADER_UNSETS=$(
    for header in X-Forwarded-User X-Forwarded-Email X-Forwarded-Preferred-Username X-Forwarded-Groups; do
        header_spellings "$header" | sed 's/^/RequestHeader unset /; s/$/ early/'
    done
)
# The identity headers Apache sets once the user is authenticated (both Apache processes).
IDENTITY_HEADER_SETS='RequestHeader set X-Forwarded-User "expr=%{reqenv:OIDC_CLAIM_sub}"
RequestHeader set X-Forwarded-Email "expr=%{reqenv:OIDC_CLAIM_email}"
RequestHeader set X-Forwarded-Preferred-Username "expr=%{reqenv:OIDC_CLAIM_preferred_username}"
RequestHeader set X-Forwarded-Groups "expr=%{reqenv:OIDC_CLAIM_groups}"'
# What both Apache processes (scenario A's proxy, scenario D's public host) load and run with.
APACHE_COMMON=$(cat <<APACHE
User www-data
Group www-data
LoadModule mpm_event_module $MODULES/mod_mpm_event.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule authz_user_module $MODULES/mod_authz_user.so
LoadModule authn_core_module $MODULES/mod_authn_core.so
LoadModule headers_module $MODULES/mod_headers.so
LoadModule proxy_module $MODULES/mod_proxy.so
LoadModule proxy_http_module $MODULES/mod_proxy_http.so
LoadModule auth_openidc_module $MODULES/mod_auth_openidc.so
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MinSpareThreads 8
MaxSpareThreads 32
MaxRequestWorkers 32
APACHE
)
# mod_auth_openidc as the OIDC client of the test provider, on the Apache host at port $1 (both
# Apache processes: scenario A's proxy, scenario D's public host).
oidc_client() {
    cat <<APACHE
OIDCProviderMetadataURL http://127.0.0.1:$IDP_PORT/.well-known/openid-configuration
OIDCClientID e2e-proxy
OIDCClientSecret e2e-proxy-secret
OIDCRedirectURI http://localhost:$1/oauth2/callback
OIDCCryptoPassphrase "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
OIDCScope "openid email profile groups"
OIDCPKCEMethod S256
OIDCRemoteUserClaim preferred_username
OIDCPassClaimsAs environment
APACHE
}
cat >"$WORK/apache.conf" <<APACHE
ServerRoot "$WORK"
ServerName localhost
Listen 127.0.0.1:$PROXY_PORT
PidFile "$APACHE_PID_FILE"
ErrorLog "$WORK/apache.log"
LogLevel warn auth_openidc:warn
$APACHE_COMMON

$(oidc_client "$PROXY_PORT")

# The identity headers are the proxy's alone (docs/plugin-authors.md, "What the OAuth proxy must
# do"). First, as soon as the request is read and before any module sees it, every copy the client
# sent goes: the names and each spelling with '_' for '-' (Apache forwards those to the backend).
# 'early' is allowed only here, at server level.
$IDENTITY_HEADER_UNSETS
<Location />
    AuthType openid-connect
    Require valid-user
    # Then, once the user is authenticated, Apache sets all four on every request (an absent
    # claim gives an empty header, which the hook reads as "no value").
$IDENTITY_HEADER_SETS
</Location>
ProxyPreserveHost On
ProxyPass /oauth2/callback !
ProxyPass / http://127.0.0.1:$A_PORT/
ProxyPassReverse / http://127.0.0.1:$A_PORT/
APACHE
/usr/sbin/apache2 -f "$WORK/apache.conf" -k start || die "Apache did not start (see $WORK/apache.log)"
for _ in $(seq 1 100); do [ -s "$APACHE_PID_FILE" ] && break; sleep 0.1; done
[ -s "$APACHE_PID_FILE" ] || die "Apache wrote no PID file"
# Any answer (a redirect to the IdP) means it is up.
for _ in $(seq 1 100); do
    curl -s -o /dev/null --max-time 2 "http://localhost:$PROXY_PORT/health/liveliness" && break
    sleep 0.1
done

if [ "$FRONT_DOOR" = 1 ]; then
    # --- D: the front door -----------------------------------------------------------------
    # The deployment an operator makes when hookgate is LiteLLM's sign-in front door: ONE public
    # host, here an Apache vhost, that path-routes
    #   /sso/  → hookgate (/sso/key/generate starts a sign-in, /sso/callback ends an OIDC one);
    #   /      → LiteLLM: its UI (/ui/), its API (/key/…, /chat/completions, …), its own logout.
    # hookgate's PROXY_BASE_URL is that public URL, so after a sign-in it sends the browser to
    # {public}/ui/?login=success, LiteLLM's own UI, with the `token` cookie (Path=/, readable by
    # the UI's JavaScript) holding a LiteLLM UI session key that hookgate minted through LiteLLM's
    # management API (general_settings.litellm_proxy_url + LiteLLM's master key). hookgate's own
    # admin UI and management API stay on hookgate's own port (its /ui/ would clash with
    # LiteLLM's); logging out through hookgate (which deletes the key in LiteLLM) is reached there
    # too, with the session key as Bearer.
    # Two variants run side by side, each its own vhost: F behind mod_auth_openidc (the header
    # hook, exactly as in scenario A), G as the OIDC relying party (as in scenario B). They share
    # one database, separate from A-C's.
    wait "$LITELLM_START_PID" || die "LiteLLM did not start (its log follows; set HOOKGATE_E2E_SKIP_LITELLM=1 to skip scenario D)"
    LITELLM_START_PID=""
    grep -E '^==> litellm: (proxy answered|PostgreSQL)' "$WORK/litellm-start.log" | sed 's/^==> /    /' >&2 || true
    LITELLM_URL="http://127.0.0.1:$LITELLM_PORT"
    FD_DB_NAME="hookgate_e2e_fd_$$"
    psql "$HOOKGATE_TEST_POSTGRES_URL" -qAtc "CREATE DATABASE $FD_DB_NAME" >/dev/null || die "cannot create the front-door database"
    FD_DATABASE_URL="${HOOKGATE_TEST_POSTGRES_URL%/*}/$FD_DB_NAME"
    write_seed_config "$WORK/front-door-header.yaml" "$BIN" "litellm_proxy_url: $LITELLM_URL"
    cat >"$WORK/front-door-oidc.yaml" <<YAML
general_settings:
  custom_sso: custom_sso.custom_sso_handler
  plugin_dirs: ["$BIN"]
  litellm_proxy_url: $LITELLM_URL
  # D9: the identity provider is authoritative for teams (LiteLLM's setting), and groups named
  # e2e-auto-… become teams
  litellm_jwtauth:
    sync_user_role_and_teams: true
  create_teams_from_groups:
    allowed_group_prefixes: [e2e-auto-]
  # D10: the identity provider deprovisions over SCIM
  scim_token: $SCIM_TOKEN
litellm_settings:
  default_team_params:
    max_budget: 7
YAML
    log "hookgate F (header hook, front door) on 127.0.0.1:$F_PORT; G (OIDC, front door) on 127.0.0.1:$G_PORT"
    start_hookgate f "$F_PORT" "$WORK/front-door-header.yaml" "DATABASE_URL=$FD_DATABASE_URL" "PROXY_BASE_URL=http://localhost:$FD_PORT"
    start_hookgate g "$G_PORT" "$WORK/front-door-oidc.yaml" "DATABASE_URL=$FD_DATABASE_URL" "${oidc_env[@]}" "PROXY_BASE_URL=http://localhost:$FD_OIDC_PORT"

    log "Apache, the public host: localhost:$FD_PORT (header hook), localhost:$FD_OIDC_PORT (OIDC)"
    cat >"$WORK/apache-front-door.conf" <<APACHE
ServerRoot "$WORK"
ServerName localhost
Listen 127.0.0.1:$FD_PORT
Listen 127.0.0.1:$FD_OIDC_PORT
PidFile "$FD_APACHE_PID_FILE"
ErrorLog "$WORK/apache-front-door.log"
LogLevel warn auth_openidc:warn
$APACHE_COMMON

# As in scenario A: every identity header a client sent is dropped before any module sees the
# request (all spellings; 'early' is allowed only at server level). This covers both hosts and
# every path, LiteLLM's included.
$IDENTITY_HEADER_UNSETS
ProxyPreserveHost On

# The public host, header-hook variant: mod_auth_openidc guards hookgate's /sso/ and sets the
# identity headers there; everything else is LiteLLM's, which authenticates with its own keys.
<VirtualHost 127.0.0.1:$FD_PORT>
    ServerName localhost:$FD_PORT
$(oidc_client "$FD_PORT")
    <Location /oauth2/callback>
        AuthType openid-connect
        Require valid-user
    </Location>
    <Location /sso/>
        AuthType openid-connect
        Require valid-user
$IDENTITY_HEADER_SETS
    </Location>
    ProxyPass /oauth2/callback !
    ProxyPass /sso/ http://127.0.0.1:$F_PORT/sso/
    ProxyPassReverse /sso/ http://127.0.0.1:$F_PORT/sso/
    ProxyPass / http://127.0.0.1:$LITELLM_PORT/
    ProxyPassReverse / http://127.0.0.1:$LITELLM_PORT/
</VirtualHost>

# The public host, OIDC variant: hookgate is the relying party (its PROXY_BASE_URL is this host,
# so the IdP sends the browser back to /sso/callback here); no authentication in Apache.
<VirtualHost 127.0.0.1:$FD_OIDC_PORT>
    ServerName localhost:$FD_OIDC_PORT
    ProxyPass /sso/ http://127.0.0.1:$G_PORT/sso/
    ProxyPassReverse /sso/ http://127.0.0.1:$G_PORT/sso/
    ProxyPass / http://127.0.0.1:$LITELLM_PORT/
    ProxyPassReverse / http://127.0.0.1:$LITELLM_PORT/
</VirtualHost>
APACHE
    /usr/sbin/apache2 -f "$WORK/apache-front-door.conf" -k start || die "the front-door Apache did not start (see $WORK/apache-front-door.log)"
    for _ in $(seq 1 100); do [ -s "$FD_APACHE_PID_FILE" ] && break; sleep 0.1; done
    [ -s "$FD_APACHE_PID_FILE" ] || die "the front-door Apache wrote no PID file"
    wait_for_http "http://localhost:$FD_OIDC_PORT/health/liveliness" 10 "LiteLLM through the front-door Apache"
    export FD_URL="http://localhost:$FD_PORT" FD_OIDC_URL="http://localhost:$FD_OIDC_PORT"
    export F_URL="http://127.0.0.1:$F_PORT" G_URL="http://127.0.0.1:$G_PORT"
    export LITELLM_URL LITELLM_SH FD_DATABASE_URL
fi

log "running the browser scenarios"
export IDP_URL="http://127.0.0.1:$IDP_PORT" PROXY_URL="http://localhost:$PROXY_PORT"
export A_URL="http://127.0.0.1:$A_PORT" R1_URL="http://localhost:$R1_PORT" R2_URL="http://localhost:$R2_PORT"
export MASTER_KEY DATABASE_URL SHOTS E2E_GROUPS_FILE SCIM_TOKEN
(cd "$HERE" && node scenarios.mjs)
log "screenshots in $SHOTS"
