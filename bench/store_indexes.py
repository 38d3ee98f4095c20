#!/usr/bin/env python3
"""What each of the history table's indexes costs an append, in B9's
pattern: messages to many rooms at once, joined into one transaction per
linger (100 ms) as the store's thread joins them.

    taskset -c 0 python3 bench/store_indexes.py            # 200 rooms
    taskset -c 0 python3 bench/store_indexes.py --rooms 1  # B1's, B3's

Builds a fresh database per variant with the store's settings (WAL,
synchronous=NORMAL, an 8 MiB cache, a checkpoint every 16,384 pages) and
its schema (every migration in `src/store/schema.rs`, run in order), drops
the indexes the variant leaves out (or adds one back), then appends 60 s of B9 (8,330 messages a second, 833 a
transaction, each to a random room) and prints the CPU a row. Python's
sqlite3 adds its own cost a row (the "table + msgid only" line is most of
it), so the differences between lines are what the indexes cost; the
tracker's own figure is measured with `compare.py --history-cost`.
"""
import argparse
import os
import random
import re
import shutil
import sqlite3
import tempfile
import time

SCHEMA_RS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src",
                         "store", "schema.rs")
INDEXES = ("history_msgid_target", "history_target_messages", "history_target_events")
# Dropped by migrations 4 (a time is found by a binary search over places)
# and 5 (an index of places per class of line, none of both): put back for
# the lines that show what they cost.
TARGET_TIME = "CREATE INDEX history_target_time ON history(target, at_ms)"
TARGET_SEQ = "CREATE UNIQUE INDEX history_target_seq ON history(target, seq)"


def migrations():
    """The store's migrations, the raw strings of schema.rs's MIGRATIONS."""
    with open(SCHEMA_RS, encoding="utf-8") as f:
        return re.findall(r'r#"(.*?)"#', f.read(), re.S)


# (name, indexes dropped, indexes added)
VARIANTS = [
    ("as in v3 (+ seq, time)", [], [TARGET_SEQ, TARGET_TIME]),
    ("as in v4 (+ seq)", [], [TARGET_SEQ]),
    ("as built (v5)", [], []),
    ("table + msgid only", ["history_target_messages", "history_target_events"], []),
]
TEXT = "LG 12 3456 1234567890 " + "x" * 100


def append(dropped, added, rooms, per_tx, transactions):
    """CPU seconds and rows of one variant's appends."""
    folder = tempfile.mkdtemp()
    try:
        con = sqlite3.connect(os.path.join(folder, "store.db"), isolation_level=None)
        con.execute("PRAGMA journal_mode=wal")
        con.execute("PRAGMA synchronous=normal")
        con.execute("PRAGMA cache_size=-8192")
        con.execute("PRAGMA wal_autocheckpoint=16384")
        for sql in migrations():
            con.executescript(sql)
        present = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'history'")}
        if present != set(INDEXES):
            raise SystemExit(f"schema.rs's history indexes are now {sorted(present)}:"
                             " update INDEXES and VARIANTS")
        for name in dropped:
            con.execute(f"DROP INDEX {name}")
        for sql in added:
            con.execute(sql)
        # As the store appends (src/store/history.rs).
        insert = ("INSERT INTO history (seq, msgid, at_ms, target, command, source,"
                  " sender, to_param, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                  " ON CONFLICT(msgid, target) DO NOTHING")
        rnd = random.Random(1)
        prefix = "%032x-" % rnd.getrandbits(128)
        seqs, n = [0] * rooms, 0
        started = time.process_time()
        for _ in range(transactions):
            rows = []
            for _ in range(per_tx):
                room = rnd.randrange(rooms)
                seqs[room] += 1
                n += 1
                rows.append((seqs[room], prefix + "%x" % n, 1_790_000_000_000 + n // 8,
                             "#room%d" % room, "PRIVMSG", "user%d!user@127.0.0.1" % (n % 100),
                             "user%d" % (n % 100), "#Room%d" % room, TEXT))
            con.execute("BEGIN")
            con.executemany(insert, rows)
            con.execute("COMMIT")
        cpu = time.process_time() - started
        con.close()
        return cpu, n
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=200)
    p.add_argument("--per-transaction", type=int, default=833)
    p.add_argument("--transactions", type=int, default=600)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    for _ in range(a.rounds):
        for name, dropped, added in VARIANTS:
            cpu, n = append(dropped, added, a.rooms, a.per_transaction, a.transactions)
            print(f"{a.rooms} rooms, {a.per_transaction} a transaction, {name:24s}"
                  f" {1e6 * cpu / n:6.2f} us a row ({n} rows, {cpu:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
