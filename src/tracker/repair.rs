//! Refilling the store from `chat.log` at start.
//!
//! `chat.log` is the commit point: a batch's lines are written before
//! anything in it is delivered, and its messages go to the store only
//! after that (`hub::HistorySink::keep`), on the store's own thread. A
//! crash (kill -9, power loss) between the two leaves messages that people
//! saw in `chat.log` and not in the store. At the next start, before the
//! hub numbers anything, [`refill`] puts back every message line written
//! after the store's newest message.
//!
//! Each message line carries what the store needs beyond what it shows
//! (`review::format::MessageTags`: the msgid, the full source, the
//! accounts); its place (`seq`) in its room or DM is recomputed, in order,
//! from the store's last one there, which is the number the hub gave it:
//! the store keeps messages in the order the hub committed them, so what is
//! missing is always the end. Lines from before confab logged the tags
//! cannot be placed; they are counted and skipped, and the count is said.
//!
//! Where to start: the store's newest message's msgid, searched for from
//! the end of the newest file back (after a clean stop it is the last
//! message line, so a start reads a few lines). When no file has it (the
//! files were rotated away, or it was written before the tags), every
//! message line from its millisecond on is offered; one the store already
//! holds is recognised by its msgid and left alone. An empty store takes
//! every message line of every file.
//!
//! What a refilled message cannot have: formatting codes (colours, bold),
//! which `chat.log` never holds, and the `+client` tags, which the store
//! does not keep yet for any message.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::review::format::{Entry, Event, parse_line};
use super::review::{ReviewError, Source};
use crate::proto::nick::casefold;
use crate::store::{DirectParties, NewMessage, Store, StoreError, dm_key};

/// Messages appended per transaction while refilling.
const REFILL_BATCH: usize = 10_000;
/// How much of a file is read at a time when searching it from the end.
const CHUNK: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum RepairError {
    #[error("cannot read chat.log: {0}")]
    Log(#[from] ReviewError),
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("cannot refill the store: {0}")]
    Store(#[from] StoreError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RepairError + '_ {
    move |source| RepairError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where the refill started reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// No log yet: nothing to do.
    #[default]
    NoLog,
    /// The store held no message: every message line of every file.
    Everything,
    /// After the line of the store's newest message (file, 1-based line).
    AfterLine(PathBuf, u64),
    /// The store's newest message is in no file: every message line from
    /// its millisecond on.
    FromTime(jiff::Timestamp),
}

/// What the refill did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refill {
    pub start: Start,
    /// Messages put back into the store.
    pub refilled: u64,
    /// Message lines the store already held (same msgid).
    pub already: u64,
    /// Message lines without a msgid (written before chat.log carried
    /// them): they cannot be placed.
    pub untagged: u64,
    /// Message lines whose details do not read (a line cut short by a
    /// crash in the middle of a write, whose batch was never delivered; or
    /// an edited one).
    pub unreadable: u64,
}

impl Refill {
    /// What to tell the operator and `chat.log` (`repair` line), when there
    /// is anything to tell: the store was behind, or lines were skipped.
    pub fn describe(&self) -> Option<String> {
        if self.refilled == 0 && self.untagged == 0 && self.unreadable == 0 {
            return None;
        }
        let mut text = format!(
            "history: {} {} refilled from chat.log into the store",
            self.refilled,
            plural(self.refilled, "message", "messages")
        );
        if self.untagged > 0 {
            text.push_str(&format!(
                "; {} message {} without a msgid skipped (written before chat.log carried msgids)",
                self.untagged,
                plural(self.untagged, "line", "lines")
            ));
        }
        if self.unreadable > 0 {
            text.push_str(&format!(
                "; {} unreadable message {} skipped",
                self.unreadable,
                plural(self.unreadable, "line", "lines")
            ));
        }
        Some(text)
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// Why a message line cannot be put back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unplaceable {
    /// No msgid or source in the line.
    Untagged,
    /// The details do not have the event's shape.
    Unreadable,
}

/// The store's message for a `chat.log` message line, as the hub kept it
/// (`hub/history.rs`), with `seq` 0: its place is given in order by the
/// caller. `None` for a line that is not a message.
pub fn message_of(entry: &Entry) -> Option<Result<NewMessage, Unplaceable>> {
    let kind = entry.kind?;
    if !kind.is_room_message() && !kind.is_dm() {
        return None;
    }
    let Some(fields) = &entry.fields else {
        return Some(Err(Unplaceable::Unreadable));
    };
    let (Some(msgid), Some(source)) = (&entry.tags.msgid, &entry.tags.source) else {
        return Some(Err(Unplaceable::Untagged));
    };
    let (Some(sender), Some(said)) = (&fields.user, &fields.text) else {
        return Some(Err(Unplaceable::Unreadable));
    };
    let command = match kind {
        Event::Notice | Event::DmNotice => "NOTICE",
        _ => "PRIVMSG",
    };
    let text = match kind {
        Event::Action | Event::DmAction => format!("\x01ACTION {said}\x01"),
        _ => said.clone(),
    };
    let (target, to_param, direct) = if kind.is_dm() {
        let Some(to) = &fields.target else {
            return Some(Err(Unplaceable::Unreadable));
        };
        let identity = |nick: &str, account: &Option<String>| match account {
            Some(a) => casefold(a),
            None => format!("~{}", casefold(nick)),
        };
        let parties = DirectParties {
            from: identity(sender, &entry.tags.account),
            from_shown: sender.clone(),
            to: identity(to, &entry.tags.to_account),
            to_shown: to.clone(),
        };
        (
            dm_key(&parties.from, &parties.to),
            to.clone(),
            Some(parties),
        )
    } else {
        let Some(room) = &fields.room else {
            return Some(Err(Unplaceable::Unreadable));
        };
        (casefold(room), room.clone(), None)
    };
    Some(Ok(NewMessage {
        seq: entry
            .tags
            .seq
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        msgid: msgid.clone(),
        at_ms: entry.time.as_millisecond(),
        target,
        command: command.to_string(),
        source: source.clone(),
        sender_account: entry.tags.account.as_deref().map(casefold),
        to_param,
        text,
        client_tags: String::new(),
        direct,
        hold_for: None,
    }))
}

/// Puts back into `store` every message line of the log in `log_dir`
/// written after the store's newest message (see the module's notes).
pub fn refill(store: &mut Store, log_dir: &Path) -> Result<Refill, RepairError> {
    let source = match Source::find(log_dir) {
        Ok(s) => s,
        Err(ReviewError::Missing(_) | ReviewError::NoLog(_)) => return Ok(Refill::default()),
        Err(e) => return Err(e.into()),
    };
    let mut refill = Refill::default();
    // Where to read from (index of the file, byte offset in it), and the
    // oldest time to take a line from.
    let (from, floor) = match store.last_kept()? {
        None => {
            refill.start = Start::Everything;
            ((0, 0), None)
        }
        Some((msgid, at_ms)) => match find_message(&source.files, &msgid)? {
            Some((file, offset, line)) => {
                refill.start = Start::AfterLine(source.files[file].clone(), line);
                ((file, offset), None)
            }
            None => {
                let at =
                    jiff::Timestamp::from_millisecond(at_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                refill.start = Start::FromTime(at);
                ((0, 0), Some(at_ms))
            }
        },
    };
    let mut seqs: HashMap<String, i64> = store.last_seqs()?.into_iter().collect();
    let mut batch = Vec::new();
    for (i, path) in source.files.iter().enumerate().skip(from.0) {
        let offset = if i == from.0 { from.1 } else { 0 };
        let bytes = read_from(path, offset)?;
        for line in bytes.split(|b| *b == b'\n') {
            let text = String::from_utf8_lossy(line);
            let Some(entry) = parse_line(&text) else {
                continue;
            };
            let at_ms = entry.time.as_millisecond();
            if floor.is_some_and(|f| at_ms < f) {
                continue;
            }
            let message = match message_of(&entry) {
                None => continue,
                Some(Ok(m)) => m,
                // A line of the store's newest millisecond may be that
                // message itself: only later ones are known to be missing.
                Some(Err(_)) if floor == Some(at_ms) => continue,
                Some(Err(Unplaceable::Untagged)) => {
                    refill.untagged += 1;
                    continue;
                }
                Some(Err(Unplaceable::Unreadable)) => {
                    refill.unreadable += 1;
                    continue;
                }
            };
            if store.has_msgid(&message.msgid)? {
                refill.already += 1;
                continue;
            }
            // The place the hub gave it when the line says (room events
            // between messages took places too, and are not refilled),
            // else the next one.
            let seq = seqs.entry(message.target.clone()).or_insert(0);
            *seq = if message.seq > *seq {
                message.seq
            } else {
                *seq + 1
            };
            batch.push(NewMessage {
                seq: *seq,
                ..message
            });
            if batch.len() >= REFILL_BATCH {
                refill.refilled += store.append(&batch)? as u64;
                batch.clear();
            }
        }
    }
    refill.refilled += store.append(&batch)? as u64;
    Ok(refill)
}

/// The file bytes from `offset` to the end.
fn read_from(path: &Path, offset: u64) -> Result<Vec<u8>, RepairError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    Ok(bytes)
}

/// The line that carries `msgid` in its tags, searched from the end of
/// the newest file back: (file index, byte offset just after that line,
/// its line number). A text that quotes the msgid is not its line: only
/// the line's own tags count.
fn find_message(files: &[PathBuf], msgid: &str) -> Result<Option<(usize, u64, u64)>, RepairError> {
    let needle = format!("@msgid={msgid}");
    for (i, path) in files.iter().enumerate().rev() {
        let found = find_line_backward(path, |line| {
            contains(line, needle.as_bytes())
                && parse_line(&String::from_utf8_lossy(line))
                    .is_some_and(|e| e.tags.msgid.as_deref() == Some(msgid))
        })
        .map_err(io_err(path))?;
        if let Some(after) = found {
            let line = count_lines(path, after).map_err(io_err(path))?;
            return Ok(Some((i, after, line)));
        }
    }
    Ok(None)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How many lines end at or before `offset` (the line number of the line
/// that ends there).
fn count_lines(path: &Path, offset: u64) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut left = offset;
    let mut buf = vec![0; CHUNK as usize];
    let mut lines = 0;
    while left > 0 {
        let n = file.read(&mut buf[..left.min(CHUNK) as usize])?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        left -= n as u64;
    }
    // A last line without its newline is a line too.
    Ok(lines.max(1))
}

/// Reads `path` from its end, a chunk at a time, and hands each line (no
/// newline) to `hit`, last line first, until it says yes. Returns the
/// offset just after that line (after its newline, when it has one).
fn find_line_backward(path: &Path, hit: impl FnMut(&[u8]) -> bool) -> io::Result<Option<u64>> {
    find_line_backward_by(path, CHUNK, hit)
}

fn find_line_backward_by(
    path: &Path,
    chunk: u64,
    mut hit: impl FnMut(&[u8]) -> bool,
) -> io::Result<Option<u64>> {
    let mut file = File::open(path)?;
    let mut end = file.metadata()?.len();
    // A line (and its newline) whose beginning is in an earlier chunk.
    let mut carried: Vec<u8> = Vec::new();
    loop {
        let start = end.saturating_sub(chunk);
        let mut buf = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&carried);
        // buf holds the file's bytes from `start`; lines are taken from
        // its end back to its first newline.
        let mut line_end = buf.len();
        while let Some(newline) = buf[..line_end].iter().rposition(|b| *b == b'\n') {
            let line = &buf[newline + 1..line_end];
            if !line.is_empty() && hit(line) {
                let after = line_end + usize::from(line_end < buf.len());
                return Ok(Some(start + after as u64));
            }
            line_end = newline;
        }
        if start == 0 {
            let line = &buf[..line_end];
            if !line.is_empty() && hit(line) {
                let after = line_end + usize::from(line_end < buf.len());
                return Ok(Some(after as u64));
            }
            return Ok(None);
        }
        // With its newline, if it has one, so its end is known next time.
        buf.truncate((line_end + 1).min(buf.len()));
        carried = buf;
        end = start;
    }
}

#[cfg(test)]
mod tests;
