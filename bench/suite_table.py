#!/usr/bin/env python3
"""One table for a whole bench/suite.sh run: every workload, every server,
the figures issue 18's targets are stated in, and the ratios against the
best peer (and, for B2 and B9, the loopback floor) from the same run.

    python3 bench/suite_table.py OUT_DIR/results.jsonl

Each row is one `compare.py` run (its workload and options) and server;
with `--repeat N` a figure is the median of its N rounds. Ratios:
- *p99 / best peer*: the tracker's p99 over the lowest p99 of ngircd and
  InspIRCd in that run (the target is at most 0.5);
- *deliveries per CPU-s / best peer*: deliveries each server made per
  second of its CPU, the tracker's over the best peer's (target 1.5);
- B2: the tracker's p50 and p99 over the floor's (targets 1.3 and 3);
  B9: every server's over the floor's (bench/loopback_floor.c `rooms`:
  what the kernel alone charges for B9's deliveries at that rate).
Marks: *sat* when the generator used 95% of its core or more, over the
window or, in a reconnect storm, from the drop to the last back (latency
and losses are then its own), *stall* when the stall probe saw a CPU
stall over 5 ms in a round, *store behind* when the tracker's store was
still adding rows a second or more after the generator ended (work put
off past the window; the round's figures then flatter it).
"""

import json
import sys
from collections import OrderedDict

from compare import STORE_BEHIND_S, generator_saturated

PEERS = ("ngircd", "inspircd")


def median(values):
    v = sorted(x for x in values if isinstance(x, (int, float)))
    return v[len(v) // 2] if v else None


def fig(rounds, get):
    return median(get(r) for r in rounds)


def chat(get):
    """A figure of rounds that carried messages (not B4's idle ones)."""
    return lambda r: None if r.get("mode") == "idle" else get(r)


def lat(key):
    return chat(lambda r: (r.get("latency") or {}).get(key))


def per_cpu_s(r):
    cpu, window = r.get("server_cpu_s"), r.get("window_s")
    delivered = r.get("delivered_per_s")
    if not cpu or not window or delivered is None:
        return None
    return delivered * window / cpu


def marks(rounds):
    out = []
    if any(generator_saturated(r) for r in rounds):
        out.append("sat")
    if any(sum(r.get("cpu_stalls_over_5ms") or []) > 0 for r in rounds):
        out.append("stall")
    if any((r.get("store_caught_up_s") or 0) >= STORE_BEHIND_S for r in rounds):
        out.append("store behind")
    if any("failed" in r for r in rounds):
        out.append("FAILED: " + next(r["failed"] for r in rounds if "failed" in r))
    if any(r.get("errors") for r in rounds):
        out.append(f"errors: {sum(len(r.get('errors') or []) for r in rounds)}")
    return " ".join(out)


def num(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)


def ratio(a, b):
    return None if a is None or not b else a / b


def extra(run, label, rounds):
    """The figures of the workloads with targets of their own."""
    r0 = rounds[0]
    if r0.get("mode") == "idle":
        before = fig(rounds, lambda r: r.get("server_rss_before_kib"))
        left = fig(rounds, lambda r: r.get("server_rss_left_kib"))
        return (f"{num(fig(rounds, lambda r: r.get('rss_per_conn_kib')), '{:.1f}')} KiB/member; "
                f"nobody {num(before and before / 1024, '{:.1f}')} MiB; "
                f"all left {num(left and left / 1024, '{:.1f}')} MiB "
                f"({num(ratio(left, before) and 100 * (ratio(left, before) - 1), '{:+.0f}')}%); "
                f"logged in in {num(fig(rounds, lambda r: r.get('connect_s')), '{:.0f}')} s")
    if r0.get("latency_storm"):
        calm = fig(rounds, lambda r: (r.get("latency_calm") or {}).get("p99_us"))
        storm = fig(rounds, lambda r: (r.get("latency_storm") or {}).get("p99_us"))
        return (f"{num(fig(rounds, lambda r: r.get('reconnected')))} back in "
                f"{num(fig(rounds, lambda r: r.get('reconnect_s')), '{:.1f}')} s; "
                f"others p99 {num(calm and calm / 1000, '{:.2f}')} -> "
                f"{num(storm and storm / 1000, '{:.2f}')} ms "
                f"({num(ratio(storm, calm), '{:.2f}')}x)")
    if r0.get("rss_series_kib"):
        slope = fig(rounds, lambda r: r.get("rss_slope_kib_per_min"))
        first = fig(rounds, lambda r: (r.get("rss_series_kib") or [[0, None]])[0][1])
        last = fig(rounds, lambda r: (r.get("rss_series_kib") or [[0, None]])[-1][1])
        return (f"RSS {num(first and first / 1024, '{:.1f}')} -> "
                f"{num(last and last / 1024, '{:.1f}')} MiB, slope "
                f"{num(slope and slope / 1024, '{:.3f}')} MB/min")
    return ""


def main(path):
    runs = OrderedDict()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            run = r.get("run") or r.get("workload", "?")
            runs.setdefault(run, OrderedDict()).setdefault(
                r.get("label", "?"), []).append(r)
    head = ("run", "server", "n", "delivered/s", "lost", "p50 ms", "p99 ms",
            "p99/best peer", "deliv/CPU-s", "/best peer", "CPU", "RSS MiB",
            "notes")
    rows = [head]
    for run, servers in runs.items():
        p99 = {s: fig(rs, lat("p99_us")) for s, rs in servers.items()}
        eff = {s: fig(rs, per_cpu_s) for s, rs in servers.items()}
        peer_p99 = [p99[s] for s in PEERS if p99.get(s)]
        peer_eff = [eff[s] for s in PEERS if eff.get(s)]
        best_p99 = min(peer_p99) if peer_p99 else None
        best_eff = max(peer_eff) if peer_eff else None
        floor = servers.get("floor")
        for label, rounds in servers.items():
            p50 = fig(rounds, lat("p50_us"))
            notes = [extra(run, label, rounds), marks(rounds)]
            if floor and label != "floor":
                f50 = fig(floor, lat("p50_us"))
                f99 = fig(floor, lat("p99_us"))
                notes.append(f"floor x{num(ratio(p50, f50), '{:.2f}')} p50, "
                             f"x{num(ratio(p99[label], f99), '{:.2f}')} p99")
            cpu = fig(rounds, lambda r: r.get("server_cpu_s") / r["window_s"]
                      if r.get("server_cpu_s") is not None and r.get("window_s")
                      else None)
            rss = fig(rounds, lambda r: r.get("server_rss_kib"))
            rows.append((
                run, label, str(len(rounds)),
                num(fig(rounds, chat(lambda r: r.get("delivered_per_s")))),
                num(fig(rounds, chat(lambda r: r.get("lost")))),
                num(p50 and p50 / 1000, "{:.2f}"),
                num(p99[label] and p99[label] / 1000, "{:.2f}"),
                num(ratio(p99[label], best_p99), "{:.2f}")
                if label not in PEERS and label != "floor" else "",
                num(eff[label] and eff[label] / 1e6, "{:.2f}M"),
                num(ratio(eff[label], best_eff), "{:.2f}")
                if label not in PEERS and label != "floor" else "",
                num(cpu and 100 * cpu, "{:.0f}%"),
                num(rss and rss / 1024, "{:.1f}"),
                "; ".join(n for n in notes if n),
            ))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    for k, row in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
