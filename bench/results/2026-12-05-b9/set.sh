#!/bin/bash
# B9 at 0.2M and 0.1M deliveries a second, tracker, ngircd and InspIRCd,
# three rounds each, then the one table. BUILD holds the released (musl)
# tracker and the generator as in BENCHMARKS.md's suite section:
#   CARGO_TARGET_DIR=BUILD bash bench/results/2026-12-05-b9/set.sh
set -e
out=$(cd "$(dirname "$0")" && pwd)
cd "$out/../../.."
{
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ) kernel $(uname -r)"
for rate in 200000 100000; do
  echo "=== b9 --offered $rate"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 bench/compare.py --no-build --out "$out/results.jsonl" --repeat 3 b9 --offered $rate
  sleep 10
done
python3 bench/suite_table.py "$out/results.jsonl" | tee "$out/table.txt"
} > "$out/log.txt" 2>&1
