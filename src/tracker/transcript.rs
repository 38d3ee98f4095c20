//! `chat.log`: the conversation record, one event a line.
//!
//! Format (stable, documented in the README):
//! `<RFC 3339 UTC timestamp, ms> <event> <details>`; all text passes through
//! [`sanitize::for_display`] so the file holds no control characters.
//!
//! Lines are staged in memory by [`Transcript::record`] and reach the file in
//! one `write()` per hub batch ([`Transcript::commit`]); the hub delivers a
//! batch only after its commit succeeded, so anything a client saw is in the
//! kernel's page cache and survives a crash (even `kill -9`) of the tracker.
//! How far it must also reach the disk before delivery is the operator's
//! choice, [`LogSync`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::proto::sanitize;

/// How often the `periodic` policy flushes to disk.
pub const PERIODIC_SYNC: Duration = Duration::from_millis(100);

/// When `chat.log` reaches the disk, relative to delivery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogSync {
    /// Written (`write()`) before delivery; the kernel flushes it later.
    /// Nothing anyone saw is missing after a tracker crash or `kill -9`; a
    /// power loss or kernel crash can lose the last seconds.
    #[default]
    Write,
    /// Written before delivery, and flushed to disk (`fdatasync`) at most
    /// 100 ms later by a background thread: a power loss loses at most the
    /// last 100 ms, and delivery never waits for the disk.
    Periodic,
    /// Written and flushed to disk before delivery: nothing anyone saw is
    /// ever missing, at the cost of each batch waiting for the disk. Lines
    /// arriving during a flush form the next batch (a group commit), so a
    /// busy room pays one flush per batch, not per message.
    Fsync,
}

impl LogSync {
    pub const NAMES: &[&str] = &["write", "periodic", "fsync"];
}

impl fmt::Display for LogSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogSync::Write => "write",
            LogSync::Periodic => "periodic",
            LogSync::Fsync => "fsync",
        })
    }
}

impl FromStr for LogSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "write" => Ok(LogSync::Write),
            "periodic" => Ok(LogSync::Periodic),
            "fsync" => Ok(LogSync::Fsync),
            other => Err(format!(
                "unknown log-sync policy {other:?}; one of: {}",
                LogSync::NAMES.join(", ")
            )),
        }
    }
}

/// The `periodic` policy's flusher: a thread with its own handle on the
/// file, woken by commits. A thread rather than a task: `fdatasync` blocks,
/// and the hub must not wait for it. A channel of one slot: a wake-up
/// already pending covers every commit after it.
struct Flusher {
    wake: std_mpsc::SyncSender<()>,
}

impl Flusher {
    fn start(file: File, path: PathBuf) -> io::Result<Flusher> {
        let (wake, woken) = std_mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("chat.log flush".into())
            .spawn(move || {
                let mut last = Instant::now() - PERIODIC_SYNC;
                // Ends when the transcript (the sender) is dropped.
                while woken.recv().is_ok() {
                    let due = last + PERIODIC_SYNC;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    // Commits during the sleep are covered by this flush.
                    while woken.try_recv().is_ok() {}
                    last = Instant::now();
                    if let Err(e) = file.sync_data() {
                        tracing::error!("cannot flush {} to disk: {e}", path.display());
                    }
                }
            })?;
        Ok(Flusher { wake })
    }
}

/// The lock file beside `chat.log`: one tracker per log.
pub const LOCK_FILE: &str = "chat.log.lock";

/// An exclusive advisory lock (`flock`) on `chat.log.lock`, held for the
/// whole run so a second tracker started on the same log refuses to start
/// instead of interleaving its lines and claiming the first one crashed.
/// The kernel releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct LogLock {
    file: File,
    path: PathBuf,
}

#[derive(Debug, Error)]
pub enum LockError {
    #[error("another tracker ({owner}) is using {log}; stop it or use --log-dir")]
    Busy { owner: String, log: String },
    #[error("cannot lock {path}: {source}")]
    Io { path: String, source: io::Error },
}

impl LogLock {
    /// Takes the lock for `dir`'s `chat.log` (creating the folder, 0700, and
    /// the lock file, 0600), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<LogLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        crate::private::create_dir(dir).map_err(io_err)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        crate::private::set_private_mode(&mut options);
        let mut file = options.open(&path).map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => Ok(LogLock { file, path }),
            Err(fs::TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = Read::by_ref(&mut file).take(512).read_to_string(&mut owner);
                let owner = sanitize::for_display(owner.trim());
                Err(LockError::Busy {
                    owner: if owner.is_empty() {
                        "still starting".into()
                    } else {
                        owner
                    },
                    log: dir.join("chat.log").display().to_string(),
                })
            }
            Err(fs::TryLockError::Error(e)) => Err(io_err(e)),
        }
    }

    /// Writes who holds the lock, for the message a second tracker shows.
    pub fn record_owner(&mut self, listening: std::net::SocketAddr) -> io::Result<()> {
        let owner = format!("pid {}, listening on {listening}\n", std::process::id());
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(owner.as_bytes())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub struct Transcript {
    file: File,
    sync: LogSync,
    flusher: Option<Flusher>,
    path: PathBuf,
    /// Bytes known to be in the file: a failed write is cut back to this.
    len: u64,
    staged: String,
    /// Set when the previous run did not end with a `stop` line.
    pub previous_run_unclean: bool,
}

/// Formats a timestamp the way both `chat.log` and `server-time` use it.
pub fn timestamp(ts: jiff::Timestamp) -> String {
    format!("{ts:.3}")
}

impl Transcript {
    /// Opens (or creates, 0600 in a 0700 folder) `dir/chat.log`. The
    /// caller holds its [`LogLock`].
    pub fn open(dir: &Path, sync: LogSync) -> io::Result<Self> {
        crate::private::create_dir(dir)?;
        let path = dir.join("chat.log");
        let mut file = crate::private::open_append(&path)?;
        let len = file.metadata()?.len();
        let mut previous_run_unclean = false;
        let mut staged = String::new();
        if len > 0 {
            // Read the tail to see how the previous run ended.
            let tail_len = len.min(4096);
            file.seek(SeekFrom::Start(len - tail_len))?;
            let mut tail = Vec::with_capacity(tail_len as usize);
            Read::by_ref(&mut file)
                .take(tail_len)
                .read_to_end(&mut tail)?;
            if tail.last() != Some(&b'\n') {
                // A torn last line (power loss): end it so ours start clean.
                staged.push('\n');
            }
            let text = String::from_utf8_lossy(&tail);
            let last = text
                .trim_end_matches('\n')
                .rsplit('\n')
                .next()
                .unwrap_or("");
            previous_run_unclean = last.split(' ').nth(1) != Some("stop");
        }
        let flusher = match sync {
            LogSync::Periodic => Some(Flusher::start(file.try_clone()?, path.clone())?),
            _ => None,
        };
        Ok(Transcript {
            file,
            sync,
            flusher,
            path,
            len,
            staged,
            previous_run_unclean,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stages one event line; `details` is sanitized here.
    pub fn record(&mut self, ts: &str, event: &str, details: &str) {
        self.staged.push_str(ts);
        self.staged.push(' ');
        self.staged.push_str(event);
        if !details.is_empty() {
            self.staged.push(' ');
            self.staged.push_str(&sanitize::for_display(details));
        }
        self.staged.push('\n');
    }

    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    pub fn staged_len(&self) -> usize {
        self.staged.len()
    }

    /// Takes back staged lines (whole lines, by byte range).
    pub fn unstage(&mut self, range: std::ops::Range<usize>) {
        self.staged.replace_range(range, "");
    }

    /// Writes every staged line in one call (and flushes it to disk under
    /// `fsync`). On error nothing is left in the file of this attempt (a
    /// partial or unflushed write is cut off) and the lines stay staged for
    /// the next attempt; the caller must not deliver what they describe
    /// until one succeeds.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let written = self
            .file
            .write_all(self.staged.as_bytes())
            .and_then(|()| match self.sync {
                LogSync::Fsync => self.file.sync_data(),
                LogSync::Periodic => {
                    if let Some(f) = &self.flusher {
                        let _ = f.wake.try_send(());
                    }
                    Ok(())
                }
                LogSync::Write => Ok(()),
            });
        match written {
            Ok(()) => {
                self.len += self.staged.len() as u64;
                self.staged.clear();
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Commit and fsync: used for the closing line.
    pub fn sync(&mut self) -> io::Result<()> {
        self.commit()?;
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_detects_unclean_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        assert!(!t.previous_run_unclean);
        t.record("2026-01-01T00:00:00.000Z", "start", "listening on x");
        t.record(
            "2026-01-01T00:00:01.000Z",
            "msg",
            "#general <a> hi\x1b[2J there\n",
        );
        t.commit().unwrap();
        drop(t);
        let t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        assert!(t.previous_run_unclean, "no stop line: unclean");
        let mut t = t;
        t.record("2026-01-01T00:00:02.000Z", "stop", "bye");
        t.sync().unwrap();
        drop(t);
        assert!(
            !Transcript::open(dir.path(), LogSync::Write)
                .unwrap()
                .previous_run_unclean
        );
        let text = fs::read_to_string(dir.path().join("chat.log")).unwrap();
        assert_eq!(
            text,
            "2026-01-01T00:00:00.000Z start listening on x\n2026-01-01T00:00:01.000Z msg #general <a> hi there\n2026-01-01T00:00:02.000Z stop bye\n"
        );
    }

    #[test]
    fn every_policy_records_the_same_lines() {
        for sync in [LogSync::Write, LogSync::Periodic, LogSync::Fsync] {
            let dir = tempfile::tempdir().unwrap();
            let mut t = Transcript::open(dir.path(), sync).unwrap();
            for i in 0..3 {
                t.record("ts", "msg", &format!("#general <a> {i}"));
                t.commit().unwrap();
            }
            // Dropping the transcript ends the periodic flusher's thread.
            drop(t);
            assert_eq!(
                fs::read_to_string(dir.path().join("chat.log")).unwrap(),
                "ts msg #general <a> 0\nts msg #general <a> 1\nts msg #general <a> 2\n",
                "{sync}"
            );
        }
        for name in LogSync::NAMES {
            assert_eq!(name.parse::<LogSync>().unwrap().to_string(), *name);
        }
        assert!(
            "sometimes"
                .parse::<LogSync>()
                .unwrap_err()
                .contains("write, periodic, fsync")
        );
    }

    #[test]
    fn torn_last_line_is_terminated() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("chat.log"), "2026 msg half a li").unwrap();
        let mut t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        assert!(t.previous_run_unclean);
        t.record("ts", "start", "");
        t.commit().unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("chat.log")).unwrap(),
            "2026 msg half a li\nts start\n"
        );
    }

    #[test]
    fn timestamp_is_rfc3339_millis_utc() {
        let ts: jiff::Timestamp = "2026-11-21T04:30:00.123456Z".parse().unwrap();
        assert_eq!(timestamp(ts), "2026-11-21T04:30:00.123Z");
        let ts: jiff::Timestamp = "2026-11-21T04:30:00Z".parse().unwrap();
        assert_eq!(timestamp(ts), "2026-11-21T04:30:00.000Z");
    }
}
