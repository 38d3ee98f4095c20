#!/bin/bash
# set SCHED_BATCH on threads of any running 'tracker' whose comm is in $NAMES (loop until killed)
while true; do
  for pid in $(pgrep -x tracker); do
    for t in /proc/$pid/task/*; do
      tid=${t##*/}
      comm=$(cat $t/comm 2>/dev/null)
      for n in $NAMES; do
        if [ "$comm" = "$n" ]; then chrt -b -p 0 $tid >/dev/null 2>&1; fi
      done
    done
  done
  sleep 0.1
done
