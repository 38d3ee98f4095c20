//! `tracker log --verify`: the log files checked against `chat.log.chain`
//! (the format is described in `tracker/chain.rs`).
//!
//! The chain names the files in order (a rotation record per rotated
//! file, then `chat.log`). Each file's lines are compared with the chain's
//! line digests in order; at the first difference, the digests around it
//! tell an edited line from a removed or an inserted one. Each record's
//! head is recomputed from the file's bytes, so the chain proves the exact
//! content, not only the digests. Lines after the chain's last record in
//! `chat.log` are an unchained tail, not tampering: the tracker writes a
//! batch and then its record, and a crash between the two leaves lines
//! without one (the next start chains them, as `a` records).

use std::fs;
use std::io;
use std::path::Path;

use crate::tracker::chain::{self, CHAIN_FILE, Head, Record, line_digest, next_head};
use crate::tracker::transcript::{LOG_FILE, rotated_files};

/// The first thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The line at `line` of `file` is not what was written there.
    Changed { file: String, line: u64 },
    /// The line written at `line` of `file` is gone (what follows moved up).
    Removed { file: String, line: u64 },
    /// The line at `line` of `file` was never written by the tracker.
    Inserted { file: String, line: u64 },
    /// A file the chain names is not there.
    MissingFile { file: String, lines: u64 },
    /// A rotated file the chain does not name.
    ExtraFile { file: String },
    /// A record's head does not follow from the lines it covers and the
    /// record before: the chain file itself was edited.
    ChainAltered { file: String, first: u64, last: u64 },
    /// The chain file cannot be read as one.
    ChainDamaged(String),
    /// There is no chain file.
    NoChain,
    /// `--expect`: no record of the chain has this head.
    ExpectedHeadMissing(Head),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Changed { file, line } => write!(f, "line {line} of {file} was changed"),
            Finding::Removed { file, line } => write!(
                f,
                "line {line} of {file} was removed (the line now at {line} was written after it)"
            ),
            Finding::Inserted { file, line } => write!(
                f,
                "line {line} of {file} was inserted (the tracker never wrote it)"
            ),
            Finding::MissingFile { file, lines } => write!(
                f,
                "{file} is missing (the chain recorded {lines} lines in it)"
            ),
            Finding::ExtraFile { file } => write!(
                f,
                "{file} is not in the chain (the tracker never rotated a file to that name)"
            ),
            Finding::ChainAltered { file, first, last } => write!(
                f,
                "the chain's record of lines {first}-{last} of {file} does not match them: {CHAIN_FILE} was edited"
            ),
            Finding::ChainDamaged(why) => write!(f, "{why}"),
            Finding::NoChain => write!(f, "there is no {CHAIN_FILE}: nothing to check against"),
            Finding::ExpectedHeadMissing(h) => write!(
                f,
                "the chain never had the head {h}: {CHAIN_FILE} was rewritten, or the head is from another log"
            ),
        }
    }
}

/// What `--verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: intact.
    pub finding: Option<Finding>,
    /// Files checked, in the chain's order, with their line counts.
    pub files: Vec<(String, u64)>,
    /// Lines checked against the chain.
    pub lines: u64,
    /// The last record's head.
    pub head: Head,
    /// Lines chained at a later start than they were written: `(file,
    /// first line, count)`.
    pub adopted: Vec<(String, u64, u64)>,
    /// Lines after the last record: `(file, first line, count)`.
    pub unchained: Option<(String, u64, u64)>,
    /// `--expect`: where the chain had that head (`file`, last line).
    pub expected_at: Option<(String, u64)>,
}

impl Verdict {
    pub fn intact(&self) -> bool {
        self.finding.is_none()
    }

    /// What to tell the person, line by line.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.finding {
            Some(f) => out.push(format!("NOT INTACT: {f}")),
            None => {
                let files = self.files.len() as u64;
                out.push(format!(
                    "intact: {} {} in {} {}, chain head {}",
                    self.lines,
                    super::plural(self.lines, "line", "lines"),
                    files,
                    super::plural(files, "file", "files"),
                    self.head
                ));
            }
        }
        if let Some((file, line)) = &self.expected_at {
            out.push(format!(
                "the chain had the expected head after line {line} of {file}: everything up to there is as it was when that head was printed"
            ));
        }
        for (file, first, count) in &self.adopted {
            out.push(format!(
                "note: lines {first}-{} of {file} were chained when a tracker started, not as they were written (written before the chain existed, or the tracker before it stopped before recording them)",
                first + count - 1
            ));
        }
        if let Some((file, first, count)) = &self.unchained {
            out.push(format!(
                "unchained tail, {count} {} (the tracker stopped before recording them): lines {first}-{} of {file}",
                super::plural(*count, "line", "lines"),
                first + count - 1
            ));
        }
        out
    }
}

/// Checks the log in `dir` against its chain; with `expect`, also that the
/// chain once had that head (the one a tracker printed when it stopped).
pub fn verify(dir: &Path, expect: Option<Head>) -> io::Result<Verdict> {
    let mut v = Verdict::default();
    let shown = |name: &str| dir.join(name).display().to_string();
    let records = match chain::load(&dir.join(CHAIN_FILE)) {
        Ok(Some(l)) => l.records,
        Ok(None) => {
            v.finding = Some(Finding::NoChain);
            return Ok(v);
        }
        Err(e) => {
            v.finding = Some(Finding::ChainDamaged(e.to_string()));
            return Ok(v);
        }
    };
    // The chain's files: one segment of records per file.
    let mut segments: Vec<(String, Vec<&Record>)> = vec![(LOG_FILE.to_string(), Vec::new())];
    for r in &records {
        match r {
            Record::Rotated { name, .. } => {
                if let Some(last) = segments.last_mut() {
                    last.0 = name.clone();
                }
                segments.push((LOG_FILE.to_string(), vec![r]));
            }
            Record::Lines { .. } => {
                if let Some(last) = segments.last_mut() {
                    last.1.push(r);
                }
            }
        }
    }
    // A rotated file the chain does not name was put there.
    let named: Vec<&str> = segments.iter().map(|(n, _)| n.as_str()).collect();
    for name in rotated_files(dir)? {
        if !named.contains(&name.as_str()) {
            v.finding = Some(Finding::ExtraFile { file: shown(&name) });
            return Ok(v);
        }
    }
    let mut head = Head::default();
    let last_segment = segments.len() - 1;
    for (i, (name, recs)) in segments.iter().enumerate() {
        let file = shown(name);
        // A segment after a rotation starts with its `r` record, which
        // names the file before it.
        let mut recs = recs.as_slice();
        if let Some((Record::Rotated { head: h, name: n }, rest)) = recs.split_first() {
            if next_head(&head, b'r', n.as_bytes()) != *h {
                v.finding = Some(Finding::ChainAltered {
                    file: shown(n),
                    first: 0,
                    last: 0,
                });
                return Ok(v);
            }
            head = *h;
            let line = segments_last_line(&v, &shown(n));
            note_expected(&mut v, expect, head, shown(n), line);
            recs = rest;
        }
        let expected: Vec<u32> = recs
            .iter()
            .flat_map(|r| match r {
                Record::Lines { digests, .. } => digests.clone(),
                Record::Rotated { .. } => Vec::new(),
            })
            .collect();
        let bytes = match fs::read(dir.join(name)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if expected.is_empty() {
                    continue;
                }
                v.finding = Some(Finding::MissingFile {
                    file,
                    lines: expected.len() as u64,
                });
                return Ok(v);
            }
            Err(e) => return Err(e),
        };
        let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
        v.files.push((file.clone(), lines.len() as u64));
        let actual: Vec<u32> = lines.iter().map(|l| line_digest(l)).collect();
        // Line by line first: it names the line.
        for (k, want) in expected.iter().enumerate() {
            let Some(got) = actual.get(k) else {
                v.finding = Some(Finding::Removed {
                    file,
                    line: k as u64 + 1,
                });
                return Ok(v);
            };
            // A recorded line always ended with its newline.
            if got != want || !lines[k].ends_with(b"\n") {
                v.finding = Some(classify(&actual, &expected, k, file));
                return Ok(v);
            }
        }
        // Then each record's head over the exact bytes.
        let mut at = 0usize;
        for r in recs {
            let Record::Lines {
                adopted,
                head: h,
                digests,
                ..
            } = r
            else {
                continue;
            };
            let n = digests.len();
            let content: Vec<u8> = lines[at..at + n].concat();
            let kind = if *adopted { b'a' } else { b'b' };
            if next_head(&head, kind, &content) != *h {
                v.finding = Some(Finding::ChainAltered {
                    file,
                    first: at as u64 + 1,
                    last: (at + n) as u64,
                });
                return Ok(v);
            }
            head = *h;
            if *adopted {
                v.adopted.push((file.clone(), at as u64 + 1, n as u64));
            }
            at += n;
            note_expected(&mut v, expect, head, file.clone(), at as u64);
        }
        v.lines += expected.len() as u64;
        if lines.len() > expected.len() {
            let extra = (lines.len() - expected.len()) as u64;
            let first = expected.len() as u64 + 1;
            if i == last_segment {
                v.unchained = Some((file, first, extra));
            } else {
                v.finding = Some(Finding::Inserted { file, line: first });
                return Ok(v);
            }
        }
    }
    v.head = head;
    if let Some(want) = expect
        && v.expected_at.is_none()
    {
        v.finding = Some(Finding::ExpectedHeadMissing(want));
    }
    Ok(v)
}

/// The number of lines already counted for `file` (a rotated file's last
/// line, when its rotation record is checked).
fn segments_last_line(v: &Verdict, file: &str) -> u64 {
    v.files
        .iter()
        .rev()
        .find(|(f, _)| f == file)
        .map_or(0, |(_, n)| *n)
}

fn note_expected(v: &mut Verdict, expect: Option<Head>, head: Head, file: String, line: u64) {
    if expect == Some(head) && v.expected_at.is_none() {
        v.expected_at = Some((file, line));
    }
}

/// At the first difference (line `k`, 0-based): a removed line shifts the
/// rest up, an inserted one down; anything else is an edit.
fn classify(actual: &[u32], expected: &[u32], k: usize, file: String) -> Finding {
    let line = k as u64 + 1;
    if actual.get(k).is_some() && actual.get(k) == expected.get(k + 1) {
        Finding::Removed { file, line }
    } else if actual.get(k + 1).is_some() && actual.get(k + 1) == expected.get(k) {
        Finding::Inserted { file, line }
    } else {
        Finding::Changed { file, line }
    }
}
