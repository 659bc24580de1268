#!/usr/bin/env bash
# The SCIM conformance suite: PyPI's scim2-tester (python-scim, pinned in
# scripts/scim-conformance-requirements.txt), installed into a venv under target/, drives a built
# hookgate (target/debug/hookgate, which `cargo build` makes; HOOKGATE_BIN to choose another)
# serving SCIM on a free loopback port with a fresh SQLite database. Fails on any failing check
# not listed with its reason in docs/scim.md ("Conformance exceptions").
#
#   scripts/scim-conformance.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# Never a release binary found lying about: it may be older than the code under test.
bin=${HOOKGATE_BIN:-target/debug/hookgate}
[ -x "$bin" ] || die "no hookgate binary at $bin: run cargo build first"
command -v python3 >/dev/null || apt_install python3

venv=target/scim-conformance/venv
requirements=scripts/scim-conformance-requirements.txt
stamp=$venv/.requirements
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    log "installing scim2-tester into $venv"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian ships venv's ensurepip separately.
        apt_install python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv failed"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements" \
        || die "pip could not install $requirements"
    cp "$requirements" "$stamp"
fi

work=$(mktemp -d)
pid=""
cleanup() {
    stop_pid "$pid"
    rm -rf "$work"
}
trap cleanup EXIT

token="scim-conformance-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
port=$(free_port)
cat > "$work/config.yaml" <<YAML
general_settings:
  scim_token: os.environ/HOOKGATE_SCIM_CONFORMANCE_TOKEN
YAML
chmod 600 "$work/config.yaml"
log "starting $bin on 127.0.0.1:$port"
HOOKGATE_SCIM_CONFORMANCE_TOKEN=$token \
    DATABASE_URL="sqlite://$work/hookgate.db" \
    LITELLM_MASTER_KEY="sk-conformance-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
    "$bin" --config "$work/config.yaml" --host 127.0.0.1 --port "$port" >"$work/hookgate.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health/liveliness" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$work/hookgate.log" >&2
        die "hookgate exited before it answered"
    fi
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/health/liveliness" \
    || { cat "$work/hookgate.log" >&2; die "hookgate did not answer within 30 s"; }

log "running scim2-tester against http://127.0.0.1:$port/scim/v2"
status=0
"$venv/bin/python" scripts/scim_conformance.py "http://127.0.0.1:$port/scim/v2" "$token" docs/scim.md \
    || status=$?
if [ "$status" != 0 ]; then
    printf '\n--- hookgate log ---\n' >&2
    tail -n 50 "$work/hookgate.log" >&2
fi
exit "$status"
