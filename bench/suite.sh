#!/usr/bin/env bash
# Issue 18's workloads, each against the tracker, ngircd and InspIRCd
# (bench/compare.py; both peers from Debian, installed when missing), one
# after the other in one run, then one table of all of them
# (bench/suite_table.py) with the ratios the targets are stated in.
#
#   bash bench/suite.sh [OUT_DIR]   # default: $TMPDIR/confab-bench-<date>
#   PAUSE=30 bash bench/suite.sh    # seconds between runs (default 10)
#   SOAK_MIN=30 bash bench/suite.sh # the tracker's full soak (default 3
#                                   # minutes); the peers soak PEER_SOAK_MIN
#                                   # (default 3) beside it: the soak's
#                                   # target is the tracker's own slope
#   REPEAT=1 bash bench/suite.sh    # rounds of B1/B2/B9/B3 (default 3,
#                                   # medians: tail latencies here vary
#                                   # several-fold from round to round)
#   NO_LONG=1 bash bench/suite.sh   # all but B4 and the soak (about an
#                                   # hour of the 1.5), at full scale: to
#                                   # check a change against the peers
#   SMALL=1 bash bench/suite.sh     # every workload at a small scale, to
#                                   # show the suite runs (figures mean
#                                   # nothing at this size)
#   FROM=reconnect bash bench/suite.sh OUT_DIR
#                                   # resume a run that was cut off: skip
#                                   # the workloads before the named one
#                                   # (b1 b2 b9 b3 b4 reconnect soak) and
#                                   # append to OUT_DIR's results
#
# At full scale B4 logs 10,000 members in to each server (8 at a time,
# InspIRCd 256: see compare.py), about 10 minutes each for the tracker and
# ngircd; B4 over TLS runs against the tracker alone (its 48 KiB target is
# the tracker's own). With the 30-minute soak a run takes about 1.5 hours.
# Writes OUT_DIR/results.jsonl (one JSON line per server and round),
# OUT_DIR/log.txt (every run's own side-by-side table) and
# OUT_DIR/table.txt (the one table).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${TMPDIR:-/tmp}/confab-bench-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
repeat=${REPEAT:-3}
soak_s=$(( ${SOAK_MIN:-3} * 60 ))
peer_soak_s=$(( ${PEER_SOAK_MIN:-3} * 60 ))
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release --examples --bins
fi
{
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
    echo "ngircd $(ngircd --version 2>/dev/null | head -1 || echo 'not installed yet')"
    echo "inspircd $(inspircd --version 2>/dev/null | head -1 || echo 'not installed yet')"
    [ -z "${FROM:-}" ] || echo "resumed from $FROM"
} | tee -a "$out/log.txt"
from=${FROM:-}
run() {
    if [ -n "$from" ]; then
        local arg
        for arg in "$@"; do
            case $arg in
            b1 | b2 | b9 | b3 | b4 | reconnect | soak) break ;;
            esac
        done
        if [ "$arg" != "$from" ]; then
            echo "=== $* (skipped: before $from)"
            return
        fi
        from=""
    fi
    {
        echo "=== $*"
        echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
        python3 bench/compare.py --no-build --out "$out/results.jsonl" "$@"
        echo
    } 2>&1 | tee -a "$out/log.txt"
    sleep "${PAUSE:-10}"
}
if [ -n "${SMALL:-}" ]; then
    repeat=1
    run b1 --offered 60000 --duration 3
    run --tls b1 --offered 60000 --duration 3
    run b2 --rate 1 --duration 3
    run b9 --rooms 20 --offered 20000 --duration 3
    run b3 --clients 200 --senders 20 --duration 3
    run b4 --clients 300
    run --tls b4 --clients 300
    run reconnect --reconnect 100 --duration 15 --reconnect-at 3
    run soak --clients 100 --senders 10 --duration 30 --rss-every 2 --rss-skip 10
else
    run --repeat "$repeat" b1 --offered 600000
    run --repeat "$repeat" b1 --offered 2000000 --duration 5
    run --tls b1 --offered 1200000 --duration 5
    run --repeat "$repeat" b2 --rate 1
    run --repeat "$repeat" b9
    # B9 again at half the rate: at 0.2M the generator saturates against
    # InspIRCd in most rounds (its p99 is then the generator's), at 0.1M
    # it holds for every server, so this is the ratio to trust.
    run --repeat "$repeat" b9 --offered 100000
    run --repeat "$repeat" b3
    if [ -z "${NO_LONG:-}" ]; then
        run b4
        run --tls --servers tracker b4
    fi
    run reconnect
    if [ -z "${NO_LONG:-}" ]; then
        run --servers tracker soak --duration "$soak_s"
        run --servers ngircd,inspircd soak --duration "$peer_soak_s"
    fi
fi
python3 bench/suite_table.py "$out/results.jsonl" | tee "$out/table.txt"
echo "results in $out"
