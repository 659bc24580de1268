#!/usr/bin/env bash
# hookgate's end-to-end suite, as an operator deploys it:
#   A. Chromium → Apache + mod_auth_openidc (against oidc-provider) → hookgate (header hook)
#   B. Chromium → hookgate as the OIDC relying party → oidc-provider → back
#   C. two hookgate replicas sharing PostgreSQL: a login begun on one finishes on the other
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
chmod 755 "$WORK"
PIDS=()
APACHE_PID_FILE="$WORK/apache.pid"
cleanup() {
    local status=$?
    if [ -f "$APACHE_PID_FILE" ]; then stop_pid "$(cat "$APACHE_PID_FILE")"; fi
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "$status" != 0 ]; then
        echo "--- logs of the failed run ($WORK) ---" >&2
        for log_file in "$WORK"/*.log; do
            echo "=== $log_file" >&2
            tail -n 40 "$log_file" >&2 || true
        done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

IDP_PORT=$(free_port)
PROXY_PORT=$(free_port)
A_PORT=$(free_port)
R1_PORT=$(free_port)
R2_PORT=$(free_port)
MASTER_KEY=$(random_master_key e2e)

# One database for every replica.
DB_NAME="hookgate_e2e_$$"
psql "$HOOKGATE_TEST_POSTGRES_URL" -qAtc "CREATE DATABASE $DB_NAME" >/dev/null || die "cannot create the e2e database"
DATABASE_URL="${HOOKGATE_TEST_POSTGRES_URL%/*}/$DB_NAME"

log "oidc-provider on 127.0.0.1:$IDP_PORT"
(
    cd "$HERE"
    export IDP_PORT PROXY_REDIRECT_URI="http://localhost:$PROXY_PORT/oauth2/callback"
    export HOOKGATE_REDIRECT_URIS="http://localhost:$R1_PORT/sso/callback,http://localhost:$R2_PORT/sso/callback"
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
cat >"$WORK/apache.conf" <<APACHE
ServerRoot "$WORK"
ServerName localhost
Listen 127.0.0.1:$PROXY_PORT
PidFile "$APACHE_PID_FILE"
ErrorLog "$WORK/apache.log"
LogLevel warn auth_openidc:warn
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

OIDCProviderMetadataURL http://127.0.0.1:$IDP_PORT/.well-known/openid-configuration
OIDCClientID e2e-proxy
OIDCClientSecret e2e-proxy-secret
OIDCRedirectURI http://localhost:$PROXY_PORT/oauth2/callback
OIDCCryptoPassphrase "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
OIDCScope "openid email profile groups"
OIDCPKCEMethod S256
OIDCRemoteUserClaim preferred_username
OIDCPassClaimsAs environment

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
    RequestHeader set X-Forwarded-User "expr=%{reqenv:OIDC_CLAIM_sub}"
    RequestHeader set X-Forwarded-Email "expr=%{reqenv:OIDC_CLAIM_email}"
    RequestHeader set X-Forwarded-Preferred-Username "expr=%{reqenv:OIDC_CLAIM_preferred_username}"
    RequestHeader set X-Forwarded-Groups "expr=%{reqenv:OIDC_CLAIM_groups}"
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

log "running the browser scenarios"
export IDP_URL="http://127.0.0.1:$IDP_PORT" PROXY_URL="http://localhost:$PROXY_PORT"
export A_URL="http://127.0.0.1:$A_PORT" R1_URL="http://localhost:$R1_PORT" R2_URL="http://localhost:$R2_PORT"
export MASTER_KEY DATABASE_URL SHOTS
(cd "$HERE" && node scenarios.mjs)
log "screenshots in $SHOTS"
