//! `chat.log.chain`: tamper evidence for `chat.log`, kept beside it.
//!
//! `chat.log` stays plain text; this sidecar holds one record per committed
//! batch, written by [`super::transcript::Transcript::commit`] right after
//! the batch's lines. The format (text, one record a line, after the header
//! line `confab-chain 1`):
//!
//! ```text
//! b <head> <end> <digests>   a batch appended to chat.log
//! a <head> <end> <digests>   lines found unchained when a tracker started
//!                            (written before the chain existed, or by a
//!                            tracker that stopped between the two writes)
//!                            and chained then
//! r <head> <name>            chat.log was renamed to <name> (rotation); the
//!                            records after it are about a new chat.log
//! ```
//!
//! - `<head>`: the running hash, 64 hex digits: SHA-256 of the previous
//!   record's head (32 zero bytes before the first), the record's letter
//!   and its content: the batch's bytes exactly as in the file, newlines
//!   included, or the new name. It covers every byte of every file and
//!   their order; the last one is what the tracker prints when it stops.
//! - `<end>`: chat.log's length in bytes after the batch (how a starting
//!   tracker finds lines written after the last record).
//! - `<digests>`: per line of the batch, 8 hex digits, the first 4 bytes
//!   of SHA-256 of the line without its newline. They locate a change
//!   (which line was edited, removed or inserted); the head proves it.
//!
//! What this proves and what not is in SECURITY.md: whoever can rewrite
//! both files can forge a consistent pair; a head kept elsewhere (printed
//! at stop, checked with `tracker log --verify --expect HEAD`) cannot be.

use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The chain beside `chat.log`.
pub const CHAIN_FILE: &str = "chat.log.chain";
const HEADER: &str = "confab-chain 1";

/// A running hash: 32 bytes of SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Head(pub [u8; 32]);

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Head({self})")
    }
}

impl std::str::FromStr for Head {
    type Err = String;
    /// 64 hex digits, optionally after `sha256:`.
    fn from_str(s: &str) -> Result<Head, String> {
        let hexed = s.trim().trim_start_matches("sha256:");
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hexed, &mut bytes)
            .map_err(|_| format!("{s:?} is not a chain head (64 hex digits)"))?;
        Ok(Head(bytes))
    }
}

/// The next head after a record of `kind` over `content`.
pub fn next_head(prev: &Head, kind: u8, content: &[u8]) -> Head {
    let mut h = Sha256::new();
    h.update(prev.0);
    h.update([kind]);
    h.update(content);
    Head(h.finalize().into())
}

/// A line's digest: the first 4 bytes of SHA-256 of the line without its
/// newline.
pub fn line_digest(line: &[u8]) -> u32 {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let d = Sha256::digest(line);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// One record of the chain file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Lines appended to chat.log (`b`), or found unchained at a start and
    /// chained then (`a`, `adopted`).
    Lines {
        adopted: bool,
        head: Head,
        end: u64,
        digests: Vec<u32>,
    },
    /// chat.log was renamed to `name`.
    Rotated { head: Head, name: String },
}

impl Record {
    pub fn head(&self) -> Head {
        match self {
            Record::Lines { head, .. } | Record::Rotated { head, .. } => *head,
        }
    }

    /// The record for `batch` (whole lines) after `prev`.
    pub fn lines(prev: &Head, adopted: bool, batch: &[u8], end: u64) -> Record {
        let kind = if adopted { b'a' } else { b'b' };
        Record::Lines {
            adopted,
            head: next_head(prev, kind, batch),
            end,
            digests: batch
                .split_inclusive(|b| *b == b'\n')
                .map(line_digest)
                .collect(),
        }
    }

    pub fn rotated(prev: &Head, name: &str) -> Record {
        Record::Rotated {
            head: next_head(prev, b'r', name.as_bytes()),
            name: name.to_string(),
        }
    }

    /// The record as a line of the chain file, newline included.
    pub fn to_line(&self) -> String {
        match self {
            Record::Lines {
                adopted,
                head,
                end,
                digests,
            } => {
                let mut s = String::with_capacity(80 + digests.len() * 8);
                s.push_str(if *adopted { "a " } else { "b " });
                s.push_str(&head.to_string());
                s.push(' ');
                s.push_str(&end.to_string());
                s.push(' ');
                for d in digests {
                    // Into the string, no allocation per line.
                    let _ = write!(s, "{d:08x}");
                }
                s.push('\n');
                s
            }
            Record::Rotated { head, name } => format!("r {head} {name}\n"),
        }
    }

    /// Parses one line of the chain file (without its newline).
    pub fn parse(line: &str) -> Result<Record, String> {
        let mut parts = line.splitn(4, ' ');
        let kind = parts.next().unwrap_or("");
        let head: Head = parts.next().ok_or("no head")?.parse()?;
        match kind {
            "b" | "a" => {
                let end = parts
                    .next()
                    .and_then(|e| e.parse().ok())
                    .ok_or("no file length")?;
                let hexed = parts.next().ok_or("no line digests")?;
                if hexed.is_empty() || hexed.len() % 8 != 0 {
                    return Err("line digests are not 8 hex digits each".into());
                }
                let digests = (0..hexed.len() / 8)
                    .map(|i| u32::from_str_radix(&hexed[i * 8..i * 8 + 8], 16))
                    .collect::<Result<Vec<u32>, _>>()
                    .map_err(|_| "line digests are not hex")?;
                Ok(Record::Lines {
                    adopted: kind == "a",
                    head,
                    end,
                    digests,
                })
            }
            "r" => {
                let name = parts.next().ok_or("no file name")?;
                if parts.next().is_some() || !super::transcript::is_rotated_name(name) {
                    return Err(format!("{name:?} is not a rotated chat.log's name"));
                }
                Ok(Record::Rotated {
                    head,
                    name: name.to_string(),
                })
            }
            other => Err(format!("unknown record kind {other:?}")),
        }
    }
}

/// A chain file that cannot be read as one.
#[derive(Debug, Error)]
pub enum ChainError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is damaged at line {line}: {why}")]
    Damaged {
        path: String,
        line: u64,
        why: String,
    },
}

/// The chain file as read: its complete records, and how many bytes of it
/// they take (a last line without its newline, cut by a crash, is left out).
pub struct Loaded {
    pub records: Vec<Record>,
    pub complete_len: u64,
    pub torn_tail: bool,
}

/// Reads `path` (the whole chain). `Ok(None)`: there is no chain file.
pub fn load(path: &Path) -> Result<Option<Loaded>, ChainError> {
    let io_err = |source| ChainError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let damaged = |line: u64, why: String| ChainError::Damaged {
        path: path.display().to_string(),
        line,
        why,
    };
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let text = std::str::from_utf8(&bytes[..complete])
        .map_err(|e| damaged(0, format!("not UTF-8 ({e})")))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            if line != HEADER {
                return Err(damaged(1, format!("the first line is not {HEADER:?}")));
            }
            continue;
        }
        records.push(Record::parse(line).map_err(|why| damaged(i as u64 + 1, why))?);
    }
    Ok(Some(Loaded {
        records,
        complete_len: complete as u64,
        torn_tail: complete < bytes.len(),
    }))
}

/// The head of the chain in `dir` (the last complete record's), if any.
pub fn last_head(dir: &Path) -> Result<Option<Head>, ChainError> {
    let path = dir.join(CHAIN_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ChainError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    // Records are at most a few hundred KiB (a batch's digests); read
    // backwards until a complete last record is in view.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut window = 4096u64;
    loop {
        let from = len.saturating_sub(window);
        let mut tail = Vec::new();
        let read = file
            .seek(SeekFrom::Start(from))
            .and_then(|_| Read::by_ref(&mut file).read_to_end(&mut tail));
        if let Err(source) = read {
            return Err(ChainError::Io {
                path: path.display().to_string(),
                source,
            });
        }
        let complete = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let body = &tail[..complete];
        let body = body.strip_suffix(b"\n").unwrap_or(body);
        let start = body.iter().rposition(|b| *b == b'\n').map(|i| i + 1);
        if let Some(start) = start.or((from == 0).then_some(0)) {
            let line = String::from_utf8_lossy(&body[start..]);
            if line == HEADER || line.is_empty() {
                return Ok(None);
            }
            return Record::parse(&line).map(|r| Some(r.head())).map_err(|why| {
                ChainError::Damaged {
                    path: path.display().to_string(),
                    line: 0,
                    why: format!("its last record: {why}"),
                }
            });
        }
        window *= 4;
    }
}

/// The writing end, owned by the transcript: appends records and can take
/// back the last one when the log write it vouches for is undone.
pub struct ChainWriter {
    file: File,
    path: PathBuf,
    len: u64,
    head: Head,
}

impl ChainWriter {
    /// Opens (creating, 0600, with its header) the chain file at `path`;
    /// `len` and `head` are what [`load`] found (a torn last record is cut
    /// off here).
    pub fn open(path: &Path, loaded: Option<&Loaded>) -> io::Result<ChainWriter> {
        let mut file = crate::private::open_append(path)?;
        let (len, head) = match loaded {
            Some(l) => {
                if l.torn_tail {
                    file.set_len(l.complete_len)?;
                }
                (
                    l.complete_len,
                    l.records.last().map(Record::head).unwrap_or_default(),
                )
            }
            None => {
                file.set_len(0)?;
                let header = format!("{HEADER}\n");
                file.write_all(header.as_bytes())?;
                (header.len() as u64, Head::default())
            }
        };
        Ok(ChainWriter {
            file,
            path: path.to_path_buf(),
            len,
            head,
        })
    }

    pub fn head(&self) -> Head {
        self.head
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` (made from this chain's head). On error nothing of
    /// it stays in the file.
    pub fn append(&mut self, record: &Record) -> io::Result<Mark> {
        let mark = Mark {
            len: self.len,
            head: self.head,
        };
        let line = record.to_line();
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => {
                self.len += line.len() as u64;
                self.head = record.head();
                Ok(mark)
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Takes back everything appended since `mark`.
    pub fn undo(&mut self, mark: Mark) {
        let _ = self.file.set_len(mark.len);
        self.len = mark.len;
        self.head = mark.head;
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// Where the chain was before an append, to take it back.
#[derive(Clone, Copy)]
pub struct Mark {
    len: u64,
    head: Head,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_chain() {
        let first = Record::lines(&Head::default(), false, b"one\ntwo\n", 8);
        let rot = Record::rotated(&first.head(), "chat.log.2026-12-02T10-00-00.000Z");
        let adopted = Record::lines(&rot.head(), true, b"three\n", 6);
        for r in [&first, &rot, &adopted] {
            let line = r.to_line();
            assert!(line.ends_with('\n'));
            assert_eq!(&Record::parse(line.trim_end()).unwrap(), r);
        }
        let Record::Lines { digests, .. } = &first else {
            panic!()
        };
        assert_eq!(digests, &vec![line_digest(b"one"), line_digest(b"two\n")]);
        // The head depends on every byte and on the one before.
        assert_ne!(
            Record::lines(&Head::default(), false, b"one\ntwO\n", 8).head(),
            first.head()
        );
        assert_ne!(
            Record::lines(&rot.head(), false, b"three\n", 6).head(),
            adopted.head(),
            "the kind is part of the head"
        );
        assert!(Record::parse("r 00 chat.log.lock").is_err());
        assert!(Record::parse(&format!("r {} ../x", first.head())).is_err());
        assert!(Record::parse(&format!("b {} 8 abc", first.head())).is_err());
        assert!(Record::parse("z").is_err());
        let h: Head = format!("sha256:{}", first.head()).parse().unwrap();
        assert_eq!(h, first.head());
        assert!("xyz".parse::<Head>().is_err());
    }

    #[test]
    fn writer_appends_undoes_and_a_torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHAIN_FILE);
        let mut w = ChainWriter::open(&path, None).unwrap();
        let r1 = Record::lines(&w.head(), false, b"x\n", 2);
        w.append(&r1).unwrap();
        let r2 = Record::lines(&w.head(), false, b"y\n", 4);
        let mark = w.append(&r2).unwrap();
        w.undo(mark);
        assert_eq!(w.head(), r1.head());
        drop(w);
        assert_eq!(last_head(dir.path()).unwrap(), Some(r1.head()));
        // A crash in the middle of a record's write.
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"b 12ab").unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert!(loaded.torn_tail);
        assert_eq!(loaded.records, vec![r1.clone()]);
        assert_eq!(last_head(dir.path()).unwrap(), Some(r1.head()));
        let w = ChainWriter::open(&path, Some(&loaded)).unwrap();
        assert_eq!(w.head(), r1.head());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{HEADER}\n{}", r1.to_line())
        );
        fs::write(&path, format!("{HEADER}\nq 1 2\n")).unwrap();
        let e = load(&path).err().unwrap().to_string();
        assert!(e.contains("damaged at line 2"), "{e}");
        assert!(last_head(&dir.path().join("none")).unwrap().is_none());
    }
}
