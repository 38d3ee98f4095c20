#!/usr/bin/env bash
# Does the store keep up when its appends run as SCHED_IDLE and another
# program keeps the tracker's core busy? A busy loop (nice 0, started once,
# no polling) shares CPU 0 with the pinned tracker for the whole run;
# compare.py records, when the generator ends, the history rows stored and
# how long the store went on adding rows after it ("store caught up s").
# NEW and OLD are two builds (CARGO_TARGET_DIR layouts): the store's
# appends idle-policy, and the build before it (appends at the chat's
# policy).
#   NEW=<build of 2f827a5 or later> OLD=<build of 3d6b6e9> bash run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:?out dir}
mkdir -p "$out"
taskset -c 0 sh -c 'while :; do :; done' &
busy=$!
trap 'kill $busy' EXIT
for round in 1 2; do
    for build in "$NEW" "$OLD"; do
        for load in "b2 --rate 1 --duration 30" "b2 --rate 10 --duration 30"; do
            echo "=== round $round, $build, $load (busy loop on CPU 0)"
            # shellcheck disable=SC2086
            CARGO_TARGET_DIR=$build python3 bench/compare.py --no-build \
                --servers tracker --no-floor --out "$out/results.jsonl" $load
        done
    done
done 2>&1 | tee "$out/log.txt"
