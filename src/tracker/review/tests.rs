//! `tracker log` in-process: files written by the real `Transcript`
//! (rotation and chain included), read, printed, followed and verified.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;

use super::filter::{Filter, FilterArgs};
use super::verify::{Finding, verify};
use super::*;
use crate::tracker::chain::Head;
use crate::tracker::transcript::{LogRotate, LogSync, Transcript};

fn utc() -> Style {
    Style {
        json: false,
        utc: true,
        tz: TimeZone::UTC,
    }
}

/// Writes `batches` (each a list of `(time, event, details)`) through a
/// transcript rotating at `rotate`.
fn write_log(dir: &Path, rotate: LogRotate, batches: &[&[(&str, &str, &str)]]) {
    let mut t = Transcript::open_rotating(dir, LogSync::Write, rotate).unwrap();
    for batch in batches {
        for (ts, event, detail) in *batch {
            t.record(ts, event, detail);
        }
        t.commit().unwrap();
    }
    t.sync().unwrap();
}

const SESSION: &[&[(&str, &str, &str)]] = &[
    &[
        (
            "2026-12-02T09:00:00.000Z",
            "start",
            "tracker listening on 127.0.0.1:6697 (TLS, password required)",
        ),
        (
            "2026-12-02T09:00:00.000Z",
            "join",
            "#general alice (127.0.0.1)",
        ),
    ],
    &[("2026-12-02T09:00:01.000Z", "msg", "#general <alice> first")],
    &[
        ("2026-12-02T09:00:02.000Z", "dm", "alice -> bob: second"),
        ("2026-12-02T09:00:02.000Z", "msg", "#general <bob> third"),
    ],
    &[("2026-12-02T09:00:03.000Z", "msg", "#general <alice> fourth")],
];

fn printed(source: &Source, filter: &Filter, style: &Style) -> (String, Summary) {
    let mut out = Vec::new();
    let summary = print(source, filter, style, None, &mut out, &mut |_| {}).unwrap();
    (String::from_utf8(out).unwrap(), summary)
}

#[test]
fn rotated_files_are_read_oldest_first_and_a_cut_last_line_is_shown_as_such() {
    let dir = tempfile::tempdir().unwrap();
    // About 130 bytes: every batch but the first goes into a file of its own.
    write_log(dir.path(), LogRotate::Size(130), SESSION);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("chat.log"))
        .unwrap();
    f.write_all(b"2026-12-02T09:00:04.000Z msg #general <bob> fif")
        .unwrap();
    let source = Source::find(dir.path()).unwrap();
    let names: Vec<String> = source
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "chat.log.2026-12-02T09-00-00.000Z",
            "chat.log.2026-12-02T09-00-01.000Z",
            "chat.log.2026-12-02T09-00-02.000Z",
            "chat.log"
        ]
    );
    let (text, summary) = printed(&source, &Filter::default(), &utc());
    assert_eq!(
        text,
        "\
2026-12-02T09:00:00.000Z start tracker listening on 127.0.0.1:6697 (TLS, password required)
2026-12-02T09:00:00.000Z join #general alice (127.0.0.1)
2026-12-02T09:00:01.000Z msg #general <alice> first
2026-12-02T09:00:02.000Z dm alice -> bob: second
2026-12-02T09:00:02.000Z msg #general <bob> third
2026-12-02T09:00:03.000Z msg #general <alice> fourth
2026-12-02T09:00:04.000Z msg #general <bob> fif  [cut off: the tracker stopped while writing this line]
"
    );
    let d = dir.path().display();
    assert_eq!(
        summary.describe(),
        vec![
            format!(
                "read 4 files: {d}/chat.log.2026-12-02T09-00-00.000Z (2 lines), {d}/chat.log.2026-12-02T09-00-01.000Z (1 line), {d}/chat.log.2026-12-02T09-00-02.000Z (2 lines), {d}/chat.log (2 lines)"
            ),
            format!("line 2 of {d}/chat.log is cut off: the tracker stopped while writing it"),
        ]
    );
    assert_eq!(summary.shown, 7);
    // One file given: only it.
    let one = Source::find(&dir.path().join("chat.log.2026-12-02T09-00-02.000Z")).unwrap();
    assert_eq!(
        printed(&one, &Filter::default(), &utc()).0.lines().count(),
        2
    );
    // Local time, and a filter.
    let style = Style {
        json: false,
        utc: false,
        tz: TimeZone::fixed(jiff::tz::offset(-5)),
    };
    let filter = Filter::new(
        &FilterArgs {
            users: vec!["alice".into()],
            events: vec!["msg".into()],
            ..FilterArgs::default()
        },
        jiff::Timestamp::now(),
        &style.tz,
    )
    .unwrap();
    assert_eq!(
        printed(&source, &filter, &style).0,
        "2026-12-02 04:00:01 msg #general <alice> first\n2026-12-02 04:00:03 msg #general <alice> fourth\n"
    );
    assert!(matches!(
        Source::find(&dir.path().join("nope")),
        Err(ReviewError::Missing(_))
    ));
    let empty = tempfile::tempdir().unwrap();
    let e = Source::find(empty.path()).unwrap_err().to_string();
    assert!(e.starts_with("no chat.log in "), "{e}");
}

#[test]
fn json_has_stable_fields_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), LogRotate::Never, SESSION);
    fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("chat.log"))
        .unwrap()
        .write_all(b"garbage\n2026-12-02T09:00:05.000Z kick #general alice")
        .unwrap();
    let source = Source::find(dir.path()).unwrap();
    let style = Style {
        json: true,
        ..utc()
    };
    let (text, summary) = printed(&source, &Filter::default(), &style);
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let file = dir.path().join("chat.log").display().to_string();
    assert_eq!(
        objects[3],
        serde_json::json!({
            "time": "2026-12-02T09:00:02.000Z", "event": "dm", "user": "alice",
            "target": "bob", "text": "second", "detail": "alice -> bob: second",
            "file": file, "line": 4
        })
    );
    assert_eq!(objects[1]["ip"], "127.0.0.1");
    assert_eq!(objects[1]["room"], "#general");
    assert_eq!(
        objects[6],
        serde_json::json!({
            "time": null, "event": null, "detail": "garbage", "file": file,
            "line": 7, "malformed": true
        })
    );
    assert_eq!(
        objects[7],
        serde_json::json!({
            "time": "2026-12-02T09:00:05.000Z", "event": "kick",
            "detail": "#general alice", "file": file, "line": 8, "cut": true,
            "malformed": true
        })
    );
    assert_eq!(summary.foreign, 1);
    assert_eq!(
        summary.describe()[2],
        format!("1 line is not in chat.log's format (the first: line 7 of {file})")
    );
}

/// A `Write` that hands what is written to the test.
struct Sink(mpsc::Sender<String>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects followed output until it holds `want` lines.
fn wait_lines(rx: &mpsc::Receiver<String>, got: &mut String, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.matches('\n').count() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => got.push_str(&s),
            Err(_) => panic!("followed output never reached {want} lines:\n{got}"),
        }
    }
}

#[test]
fn follow_prints_new_lines_and_carries_on_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let mut t =
        Transcript::open_rotating(dir.path(), LogSync::Write, LogRotate::Size(120)).unwrap();
    t.record("2026-12-02T09:00:00.000Z", "msg", "#general <a> before");
    t.commit().unwrap();
    let source = Source::find(dir.path()).unwrap();
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let follower = std::thread::spawn(move || {
        let stop = move || stop2.load(Ordering::Relaxed);
        let filter = Filter::new(
            &FilterArgs {
                grep: Some("<a>".into()),
                ..FilterArgs::default()
            },
            jiff::Timestamp::now(),
            &TimeZone::UTC,
        )
        .unwrap();
        print(
            &source,
            &filter,
            &utc(),
            Some((Duration::from_millis(20), &stop)),
            &mut Sink(tx),
            &mut |_| {},
        )
        .unwrap()
    });
    let mut got = String::new();
    wait_lines(&rx, &mut got, 1);
    // Half a batch on the disk: nothing is shown until the line is whole.
    let mut raw = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("chat.log"))
        .unwrap();
    raw.write_all(b"2026-12-02T09:00:01.000Z msg #general <a> ha")
        .unwrap();
    raw.write_all(b"lf\n").unwrap();
    wait_lines(&rx, &mut got, 2);
    drop(t);
    let mut t =
        Transcript::open_rotating(dir.path(), LogSync::Write, LogRotate::Size(120)).unwrap();
    for i in 0..4 {
        t.record(
            "2026-12-02T09:00:02.000Z",
            "msg",
            &format!("#general <a> after {i}"),
        );
        t.record(
            "2026-12-02T09:00:02.000Z",
            "msg",
            "#general <b> filtered out",
        );
        t.commit().unwrap();
    }
    wait_lines(&rx, &mut got, 6);
    stop.store(true, Ordering::Relaxed);
    let summary = follower.join().unwrap();
    assert!(fs::read_dir(dir.path()).unwrap().count() > 5, "rotated");
    assert_eq!(
        got,
        "\
2026-12-02T09:00:00.000Z msg #general <a> before
2026-12-02T09:00:01.000Z msg #general <a> half
2026-12-02T09:00:02.000Z msg #general <a> after 0
2026-12-02T09:00:02.000Z msg #general <a> after 1
2026-12-02T09:00:02.000Z msg #general <a> after 2
2026-12-02T09:00:02.000Z msg #general <a> after 3
"
    );
    assert_eq!(summary.shown, 6);
}

/// Writes SESSION rotating by size, and returns the rotated files' names.
fn verified_log(dir: &Path) -> Vec<String> {
    write_log(dir, LogRotate::Size(130), SESSION);
    let v = verify(dir, None).unwrap();
    assert!(v.intact(), "{:?}", v.describe());
    assert_eq!(v.lines, 6);
    assert_eq!(v.files.len(), 4);
    assert_eq!(v.unchained, None);
    crate::tracker::transcript::rotated_files(dir).unwrap()
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    f(&mut lines);
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn verify_names_the_first_changed_removed_or_inserted_line() {
    let dir = tempfile::tempdir().unwrap();
    let rotated = verified_log(dir.path());
    let head = crate::tracker::chain::last_head(dir.path())
        .unwrap()
        .unwrap();
    let v = verify(dir.path(), Some(head)).unwrap();
    assert!(v.intact());
    assert_eq!(v.head, head);
    let live = dir.path().join("chat.log");
    assert_eq!(
        v.expected_at,
        Some((live.display().to_string(), 1)),
        "the last head is after the last line"
    );
    assert_eq!(
        v.describe()[0],
        format!("intact: 6 lines in 4 files, chain head {head}")
    );
    let copy = |from: &Path| {
        let to = tempfile::tempdir().unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
        to
    };
    let file = |d: &Path, name: &str| d.join(name).display().to_string();

    // Changed: one word in the second rotated file's... only line.
    let d = copy(dir.path());
    edit(&d.path().join(&rotated[1]), |l| {
        l[0] = l[0].replace("first", "FIRST")
    });
    let v = verify(d.path(), None).unwrap();
    assert_eq!(
        v.finding,
        Some(Finding::Changed {
            file: file(d.path(), &rotated[1]),
            line: 1
        })
    );
    assert!(v.describe()[0].starts_with("NOT INTACT: line 1 of "));

    // Removed: the first of two lines.
    let d = copy(dir.path());
    edit(&d.path().join(&rotated[2]), |l| {
        l.remove(0);
    });
    assert_eq!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::Removed {
            file: file(d.path(), &rotated[2]),
            line: 1
        })
    );
    // Removed: the last line of a file.
    let d = copy(dir.path());
    edit(&d.path().join(&rotated[2]), |l| {
        l.pop();
    });
    assert_eq!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::Removed {
            file: file(d.path(), &rotated[2]),
            line: 2
        })
    );

    // Inserted: a line between two.
    let d = copy(dir.path());
    edit(&d.path().join(&rotated[0]), |l| {
        l.insert(
            1,
            "2026-12-02T09:00:00.500Z msg #general <bob> forged".into(),
        )
    });
    assert_eq!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::Inserted {
            file: file(d.path(), &rotated[0]),
            line: 2
        })
    );
    // Inserted at the end of a rotated file.
    let d = copy(dir.path());
    edit(&d.path().join(&rotated[1]), |l| l.push("forged".into()));
    assert_eq!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::Inserted {
            file: file(d.path(), &rotated[1]),
            line: 2
        })
    );

    // A rotated file removed, or one added.
    let d = copy(dir.path());
    fs::remove_file(d.path().join(&rotated[0])).unwrap();
    assert_eq!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::MissingFile {
            file: file(d.path(), &rotated[0]),
            lines: 2
        })
    );
    let d = copy(dir.path());
    fs::write(d.path().join("chat.log.2026-12-01T00-00-00.000Z"), "x\n").unwrap();
    assert!(matches!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::ExtraFile { .. })
    ));

    // The chain edited to match an edited line: its digest fits, its head not.
    let d = copy(dir.path());
    edit(&d.path().join(&rotated[1]), |l| {
        l[0] = l[0].replace("first", "FIRST")
    });
    let new_digest = format!(
        "{:08x}",
        crate::tracker::chain::line_digest(
            fs::read_to_string(d.path().join(&rotated[1]))
                .unwrap()
                .trim_end()
                .as_bytes()
        )
    );
    edit(&d.path().join("chat.log.chain"), |l| {
        let i = l
            .iter()
            .position(|r| r.starts_with("b ") && r.contains(" 52 "))
            .unwrap();
        let mut parts: Vec<String> = l[i].split(' ').map(str::to_string).collect();
        parts[3] = new_digest.clone();
        l[i] = parts.join(" ");
    });
    assert!(matches!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::ChainAltered {
            first: 1,
            last: 1,
            ..
        })
    ));

    // A head the chain never had.
    let v = verify(dir.path(), Some(Head([7; 32]))).unwrap();
    assert_eq!(v.finding, Some(Finding::ExpectedHeadMissing(Head([7; 32]))));
    // No chain at all.
    let d = copy(dir.path());
    fs::remove_file(d.path().join("chat.log.chain")).unwrap();
    assert_eq!(
        verify(d.path(), None).unwrap().finding,
        Some(Finding::NoChain)
    );
}

#[test]
fn an_unchained_tail_is_not_tampering_and_is_chained_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), LogRotate::Never, SESSION);
    let head = crate::tracker::chain::last_head(dir.path())
        .unwrap()
        .unwrap();
    // The tracker wrote a batch and stopped before its chain record.
    fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("chat.log"))
        .unwrap()
        .write_all(b"2026-12-02T09:00:04.000Z msg #general <bob> fifth\n2026-12-02T09:00:04.000Z msg #general <bob> sixth\n")
        .unwrap();
    let v = verify(dir.path(), Some(head)).unwrap();
    assert!(v.intact(), "{:?}", v.describe());
    let file = dir.path().join("chat.log").display().to_string();
    assert_eq!(v.unchained, Some((file.clone(), 7, 2)));
    assert_eq!(
        v.describe()[2],
        format!(
            "unchained tail, 2 lines (the tracker stopped before recording them): lines 7-8 of {file}"
        )
    );
    // The next start chains them, and says so.
    write_log(
        dir.path(),
        LogRotate::Never,
        &[&[("2026-12-02T10:00:00.000Z", "start", "x")]],
    );
    let v = verify(dir.path(), Some(head)).unwrap();
    assert!(v.intact());
    assert_eq!(v.unchained, None);
    assert_eq!(v.adopted, vec![(file.clone(), 7, 2)]);
    assert_eq!(v.lines, 9);
    assert_eq!(v.expected_at, Some((file, 6)));
    assert!(v.describe()[2].starts_with("note: lines 7-8 of "));
}
