#!/usr/bin/env python3
"""Splits B2's path through a server into steps, from a recording of its
CPU's system calls and context switches (`bench/b2_path.sh` makes it).

Usage: perf script -F pid,tid,comm,time,event,trace -i FILE | b2_path.py PID

For every fan-out (one of the server's threads sending to 50 or more
sockets within 3 ms), it walks back to the read that brought the message
in and prints the median, 10th and 90th percentile of each step, in
microseconds:

  wake to read      the reading thread's epoll_wait returning, to its read
                    of the line returning
  read to 1st send  everything between: parsing, handing over to another
                    thread (the tracker's hub), the chat logic, chat.log
  of it, hand-over  when another thread sends: the read returning to that
                    thread returning from its wait (futex)
  of it, log writes the sending thread's write() calls to files before its
                    first send, first to last (the tracker's chat.log and
                    its chain)
  fan-out           first send to last send of the burst
  per send          fan-out / (sends - 1)

Tracing every system call slows each one by a few microseconds, so the
figures are for comparing servers and steps under the same recording, not
for the latency the benchmark reports without it.
"""
import re
import statistics
import sys

NAMES = {0: "read", 1: "write", 20: "writev", 44: "sendto", 45: "recvfrom",
         46: "sendmsg", 47: "recvmsg", 202: "futex", 232: "epoll_wait",
         281: "epoll_pwait", 441: "epoll_pwait2"}
SOCKET_SENDS = {"sendto", "sendmsg", "writev"}
READS = {"read", "recvfrom", "recvmsg"}
WAITS = {"epoll_wait", "epoll_pwait", "epoll_pwait2"}
BURST_MIN = 50
BURST_SPAN_US = 3000
LOOK_BACK_US = 5000

# comm pid/tid time: event: fields
LINE = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+([\w:]+):\s*(.*)$")


def events(lines, pid):
    """(time us, tid, kind, syscall name, return value or fd)."""
    out = []
    for line in lines:
        m = LINE.match(line)
        if not m or m.group(2) != pid:
            continue
        _, _, tid, t, name, rest = m.groups()
        t = float(t) * 1e6
        if name.endswith("sys_enter"):
            g = re.search(r"NR (\d+) \((\w+)", rest)
            if g:
                fd = int(g.group(2), 16)
                out.append((t, tid, "enter", NAMES.get(int(g.group(1))), fd))
        elif name.endswith("sys_exit"):
            g = re.search(r"NR (\d+) = (-?\d+)", rest)
            if g:
                out.append((t, tid, "exit", NAMES.get(int(g.group(1))),
                            int(g.group(2))))
    out.sort(key=lambda e: e[0])
    return out


def send_calls(ev):
    """What the server sends with: sendto, sendmsg or writev when it uses
    any (its write() calls are then to files: the tracker's chat.log),
    else write() (ngircd)."""
    if any(e[3] in SOCKET_SENDS for e in ev):
        return SOCKET_SENDS
    return {"write"}


def bursts(ev, sends_with):
    """(index of the first send, thread, first, last, sends)."""
    found, i = [], 0
    while i < len(ev):
        t, tid, kind, name, _ = ev[i]
        if kind == "enter" and name in sends_with:
            sends, j = [], i
            while j < len(ev) and ev[j][0] - t < BURST_SPAN_US:
                e = ev[j]
                if e[1] == tid and e[2] == "enter" and e[3] in sends_with:
                    sends.append(e[0])
                j += 1
            if len(sends) >= BURST_MIN:
                found.append((i, tid, t, sends[-1], len(sends)))
                while i < len(ev) and ev[i][0] <= sends[-1]:
                    i += 1
                continue
        i += 1
    return found


def steps(ev, found, sends_with):
    got = {}

    def add(step, v):
        got.setdefault(step, []).append(v)

    for i, sender, first, last, n in found:
        read = wait = woke = log_in = log_out = None
        k = i - 1
        # The sender's own writes before its first send, back to the read.
        while k >= 0 and first - ev[k][0] < LOOK_BACK_US:
            t, tid, kind, name, val = ev[k]
            if read is None:
                if kind == "exit" and name in READS and val > 0:
                    read = (t, tid)
                elif tid == sender and name == "write" \
                        and "write" not in sends_with:
                    if kind == "enter":
                        log_in = t
                    elif log_out is None:
                        log_out = t
                elif tid == sender and kind == "exit" and name == "futex" \
                        and woke is None:
                    woke = t
            elif tid == read[1] and kind == "exit" and name in WAITS:
                wait = t
                break
            k -= 1
        if read is None or wait is None:
            continue
        add("wake to read", read[0] - wait)
        add("read to 1st send", first - read[0])
        if read[1] != sender and woke is not None and woke > read[0]:
            add("of it, hand-over", woke - read[0])
        if log_in is not None and log_out is not None:
            add("of it, log writes", log_out - log_in)
        add("fan-out", last - first)
        add("per send", (last - first) / max(n - 1, 1))
        add("sends", n)
    return got


def main():
    pid = sys.argv[1]
    ev = events(sys.stdin, pid)
    sends_with = send_calls(ev)
    found = bursts(ev, sends_with)
    got = steps(ev, found, sends_with)
    print(f"fan-outs {len(found)}, traced back to their read "
          f"{len(got.get('fan-out', []))}")
    print(f"{'step (us)':20s} {'p50':>8s} {'p10':>8s} {'p90':>8s}")
    for step, v in got.items():
        v = sorted(v)
        print(f"{step:20s} {statistics.median(v):8.1f} "
              f"{v[len(v) // 10]:8.1f} {v[9 * len(v) // 10]:8.1f}")


if __name__ == "__main__":
    main()
