#!/usr/bin/env bash
# Installs what the portability tests run providers under, once, into a cache kept across
# clones and CI runs: the upstream wasmtime CLI at the version of our wasmtime crates (about
# 9 minutes to build on 2 cores), and jco with the WASI shims from package-lock.json.
# Prints the wasmtime binary's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's/^wasmtime = { version = "=\([0-9.]*\)".*/\1/p' "$here/../../host/Cargo.toml")"
cache="${TOKENHOST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenhost-tools}"
root="$cache/wasmtime-cli-$version"
if [ ! -x "$root/bin/wasmtime" ]; then
    echo "installing wasmtime-cli $version into $root (once; about 9 minutes)" >&2
    # Default features: a trimmed set failed to compile at 48.0.8.
    cargo install wasmtime-cli --locked --version "$version" --root "$root.partial" --quiet >&2
    rm -rf "$root" && mv "$root.partial" "$root"
fi
if [ ! -d "$here/node/node_modules/@bytecodealliance/jco" ]; then
    echo "installing jco and the WASI shims (versions from package-lock.json)" >&2
    # Not `npm ci`: it refuses this lock because the lock leaves out optional binaries for
    # other platforms (macOS, Windows, musl), which npm did not record here. `npm install`
    # with --no-save installs the locked versions and leaves the lock alone.
    (cd "$here/node" && npm install --no-save --no-audit --no-fund --loglevel=error >&2)
fi
echo "$root/bin/wasmtime"
