#!/usr/bin/env bash
# One set of the hour-sensitive workloads, fixed build, 3 servers, 3 rounds.
set -euo pipefail
out=$1; mkdir -p "$out"
cd /work/main
export CARGO_TARGET_DIR=/tmp/ab/base19
run() {
  { echo "=== $*"; echo "start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
    python3 bench/compare.py --no-build --out "$out/results.jsonl" "$@"; echo; } 2>&1 | tee -a "$out/log.txt"
  sleep 10
}
run --repeat 3 b1 --offered 2000000 --duration 5
run --repeat 3 b2 --rate 1
run --repeat 3 b3
run --repeat 3 b9
echo "end $(date -u +%H:%M:%S)" | tee -a "$out/log.txt"
