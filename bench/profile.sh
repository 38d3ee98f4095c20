#!/usr/bin/env bash
# A CPU profile of the tracker under B1 (100 members all sending 128-byte
# messages) or B9 (200 rooms of 25, each member in 3, as compare.py runs
# it), as recorded in BENCHMARKS.md:
#
#   bash bench/profile.sh [OFFERED]     # B1, default 1200000 deliveries/s
#   bash bench/profile.sh b9 [OFFERED]  # B9, default 200000 deliveries/s
#
# Builds the tracker and the load generator with symbols (release settings,
# not stripped) in their own target folder, pins the tracker to CPU 0 and
# the generator to CPU 1, records 5 s of the measured window with
# `perf record -g`, and prints the top symbols (self time) and the
# generator's summary. Needs perf (Debian: linux-perf; installed if
# missing). The VM this was written on has no hardware counters, so the
# event is cpu-clock.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = b9 ]; then
    offered=${2:-200000}
    # B9's rooms as compare.py defines them (one definition), less what
    # this script sets itself; then how many members that makes.
    mapfile -t workload < <(python3 -c '
import sys
sys.path.insert(0, "bench")
from compare import WORKLOADS
for k, v in WORKLOADS["b9"].items():
    if k not in ("--offered", "--size", "--warmup", "--duration"):
        print(k)
        if v is not None:
            print(v)')
    clients=$(python3 -c '
import sys
sys.path.insert(0, "bench")
from compare import WORKLOADS
w = WORKLOADS["b9"]
n = int(w["--rooms"]) * int(w["--room-size"])
print(-(-n // int(w["--rooms-per-member"])))')
else
    offered=${1:-1200000}
    clients=100
    workload=(--clients 100)
fi
target=${PROFILE_TARGET:-${TMPDIR:-/tmp}/confab-profile-target}
if ! command -v perf >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq linux-perf >/dev/null
fi
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --bin tracker --example loadgen --target-dir "$target"
# TRACKER=PATH profiles another build of the tracker (not stripped), such
# as the static musl one: CARGO_PROFILE_RELEASE_STRIP=false cargo build
# --release --bin tracker --target x86_64-unknown-linux-musl.
tracker_bin=${TRACKER:-$target/release/tracker}
work=$(mktemp -d)
trap 'kill "$tracker" 2>/dev/null || true; rm -rf "$work"' EXIT
taskset -c 0 "$tracker_bin" --port 0 --bind 127.0.0.1 --no-tls \
    --no-password --stay --flood-rate 0 --max-per-address 20000 \
    --max-connections 20000 \
    --log-dir "$work/logs" --data-dir "$work/data" >"$work/out" 2>"$work/err" &
tracker=$!
for _ in $(seq 100); do
    grep -q "^listening on" "$work/out" 2>/dev/null && break
    sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$work/out" | head -n 1)
taskset -c 1 "$target/release/examples/loadgen" --addr "$addr" "${workload[@]}" \
    --size 128 --offered "$offered" --warmup 2 --duration 8 \
    --server-pid "$tracker" >"$work/loadgen" 2>&1 &
loadgen=$!
# The window starts 2 s after every member is in (B9's 1,667 take a few
# seconds to log in): record from 1 s into it.
port=${addr##*:}
until [ "$(ss -Htn state established "( sport = :$port )" | wc -l)" -ge "$clients" ]; do
    kill -0 "$loadgen" 2>/dev/null || break
    sleep 0.2
done
sleep 3
perf record -F 999 -g -e cpu-clock -p "$tracker" -o "$work/perf.data" -- sleep 5 >/dev/null 2>&1
wait "$loadgen"
# PERF_DATA=FILE keeps the recording for `perf report -i FILE` (by
# thread: --sort comm; callers: --children).
[ -n "${PERF_DATA:-}" ] && cp "$work/perf.data" "$PERF_DATA"
grep -v '^{' "$work/loadgen"
echo "--- tracker, self time by symbol (top 30) ---"
perf report -i "$work/perf.data" --no-children --sort dso,symbol -g none 2>/dev/null \
    | grep '%' | head -n 30
echo "--- tracker, time by binary ---"
perf report -i "$work/perf.data" --no-children --sort dso -g none 2>/dev/null \
    | grep '%' | head -n 8
