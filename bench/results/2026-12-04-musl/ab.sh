#!/usr/bin/env bash
# Interleaved A/B of tracker builds: ab.sh OUTPREFIX ROUNDS VARIANT... -- compare.py args
# Each VARIANT is a directory holding release/tracker and release/examples/loadgen.
set -uo pipefail
out=$1; rounds=$2; shift 2
variants=()
while [ "$1" != "--" ]; do variants+=("$1"); shift; done
shift
cd /work/main
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    name=$(basename "$v")
    echo "=== round $r $name $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out-$name.log"
    CARGO_TARGET_DIR=$v python3 bench/compare.py --no-build --servers tracker --out "$out-$name.jsonl" "$@" >> "$out-$name.log" 2>&1
    sleep 5
  done
done
echo "done $(date -u +%H:%M:%S)"
