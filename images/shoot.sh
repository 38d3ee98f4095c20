#!/usr/bin/env bash
# Screenshots of the full-screen client for the README, rendered by a real
# terminal: xterm under Xvfb, attached to private tmux sessions in which the
# clients run, so the script can type for them (tmux send-keys) and wait
# for what they show (capture-pane). Installs what it needs with apt-get.
#
#   images/shoot.sh          # debug build; writes images/*.png
#
# Not run by CI. Needs the binaries (`cargo build`) and, the first time,
# root or sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
out=images
bin=${BIN:-target/debug}
[ -n "${BIN:-}" ] || cargo build --quiet --bin tracker --bin client

need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v xterm >/dev/null || need+=(xterm)
[ -x /usr/bin/import ] || need+=(imagemagick)
command -v xwininfo >/dev/null || need+=(x11-utils)
command -v tmux >/dev/null || need+=(tmux)
fc-list 2>/dev/null | grep -q DejaVuSansMono || need+=(fonts-dejavu-core)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

dir=$(mktemp -d)
sock="confab-shoot-$$"
display=":$((90 + $$ % 9))"
pids=()
cleanup() {
    tmux -L "$sock" kill-server 2>/dev/null || true
    # Newest first: the xterms before the X server they draw on.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

# A short idle timeout, so someone shows INACTIVE within the script.
. images/tracker.sh
start_tracker "$dir" --idle-timeout 40
pids+=("$tracker_pid")

t() { tmux -L "$sock" "$@"; }
# wait_for SESSION TEXT [SECONDS]: until the session's screen shows TEXT.
wait_for() {
    for _ in $(seq $((${3:-30} * 10))); do
        t capture-pane -p -t "$1" | grep -qF -- "$2" && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1:" >&2
    t capture-pane -p -t "$1" >&2
    exit 1
}
say() {
    t send-keys -t "$1" -l "$2"
    t send-keys -t "$1" Enter
}

cols=112 rows=30
for who in alice bob carol dave erin; do
    cmd="exec env CONFAB_PASSWORD= TZ=UTC $bin/client 127.0.0.1:$port --user $who --fingerprint $fp --known-trackers $dir/known"
    t new-session -d -s "$who" -x "$cols" -y "$rows" "$cmd"
    t set -g status off
    wait_for "$who" '--> you joined'
done

Xvfb "$display" -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 &
pids+=($!)
sleep 1
for who in alice; do
    DISPLAY=$display xterm -T "confab-$who" -geometry "${cols}x${rows}+0+0" \
        -fa 'DejaVu Sans Mono' -fs 11 -bg '#1d1f21' -fg '#d8d8d8' -cr '#d8d8d8' \
        +sb -b 6 -tn xterm-256color -e tmux -L "$sock" attach -t "$who" &
    pids+=($!)
done

# Others' status changes are left out of the conversation by default;
# Alt+S shows them (folded), as the screenshot explains them.
t send-keys -t alice M-s
wait_for alice 'status changes are shown'

# Everyone goes idle; all but erin act again below, so she stays INACTIVE.
wait_for alice 'you are now INACTIVE' 60

say bob "morning all! standup in 10?"
wait_for alice '<bob> morning all'
say carol "yes, I'll bring the build numbers"
wait_for alice '<carol> yes'
say alice "sounds good. bob, did the fix for the login timeout land?"
wait_for bob '<alice> sounds good'
say bob "alice: merged an hour ago, CI is green on all four targets"
wait_for alice '<bob> alice: merged'
say dave "/me grabs coffee first"
wait_for alice '* dave grabs coffee'
say carol "release notes are in the shared folder; the numbers from last night's soak run look much better than last week's, no leaks and latency is flat"
wait_for alice 'release notes'
say dave "/status busy reviewing PRs"
wait_for alice 'dave is now BUSY'
say bob "/msg alice can you look at my PR before standup?"
say carol "/msg alice lunch today?"
say carol "/msg alice the usual place, 12:30"
wait_for alice '3:carol (2!)'

window_png() {
    local id
    id=$(DISPLAY=$display xwininfo -name "confab-$1" | awk '/Window id:/ {print $4}')
    DISPLAY=$display /usr/bin/import -window "$id" "$2"
    echo "wrote $2"
}
sleep 0.5
window_png alice "$out/main-window.png"

# alice opens bob's DM; carol's stays marked, #general gets news.
t send-keys -t alice M-2
wait_for alice '<bob> can you look'
say alice "sure, send me the link"
wait_for bob '2:alice (1!)'
say bob "/msg alice it's #142, the reconnect change"
wait_for alice "it's #142"
say bob "standup starts now, join the call"
wait_for alice '1:#general (1'
sleep 0.5
window_png alice "$out/dm-window.png"
