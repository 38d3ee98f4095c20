#!/usr/bin/env bash
# The benchmark pass recorded in BENCHMARKS.md: each workload against the
# tracker and ngircd (bench/compare.py), one after the other, with a pause
# between runs. Most runs load the machine for under a minute; B4 at 10,000
# clients takes a few. About 25 minutes in all on 2 cores.
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
run b1 --offered 2000000 --duration 5
run b1 --offered 2500000 --duration 5
run b1 --offered 3000000 --duration 5
run --tls b2 --rate 1
run --tls b2 --rate 10
run --tls b1 --offered 600000
run --tls b1 --offered 1500000 --duration 5
run b3 --duration 5
run b4 --clients 2000
run --tls b4 --clients 2000
# 10,000 idle clients: the tracker only (ngircd needs about 40 s for 2,000
# and the cost grows with the square of the room's size).
run --servers tracker b4 --clients 10000 --connect-timeout 600
run --servers tracker --tls b4 --clients 10000 --connect-timeout 600
run b5
run --log-sync write b6
run --log-sync periodic b6
run --log-sync fsync b6
run b7
run b8 --rate 100
run b8 --rate 1000
echo "results in $out"
