#!/usr/bin/env bash
# Logins while other programs keep every core of the host busy: the
# release tracker (TLS, password), HOGS busy loops (`sh -c 'while :; do
# :; done'`, nice 0, as any other program on the host), B5's background
# chat (100 members, 1 message a second each) and LOGINS logins one after
# another during it. Prints login ms p50/p99 and the chat's latency
# (loadgen's summary), then stops the busy loops and the tracker.
#
#   bash bench/login_under_load.sh              # 2 busy loops, 30 logins
#   HOGS=0 bash bench/login_under_load.sh       # the same without them
#   LOGINS=60 NO_BUILD=1 bash bench/login_under_load.sh
#   TRACKER=/tmp/tracker-before NO_BUILD=1 bash bench/login_under_load.sh
#
# The figures in BENCHMARKS.md ("Logins under load") come from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
hogs=${HOGS:-2}
logins=${LOGINS:-30}
tracker=${TRACKER:-./target/release/tracker}
[ -n "${NO_BUILD:-}" ] || cargo build --release --bins --examples
tmp=$(mktemp -d)
pids=()
tracker_pid=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -z "$tracker_pid" ] || kill "$tracker_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

CONFAB_PASSWORD=bench-password "$tracker" --port 0 \
    --bind 127.0.0.1 --stay --flood-rate 0 --max-connections 20000 \
    --max-per-address 20000 --register-timeout 600 --log-dir "$tmp/logs" --data-dir "$tmp/data" \
    >"$tmp/tracker.out" 2>"$tmp/tracker.err" </dev/null &
tracker_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/tracker.out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "the tracker did not start:" >&2; cat "$tmp/tracker.err" >&2; exit 1; }

for _ in $(seq "$hogs"); do
    sh -c 'while :; do :; done' &
    pids+=($!)
done
echo "cores: $(nproc); busy loops: $hogs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Logins one at a time, so each time is one login's, not a queue's. The
# members of the background room log in first, 8 at a time (not measured;
# --register-timeout 600 so none of them times out on a starved tracker).
LOADGEN_PASSWORD=bench-password ./target/release/examples/loadgen \
    --addr "127.0.0.1:$port" --tls --clients 100 --size 128 --rate 1 \
    --warmup 2 --duration 20 --storm "$logins" --storm-concurrency 1 \
    --concurrency 8 --connect-timeout 600 --server-pid "$tracker_pid" --label tracker |
    grep -v '^{'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# Which of the tracker's threads run at which priority (policy 0 is
# SCHED_OTHER, 3 SCHED_BATCH, 5 SCHED_IDLE).
echo "tracker threads (count, name, policy, nice):"
for task in /proc/"$tracker_pid"/task/*; do
    stat=$(cat "$task/stat")
    # shellcheck disable=SC2086
    set -- ${stat##*) }
    echo "$(cat "$task/comm" | sed 's/ [0-9]*$//') policy ${39} nice ${17}"
done | sort | uniq -c
