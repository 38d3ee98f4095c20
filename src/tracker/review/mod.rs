//! `tracker log`: reading `chat.log` after (or during) a session.
//!
//! - `format`: the line format, one parser per event (the one place that
//!   describes it).
//! - `filter`: `--room`, `--user`, `--dm`, `--since`, `--until`, `--grep`,
//!   `--event`.
//! - `stats`: `--stats`, per user, per room and per hour.
//! - `verify`: `--verify`, the hash chain checked against the files.
//! - here: which files make a log (rotated ones, oldest first, then
//!   `chat.log`), reading them, printing lines as text or JSON, and
//!   `--follow`.
//!
//! Nothing here writes to the log folder, and nothing needs the tracker's
//! lock: it reads what the one writer has committed (whole batches, in one
//! `write()` each).

pub mod filter;
pub mod format;
pub mod stats;
pub mod verify;

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Serialize;
use thiserror::Error;

use self::filter::{Filter, Matcher};
use self::format::{Entry, Fields, MessageTags, parse_line};
use super::transcript::{LOG_FILE, rotated_files};
use crate::proto::sanitize;

#[derive(Debug, Error)]
pub enum ReviewError {
    #[error("{0} does not exist")]
    Missing(String),
    #[error("no chat.log in {0} (give the log folder or a file: tracker log PATH, or --log-dir)")]
    NoLog(String),
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    /// Writing what was asked for failed (a closed pipe: `| head`).
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ReviewError + '_ {
    move |source| ReviewError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The files that make a log, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The log folder (a file's folder when a file was given).
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// The file a live tracker appends to (followed by `--follow`).
    pub live: PathBuf,
}

impl Source {
    /// `path` is a log folder (its rotated files, oldest first, then
    /// `chat.log`) or one file.
    pub fn find(path: &Path) -> Result<Source, ReviewError> {
        let meta = fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ReviewError::Missing(path.display().to_string()),
            _ => io_err(path)(e),
        })?;
        if !meta.is_dir() {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            return Ok(Source {
                dir,
                files: vec![path.to_path_buf()],
                live: path.to_path_buf(),
            });
        }
        let mut files: Vec<PathBuf> = rotated_files(path)
            .map_err(io_err(path))?
            .into_iter()
            .map(|n| path.join(n))
            .collect();
        let live = path.join(LOG_FILE);
        if live.exists() {
            files.push(live.clone());
        }
        if files.is_empty() {
            return Err(ReviewError::NoLog(path.display().to_string()));
        }
        Ok(Source {
            dir: path.to_path_buf(),
            files,
            live,
        })
    }
}

/// One line of a log file.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// The file, as given (for messages and `--json`'s `file`).
    pub file: String,
    /// 1-based, in its file.
    pub number: u64,
    pub raw: String,
    /// `None`: not a `chat.log` line (no timestamp and event).
    pub entry: Option<Entry>,
    /// The file ends in the middle of this line: the tracker stopped while
    /// writing it.
    pub cut: bool,
}

impl LogLine {
    pub fn new(file: &str, number: u64, bytes: &[u8], cut: bool) -> LogLine {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let raw = String::from_utf8_lossy(bytes).into_owned();
        LogLine {
            file: file.to_string(),
            number,
            entry: parse_line(&raw),
            raw,
            cut,
        }
    }
}

/// How lines are printed.
#[derive(Clone, Debug)]
pub struct Style {
    pub json: bool,
    /// Times as written (UTC, RFC 3339); otherwise in `tz`.
    pub utc: bool,
    pub tz: TimeZone,
}

/// `--json`: one object a line. The field names are stable and listed in
/// the README; empty ones are left out.
#[derive(Serialize)]
struct JsonLine<'a> {
    /// As written: RFC 3339, UTC, milliseconds (`null` for a line that is
    /// not a `chat.log` line).
    time: Option<&'a str>,
    event: Option<&'a str>,
    #[serde(flatten)]
    fields: &'a Fields,
    /// A message line's `msgid`, `source`, `account`, `to_account`.
    #[serde(flatten)]
    tags: &'a MessageTags,
    /// Everything after the event's name and a message line's tags (the
    /// whole line for a line that is not a `chat.log` line).
    detail: &'a str,
    file: &'a str,
    line: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cut: bool,
    /// The details do not have the event's shape.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    malformed: bool,
}

/// A note after a line that is not what it should be.
pub const CUT_NOTE: &str = "[cut off: the tracker stopped while writing this line]";
const FOREIGN_NOTE: &str = "[not a chat.log line]";

impl Style {
    /// A timestamp for people: as written with `--utc`, else local to the
    /// second (`2026-12-02 11:00:05`).
    pub fn time(&self, t: jiff::Timestamp, written: &str) -> String {
        if self.utc {
            written.to_string()
        } else {
            t.to_zoned(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        }
    }

    pub fn render(&self, l: &LogLine) -> String {
        if self.json {
            let json = match &l.entry {
                Some(e) => JsonLine {
                    time: Some(&e.stamp),
                    event: Some(&e.event),
                    fields: e.fields(),
                    tags: &e.tags,
                    detail: &e.detail,
                    file: &l.file,
                    line: l.number,
                    cut: l.cut,
                    malformed: e.fields.is_none(),
                },
                None => JsonLine {
                    time: None,
                    event: None,
                    fields: &Fields::default(),
                    tags: &MessageTags::default(),
                    detail: &l.raw,
                    file: &l.file,
                    line: l.number,
                    cut: l.cut,
                    malformed: true,
                },
            };
            return serde_json::to_string(&json)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        }
        // The tracker cleaned what it wrote; a file edited since may not be.
        let mut text = match &l.entry {
            Some(e) if e.detail.is_empty() => {
                format!("{} {}", self.time(e.time, &e.stamp), e.event)
            }
            Some(e) => format!(
                "{} {} {}",
                self.time(e.time, &e.stamp),
                e.event,
                sanitize::for_display(&e.detail)
            ),
            None => format!("{}  {FOREIGN_NOTE}", sanitize::for_display(&l.raw)),
        };
        if l.cut {
            text.push_str("  ");
            text.push_str(CUT_NOTE);
        }
        text
    }
}

/// What reading found, for the summary on stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Each file read and its number of lines.
    pub files: Vec<(String, u64)>,
    pub shown: u64,
    /// Where a line is cut off (`file`, line number).
    pub cut: Option<(String, u64)>,
    /// Lines that are not `chat.log` lines: how many, and the first.
    pub foreign: u64,
    pub first_foreign: Option<(String, u64)>,
}

impl Summary {
    /// The lines for stderr: which files were read, and what was odd.
    pub fn describe(&self) -> Vec<String> {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|(f, n)| format!("{f} ({n} {})", plural(*n, "line", "lines")))
            .collect();
        let mut out = vec![format!(
            "read {} {}: {}",
            self.files.len(),
            plural(self.files.len() as u64, "file", "files"),
            files.join(", ")
        )];
        if let Some((file, line)) = &self.cut {
            out.push(format!(
                "line {line} of {file} is cut off: the tracker stopped while writing it"
            ));
        }
        if let Some((file, line)) = &self.first_foreign {
            out.push(format!(
                "{} not in chat.log's format (the first: line {line} of {file})",
                match self.foreign {
                    1 => "1 line is".to_string(),
                    n => format!("{n} lines are"),
                }
            ));
        }
        out
    }
}

pub fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// Where reading stopped in the live file, for `--follow`.
pub struct Tail {
    path: PathBuf,
    shown: String,
    /// `None` until the file exists.
    file: Option<File>,
    id: (u64, u64),
    pos: u64,
    line: u64,
    partial: Vec<u8>,
}

/// Reads every file of `source` in order and hands each line to `each`.
/// With `keep_tail`, a last line without its newline in the live file is
/// not reported as cut (a live tracker may be writing it): the returned
/// [`Tail`] picks it up.
pub fn read(
    source: &Source,
    keep_tail: bool,
    summary: &mut Summary,
    each: &mut dyn FnMut(&LogLine) -> io::Result<()>,
) -> Result<Option<Tail>, ReviewError> {
    let mut tail = None;
    let last = source.files.len().saturating_sub(1);
    for (i, path) in source.files.iter().enumerate() {
        let shown = path.display().to_string();
        let mut file = File::open(path).map_err(io_err(path))?;
        let meta = file.metadata().map_err(io_err(path))?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes).map_err(io_err(path))?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        let hold = keep_tail && i == last && *path == source.live;
        let upto = if hold { complete } else { bytes.len() };
        let mut number = 0;
        for line in bytes[..upto].split_inclusive(|b| *b == b'\n') {
            number += 1;
            let cut = !line.ends_with(b"\n");
            let l = LogLine::new(&shown, number, line, cut);
            if cut {
                summary.cut = Some((shown.clone(), number));
            }
            if l.entry.is_none() {
                summary.foreign += 1;
                summary.first_foreign.get_or_insert((shown.clone(), number));
            }
            each(&l).map_err(ReviewError::Output)?;
        }
        summary.files.push((shown.clone(), number));
        if hold {
            tail = Some(Tail {
                path: path.clone(),
                shown,
                id: (meta.dev(), meta.ino()),
                file: Some(file),
                pos: complete as u64,
                line: number,
                partial: Vec::new(),
            });
        }
    }
    if keep_tail && tail.is_none() && !source.live.exists() {
        // Following a folder whose tracker has not written chat.log yet
        // (or is between a rotation's rename and the new file).
        tail = Some(Tail {
            shown: source.live.display().to_string(),
            path: source.live.clone(),
            file: None,
            id: (0, 0),
            pos: 0,
            line: 0,
            partial: Vec::new(),
        });
    }
    Ok(tail)
}

impl Tail {
    /// Lines written since the last look, whole lines only. When the file
    /// was rotated (renamed aside, a new one in its place), the rest of the
    /// old one comes first, then the new one from its start.
    pub fn poll(&mut self) -> io::Result<Vec<LogLine>> {
        let mut out = Vec::new();
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(file) => {
                    let meta = file.metadata()?;
                    self.id = (meta.dev(), meta.ino());
                    self.file = Some(file);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            }
        }
        self.drain(&mut out)?;
        let renamed = match fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.id,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if renamed {
            // Writes to the old file all came before the rename.
            self.drain(&mut out)?;
            if !self.partial.is_empty() {
                let rest = std::mem::take(&mut self.partial);
                self.line += 1;
                out.push(LogLine::new(&self.shown, self.line, &rest, true));
            }
            // Several rotations since the last look: the files between the
            // old one (found by its inode under its new name) and the new
            // `chat.log` are read whole.
            if let Some(dir) = self.path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                let names = rotated_files(dir)?;
                let old = names.iter().position(|n| {
                    fs::metadata(dir.join(n)).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
                });
                for name in old.map_or(&[][..], |i| &names[i + 1..]) {
                    let path = dir.join(name);
                    let bytes = fs::read(&path)?;
                    let shown = path.display().to_string();
                    for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
                        out.push(LogLine::new(
                            &shown,
                            i as u64 + 1,
                            line,
                            !line.ends_with(b"\n"),
                        ));
                    }
                }
            }
            let file = File::open(&self.path)?;
            let meta = file.metadata()?;
            self.file = Some(file);
            self.id = (meta.dev(), meta.ino());
            self.pos = 0;
            self.line = 0;
            self.drain(&mut out)?;
        }
        Ok(out)
    }

    fn drain(&mut self, out: &mut Vec<LogLine>) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.pos))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        self.pos += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let rest = self.partial.split_off(end + 1);
        for line in self.partial.split_inclusive(|b| *b == b'\n') {
            self.line += 1;
            out.push(LogLine::new(&self.shown, self.line, line, false));
        }
        self.partial = rest;
        Ok(())
    }
}

/// Prints `l` if it passes; says whether it did.
fn show(
    l: &LogLine,
    filter: &Filter,
    matcher: &mut Matcher,
    style: &Style,
    out: &mut dyn Write,
) -> io::Result<bool> {
    let pass = match &l.entry {
        Some(e) => matcher.matches(e),
        // Not a chat.log line: nothing to filter on.
        None => filter.is_empty(),
    };
    if pass {
        writeln!(out, "{}", style.render(l))?;
    }
    Ok(pass)
}

/// `tracker log` without `--stats` or `--verify`: prints the lines that
/// pass `filter`; with `follow`, then waits for new ones (looking every
/// `every`) until `stop` says so. Returns what was read.
pub fn print(
    source: &Source,
    filter: &Filter,
    style: &Style,
    follow: Option<(Duration, &dyn Fn() -> bool)>,
    out: &mut dyn Write,
    on_read: &mut dyn FnMut(&Summary),
) -> Result<Summary, ReviewError> {
    let mut matcher = Matcher::new(filter);
    let mut summary = Summary::default();
    let mut shown = 0;
    let tail = read(source, follow.is_some(), &mut summary, &mut |l| {
        if show(l, filter, &mut matcher, style, out)? {
            shown += 1;
        }
        Ok(())
    })?;
    summary.shown = shown;
    out.flush().map_err(ReviewError::Output)?;
    on_read(&summary);
    let (Some(mut tail), Some((every, stop))) = (tail, follow) else {
        return Ok(summary);
    };
    let live = tail.path.clone();
    while !stop() {
        let lines = tail.poll().map_err(io_err(&live))?;
        for l in &lines {
            if show(l, filter, &mut matcher, style, out).map_err(ReviewError::Output)? {
                summary.shown += 1;
            }
        }
        if !lines.is_empty() {
            out.flush().map_err(ReviewError::Output)?;
        }
        std::thread::sleep(every);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;

/// The start of the clock hour `t` is in, in `tz`.
pub fn hour_start(t: jiff::Timestamp, tz: &TimeZone) -> jiff::Timestamp {
    let z = t.to_zoned(tz.clone());
    z.with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .map(|z| z.timestamp())
        .unwrap_or(t)
}

/// `tracker log --stats`: the counts over the lines that pass `filter`.
pub fn stats(
    source: &Source,
    filter: &Filter,
    style: &Style,
    out: &mut dyn Write,
) -> Result<Summary, ReviewError> {
    let mut matcher = Matcher::new(filter);
    let mut counts = stats::Stats::default();
    let tz = if style.utc {
        TimeZone::UTC
    } else {
        style.tz.clone()
    };
    let mut summary = Summary::default();
    read(source, false, &mut summary, &mut |l| {
        if let Some(e) = &l.entry
            && matcher.matches(e)
        {
            counts.add(e, |t| hour_start(t, &tz));
        }
        Ok(())
    })?;
    let text = if style.json {
        counts.to_json(style) + "\n"
    } else {
        counts.to_text(style)
    };
    out.write_all(text.as_bytes())
        .map_err(ReviewError::Output)?;
    Ok(summary)
}
