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

use super::chain::{self, CHAIN_FILE, ChainWriter, Head, Record};
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

/// The log file's name in its folder.
pub const LOG_FILE: &str = "chat.log";

/// When `chat.log` is renamed aside and started anew (`--log-rotate`).
/// Rotation happens inside [`Transcript::commit`], before the batch that
/// would cross the line, so a batch is never split across files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogRotate {
    /// One file for ever.
    #[default]
    Never,
    /// Before the first batch of a new day (UTC, as the timestamps).
    Daily,
    /// Before a batch that would take the file past this many bytes (a
    /// bigger batch still goes whole into a file of its own).
    Size(u64),
}

impl fmt::Display for LogRotate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogRotate::Never => f.write_str("never"),
            LogRotate::Daily => f.write_str("daily"),
            LogRotate::Size(n) => write!(f, "size:{n}"),
        }
    }
}

impl FromStr for LogRotate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown log-rotate policy {s:?}; one of: never, daily, size:BYTES (e.g. size:10000000, size:64K, size:10M, size:1G)"
            )
        };
        match s {
            "never" => Ok(LogRotate::Never),
            "daily" => Ok(LogRotate::Daily),
            _ => {
                let size = s.strip_prefix("size:").ok_or_else(bad)?;
                let (digits, unit) = match size.char_indices().last() {
                    Some((i, 'K' | 'k')) => (&size[..i], 1u64 << 10),
                    Some((i, 'M' | 'm')) => (&size[..i], 1 << 20),
                    Some((i, 'G' | 'g')) => (&size[..i], 1 << 30),
                    _ => (size, 1),
                };
                let n: u64 = digits.parse().map_err(|_| bad())?;
                match n.checked_mul(unit) {
                    Some(bytes) if bytes > 0 => Ok(LogRotate::Size(bytes)),
                    _ => Err(format!(
                        "log-rotate {s:?}: the size must be at least 1 byte"
                    )),
                }
            }
        }
    }
}

impl Serialize for LogRotate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogRotate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The name a rotated `chat.log` gets: `chat.log.` and the UTC time of its
/// first line, `chat.log.2026-12-02T10-00-00.123Z` (`-` for `:`, which
/// some file systems and tools refuse). Fixed width, so the names sort
/// oldest first.
pub fn rotated_name(first_line: jiff::Timestamp) -> String {
    let t = first_line.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{LOG_FILE}.{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The time in a rotated file's name, `None` for any other name
/// (`chat.log.lock`, `chat.log.chain`, a copy someone made).
pub fn rotated_time(name: &str) -> Option<jiff::Timestamp> {
    let stamp = name.strip_prefix(LOG_FILE)?.strip_prefix('.')?;
    let b = stamp.as_bytes();
    if b.len() != 24 || b[13] != b'-' || b[16] != b'-' || b[10] != b'T' {
        return None;
    }
    let rfc = format!("{}:{}:{}", &stamp[..13], &stamp[14..16], &stamp[17..]);
    let t: jiff::Timestamp = rfc.parse().ok()?;
    (rotated_name(t) == name).then_some(t)
}

pub fn is_rotated_name(name: &str) -> bool {
    rotated_time(name).is_some()
}

/// The rotated files in `dir`, oldest first (by name).
pub fn rotated_files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(name) = name.to_str().filter(|n| is_rotated_name(n)) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

pub struct Transcript {
    dir: PathBuf,
    file: File,
    sync: LogSync,
    rotate: LogRotate,
    flusher: Option<Flusher>,
    path: PathBuf,
    /// Bytes known to be in the file: a failed write is cut back to this.
    len: u64,
    staged: String,
    chain: ChainWriter,
    /// The UTC day (`YYYY-MM-DD`) of the file's last line (daily rotation).
    day: Option<String>,
    /// When the file's first line was written (the rotated file's name).
    first_line: Option<jiff::Timestamp>,
    /// A rotation renamed the file but the new one is not open yet.
    reopen: bool,
    /// Set when the previous run did not end with a `stop` line.
    pub previous_run_unclean: bool,
    /// Lines that were in the log but not in its chain at open, chained
    /// then (written before the chain existed, or by a tracker that stopped
    /// between writing a batch and its chain record).
    pub adopted_lines: u64,
}

/// Formats a timestamp the way both `chat.log` and `server-time` use it.
pub fn timestamp(ts: jiff::Timestamp) -> String {
    format!("{ts:.3}")
}

/// The time at the start of a `chat.log` line, if it has one.
fn line_time(line: &[u8]) -> Option<jiff::Timestamp> {
    let end = line.iter().position(|b| *b == b' ')?;
    std::str::from_utf8(&line[..end]).ok()?.parse().ok()
}

/// The UTC day of a `chat.log` line (`2026-12-02`), if it starts with a
/// timestamp.
fn line_day(line: &[u8]) -> Option<String> {
    line_time(line)?;
    Some(String::from_utf8_lossy(&line[..10]).into_owned())
}

/// Where the chat.log records of the chain end (its length as the last
/// record saw it; 0 after a rotation or with no record).
fn covered_end(records: &[Record]) -> u64 {
    let mut end = 0;
    for r in records {
        match r {
            Record::Lines { end: e, .. } => end = *e,
            Record::Rotated { .. } => end = 0,
        }
    }
    end
}

/// Makes a folder's entries durable (a rename in it). Best effort: not
/// every file system can.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Transcript {
    /// Opens (or creates, 0600 in a 0700 folder) `dir/chat.log` and its
    /// chain, without rotation. The caller holds its [`LogLock`].
    pub fn open(dir: &Path, sync: LogSync) -> io::Result<Self> {
        Transcript::open_rotating(dir, sync, LogRotate::Never)
    }

    /// Opens `dir/chat.log` and `dir/chat.log.chain`; the caller holds the
    /// folder's [`LogLock`]. Repairs what a crash can leave: a rotation cut
    /// between its chain record and the rename is finished; a torn last
    /// line is ended; lines after the chain's last record are chained now
    /// (see `adopted_lines`). A chain file that is not one refuses the
    /// start: appending to it would hide what happened to it.
    pub fn open_rotating(dir: &Path, sync: LogSync, rotate: LogRotate) -> io::Result<Self> {
        crate::private::create_dir(dir)?;
        let path = dir.join(LOG_FILE);
        let chain_path = dir.join(CHAIN_FILE);
        let loaded = chain::load(&chain_path).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{e}; `tracker log --verify` tells what is wrong; move it aside to start a new chain"
                ),
            )
        })?;
        if let Some(l) = &loaded {
            finish_rotation(dir, &path, &l.records)?;
        }
        let mut file = crate::private::open_append(&path)?;
        let mut len = file.metadata()?.len();
        let mut previous_run_unclean = false;
        let mut day = None;
        let mut first_line = None;
        if len > 0 {
            let mut head = Vec::with_capacity(64);
            file.seek(SeekFrom::Start(0))?;
            Read::by_ref(&mut file).take(64).read_to_end(&mut head)?;
            first_line = line_time(&head);
            // Read the tail to see how the previous run ended.
            let tail_len = len.min(4096);
            file.seek(SeekFrom::Start(len - tail_len))?;
            let mut tail = Vec::with_capacity(tail_len as usize);
            Read::by_ref(&mut file)
                .take(tail_len)
                .read_to_end(&mut tail)?;
            if tail.last() != Some(&b'\n') {
                // A torn last line (crash, power loss): ended now, so ours
                // start clean and the chain sees whole lines.
                file.write_all(b"\n")?;
                len += 1;
                tail.push(b'\n');
            }
            let body = &tail[..tail.len() - 1];
            let last = body
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(body, |i| &body[i + 1..]);
            day = line_day(last);
            let text = String::from_utf8_lossy(last);
            previous_run_unclean = text.split(' ').nth(1) != Some("stop");
        }
        let mut chain = ChainWriter::open(&chain_path, loaded.as_ref())?;
        let mut adopted_lines = 0;
        if loaded.is_none() {
            // A new chain over files already there (the chain file was
            // removed): the rotated ones first, in order.
            for name in rotated_files(dir)? {
                let bytes = fs::read(dir.join(&name))?;
                adopted_lines += adopt(&mut chain, &bytes, bytes.len() as u64)?;
                chain.append(&Record::rotated(&chain.head(), &name))?;
            }
        }
        let covered = loaded.as_ref().map_or(0, |l| covered_end(&l.records));
        if len > covered {
            let mut tail = Vec::with_capacity((len - covered) as usize);
            file.seek(SeekFrom::Start(covered))?;
            Read::by_ref(&mut file)
                .take(len - covered)
                .read_to_end(&mut tail)?;
            adopted_lines += adopt(&mut chain, &tail, len)?;
        } else if len < covered {
            tracing::warn!(
                "{} is shorter than its chain says ({len} bytes, the chain recorded {covered}): lines were removed or lost with the disk cache; `tracker log --verify` tells which",
                path.display()
            );
        }
        if adopted_lines > 0 {
            tracing::warn!(
                "{adopted_lines} lines of {} were not in {CHAIN_FILE} (written before it existed, or the tracker stopped before recording them); chained now",
                dir.display()
            );
        }
        let flusher = match sync {
            LogSync::Periodic => Some(Flusher::start(file.try_clone()?, path.clone())?),
            _ => None,
        };
        Ok(Transcript {
            dir: dir.to_path_buf(),
            file,
            sync,
            rotate,
            flusher,
            path,
            len,
            staged: String::new(),
            chain,
            day,
            first_line,
            reopen: false,
            previous_run_unclean,
            adopted_lines,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chain's head after the last commit.
    pub fn chain_head(&self) -> Head {
        self.chain.head()
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
    /// `fsync`), then their chain record; first rotates the file if the
    /// batch is due in a new one. On error nothing is left in either file
    /// of this attempt (a partial or unflushed write is cut off) and the
    /// lines stay staged for the next attempt; the caller must not deliver
    /// what they describe until one succeeds.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        if self.reopen {
            self.reopen_file()?;
        }
        if self.rotation_due() {
            self.rotate()?;
        }
        let end = self.len + self.staged.len() as u64;
        let record = Record::lines(&self.chain.head(), false, self.staged.as_bytes(), end);
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
            })
            // A crash right here leaves lines without their record: the
            // next start chains them (`adopted_lines`).
            .and_then(|()| self.chain.append(&record).map(|_| ()));
        match written {
            Ok(()) => {
                self.len = end;
                let staged = self.staged.as_bytes();
                if self.first_line.is_none() {
                    self.first_line = line_time(staged);
                }
                // Every line of a batch carries the same time.
                self.day = line_day(staged);
                self.staged.clear();
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    fn rotation_due(&self) -> bool {
        if self.len == 0 {
            return false;
        }
        match self.rotate {
            LogRotate::Never => false,
            LogRotate::Size(max) => self.len + self.staged.len() as u64 > max,
            LogRotate::Daily => match (&self.day, line_day(self.staged.as_bytes())) {
                (Some(now), Some(next)) => *now != next,
                _ => false,
            },
        }
    }

    /// Renames `chat.log` to its rotated name and opens a new one. The
    /// chain's `r` record goes first: a crash before the rename leaves a
    /// record naming a file not there yet, and the next start finishes the
    /// rename ([`finish_rotation`]); a crash after it leaves no `chat.log`,
    /// which the next start creates. No line is in two files or none.
    fn rotate(&mut self) -> io::Result<()> {
        let mut first = self
            .first_line
            .or_else(|| line_time(self.staged.as_bytes()))
            .unwrap_or_else(jiff::Timestamp::now);
        let mut name = rotated_name(first);
        while self.dir.join(&name).exists() {
            first += jiff::SignedDuration::from_millis(1);
            name = rotated_name(first);
        }
        // What is renamed aside is on the disk before anything points at it.
        self.file.sync_data()?;
        let mark = self
            .chain
            .append(&Record::rotated(&self.chain.head(), &name))?;
        if let Err(e) = fs::rename(&self.path, self.dir.join(&name)) {
            self.chain.undo(mark);
            return Err(e);
        }
        sync_dir(&self.dir);
        tracing::info!("{} rotated to {name}", self.path.display());
        // Its thread flushes the old file once more and ends.
        self.flusher = None;
        self.day = None;
        self.first_line = None;
        self.reopen = true;
        self.reopen_file()
    }

    fn reopen_file(&mut self) -> io::Result<()> {
        let file = crate::private::open_append(&self.path)?;
        let len = file.metadata()?.len();
        if self.sync == LogSync::Periodic {
            self.flusher = Some(Flusher::start(file.try_clone()?, self.path.clone())?);
        }
        self.file = file;
        self.len = len;
        self.reopen = false;
        Ok(())
    }

    /// Commit and fsync (the log and its chain): used for the closing line.
    pub fn sync(&mut self) -> io::Result<()> {
        self.commit()?;
        self.file.sync_all()?;
        self.chain.sync()
    }
}

/// Chains `bytes` (whole lines found in a file, `end` its length after
/// them) as adopted; returns how many lines.
fn adopt(chain: &mut ChainWriter, bytes: &[u8], end: u64) -> io::Result<u64> {
    if bytes.is_empty() {
        return Ok(0);
    }
    let record = Record::lines(&chain.head(), true, bytes, end);
    chain.append(&record)?;
    Ok(bytes.split_inclusive(|b| *b == b'\n').count() as u64)
}

/// Finishes a rotation that a crash cut between its chain record and the
/// rename: the chain's last record renames `chat.log`, that name is not
/// there, and `chat.log` is as long as the chain says it was then.
fn finish_rotation(dir: &Path, log: &Path, records: &[Record]) -> io::Result<()> {
    let Some((Record::Rotated { name, .. }, before)) = records.split_last() else {
        return Ok(());
    };
    let target = dir.join(name);
    if target.exists() {
        return Ok(());
    }
    let Ok(meta) = fs::metadata(log) else {
        return Ok(());
    };
    if meta.len() == covered_end(before) && meta.len() > 0 {
        fs::rename(log, &target)?;
        sync_dir(dir);
        tracing::warn!(
            "finished a rotation the previous tracker started: {} renamed to {name}",
            log.display()
        );
    } else {
        tracing::warn!(
            "{CHAIN_FILE} says {} was renamed to {name}, which is missing; `tracker log --verify` tells more",
            log.display()
        );
    }
    Ok(())
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

    /// Every file of the folder, oldest first, joined.
    fn all_lines(dir: &Path) -> String {
        let mut names = rotated_files(dir).unwrap();
        names.push(LOG_FILE.into());
        names
            .iter()
            .map(|n| fs::read_to_string(dir.join(n)).unwrap_or_default())
            .collect()
    }

    #[test]
    fn size_rotation_keeps_batches_whole_and_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut t =
            Transcript::open_rotating(dir.path(), LogSync::Periodic, LogRotate::Size(100)).unwrap();
        let mut expected = String::new();
        for batch in 0..6 {
            let ts = format!("2026-12-02T10:00:0{batch}.000Z");
            for i in 0..2 {
                t.record(&ts, "msg", &format!("#general <a> batch {batch} line {i}"));
                expected.push_str(&format!("{ts} msg #general <a> batch {batch} line {i}\n"));
            }
            t.commit().unwrap();
        }
        drop(t);
        let names = rotated_files(dir.path()).unwrap();
        // 2 lines of 56 bytes a batch: one batch per file.
        assert_eq!(
            names,
            (0..5)
                .map(|b| format!("chat.log.2026-12-02T10-00-0{b}.000Z"))
                .collect::<Vec<_>>()
        );
        for name in &names {
            let text = fs::read_to_string(dir.path().join(name)).unwrap();
            assert_eq!(text.lines().count(), 2, "{name}: {text}");
        }
        assert_eq!(all_lines(dir.path()), expected);
        // The lock file and the chain are never taken for rotated logs.
        assert!(!is_rotated_name(LOCK_FILE) && !is_rotated_name(CHAIN_FILE));
        assert_eq!(
            rotated_time("chat.log.2026-12-02T10-00-05.000Z"),
            Some("2026-12-02T10:00:05Z".parse().unwrap())
        );
    }

    #[test]
    fn daily_rotation_at_the_first_line_of_a_new_day_and_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let mut t =
            Transcript::open_rotating(dir.path(), LogSync::Write, LogRotate::Daily).unwrap();
        for ts in [
            "2026-12-01T23:59:59.998Z",
            "2026-12-01T23:59:59.999Z",
            "2026-12-02T00:00:00.000Z",
            "2026-12-02T08:00:00.000Z",
        ] {
            t.record(ts, "msg", "#general <a> hi");
            t.commit().unwrap();
        }
        drop(t);
        assert_eq!(
            rotated_files(dir.path()).unwrap(),
            vec!["chat.log.2026-12-01T23-59-59.998Z"]
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(LOG_FILE))
                .unwrap()
                .lines()
                .count(),
            2
        );
        // Reopened, it knows the day of the last line.
        let mut t =
            Transcript::open_rotating(dir.path(), LogSync::Write, LogRotate::Daily).unwrap();
        t.record("2026-12-02T09:00:00.000Z", "start", "");
        t.commit().unwrap();
        assert_eq!(rotated_files(dir.path()).unwrap().len(), 1);
        t.record("2026-12-03T09:00:00.000Z", "msg", "#general <a> next day");
        t.commit().unwrap();
        // A second rotation whose name is taken moves on by a millisecond.
        fs::write(dir.path().join("chat.log.2026-12-03T09-00-00.000Z"), "").unwrap();
        t.rotate = LogRotate::Size(1);
        t.record("2026-12-03T09:00:01.000Z", "msg", "#general <a> more");
        t.commit().unwrap();
        assert_eq!(
            rotated_files(dir.path()).unwrap(),
            vec![
                "chat.log.2026-12-01T23-59-59.998Z",
                "chat.log.2026-12-02T00-00-00.000Z",
                "chat.log.2026-12-03T09-00-00.000Z",
                "chat.log.2026-12-03T09-00-00.001Z",
            ]
        );
        assert!(
            fs::read_to_string(dir.path().join("chat.log.2026-12-03T09-00-00.001Z"))
                .unwrap()
                .ends_with("next day\n")
        );
        for (policy, text) in [
            (LogRotate::Never, "never"),
            (LogRotate::Daily, "daily"),
            (LogRotate::Size(2048), "size:2048"),
        ] {
            assert_eq!(policy.to_string(), text);
            assert_eq!(text.parse::<LogRotate>().unwrap(), policy);
        }
        assert_eq!("size:10M".parse(), Ok(LogRotate::Size(10 << 20)));
        assert!("size:0".parse::<LogRotate>().is_err());
        assert!(
            "weekly"
                .parse::<LogRotate>()
                .unwrap_err()
                .contains("size:BYTES")
        );
    }

    #[test]
    fn a_rotation_cut_by_a_crash_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        t.record("2026-12-02T10:00:00.000Z", "msg", "#general <a> one");
        t.commit().unwrap();
        // The crash: the chain's rotation record is written, the rename is not.
        let name = rotated_name("2026-12-02T10:00:00Z".parse().unwrap());
        let record = Record::rotated(&t.chain_head(), &name);
        t.chain.append(&record).unwrap();
        drop(t);
        let mut t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        assert_eq!(rotated_files(dir.path()).unwrap(), vec![name.clone()]);
        assert_eq!(t.adopted_lines, 0);
        t.record("2026-12-02T10:00:01.000Z", "msg", "#general <a> two");
        t.commit().unwrap();
        assert_eq!(
            all_lines(dir.path()),
            "2026-12-02T10:00:00.000Z msg #general <a> one\n2026-12-02T10:00:01.000Z msg #general <a> two\n"
        );
        // A crash right after the rename: no chat.log, created at the start.
        let name2 = rotated_name("2026-12-02T10:00:01Z".parse().unwrap());
        t.chain
            .append(&Record::rotated(&t.chain_head(), &name2))
            .unwrap();
        fs::rename(dir.path().join(LOG_FILE), dir.path().join(&name2)).unwrap();
        drop(t);
        let t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        assert_eq!(t.adopted_lines, 0);
        assert_eq!(fs::read_to_string(dir.path().join(LOG_FILE)).unwrap(), "");
        assert_eq!(rotated_files(dir.path()).unwrap(), vec![name, name2]);
    }

    #[test]
    fn lines_after_the_last_chain_record_are_adopted_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        t.record("2026-12-02T10:00:00.000Z", "msg", "#general <a> chained");
        t.commit().unwrap();
        let head = t.chain_head();
        drop(t);
        assert_eq!(chain::last_head(dir.path()).unwrap(), Some(head));
        // A crash between the log write and the chain write, mid-line.
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(b"2026-12-02T10:00:01.000Z msg #general <a> unchained\n2026-12-02T10:00:01.000Z msg #gen")
            .unwrap();
        let t = Transcript::open(dir.path(), LogSync::Write).unwrap();
        assert_eq!(t.adopted_lines, 2);
        assert!(t.previous_run_unclean);
        assert_ne!(t.chain_head(), head);
        let chain = chain::load(&dir.path().join(CHAIN_FILE)).unwrap().unwrap();
        assert!(matches!(
            chain.records.last(),
            Some(Record::Lines { adopted: true, digests, .. }) if digests.len() == 2
        ));
        // A log from before the chain existed is adopted whole.
        let old = tempfile::tempdir().unwrap();
        fs::write(old.path().join(LOG_FILE), "a\nb\nc\n").unwrap();
        let t = Transcript::open(old.path(), LogSync::Write).unwrap();
        assert_eq!(t.adopted_lines, 3);
        // A damaged chain refuses the start.
        drop(t);
        fs::write(old.path().join(CHAIN_FILE), "not a chain\n").unwrap();
        let e = Transcript::open(old.path(), LogSync::Write).err().unwrap();
        assert!(e.to_string().contains("move it aside"), "{e}");
    }

    #[test]
    fn timestamp_is_rfc3339_millis_utc() {
        let ts: jiff::Timestamp = "2026-11-21T04:30:00.123456Z".parse().unwrap();
        assert_eq!(timestamp(ts), "2026-11-21T04:30:00.123Z");
        let ts: jiff::Timestamp = "2026-11-21T04:30:00Z".parse().unwrap();
        assert_eq!(timestamp(ts), "2026-11-21T04:30:00.000Z");
    }
}
