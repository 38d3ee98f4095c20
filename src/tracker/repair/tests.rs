//! The refill from `chat.log`, on a real store file and hand-written logs.

use std::path::Path;

use super::*;
use crate::store::{HistoryQuery, StoredMessage};
use crate::tracker::review::format::MessageTags;
use crate::tracker::transcript::{LOG_FILE, rotated_name, timestamp};

/// One `chat.log` line at `ms` (Unix milliseconds). `tags`: msgid, the
/// sender's account, the recipient's account; `None` for an old line.
fn line(
    ms: i64,
    event: &str,
    tags: Option<(&str, Option<&str>, Option<&str>)>,
    details: &str,
) -> String {
    let at = jiff::Timestamp::from_millisecond(ms).unwrap();
    let tags = match tags {
        None => String::new(),
        Some((msgid, account, to_account)) => {
            let nick = nick_in(event, details);
            let t = MessageTags {
                msgid: Some(msgid.into()),
                source: Some(format!("{nick}!{nick}@192.168.1.9")),
                account: account.map(str::to_string),
                to_account: to_account.map(str::to_string),
                seq: None,
            };
            format!("{} ", t.to_text())
        }
    };
    format!("{} {event} {tags}{details}\n", timestamp(at))
}

/// The sender's nick in a message line's details.
fn nick_in(event: &str, details: &str) -> String {
    let e = parse_line(&format!("2026-12-02T10:00:00.000Z {event} {details}")).unwrap();
    e.fields.unwrap().user.unwrap()
}

fn write(dir: &Path, name: &str, lines: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), lines.concat()).unwrap();
}

/// Keeps `lines` (message lines) in the store as the hub would have, in
/// order, numbering each target from 1.
fn keep(store: &mut Store, lines: &[String]) {
    let mut seqs: HashMap<String, i64> = HashMap::new();
    let batch: Vec<NewMessage> = lines
        .iter()
        .map(|l| {
            let e = parse_line(l.trim_end()).unwrap();
            let m = message_of(&e).unwrap().unwrap();
            let seq = seqs.entry(m.target.clone()).or_insert(0);
            *seq += 1;
            NewMessage { seq: *seq, ..m }
        })
        .collect();
    store.append(&batch).unwrap();
}

fn texts(store: &Store, target: &str) -> Vec<(i64, String, String, String)> {
    store
        .history(target, &HistoryQuery::Latest(None), 100, 0)
        .unwrap()
        .into_iter()
        .map(|m: StoredMessage| (m.seq, m.msgid, m.command, m.text))
        .collect()
}

fn open(dir: &Path) -> Store {
    Store::open(&dir.join("store.db")).unwrap().0
}

fn row(seq: i64, msgid: &str, command: &str, text: &str) -> (i64, String, String, String) {
    (seq, msgid.into(), command.into(), text.into())
}

#[test]
fn the_lines_after_the_store_s_newest_message_are_put_back_at_the_hub_s_places() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let alice = Some("Alice");
    let kept = [
        line(1000, "msg", Some(("m1", alice, None)), "#Lab <alice> one"),
        line(1000, "msg", Some(("m2", alice, None)), "#Lab <alice> two"),
    ];
    let lost = [
        line(2000, "dm", Some(("m3", alice, None)), "alice -> bob: psst"),
        line(2000, "action", Some(("m4", None, None)), "#Lab * bob waves"),
        line(
            2001,
            "notice",
            Some(("m5", None, None)),
            "#lab -bob- heads up",
        ),
        line(
            2002,
            "dm-action",
            Some(("m6", None, alice)),
            "bob -> alice: * bob winks",
        ),
    ];
    let mut all = vec![line(
        900,
        "start",
        None,
        "tracker listening on 127.0.0.1:6667 (plain TCP, no password)",
    )];
    all.extend(kept.iter().cloned());
    all.extend(lost.iter().cloned());
    all.push(line(2003, "join", None, "#lab carol (192.168.1.9)"));
    write(&logs, LOG_FILE, &all);
    let mut store = open(dir.path());
    keep(&mut store, &kept);

    let done = refill(&mut store, &logs).unwrap();
    assert_eq!(
        done,
        Refill {
            start: Start::AfterLine(logs.join(LOG_FILE), 3),
            refilled: 4,
            ..Refill::default()
        }
    );
    assert_eq!(
        done.describe().as_deref(),
        Some("history: 4 messages refilled from chat.log into the store")
    );
    assert_eq!(
        texts(&store, "#lab"),
        [
            row(1, "m1", "PRIVMSG", "one"),
            row(2, "m2", "PRIVMSG", "two"),
            row(3, "m4", "PRIVMSG", "\x01ACTION waves\x01"),
            row(4, "m5", "NOTICE", "heads up"),
        ]
    );
    // A DM's history is the pair's, an account by its name and someone
    // without one by `~nick`, whichever way it went.
    let dm = dm_key("alice", "~bob");
    assert_eq!(
        texts(&store, &dm),
        [
            row(1, "m3", "PRIVMSG", "psst"),
            row(2, "m6", "PRIVMSG", "\x01ACTION winks\x01"),
        ]
    );
    let page = store
        .history(&dm, &HistoryQuery::Latest(None), 1, 0)
        .unwrap();
    assert_eq!(page[0].source, "bob!bob@192.168.1.9");
    assert_eq!(page[0].to_param, "alice");
    assert_eq!(page[0].at_ms, 2002);
    let with = store.correspondents("alice", 0, i64::MAX, 10).unwrap();
    assert_eq!(
        with.iter().map(|c| c.shown.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );
    let sent_by_alice = store
        .history("#lab", &HistoryQuery::Latest(None), 100, 0)
        .unwrap()
        .into_iter()
        .map(|m| m.sender_account)
        .collect::<Vec<_>>();
    assert_eq!(
        sent_by_alice,
        [Some("alice".into()), Some("alice".into()), None, None]
    );

    // Caught up: the next start reads back to the last message line and
    // has nothing to say.
    let again = refill(&mut store, &logs).unwrap();
    assert_eq!(again.start, Start::AfterLine(logs.join(LOG_FILE), 7));
    assert_eq!((again.refilled, again.already), (0, 0));
    assert_eq!(again.describe(), None);
}

#[test]
fn a_text_quoting_the_newest_msgid_is_not_taken_for_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let kept = [line(1000, "msg", Some(("m1", None, None)), "#lab <al> one")];
    let lines = [
        kept[0].clone(),
        line(1001, "msg", Some(("m2", None, None)), "#lab <al> two"),
        line(
            1002,
            "msg",
            Some(("m3", None, None)),
            "#lab <eve> @msgid=m1;source=x @msgid=m1",
        ),
    ];
    write(&logs, LOG_FILE, &lines);
    let mut store = open(dir.path());
    keep(&mut store, &kept);
    let done = refill(&mut store, &logs).unwrap();
    assert_eq!(done.start, Start::AfterLine(logs.join(LOG_FILE), 1));
    assert_eq!(done.refilled, 2);
    assert_eq!(
        texts(&store, "#lab"),
        [
            row(1, "m1", "PRIVMSG", "one"),
            row(2, "m2", "PRIVMSG", "two"),
            row(3, "m3", "PRIVMSG", "@msgid=m1;source=x @msgid=m1"),
        ]
    );
}

#[test]
fn an_empty_store_takes_every_line_and_counts_what_it_cannot_place() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    write(
        &logs,
        LOG_FILE,
        &[
            line(1000, "msg", None, "#lab <al> from an older tracker"),
            line(1001, "dm", None, "al -> bo: also"),
            line(1002, "msg", Some(("m1", None, None)), "#lab <al> tagged"),
            // Cut short by a crash in the middle of a write: its batch was
            // never delivered.
            "1970-01-01T00:00:01.003Z msg @msgid=m2;source=al!al@h #lab <a\n".into(),
        ],
    );
    let mut store = open(dir.path());
    let done = refill(&mut store, &logs).unwrap();
    assert_eq!(
        done,
        Refill {
            start: Start::Everything,
            refilled: 1,
            untagged: 2,
            unreadable: 1,
            ..Refill::default()
        }
    );
    assert_eq!(
        done.describe().as_deref(),
        Some(
            "history: 1 message refilled from chat.log into the store; \
             2 message lines without a msgid skipped (written before chat.log carried msgids); \
             1 unreadable message line skipped"
        )
    );
    assert_eq!(texts(&store, "#lab"), [row(1, "m1", "PRIVMSG", "tagged")]);
}

#[test]
fn a_newest_message_in_no_file_starts_the_refill_at_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let mut store = open(dir.path());
    // Kept by the store; its line is gone (an older file removed).
    let stored = line(5000, "msg", Some(("m9", None, None)), "#lab <al> nine");
    keep(&mut store, std::slice::from_ref(&stored));
    write(
        &logs,
        LOG_FILE,
        &[
            line(4000, "msg", Some(("m7", None, None)), "#lab <al> older"),
            line(5000, "msg", None, "#lab <al> same millisecond, untagged"),
            line(5000, "msg", Some(("m10", None, None)), "#lab <al> ten"),
            line(6000, "msg", None, "#lab <al> later, untagged"),
            line(7000, "msg", Some(("m11", None, None)), "#lab <al> eleven"),
        ],
    );
    let done = refill(&mut store, &logs).unwrap();
    assert_eq!(
        done,
        Refill {
            start: Start::FromTime(jiff::Timestamp::from_millisecond(5000).unwrap()),
            refilled: 2,
            untagged: 1,
            ..Refill::default()
        }
    );
    assert_eq!(
        texts(&store, "#lab"),
        [
            row(1, "m9", "PRIVMSG", "nine"),
            row(2, "m10", "PRIVMSG", "ten"),
            row(3, "m11", "PRIVMSG", "eleven"),
        ]
    );
    // The store now knows a line of the files: the next start is exact.
    let again = refill(&mut store, &logs).unwrap();
    assert_eq!(again.start, Start::AfterLine(logs.join(LOG_FILE), 5));
    assert_eq!(again.refilled, 0);
}

#[test]
fn the_place_may_be_in_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let first = line(1000, "msg", Some(("m1", None, None)), "#lab <al> one");
    let rotated = rotated_name(jiff::Timestamp::from_millisecond(1000).unwrap());
    write(
        &logs,
        &rotated,
        &[
            first.clone(),
            line(1001, "msg", Some(("m2", None, None)), "#lab <al> two"),
        ],
    );
    write(
        &logs,
        LOG_FILE,
        &[line(
            2000,
            "msg",
            Some(("m3", None, None)),
            "#lab <al> three",
        )],
    );
    let mut store = open(dir.path());
    keep(&mut store, &[first]);
    let done = refill(&mut store, &logs).unwrap();
    assert_eq!(done.start, Start::AfterLine(logs.join(&rotated), 1));
    assert_eq!(done.refilled, 2);
    assert_eq!(
        texts(&store, "#lab")
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        ["m1", "m2", "m3"]
    );
}

#[test]
fn no_log_yet_is_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let done = refill(&mut store, &dir.path().join("logs")).unwrap();
    assert_eq!(done, Refill::default());
}

#[test]
fn lines_are_found_from_the_end_whatever_the_chunk_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let lines = [
        "a",
        "bb",
        "",
        "a line much longer than the smaller chunks",
        "c",
    ];
    // The last line has no newline (cut short).
    let text = lines.join("\n");
    std::fs::write(&path, &text).unwrap();
    for chunk in [1, 2, 3, 7, 64, 1 << 20] {
        let mut offset = 0;
        for (i, l) in lines.iter().enumerate() {
            offset += l.len() + usize::from(i + 1 < lines.len());
            if l.is_empty() {
                continue;
            }
            let mut seen = Vec::new();
            let found = find_line_backward_by(&path, chunk, |line| {
                seen.push(String::from_utf8_lossy(line).to_string());
                line == l.as_bytes()
            })
            .unwrap();
            assert_eq!(found, Some(offset as u64), "{l:?} with chunks of {chunk}");
            // Every line after it was looked at first, newest first.
            let after: Vec<&str> = lines[i..]
                .iter()
                .rev()
                .copied()
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(seen, after, "chunks of {chunk}");
        }
        assert_eq!(
            find_line_backward_by(&path, chunk, |_| false).unwrap(),
            None
        );
    }
}
