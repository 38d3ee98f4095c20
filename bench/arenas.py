# Which thread allocates from which glibc arena, and each arena's size:
#   gdb -p PID -batch -x bench/arenas.py
# Needs glibc's debug symbols (Debian: libc6-dbg) for `thread_arena` and
# `main_arena`. Each thread allocates from its arena, so an arena that
# grows names the thread that keeps memory (BENCHMARKS.md, "Since the run").
import gdb

gdb.execute("set pagination off")
for t in gdb.selected_inferior().threads():
    t.switch()
    try:
        arena = str(gdb.parse_and_eval("thread_arena"))
    except gdb.error as e:
        arena = f"unknown ({e})"
    print("THREAD", t.name, t.ptid[1], arena)
first = gdb.parse_and_eval("&main_arena")
arena = first
for _ in range(256):
    print("ARENA", str(arena), int(arena["system_mem"]))
    arena = arena["next"]
    if int(arena) == int(first):
        break
