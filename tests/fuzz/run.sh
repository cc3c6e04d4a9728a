#!/usr/bin/env bash
# Builds the fuzz targets once and runs each for a bounded time from the committed corpus
# (tests/fuzz/corpus/<target>/), with libFuzzer's new finds kept out of the checkout.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 20 s, every target)
# A crash stops the run with libFuzzer's report and the input saved under target/fuzz/artifacts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(jwt dotenv config listener push broker_answers)
fi
cargo_fuzz="$("$here/install.sh" | tail -n 1)"
# One target dir for everything; the components the main build made are used as they are.
export CARGO_TARGET_DIR="$root/target/fuzz"
export TOKENHOST_PREBUILT_COMPONENTS="$root/target/wasm/wasm32-wasip2/release"
# One state directory for every target: the components compile once (in its cache).
export TOKENHOST_FUZZ_STATE="$CARGO_TARGET_DIR/state"
# glibc's record of a thread-local destructor, made by a runtime thread still running when
# LeakSanitizer looks, is not a leak of ours (found in a 10-minute run of broker_answers).
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
if [ ! -f "$TOKENHOST_PREBUILT_COMPONENTS/xts.wasm" ]; then
    echo "the components are not built: run \`cargo build --release\` first" >&2
    exit 2
fi
mkdir -p "$CARGO_TARGET_DIR"
cd "$here"
start=$(date +%s)
if ! rustup run nightly "$cargo_fuzz" build --release --fuzz-dir "$here" > "$CARGO_TARGET_DIR/build.log" 2>&1; then
    grep -vE '^\s+(Compiling|Downloaded|Downloading)' "$CARGO_TARGET_DIR/build.log" | tail -n 60 >&2
    exit 1
fi
echo "fuzz build: $(( $(date +%s) - start )) s" >&2
for t in "${targets[@]}"; do
    corpus="$here/corpus/$t"
    scratch="$CARGO_TARGET_DIR/corpus/$t"
    log="$CARGO_TARGET_DIR/$t.log"
    mkdir -p "$corpus" "$scratch" "$CARGO_TARGET_DIR/artifacts/$t"
    # New finds go to the scratch folder; the committed corpus is only read.
    if ! rustup run nightly "$cargo_fuzz" run --release --fuzz-dir "$here" "$t" "$scratch" "$corpus" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=30 -rss_limit_mb=4096 \
        -artifact_prefix="$CARGO_TARGET_DIR/artifacts/$t/" -print_final_stats=1 > "$log" 2>&1; then
        tail -n 80 "$log" >&2
        echo "fuzz target $t failed; the input is in $CARGO_TARGET_DIR/artifacts/$t/" >&2
        exit 1
    fi
    echo "$t: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs in ${seconds} s, $(grep -oE 'cov: [0-9]+' "$log" | tail -n 1) edges, no crash" >&2
done
