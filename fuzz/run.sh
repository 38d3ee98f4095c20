#!/usr/bin/env bash
# Fuzzes one target for a wall-clock budget, one job, restarting libFuzzer
# after each crash (the reproducer is kept in fuzz/artifacts/<target>/) so
# that one bug does not end the run. New inputs accumulate in
# fuzz/work/<target>/ (git-ignored); the committed seeds in
# fuzz/corpus/<target>/ are only read.
# Logs: fuzz/work/logs/<target>-<UTC start>.<segment>.log
#
#   fuzz/run.sh parse_line 600 -max_len=12000
#   CONFAB_FUZZ_STRICT=1 fuzz/run.sh registration 120 -max_len=10000
#
# Needs: rustup's stable toolchain, cargo-fuzz (cargo install cargo-fuzz),
# a C++ compiler (g++ or clang++) for libFuzzer.
set -u
target=${1:?target}
budget=${2:?seconds}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export CARGO_TARGET_DIR="$here/target"
export RUSTC_BOOTSTRAP=1
mkdir -p "work/$target" work/logs
cargo +stable fuzz build "$target" || exit 1

start=$(date +%s)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
seg=0
while :; do
    left=$((budget - ($(date +%s) - start)))
    [ "$left" -gt 5 ] || break
    seg=$((seg + 1))
    log="work/logs/$target-$stamp.$seg.log"
    echo "segment $seg: ${left}s left, log $log"
    cargo +stable fuzz run "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$left" -timeout=10 -print_final_stats=1 "$@" >"$log" 2>&1
    rc=$?
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec)|^#[0-9]+ +DONE" "$log"
    if [ $rc -eq 0 ]; then break; fi
    echo "segment $seg ended with rc=$rc after $(($(date +%s) - start))s:"
    grep -E "panicked at|^(thread|  )|SUMMARY|Test unit written" "$log" | head -8
done
echo "total wall time: $(($(date +%s) - start))s"
