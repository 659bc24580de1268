#!/usr/bin/env bash
# The Windows build, proved under Wine: hookgate.exe and the two example plugins as .dll files.
#
# 1. Installs what is missing (Debian: gcc-mingw-w64-x86-64, wine64, curl; rustup: the
#    x86_64-pc-windows-gnu target).
# 2. Cross-builds hookgate.exe, custom_sso.dll and custom_sso_handler.dll for
#    x86_64-pc-windows-gnu into target/windows (incremental: a few seconds when warm), linking
#    with MinGW's gcc through CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER (no repo-wide config).
# 3. Builds tests/windows/processprng.c as bcryptprimitives.dll: test scaffolding for Wine 8,
#    which lacks ProcessPrng (Rust's std needs it since 1.78; see that file).
# 4. In a scratch folder with its own WINEPREFIX under /tmp (wineserver -k on exit touches that
#    prefix only), with the repo's config.yaml (plugin_dirs: the folder itself; SQLite and the
#    generated master key land there too):
#    - `hookgate.exe check` loads both hooks from custom_sso.dll and custom_sso_handler.dll;
#    - the same with the plugins named libcustom_sso.dll and libcustom_sso_handler.dll;
#    - `hookgate.exe` serves on a free loopback port and answers the README's header sign-in
#      with 303 and a `token=` JWT cookie.
# Missing tools or any failed step fail the script, unless HOOKGATE_TEST_SKIP_WINDOWS=1, which
# skips everything and says so.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
source "$ROOT/scripts/lib.sh"

if [ "${HOOKGATE_TEST_SKIP_WINDOWS:-0}" = 1 ]; then
    log "HOOKGATE_TEST_SKIP_WINDOWS=1: the Windows build (hookgate.exe and .dll plugins under Wine) is SKIPPED, NOT TESTED"
    echo "windows: SKIPPED (HOOKGATE_TEST_SKIP_WINDOWS=1): the Windows build was not tested"
    exit 0
fi
started=$SECONDS
TARGET=x86_64-pc-windows-gnu
TARGET_DIR=$ROOT/target/windows
OUT=$TARGET_DIR/$TARGET/debug
SKIP_HINT="(set HOOKGATE_TEST_SKIP_WINDOWS=1 to skip the Windows test)"

# --- components ------------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo is not installed $SKIP_HINT"
command -v rustup >/dev/null || die "rustup is not installed: the $TARGET standard library comes from rustup $SKIP_HINT"
# Debian's wine64 installs its launcher and wineserver outside PATH, in /usr/lib/wine.
find_tool() {
    local name=$1
    if command -v "$name" >/dev/null; then command -v "$name"; elif [ -x "/usr/lib/wine/$name" ]; then
        echo "/usr/lib/wine/$name"
    fi
}
missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
[ -n "$(find_tool wine64)" ] && [ -n "$(find_tool wineserver)" ] || missing+=(wine64)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi
WINE64=$(find_tool wine64)
WINESERVER=$(find_tool wineserver)
[ -n "$WINE64" ] || die "wine64 is still missing after installing Debian's wine64 $SKIP_HINT"
[ -n "$WINESERVER" ] || die "wineserver is missing (Debian's libwine) $SKIP_HINT"
if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "adding the Rust target $TARGET (rustup)"
    rustup target add "$TARGET" || die "rustup target add $TARGET failed $SKIP_HINT"
fi

# --- scratch folder, Wine prefix, cleanup ----------------------------------------------------
WORK=$(mktemp -d /tmp/hookgate-windows.XXXXXX)
export WINEPREFIX=$WORK/wineprefix
SERVER_PID=""
BOOT_PID=""
cleanup() {
    local status=$?
    stop_pid "$SERVER_PID"
    stop_pid "$BOOT_PID"
    # Ends every process of this prefix (and its wineserver) only; waits for them.
    if [ -d "$WINEPREFIX" ]; then
        WINEPREFIX=$WINEPREFIX "$WINESERVER" -k 2>/dev/null || true
        WINEPREFIX=$WINEPREFIX timeout 20 "$WINESERVER" -w 2>/dev/null || true
    fi
    if [ "$status" = 0 ]; then
        rm -rf "$WORK"
    else
        echo "windows: FAILED; logs kept in $WORK" >&2
    fi
}
trap cleanup EXIT

# Runs a Windows program under Wine in folder $1, with a clean environment (no DATABASE_URL,
# LITELLM_MASTER_KEY, HOOKGATE_PLUGIN_PATH… from the caller). mscoree and mshtml are disabled so
# that Wine never offers to install Mono or Gecko.
wine_in() {
    local dir=$1
    shift
    cd "$dir" && exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$WORK" USER="${USER:-root}" \
        LANG=C.UTF-8 WINEPREFIX="$WINEPREFIX" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
        HOOKGATE_LOG=info "$WINE64" "$@"
}

# The prefix takes ~10 s to create; it is made while cargo builds. Without wine32 it reports
# that syswow64's rundll32.exe is missing, which does not matter to a 64-bit program.
(wine_in "$WORK" wineboot --init >"$WORK/wineboot.log" 2>&1) &
BOOT_PID=$!

# --- build -----------------------------------------------------------------------------------
log "cross-building hookgate.exe and the example plugins for $TARGET (target/windows)"
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    cargo build --locked --target "$TARGET" --target-dir "$TARGET_DIR" \
    -p hookgate -p custom_sso -p custom_sso_handler \
    || die "the cross-build for $TARGET failed"
for file in hookgate.exe custom_sso.dll custom_sso_handler.dll; do
    [ -f "$OUT/$file" ] || die "the cross-build did not produce $OUT/$file"
done

STUB=$TARGET_DIR/processprng/bcryptprimitives.dll
if [ ! -f "$STUB" ] || [ "$HERE/processprng.c" -nt "$STUB" ]; then
    log "building the ProcessPrng stub (Wine 8 test scaffolding) as $STUB"
    mkdir -p "$(dirname "$STUB")"
    x86_64-w64-mingw32-gcc -O2 -shared -s -o "$STUB" "$HERE/processprng.c" -ladvapi32 \
        || die "could not build the ProcessPrng stub"
fi

# --- the folders Wine runs in ----------------------------------------------------------------
# The repo's config.yaml, with the plugins beside it instead of in target/release and target/debug.
write_app() {
    local dir=$1 prefix=$2
    mkdir -p "$dir"
    cp "$OUT/hookgate.exe" "$STUB" "$dir/"
    cp "$OUT/custom_sso.dll" "$dir/${prefix}custom_sso.dll"
    cp "$OUT/custom_sso_handler.dll" "$dir/${prefix}custom_sso_handler.dll"
    sed 's|^  plugin_dirs: .*|  plugin_dirs: ["."]|' "$ROOT/config.yaml" >"$dir/config.yaml"
    grep -qx '  plugin_dirs: \["\."\]' "$dir/config.yaml" \
        || die "config.yaml has no general_settings.plugin_dirs line to point at the plugin folder"
}
write_app "$WORK/app" ""
write_app "$WORK/app-lib" "lib"

wait "$BOOT_PID" || { cat "$WORK/wineboot.log" >&2; die "Wine could not create its prefix ($WINE64 wineboot)"; }
BOOT_PID=""
wine_version=$(wine_in "$WORK" --version 2>/dev/null || echo "wine, version unknown")

# --- hookgate.exe check, under both names ----------------------------------------------------
# Asserts that `check` in folder $1 loaded both hooks from $2custom_sso.dll and
# $2custom_sso_handler.dll.
check_loads() {
    local dir=$1 prefix=$2 out
    # One plain Windows path per hook (Z: is Wine's drive for /), not a verbatim \\?\ one.
    local drive_path='[A-Z]:[^ ]*'
    log "wine64 hookgate.exe check --config config.yaml (plugins ${prefix}custom_sso.dll, ${prefix}custom_sso_handler.dll)"
    local status=0
    out=$( (wine_in "$dir" hookgate.exe check --config config.yaml) 2>"$dir/check.err") || status=$?
    if [ "$status" != 0 ]; then
        cat "$dir/check.err" >&2
        # Wine exits 53 when a program cannot start (c0000135): a DLL or an import is missing,
        # such as ProcessPrng without the stub.
        [ "$status" = 53 ] && echo "hookgate.exe did not start: a DLL or one of its imports is missing (c0000135); WINEDEBUG=err+module shows which" >&2
        die "hookgate.exe check failed under Wine with status $status (plugins ${prefix}custom_sso.dll, ${prefix}custom_sso_handler.dll)"
    fi
    printf '%s\n' "$out" >&2
    printf '%s\n' "$out" | grep -Eq "^general_settings\.custom_sso: custom_sso\.custom_sso_handler -> ${drive_path}\\\\${prefix}custom_sso\.dll \(kind custom_sso," \
        || die "hookgate.exe check did not load general_settings.custom_sso from ${prefix}custom_sso.dll"
    printf '%s\n' "$out" | grep -Eq "^general_settings\.custom_ui_sso_sign_in_handler: custom_sso_handler\.custom_ui_sso_sign_in_handler -> ${drive_path}\\\\${prefix}custom_sso_handler\.dll \(kind custom_ui_sso_sign_in_handler," \
        || die "hookgate.exe check did not load general_settings.custom_ui_sso_sign_in_handler from ${prefix}custom_sso_handler.dll"
}
check_loads "$WORK/app" ""
check_loads "$WORK/app-lib" "lib"

# --- hookgate.exe serving: the README's header sign-in ---------------------------------------
PORT=$(free_port)
log "wine64 hookgate.exe --config config.yaml --host 127.0.0.1 --port $PORT"
(wine_in "$WORK/app" hookgate.exe --config config.yaml --host 127.0.0.1 --port "$PORT" \
    >"$WORK/server.log" 2>&1) &
SERVER_PID=$!
up=0
for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health/liveliness" 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[ "$up" = 1 ] || { tail -n 40 "$WORK/server.log" >&2; die "hookgate.exe did not answer /health/liveliness under Wine within 60s"; }

status=$(curl -sS -o /dev/null -D "$WORK/signin.headers" -w '%{http_code}' --max-time 30 \
    -H 'x-forwarded-user: alice' -H 'x-forwarded-email: alice@example.com' \
    -H 'x-forwarded-groups: admins' "http://127.0.0.1:$PORT/sso/key/generate") \
    || die "the header sign-in request to hookgate.exe failed"
if [ "$status" != 303 ]; then
    cat "$WORK/signin.headers" >&2
    tail -n 40 "$WORK/server.log" >&2
    die "the header sign-in answered $status, not 303"
fi
grep -Eiq '^set-cookie: token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+;' "$WORK/signin.headers" \
    || { cat "$WORK/signin.headers" >&2; die "the header sign-in set no token=<JWT> cookie"; }

echo "windows: OK in $((SECONDS - started))s: under $wine_version, hookgate.exe ($TARGET) check loaded both hooks from custom_sso.dll + custom_sso_handler.dll and from libcustom_sso.dll + libcustom_sso_handler.dll; serving on 127.0.0.1:$PORT, the header sign-in answered 303 with a token=<JWT> cookie"
