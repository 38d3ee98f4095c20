#!/usr/bin/env bash
# CPU used by a connected, idle full-screen client: starts a tracker on
# 127.0.0.1 and one `client` in a private tmux server (a real terminal),
# waits until it is in #general, then reads the client's utime+stime from
# /proc/<pid>/stat before and after SECONDS (default 60) of doing nothing.
#
#   images/idle-cpu.sh [SECONDS]        # debug build (cargo build first)
#   BIN=target/release images/idle-cpu.sh
#
# A debug build is the slower one, so its figure is an upper bound.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bin=${BIN:-target/debug}
if [ -z "${BIN:-}" ]; then
    cargo build --quiet --bin tracker --bin client
fi
dir=$(mktemp -d)
sock="confab-idle-$$"
tracker_pid=""
cleanup() {
    tmux -L "$sock" kill-server 2>/dev/null || true
    [ -n "$tracker_pid" ] && kill "$tracker_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

. images/tracker.sh
start_tracker "$dir"

tmux -L "$sock" new-session -d -x 120 -y 40 \
    "exec env CONFAB_PASSWORD= $bin/client 127.0.0.1:$port --user idler --fingerprint $fp --known-trackers $dir/known"
for _ in $(seq 100); do
    tmux -L "$sock" capture-pane -p | grep -q -- '--> you joined' && break
    sleep 0.1
done
pid=$(tmux -L "$sock" display-message -p '#{pane_pid}')
if [ "$(cat "/proc/$pid/comm")" != client ] ||
    [ "$(tmux -L "$sock" display-message -p '#{alternate_on}')" != 1 ]; then
    echo "the client did not start full-screen:" >&2
    tmux -L "$sock" capture-pane -p >&2
    exit 1
fi
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep "$secs"
t1=$(ticks)
awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" 'BEGIN {
    printf "idle client, %d s: %d ticks (1/%d s) of CPU = %.3f%% of one core\n", s, d, hz, 100 * d / hz / s
}'
