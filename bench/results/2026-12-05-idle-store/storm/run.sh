#!/usr/bin/env bash
# The reconnect storm, tracker alone, two builds interleaved: does a call
# (a login) raising the store's thread change the storm?
#   NEW=<build of 14af736> OLD=<build of 3975dee> bash run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../../../.."
out=${1:?out dir}
mkdir -p "$out"
for round in 1 2; do
    for build in "$NEW" "$OLD"; do
        echo "=== round $round, $build"
        CARGO_TARGET_DIR=$build python3 bench/compare.py --no-build \
            --servers tracker --out "$out/results.jsonl" reconnect
    done
done 2>&1 | tee "$out/log.txt"
