#!/usr/bin/env bash
# Windows, under Wine: cross-builds tokenhost.exe for x86_64-pc-windows-gnu and runs the
# end-to-end tests of tests/e2e/windows.rs against it (demo, an XTS run from a CRLF .env with
# the JSON sink, get, status, check, the Task Scheduler XML and command line, a reader holding
# the token file open, the state files' ACL, the account lock, Ctrl-C for the daemon).
#
# Installs what it needs when missing: Debian's mingw-w64 and wine64 (apt-get), and the Rust
# target (rustup). Respects CARGO_TARGET_DIR. Wine 8 has no bcryptprimitives.dll, which Rust's
# std imports for ProcessPrng: a small DLL built from prng.c goes beside the .exe (real Windows
# has its own).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
triple=x86_64-pc-windows-gnu
started=$SECONDS

step() { echo "== windows: $* ($((SECONDS - started)) s)"; }

if ! command -v x86_64-w64-mingw32-gcc >/dev/null || ! dpkg -s wine64 >/dev/null 2>&1; then
    step "installing mingw-w64 and wine64"
    export DEBIAN_FRONTEND=noninteractive
    sudo_=""
    [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    $sudo_ apt-get install -y -qq --no-install-recommends mingw-w64 wine64 >/dev/null
fi

step "rustup target add $triple"
rustup target add "$triple"

# The components are built by the main test run: the Windows build takes them instead of
# building them again. (Only that build: the Linux test binary below must see the environment
# the main build saw, or cargo would build it again.)
windows_env=(CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc)
if [ -n "${TOKENHOST_PREBUILT_COMPONENTS:-}" ]; then
    windows_env+=(TOKENHOST_PREBUILT_COMPONENTS="$TOKENHOST_PREBUILT_COMPONENTS")
elif [ -f "$target_dir/wasm/wasm32-wasip2/release/fixture.wasm" ]; then
    windows_env+=(TOKENHOST_PREBUILT_COMPONENTS="$target_dir/wasm/wasm32-wasip2/release")
fi

step "building tokenhost.exe"
env "${windows_env[@]}" cargo build --release --target "$triple" -p tokenhost --bin tokenhost
bin=$target_dir/$triple/release
exe=$bin/tokenhost.exe

step "building the ProcessPrng shim and the test helper"
x86_64-w64-mingw32-gcc -O2 -Wall -shared -o "$bin/bcryptprimitives.dll" tests/windows/prng.c -ladvapi32
x86_64-w64-mingw32-gcc -O2 -Wall -o "$bin/tokenhost-test-helper.exe" tests/windows/helper.c -ladvapi32

# Debian's wine64 keeps its launcher in Wine's library folder, off PATH.
wine=$(dpkg -L wine64 | grep -E '/wine64$' | head -n 1)
[ -x "$wine" ] || { echo "no wine64 launcher in: dpkg -L wine64" >&2; exit 1; }
export WINEPREFIX=$target_dir/wine-prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
wineserver=$(dirname "$wine")/wineserver
# A wineserver left by an interrupted run would hold on to the old prefix.
"$wineserver" -k >/dev/null 2>&1 || true
rm -rf "$WINEPREFIX"
mkdir -p "$WINEPREFIX"
step "starting Wine ($("$wine" --version))"
trap '"$wineserver" -k >/dev/null 2>&1 || true' EXIT
# The first start builds the prefix, and its services go on setting up after wineboot returns:
# until they are done, the service manager stays locked and schtasks finds no Task Scheduler.
# So wait for that Wine to end, then keep a wineserver for the tests' many short runs.
"$wine" wineboot --init >/dev/null 2>&1
timeout 300 "$wineserver" -w || echo "Wine's first start did not settle within 5 minutes; going on" >&2
"$wineserver" -p
# Start Wine's services again now (they live on with the wineserver), with their output going
# nowhere, and the Task Scheduler with them; the tests' first program would start them holding
# its pipes.
"$wine" schtasks /Delete /F /TN tokenhost-warm-up >/dev/null 2>&1 </dev/null || true

step "running the Wine end-to-end tests"
TOKENHOST_WINE=$wine TOKENHOST_WINE_EXE=$exe TOKENHOST_WINE_HELPER=$bin/tokenhost-test-helper.exe \
    cargo test --release --test e2e windows:: -- --ignored
step "done"
