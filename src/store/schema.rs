//! The store's schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` holds how many migrations a file has had. Opening a
//! file applies the missing ones in one transaction each; a file from a
//! newer confab (more migrations than this build knows) is refused rather
//! than written with an older idea of its tables.
//!
//! A migration is only ever appended, never edited: files in the field have
//! run the old text.

use rusqlite::Connection;

use super::StoreError;

/// Every migration, oldest first. The index + 1 is the schema version it
/// brings a file to.
pub const MIGRATIONS: &[&str] = &[
    // 1: history, accounts, rooms, read markers.
    r#"
    -- What the tracker needs to remember across runs that is not a message:
    -- where the store caught up with chat.log, and similar single values.
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    -- Every stored message. `target` is the history it belongs to: a
    -- room's casefolded name (`#general`), or a direct conversation's key.
    -- `seq` is its place in that history, given by the hub (1, 2, 3... per
    -- target, the order everyone there saw); `at_ms` is server-time (Unix
    -- ms): shown, and used to find where a timestamp falls, but never to
    -- order (it repeats, and a clock stepped back would reorder). `id` is
    -- the store's own, never reused (AUTOINCREMENT).
    CREATE TABLE history (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        seq            INTEGER NOT NULL,
        msgid          TEXT NOT NULL UNIQUE,
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
    CREATE UNIQUE INDEX history_target_seq ON history(target, seq);
    CREATE INDEX history_target_time ON history(target, at_ms);

    -- For CHATHISTORY TARGETS: with whom each identity (account or
    -- casefolded nick) has a direct conversation, and when it last moved.
    CREATE TABLE correspondents (
        owner       TEXT NOT NULL,
        other       TEXT NOT NULL,
        other_shown TEXT NOT NULL,
        target      TEXT NOT NULL,
        last_ms     INTEGER NOT NULL,
        PRIMARY KEY (owner, other)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX correspondents_owner_time ON correspondents(owner, last_ms);

    CREATE TABLE accounts (
        name          TEXT PRIMARY KEY,  -- casefolded
        shown         TEXT NOT NULL,     -- as registered
        password_hash TEXT NOT NULL,     -- Argon2id PHC string
        created_ms    INTEGER NOT NULL,
        last_seen_ms  INTEGER
    ) STRICT, WITHOUT ROWID;

    -- Which rooms an account is in (to put it back at login) and when it
    -- first joined each: the point before which it may not read history.
    CREATE TABLE memberships (
        account         TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
        room            TEXT NOT NULL,
        -- The room's last `seq` when the account first joined: it reads
        -- only what came after.
        joined_after    INTEGER NOT NULL,
        member          INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (account, room)
    ) STRICT, WITHOUT ROWID;

    -- draft/read-marker: what an account has read, per target.
    CREATE TABLE read_markers (
        account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
        target  TEXT NOT NULL,
        read_ms INTEGER NOT NULL,
        PRIMARY KEY (account, target)
    ) STRICT, WITHOUT ROWID;

    -- Direct messages waiting for an account that was not connected.
    CREATE TABLE pending (
        account    TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
        history_id INTEGER NOT NULL REFERENCES history(id) ON DELETE CASCADE,
        PRIMARY KEY (account, history_id)
    ) STRICT, WITHOUT ROWID;

    -- Rooms whose founder has an account: they outlive a restart.
    CREATE TABLE rooms (
        name        TEXT PRIMARY KEY,    -- casefolded
        shown       TEXT NOT NULL,
        founder     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
        created_ms  INTEGER NOT NULL,
        topic       TEXT NOT NULL DEFAULT '',
        topic_by    TEXT NOT NULL DEFAULT '',
        topic_ms    INTEGER NOT NULL DEFAULT 0,
        modes       TEXT NOT NULL DEFAULT '',
        room_key    TEXT,
        user_limit  INTEGER
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE room_bans (
        room   TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        mask   TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_ms INTEGER NOT NULL,
        PRIMARY KEY (room, mask)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 2: room events beside the messages (draft/event-playback). One event
    // seen in several rooms (a QUIT, a NICK) is kept once in each, with
    // the one msgid everyone saw, so a msgid is unique within a history,
    // no longer overall. SQLite cannot drop a column's UNIQUE: the table
    // is copied into one without it, `pending` (the one table pointing
    // into it) with it, keeping every id and the AUTOINCREMENT counter.
    r#"
    CREATE TABLE history_v2 (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        seq            INTEGER NOT NULL,
        msgid          TEXT NOT NULL,
        at_ms          INTEGER NOT NULL,
        target         TEXT NOT NULL,
        -- PRIVMSG or NOTICE (a message); JOIN, PART, QUIT, KICK, NICK,
        -- TOPIC or MODE (an event in the room `target`).
        command        TEXT NOT NULL,
        source         TEXT NOT NULL,
        sender         TEXT NOT NULL,
        sender_account TEXT,
        -- A message: its target parameter and its text. An event: the room
        -- as shown, and its parameters as they go on the wire
        -- (`#lab bob :too loud` for a KICK).
        to_param       TEXT NOT NULL,
        text           TEXT NOT NULL,
        client_tags    TEXT NOT NULL DEFAULT ''
    ) STRICT;
    INSERT INTO history_v2 SELECT id, seq, msgid, at_ms, target, command, source, sender,
        sender_account, to_param, text, client_tags FROM history;
    DELETE FROM sqlite_sequence WHERE name = 'history_v2';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'history_v2', seq FROM sqlite_sequence WHERE name = 'history';

    CREATE TABLE pending_v2 (
        account    TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
        history_id INTEGER NOT NULL REFERENCES history_v2(id) ON DELETE CASCADE,
        PRIMARY KEY (account, history_id)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO pending_v2 SELECT account, history_id FROM pending;
    DROP TABLE pending;
    DROP TABLE history;
    -- Renaming carries pending_v2's reference along to the new name.
    ALTER TABLE history_v2 RENAME TO history;
    ALTER TABLE pending_v2 RENAME TO pending;

    CREATE UNIQUE INDEX history_target_seq ON history(target, seq);
    CREATE UNIQUE INDEX history_msgid_target ON history(msgid, target);
    CREATE INDEX history_target_time ON history(target, at_ms);
    -- The messages alone, for readers without draft/event-playback and the
    -- "while you were away" counts: a page of them never walks past the
    -- events of a join storm. The condition is written exactly so in
    -- every query meant to use it (SQLite matches it by its text).
    CREATE INDEX history_target_messages ON history(target, seq)
        WHERE command IN ('PRIVMSG', 'NOTICE');
    "#,
    // 3: where an account had reached in each room when it last left, so
    // what it missed starts at a place, not a time (a line of the same
    // millisecond may come after the leave).
    r#"
    ALTER TABLE memberships ADD COLUMN seen_seq INTEGER;
    "#,
    // 4: a time is found by a binary search over a history's places, not
    // by an index of its own: keeping `history_target_time` was a third
    // of what an append cost (`bench/store_indexes.py`), paid by every
    // message for the rare `CHATHISTORY timestamp=` and read marker. The
    // search needs a history's times in the order of its places, which
    // holds unless the clock stepped back while it was written. The
    // histories where it does not hold are listed in `history_unordered`
    // and searched the old way, by a scan of that one history
    // (`Store::append` adds to the list as it writes).
    r#"
    DROP INDEX history_target_time;
    CREATE TABLE history_unordered (
        target TEXT PRIMARY KEY
    ) STRICT, WITHOUT ROWID;
    INSERT INTO history_unordered
        SELECT DISTINCT target FROM (
            SELECT target, at_ms < lag(at_ms) OVER (PARTITION BY target ORDER BY seq) AS back
            FROM history)
        WHERE back;
    "#,
    // 5: one index of places per class of line, none of both: messages in
    // `history_target_messages` (as before), events in
    // `history_target_events`. `history_target_seq` held both, so every
    // message was indexed by place twice; it was a third of what an
    // append cost once the time index had gone (`bench/store_indexes.py`).
    // A read of all lines reads the two and merges them by place. That a
    // place is taken once is no longer the index's to keep: `Store::append`
    // checks it (a line after the history's last place cannot clash).
    r#"
    DROP INDEX history_target_seq;
    CREATE INDEX history_target_events ON history(target, seq)
        WHERE command NOT IN ('PRIVMSG', 'NOTICE');
    "#,
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings `conn` to [`VERSION`], one transaction per migration.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::TooNew {
            found,
            known: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
        // Migrations write the same pages over and over (a new file's
        // five left a 149 KiB log for an 80 KiB file): each goes into the
        // file before the next, so a fresh data folder is small, and a
        // disk near full (or a file size limit) is met by the chat, not
        // by the first start.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(found)
}
