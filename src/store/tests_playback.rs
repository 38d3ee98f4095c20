//! Room events in history (`draft/event-playback`), `CHATHISTORY TARGETS`,
//! and the migration that made a msgid unique per history.

use super::history::DirectParties;
use super::*;

/// A line of `target` at place `seq`: a PRIVMSG, or the event `command`
/// with `text` as its parameters.
pub(super) fn line(seq: i64, at_ms: i64, target: &str, command: &str, text: &str) -> NewMessage {
    NewMessage {
        seq,
        msgid: format!("{target}-{seq}"),
        at_ms,
        target: target.to_string(),
        command: command.into(),
        source: "alice!alice@127.0.0.1".into(),
        sender_account: None,
        to_param: target.to_string(),
        text: text.to_string(),
        client_tags: String::new(),
        direct: None,
        hold_for: None,
    }
}

fn shown(page: &[StoredMessage]) -> Vec<String> {
    page.iter()
        .map(|m| format!("{} {}", m.command, m.text))
        .collect()
}

/// #r: a join storm around two messages.
fn storm() -> Store {
    let mut s = Store::in_memory().unwrap();
    let mut batch = vec![line(1, 10, "#r", "JOIN", "#r")];
    batch.push(line(2, 20, "#r", "PRIVMSG", "carol: first"));
    for seq in 3..=50 {
        batch.push(line(seq, 30, "#r", "JOIN", "#r"));
    }
    batch.push(line(51, 40, "#r", "NOTICE", "second"));
    batch.push(line(52, 50, "#r", "KICK", "#r bob :too loud"));
    batch.push(line(53, 60, "#r", "QUIT", ":gone"));
    assert_eq!(s.append(&batch).unwrap(), 53);
    s
}

#[test]
fn events_are_read_only_by_who_asks_for_them_and_the_limit_counts_what_is_read() {
    use HistoryQuery::*;
    let s = storm();
    let messages = s.history("#r", &Latest(None), 10, 0).unwrap();
    assert_eq!(shown(&messages), ["PRIVMSG carol: first", "NOTICE second"]);
    let latest_two = |lines| shown(&s.history_of("#r", &Latest(None), 2, 0, lines).unwrap());
    assert_eq!(
        latest_two(Lines::MessagesAndEvents),
        ["KICK #r bob :too loud", "QUIT :gone"]
    );
    assert_eq!(
        latest_two(Lines::Messages),
        ["PRIVMSG carol: first", "NOTICE second"],
        "the events in between never use up a page"
    );
    // A reference that falls on an event is a place either way.
    let on_join = Selector::MsgId("#r-30".into());
    assert_eq!(
        shown(&s.history("#r", &After(on_join.clone()), 5, 0).unwrap()),
        ["NOTICE second"]
    );
    let after = s
        .history_of("#r", &After(on_join), 3, 0, Lines::MessagesAndEvents)
        .unwrap();
    assert_eq!(
        after.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [31, 32, 33]
    );
    // What a reader may see still starts at their place.
    assert_eq!(
        shown(
            &s.history_of("#r", &Latest(None), 100, 51, Lines::MessagesAndEvents)
                .unwrap()
        ),
        ["KICK #r bob :too loud", "QUIT :gone"]
    );
    // The away summary counts messages, never the joins.
    assert_eq!(s.missed("#r", 0, "carol").unwrap(), (2, 1));
    assert_eq!(s.missed("#r", 2, "carol").unwrap(), (1, 0));
}

/// Every statement `work` ran on `s`'s connection, as written.
fn statements_run(s: &mut Store, work: impl FnOnce(&mut Store)) -> Vec<String> {
    use rusqlite::trace::{TraceEvent, TraceEventCodes};
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let sink = seen.clone();
    s.conn
        .trace_v2(
            TraceEventCodes::SQLITE_TRACE_PROFILE,
            Some(move |e: TraceEvent<'_>| {
                if let TraceEvent::Profile(stmt, _) = e {
                    sink.lock().unwrap().insert(stmt.sql().into_owned());
                }
            }),
        )
        .unwrap();
    work(s);
    s.conn
        .trace_v2(
            TraceEventCodes::SQLITE_TRACE_PROFILE,
            None::<fn(TraceEvent<'_>)>,
        )
        .unwrap();
    let seen = seen.lock().unwrap();
    seen.iter().cloned().collect()
}

/// How SQLite reads the table and its indexes for `sql` (its parameters
/// left unbound).
fn plan(s: &Store, sql: &str) -> Vec<String> {
    let mut stmt = s
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let mut rows = stmt.raw_query();
    let mut plan = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        plan.push(r.get::<_, String>(3).unwrap());
    }
    plan
}

#[test]
fn every_read_of_a_history_searches_an_index_and_messages_skip_a_join_storm() {
    use HistoryQuery::*;
    let mut s = storm();
    s.create_account("bob", "Bob", "$argon2id$x", 0).unwrap();
    let run = statements_run(&mut s, |s| {
        // Appends after the end, and (a store opened again) at a place
        // it has not seen, into a history whose clock steps back.
        s.append(&[line(54, 70, "#r", "PRIVMSG", "third")]).unwrap();
        s.last_place.clear();
        s.append(&[line(55, 65, "#r", "JOIN", "#r")]).unwrap();
        s.append(&[line(1, 5, "#t", "PRIVMSG", "in order")])
            .unwrap();
        let dm = NewMessage {
            direct: Some(DirectParties {
                from: "bob".into(),
                from_shown: "Bob".into(),
                to: "~al".into(),
                to_shown: "al".into(),
            }),
            ..line(1, 80, "dm:bob ~al", "PRIVMSG", "hi")
        };
        s.append(&[dm]).unwrap();
        let t = |ms| Selector::Timestamp(ms);
        for target in ["#r", "#t"] {
            for lines in [Lines::Messages, Lines::MessagesAndEvents] {
                for query in [
                    Latest(None),
                    Latest(Some(t(25))),
                    Before(t(45)),
                    After(t(15)),
                    Around(t(30)),
                    Between(t(15), t(55)),
                    Between(t(55), t(15)),
                    Before(Selector::MsgId("#r-51".into())),
                ] {
                    let _ = s.history_of(target, &query, 5, 2, lines);
                }
                let rooms = [ReadableRoom {
                    key: target.into(),
                    shown: target.into(),
                    visible_after: 1,
                }];
                s.targets(&rooms, "bob", (0, 100), 10, lines).unwrap();
            }
            s.seq_at(target, 33).unwrap();
            s.missed(target, 1, "carol").unwrap();
        }
        s.last_seqs().unwrap();
        s.delete_account("bob").unwrap();
    });
    let reads: Vec<&String> = run
        .iter()
        .filter(|sql| sql.contains("FROM history") || sql.contains("FROM (SELECT"))
        .collect();
    assert!(reads.len() > 15, "{run:#?}");
    for sql in reads {
        // Deleting an account's lines in every history reads them all, as
        // it always has (no index by sender: every append would pay).
        if sql.contains("sender_account = ?1") {
            continue;
        }
        let plan = plan(&s, sql);
        assert!(
            !plan.iter().any(|p| p == "SCAN history"),
            "reads the whole table: {sql}\n{plan:#?}"
        );
        // A read of messages alone uses their index, so a page of them
        // never walks past the events of a join storm.
        if sql.contains(MESSAGES_ONLY) && !sql.contains("NOT IN") && sql.contains("seq") {
            assert!(
                plan.iter().any(|p| p.contains("history_target_messages")),
                "{sql}\n{plan:#?}"
            );
        }
    }
}

#[test]
fn a_place_is_taken_once_by_a_message_or_an_event() {
    let mut s = storm();
    // Another line (its own msgid) at `seq`.
    let other = |seq, command| NewMessage {
        msgid: format!("other-{seq}"),
        ..line(seq, 90, "#r", command, "x")
    };
    // Before the end: a place an event holds.
    let clash = s.append(&[other(60, "PRIVMSG"), other(52, "PRIVMSG")]);
    assert!(
        matches!(&clash, Err(StoreError::PlaceTaken { target, seq: 52 }) if target == "#r"),
        "{clash:?}"
    );
    // And where a message is, from a store opened again (no last place).
    s.last_place.clear();
    let clash = s.append(&[other(51, "JOIN")]);
    assert!(
        matches!(clash, Err(StoreError::PlaceTaken { seq: 51, .. })),
        "{clash:?}"
    );
    // Neither batch was kept, and the history goes on after its end.
    assert_eq!(s.last_seqs().unwrap(), [("#r".to_string(), 53)]);
    assert_eq!(s.append(&[line(54, 90, "#r", "PRIVMSG", "on")]).unwrap(), 1);
}

/// The condition of `history_target_messages`, as the store writes it.
const MESSAGES_ONLY: &str = "command IN ('PRIVMSG', 'NOTICE')";

#[test]
fn one_msgid_is_kept_once_in_each_room_that_saw_it() {
    let mut s = Store::in_memory().unwrap();
    let quit = |seq, target: &str| NewMessage {
        msgid: "q1".into(),
        ..line(seq, 100, target, "QUIT", ":bye")
    };
    assert_eq!(s.append(&[quit(1, "#a"), quit(1, "#b")]).unwrap(), 2);
    assert_eq!(s.append(&[quit(1, "#a")]).unwrap(), 0, "offered again");
    let msgid = Selector::MsgId("q1".into());
    for room in ["#a", "#b"] {
        let page = s
            .history_of(
                room,
                &HistoryQuery::Around(msgid.clone()),
                5,
                0,
                Lines::MessagesAndEvents,
            )
            .unwrap();
        assert_eq!(shown(&page), ["QUIT :bye"], "{room}");
    }
}

#[test]
fn targets_are_the_rooms_and_conversations_active_in_the_window() {
    let mut s = Store::in_memory().unwrap();
    let dm = |seq, at, from: &str, to: &str, to_shown: &str| NewMessage {
        direct: Some(DirectParties {
            from: from.into(),
            from_shown: from.trim_start_matches('~').into(),
            to: to.into(),
            to_shown: to_shown.into(),
        }),
        ..line(seq, at, &dm_key(from, to), "PRIVMSG", "psst")
    };
    s.append(&[
        line(1, 100, "#a", "PRIVMSG", "a1"),
        line(2, 500, "#a", "PRIVMSG", "a2"),
        line(1, 200, "#b", "PRIVMSG", "b1"),
        line(2, 300, "#b", "JOIN", "#b"),
        line(1, 250, "#c", "PRIVMSG", "c1"),
        dm(1, 150, "~alice", "bob", "Bob"),
        dm(2, 450, "~alice", "bob", "Bob"),
        dm(1, 350, "~carol", "~dave", "dave"),
    ])
    .unwrap();
    let room = |key: &str, visible_after| ReadableRoom {
        key: key.into(),
        shown: key.to_uppercase(),
        visible_after,
    };
    let rooms = [room("#a", 0), room("#b", 0), room("#c", 1)];
    let list = |s: &Store, window, limit, lines| {
        s.targets(&rooms, "~alice", window, limit, lines)
            .unwrap()
            .into_iter()
            .map(|t| format!("{} {}", t.shown, t.last_ms))
            .collect::<Vec<_>>()
    };
    // #c moved only before alice could read it; carol and dave's
    // conversation is not hers; bob's latest line in the window is 450.
    assert_eq!(
        list(&s, (0, 1000), 10, Lines::Messages),
        ["#B 200", "Bob 450", "#A 500"]
    );
    assert_eq!(
        list(&s, (0, 1000), 10, Lines::MessagesAndEvents),
        ["#B 300", "Bob 450", "#A 500"],
        "the join in #b counts for a reader of events"
    );
    assert_eq!(
        list(&s, (150, 450), 10, Lines::Messages),
        ["#B 200"],
        "both ends excluded"
    );
    assert_eq!(
        list(&s, (0, 460), 10, Lines::Messages),
        ["#A 100", "#B 200", "Bob 450"],
        "a room's latest line inside the window, not its latest overall"
    );
    assert_eq!(
        list(&s, (0, 1000), 2, Lines::Messages),
        ["#B 200", "Bob 450"]
    );
    assert_eq!(
        list(&s, (1000, 0), 2, Lines::Messages),
        ["Bob 450", "#A 500"],
        "read backwards: the latest ones, oldest first"
    );
    assert_eq!(
        s.targets(&rooms, "bob", (0, 1000), 10, Lines::Messages)
            .unwrap()
            .into_iter()
            .filter(|t| !t.shown.starts_with('#'))
            .map(|t| t.shown)
            .collect::<Vec<_>>(),
        ["alice"],
        "the other side sees the same conversation by alice's name"
    );
}

/// A store file at `path` as a tracker with the first `version`
/// migrations left it, opened without migrating.
pub(super) fn file_at_version(path: &std::path::Path, version: usize) -> rusqlite::Connection {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    let tx = conn.transaction().unwrap();
    for sql in &schema::MIGRATIONS[..version] {
        tx.execute_batch(sql).unwrap();
    }
    tx.pragma_update(None, "user_version", version as u32)
        .unwrap();
    tx.commit().unwrap();
    conn
}

#[test]
fn a_version_1_file_is_migrated_keeping_ids_and_held_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let conn = file_at_version(&path, 1);
        let v1 = Store {
            conn,
            yield_rows: 0,
            last_place: Default::default(),
        };
        v1.create_account("bob", "Bob", "$argon2id$x", 0).unwrap();
        let held = NewMessage {
            hold_for: Some("bob".into()),
            ..line(1, 10, "dm:bob ~alice", "PRIVMSG", "for later")
        };
        // Written as a version 1 tracker did (its msgid unique overall).
        for m in [
            line(1, 5, "#r", "PRIVMSG", "one"),
            held,
            line(2, 20, "#r", "PRIVMSG", "gone"),
        ] {
            v1.conn
                .execute(
                    "INSERT INTO history (seq, msgid, at_ms, target, command, source, sender,
                         sender_account, to_param, text, client_tags)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    rusqlite::params![
                        m.seq,
                        m.msgid,
                        m.at_ms,
                        m.target,
                        m.command,
                        m.source,
                        "x",
                        m.sender_account,
                        m.to_param,
                        m.text,
                        m.client_tags
                    ],
                )
                .unwrap();
            if let Some(account) = &m.hold_for {
                let id = v1.conn.last_insert_rowid();
                v1.conn
                    .execute(
                        "INSERT INTO pending (account, history_id) VALUES (?1, ?2)",
                        rusqlite::params![account, id],
                    )
                    .unwrap();
            }
        }
        // The last one purged: its id is never handed out again.
        v1.conn
            .execute("DELETE FROM history WHERE seq = 2", [])
            .unwrap();
    }
    let (mut s, was) = Store::open(&path).unwrap();
    assert_eq!((was, s.schema_version().unwrap()), (1, schema::VERSION));
    let held = s.pending("bob").unwrap();
    assert_eq!((held[0].id, held[0].text.as_str()), (2, "for later"));
    s.append(&[line(3, 30, "#r", "JOIN", "#r")]).unwrap();
    let page = s
        .history_of(
            "#r",
            &HistoryQuery::Latest(None),
            10,
            0,
            Lines::MessagesAndEvents,
        )
        .unwrap();
    assert_eq!(
        page.iter()
            .map(|m| (m.id, m.text.as_str()))
            .collect::<Vec<_>>(),
        [(1, "one"), (4, "#r")]
    );
    // `pending` points at the new table: a purged message is no longer
    // held.
    s.conn
        .execute("DELETE FROM history WHERE id = 2", [])
        .unwrap();
    assert!(s.pending("bob").unwrap().is_empty());
    let fk_errors: i64 = s
        .conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk_errors, 0);
}
