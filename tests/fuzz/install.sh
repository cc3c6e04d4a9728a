#!/usr/bin/env bash
# Installs what the fuzzers need, once, into the cache kept across clones and CI runs: the
# nightly toolchain (for `cargo fuzz` only; the product builds on stable) and cargo-fuzz at a
# pinned version. Prints the cargo-fuzz binary's path on its last line.
set -euo pipefail
version=0.13.2
cache="${TOKENHOST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenhost-tools}"
root="$cache/cargo-fuzz-$version"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "installing the nightly toolchain (for cargo fuzz only)" >&2
    rustup toolchain install nightly --profile minimal >&2
fi
if [ ! -x "$root/bin/cargo-fuzz" ]; then
    echo "installing cargo-fuzz $version into $root (once; about 3 minutes)" >&2
    cargo install cargo-fuzz --locked --version "$version" --root "$root.partial" --quiet >&2
    rm -rf "$root" && mv "$root.partial" "$root"
fi
echo "$root/bin/cargo-fuzz"
