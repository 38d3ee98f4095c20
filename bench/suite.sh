#!/usr/bin/env bash
# The preliminary benchmark pass recorded in BENCHMARKS.md: each workload
# against the tracker and ngircd (bench/compare.py), one after the other,
# with a pause between runs. No single run loads the machine for more than
# about a minute.
#
#   bash bench/suite.sh [OUT_DIR]   # default: $TMPDIR/confab-bench-<date>
#   PAUSE=30 bash bench/suite.sh    # seconds between runs (default 10), to
#                                   # leave a shared machine some room
#
# Writes OUT_DIR/results.jsonl (one JSON line per server and run) and
# OUT_DIR/log.txt (summaries and side-by-side tables).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${TMPDIR:-/tmp}/confab-bench-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
cargo build --release --examples --bins
run() {
    {
        echo "=== $*"
        echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
        python3 bench/compare.py --no-build --out "$out/results.jsonl" "$@"
        echo
    } 2>&1 | tee -a "$out/log.txt"
    sleep "${PAUSE:-10}"
}
run b2 --rate 1
run b2 --rate 10
run b1 --offered 100000
run b1 --offered 600000
run b1 --offered 1200000 --duration 5
run b8 --rate 100
run b8 --rate 1000
run --tls b2 --rate 1
run --tls b2 --rate 10
run --tls b1 --offered 600000
run b4 --clients 1000
run b4 --clients 2000
run --tls b4 --clients 2000
run b3 --duration 5
echo "results in $out"
