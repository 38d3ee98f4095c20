#!/usr/bin/env python3
"""What each of the history table's indexes costs an append, in B9's
pattern: messages to many rooms at once, joined into one transaction per
linger (100 ms) as the store's thread joins them.

    taskset -c 0 python3 bench/store_indexes.py            # 200 rooms
    taskset -c 0 python3 bench/store_indexes.py --rooms 1  # B1's, B3's

Builds a fresh database per variant with the store's settings (WAL,
synchronous=NORMAL, an 8 MiB cache, a checkpoint every 16,384 pages) and
the history table as `src/store/schema.rs` leaves it, with some of its
indexes left out, then appends 60 s of B9 (8,330 messages a second, 833 a
transaction, each to a random room) and prints the CPU a row. Python's
sqlite3 adds its own cost a row (the "table + msgid only" line is most of
it), so the differences between lines are what the indexes cost; the
tracker's own figure is measured with `compare.py --history-cost`.
The schema here is a copy: when schema.rs changes, change it too.
"""
import argparse
import os
import random
import shutil
import sqlite3
import tempfile
import time

TABLE = """
CREATE TABLE history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    seq            INTEGER NOT NULL,
    msgid          TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    target         TEXT NOT NULL,
    command        TEXT NOT NULL,
    source         TEXT NOT NULL,
    sender         TEXT NOT NULL,
    sender_account TEXT,
    to_param       TEXT NOT NULL,
    text           TEXT NOT NULL,
    client_tags    TEXT NOT NULL DEFAULT ''
) STRICT;
"""
INDEXES = {
    "target_seq": "CREATE UNIQUE INDEX history_target_seq ON history(target, seq);",
    "msgid_target": "CREATE UNIQUE INDEX history_msgid_target ON history(msgid, target);",
    "target_time": "CREATE INDEX history_target_time ON history(target, at_ms);",
    "target_messages": "CREATE INDEX history_target_messages ON history(target, seq)"
                       " WHERE command IN ('PRIVMSG', 'NOTICE');",
}
VARIANTS = [
    ("all four (as built)", ["target_seq", "msgid_target", "target_time", "target_messages"]),
    ("without target_time", ["target_seq", "msgid_target", "target_messages"]),
    ("without target_messages", ["target_seq", "msgid_target", "target_time"]),
    ("without both", ["target_seq", "msgid_target"]),
    ("table + msgid only", ["msgid_target"]),
]
TEXT = "LG 12 3456 1234567890 " + "x" * 100


def append(indexes, rooms, per_tx, transactions):
    """CPU seconds and rows of one variant's appends."""
    folder = tempfile.mkdtemp()
    try:
        con = sqlite3.connect(os.path.join(folder, "store.db"), isolation_level=None)
        con.execute("PRAGMA journal_mode=wal")
        con.execute("PRAGMA synchronous=normal")
        con.execute("PRAGMA cache_size=-8192")
        con.execute("PRAGMA wal_autocheckpoint=16384")
        con.executescript(TABLE + "".join(INDEXES[i] for i in indexes))
        conflict = " ON CONFLICT(msgid, target) DO NOTHING" if "msgid_target" in indexes else ""
        insert = ("INSERT INTO history (seq, msgid, at_ms, target, command, source,"
                  " sender, to_param, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)" + conflict)
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
        for name, indexes in VARIANTS:
            cpu, n = append(indexes, a.rooms, a.per_transaction, a.transactions)
            print(f"{a.rooms} rooms, {a.per_transaction} a transaction, {name:24s}"
                  f" {1e6 * cpu / n:6.2f} us a row ({n} rows, {cpu:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
