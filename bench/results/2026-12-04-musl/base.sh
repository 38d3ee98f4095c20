#!/bin/bash
# RSS of a tracker with nobody connected: base.sh TRACKER [ENV=VAL...]
T=$1; shift
D=$(mktemp -d)
env "$@" CONFAB_PASSWORD=bench-password $T --port 0 --bind 127.0.0.1 --stay --log-dir $D/logs --data-dir $D/data --no-tls --no-announce > $D/out 2>&1 &
P=$!
sleep 4
echo "$(grep VmRSS /proc/$P/status) $*"
kill -INT $P; wait $P 2>/dev/null; rm -rf $D
