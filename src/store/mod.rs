//! The embedded store: accounts, message history, read markers, registered
//! rooms, and direct messages waiting for an offline account, in one SQLite
//! file (`store.db` in the tracker's data folder).
//!
//! [`Store`] is the synchronous API over one connection, tested without a
//! tracker. The tracker reaches it only through [`StoreHandle`]: the store
//! runs on its own thread, so the hub hands it writes and questions and
//! never waits on the disk (`thread`).
//!
//! The file: WAL journal (readers never wait for the writer, and a crash
//! loses at most the transaction being written), `synchronous=NORMAL`
//! (a committed transaction survives a crash of the tracker; a power loss
//! may lose the last ones, which the repair from `chat.log` restores),
//! foreign keys on, and the schema versioned in `PRAGMA user_version`
//! (`schema`).

mod accounts;
mod comeback;
mod history;
pub mod schema;
mod thread;

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

pub use accounts::{Account, RegisteredRoom, RoomBan};
pub use comeback::{LoginView, Unread};
pub use history::{
    Correspondent, DirectParties, HistoryQuery, Lines, NewMessage, PURGE_CHUNK, PURGED_BEFORE,
    ReadableRoom, Selector, StoredMessage, TargetActivity, dm_key, is_message,
};
pub use thread::{StoreHandle, StoreStats};

/// The store's file name inside the data folder.
pub const FILE_NAME: &str = "store.db";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the store has schema version {found}, newer than this tracker knows ({known}); \
         run the confab that wrote it, or restore a backup"
    )]
    TooNew { found: u32, known: u32 },
    #[error("the place {seq} in the history {target:?} is taken")]
    PlaceTaken { target: String, seq: i64 },
    #[error("no stored message has msgid {0:?} in this history")]
    UnknownMsgid(String),
    #[error("the account {0:?} exists already")]
    AccountExists(String),
    #[error("no account {0:?}")]
    NoSuchAccount(String),
    #[error("the store's thread has stopped")]
    Stopped,
    #[error("there is no store at {0}")]
    Missing(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Creates `path` as an empty 0600 file if it does not exist.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    crate::private::set_private_mode(&mut options);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(path.display().to_string(), e)),
    }
}

impl StoreError {
    /// True when the disk, not the request, is at fault (full, read-only,
    /// corrupt): the user affected is told their message was not stored.
    pub fn is_disk_fault(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                DiskFull
                    | ReadOnly
                    | DatabaseCorrupt
                    | NotADatabase
                    | SystemIoFailure
                    | CannotOpen
                    | DatabaseBusy
                    | DatabaseLocked
            ),
            StoreError::Stopped => true,
            _ => false,
        }
    }
}

/// Pages of write-ahead log (4 KiB each: 64 MiB) after which a commit
/// copies them back into `store.db` (SQLite's default is 1,000). Each
/// commit writes every page it touched to the log, the hot ones (the right
/// edge of each room's indexes) every time; a checkpoint copies each page
/// once, however often it was logged. With the default, B9 (200 rooms,
/// 8,333 messages a second) checkpointed at nearly every commit: the
/// checkpoint was 7.4% of the tracker's CPU. At 16,384 pages, B9's p99
/// went from 52.7 to 47.1 ms (medians of 3; 4,096 pages: 50.6 ms).
/// The log is emptied when everyone has left (`release_memory`).
pub const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// One connection to the store file, synchronous. Owned by the store's
/// thread in the tracker; tests and `tracker backup` use it directly.
pub struct Store {
    conn: Connection,
    /// Appends give the CPU to others every this many rows (0: never);
    /// see [`Store::yield_every`].
    yield_rows: usize,
    /// The last place and time appended to each history, so an append
    /// sees whether its time went back (`history_unordered`) without a
    /// look-up per row. Only this thread writes history, so it stays true;
    /// a purge or a deleted account can leave an entry naming a row gone,
    /// which at worst lists a history as unordered (searched by a scan).
    last_place: HashMap<String, (i64, i64)>,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema
    /// up to date. Returns the store and the schema version it had.
    pub fn open(path: &Path) -> Result<(Store, u32), StoreError> {
        // It holds password hashes and direct messages: created 0600 (SQLite
        // gives its -wal and -shm files the same mode).
        create_private(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Store::configure(conn)
    }

    /// Opens an existing store, never creating one (`tracker backup`).
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        Ok(Store::open(path)?.0)
    }

    /// A store in memory, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        Ok(Store::configure(Connection::open_in_memory()?)?.0)
    }

    fn configure(mut conn: Connection) -> Result<(Store, u32), StoreError> {
        // WAL: readers (backup, `tracker log`-style tools) never block the
        // writer. NORMAL: in WAL mode a commit is durable against a process
        // crash; the periodic checkpoint syncs it.
        conn.pragma_update_and_check(None, "journal_mode", "wal", |_| Ok(()))?;
        conn.pragma_update(None, "synchronous", "normal")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // 8 MiB of page cache (the default is 2). Appends touch the right
        // edges of the indexes, so a bigger cache bought nothing:
        // `examples/store_growth` wrote a million messages at 82,000 a
        // second with 8 MiB and 78,000 with 32. And it is memory the
        // tracker holds once filled, as long as anyone is connected: at 100 messages a second,
        // 32 MiB took 14 minutes to fill, which read as RSS growth through
        // most of a soak (bench/PAST_RESULTS.md, "The soak's memory: found and
        // fixed"). It is dropped when everyone has left (`release_memory`).
        conn.pragma_update(None, "cache_size", -8192)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        // A backup or a second reader holding the file briefly must not
        // fail a write outright.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let was = schema::migrate(&mut conn)?;
        Ok((
            Store {
                conn,
                yield_rows: 0,
                last_place: HashMap::new(),
            },
            was,
        ))
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Moves everything in the write-ahead log into `store.db` and empties
    /// the log, so the file's size is the store's (the size measurement
    /// in `examples/store_growth.rs`; SQLite does it by itself every
    /// 1000 pages otherwise).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Gives the page cache back (SQLite's `shrink_memory`), for when the
    /// tracker goes quiet: the cache fills again as it is used, and held
    /// for good it was up to 8 MiB of what a tracker kept once everyone
    /// had left (BENCHMARKS.md, B4). Empties the write-ahead log too (up
    /// to [`WAL_CHECKPOINT_PAGES`] pages after a busy spell), so a quiet
    /// tracker's store is one file of its real size.
    pub fn release_memory(&self) -> Result<(), StoreError> {
        self.checkpoint()?;
        self.conn.execute_batch("PRAGMA shrink_memory")?;
        Ok(())
    }

    /// Bytes the page cache holds now.
    #[cfg(test)]
    fn cache_used(&self) -> i64 {
        let (mut now, mut high) = (0, 0);
        // SAFETY: the connection's own handle, valid while `self` lives;
        // the two outputs are plain ints this frame owns.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                self.conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
                &mut now,
                &mut high,
                0,
            )
        };
        assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
        i64::from(now)
    }

    /// Copies the whole store to `dest` while others keep writing (SQLite's
    /// online backup). The copy is a consistent snapshot: every transaction
    /// committed before the copy started, and nothing half-written. `dest`
    /// must not exist; it is made 0600, like the store.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        crate::private::set_private_mode(&mut options);
        options
            .open(dest)
            .map_err(|e| StoreError::Io(dest.display().to_string(), e))?;
        let mut out = Connection::open(dest)?;
        let backup = rusqlite::backup::Backup::new(&self.conn, &mut out)?;
        // All pages in one step, inside one read transaction: in WAL mode
        // the tracker keeps writing meanwhile, and a step-by-step copy would
        // restart at every write of a busy tracker and never finish.
        backup.run_to_completion(i32::MAX, std::time::Duration::ZERO, None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_playback;
#[cfg(test)]
mod tests_times;
