# Sourced by the scripts in images/: start_tracker DIR [FLAGS...] starts an
# open tracker (no password) on 127.0.0.1 with its files in DIR, waits
# until it listens, and sets tracker_pid, port and fp (its fingerprint).
start_tracker() {
    local dir=$1
    shift
    "$bin/tracker" --no-password --stay --port 0 --bind 127.0.0.1 "$@" \
        --log-dir "$dir/logs" --data-dir "$dir/data" >"$dir/tracker.out" 2>&1 &
    tracker_pid=$!
    for _ in $(seq 100); do
        grep -q '^clients join with' "$dir/tracker.out" && break
        sleep 0.1
    done
    port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$dir/tracker.out")
    fp=$(sed -n 's/^fingerprint //p' "$dir/tracker.out")
    [ -n "$port" ] || { cat "$dir/tracker.out" >&2; return 1; }
}
