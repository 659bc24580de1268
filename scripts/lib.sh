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

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
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
