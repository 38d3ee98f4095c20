#!/bin/bash
# A/B: the released (musl) tracker of 33cf3a3 (BUILDS/accept21/release/tracker)
# against the store's appends as SCHED_IDLE (BUILDS/sidle: the commit after
# it, first version: calls too ran idle-policy, which B9, B1, B3 make none
# of), each with BUILDS/*/release/examples/loadgen; tracker only, interleaved.
out=$(cd "$(dirname "$0")" && pwd)
cd "$out/../../../.."
for w in "b9 --offered 100000" "b9" "b1 --offered 2000000 --duration 5"; do
  for v in accept21 sidle; do
    echo "=== $v $w"
    CARGO_TARGET_DIR=BUILDS/$v python3 bench/compare.py --no-build --servers tracker --out $out/$v.jsonl --repeat 3 $w 2>&1 | grep -E "per round|server CPU  |store caught|latency p50"
  done
done
for v in accept21 sidle; do
  echo "=== $v b3"
  CARGO_TARGET_DIR=BUILDS/$v python3 bench/compare.py --no-build --servers tracker --out $out/$v.jsonl --repeat 1 b3 2>&1 | grep -E "^  latency ms|^  server: CPU|store caught|saturated"
done
