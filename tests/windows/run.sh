#!/usr/bin/env bash
# Windows, under Wine: cross-builds tokenhost.exe for x86_64-pc-windows-gnu and runs the
# end-to-end tests of tests/e2e/windows.rs against it (demo, an XTS run from a CRLF .env with
# the JSON sink, get, status, check, the Task Scheduler XML and command line, a reader holding
# the token file open, the state files' ACL, the account lock, Ctrl-Break for the daemon).
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

# The components are built by the main test run; take them instead of building them again.
if [ -z "${TOKENHOST_PREBUILT_COMPONENTS:-}" ] && [ -d "$target_dir/wasm/wasm32-wasip2/release" ]; then
    prebuilt=$target_dir/wasm/wasm32-wasip2/release
else
    prebuilt=${TOKENHOST_PREBUILT_COMPONENTS:-}
fi

step "building tokenhost.exe"
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    TOKENHOST_PREBUILT_COMPONENTS=$prebuilt \
    cargo build --release --target "$triple" -p tokenhost --bin tokenhost
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
# A persistent wineserver keeps the tests' many short runs quick; the first start builds the
# prefix (tens of seconds).
trap '"$wineserver" -k >/dev/null 2>&1 || true' EXIT
"$wineserver" -p
"$wine" wineboot --init >/dev/null 2>&1

step "running the Wine end-to-end tests"
TOKENHOST_WINE=$wine TOKENHOST_WINE_EXE=$exe TOKENHOST_WINE_HELPER=$bin/tokenhost-test-helper.exe \
    cargo test --release --test e2e windows:: -- --ignored
step "done"
