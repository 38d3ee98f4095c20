#!/usr/bin/env bash
# Where B2's time goes in each server: one message at a time (100 members
# at 1 message/s each), from the read that brings a message in to the last
# of its 99 sends, split into steps by bench/b2_path.py.
#
#   bash bench/b2_path.sh                    # tracker, inspircd, ngircd
#   bash bench/b2_path.sh tracker inspircd
#
# Runs B2 through bench/compare.py (so each server is set up as the suite
# sets it up, pinned to CPU 0, the generator on CPU 1; no stall probe and
# no floor round, which would run on CPU 0 too), and records 3 s of the
# measured window: every system call and context switch on CPU 0, by
# `perf record` itself running on CPU 1. Needs perf (Debian: linux-perf;
# installed if missing) and the release build compare.py uses
# (`cargo build --release --examples --bins`; CARGO_TARGET_DIR is
# honoured). Tracing slows each system call by a few microseconds: the
# figures compare servers and steps, they are not B2's latency.
set -euo pipefail
cd "$(dirname "$0")/.."
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(tracker inspircd ngircd)
if ! command -v perf >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq linux-perf >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for server in "${servers[@]}"; do
    python3 bench/compare.py --no-build --no-floor --no-stall-probe \
        --servers "$server" b2 >"$work/$server.log" 2>&1 &
    compare=$!
    # The generator starts once the server listens; its window starts
    # after its members are in and 2 s of warm-up: record from 4 s on.
    until pgrep -f 'examples/loadgen' >/dev/null; do
        kill -0 "$compare" 2>/dev/null || break
        sleep 0.1
    done
    sleep 4
    pid=$(pgrep -f "^(taskset -c 0 )?[^ ]*$server" | head -n 1 || true)
    if [ -z "$pid" ] || ! kill -0 "$compare" 2>/dev/null; then
        echo "$server: not running (see its log below)"
        wait "$compare" || true
        cat "$work/$server.log"
        continue
    fi
    taskset -c 1 perf record -q -m 4096 -C 0 -e raw_syscalls:sys_enter \
        -e raw_syscalls:sys_exit -e sched:sched_switch \
        -o "$work/$server.data" -- sleep 3 >/dev/null 2>&1
    wait "$compare" || true
    echo "=== $server (pid $pid)"
    grep -E '^latency p(50|99) ms' "$work/$server.log" || true
    perf script -F comm,pid,tid,time,event,trace -i "$work/$server.data" 2>/dev/null \
        | python3 bench/b2_path.py "$pid"
done
