#!/usr/bin/env python3
"""One line per round of each A/B JSONL file, then medians per file."""
import json, sys, statistics as st
for path in sys.argv[1:]:
    rows = [json.loads(l) for l in open(path) if l.strip()]
    rows = [r for r in rows if r.get("label") == "tracker"]
    print(path)
    p50s, p99s, cpus, lost = [], [], [], 0
    for r in rows:
        if r.get("mode") == "idle":
            print(f"  idle: per member {r['rss_per_conn_kib']:.1f} KiB, before {r['server_rss_before_kib']/1024:.1f} MiB,"
                  f" peak {r['server_hwm_kib']/1024:.1f}, left {(r['server_rss_left_kib'] or 0)/1024:.1f} MiB"
                  f" (+{100*((r['server_rss_left_kib'] or 0)/r['server_rss_before_kib']-1):.0f}%), login {r['connect_s']:.0f} s, cpu {r['server_cpu_s']:.1f} s")
            continue
        l = r["latency"]; w = r["window_s"] or 1
        gen = (r.get("gen_cpu_s") or 0) / w
        print(f"  p50 {l['p50_us']/1000:.2f} p99 {l['p99_us']/1000:.2f} ms, cpu {r['server_cpu_s']:.2f} s ({100*r['server_cpu_s']/w:.0f}%),"
              f" lost {r['lost']}, per read {r['deliveries_per_read']:.2f}, rss {r['server_rss_kib']/1024:.1f} MiB, gen {100*gen:.0f}%")
        p50s.append(l['p50_us']/1000); p99s.append(l['p99_us']/1000); cpus.append(r['server_cpu_s']); lost += r['lost']
    if p50s:
        print(f"  MEDIAN p50 {st.median(p50s):.2f} p99 {st.median(p99s):.2f} cpu {st.median(cpus):.2f} lost {lost} (n={len(p50s)})")
