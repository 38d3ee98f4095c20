//! The store without a tracker: schema, pages, accounts, the thread.

use super::history::DirectParties;
use super::*;

fn msg(n: u32, at_ms: i64, target: &str, from: &str, text: &str) -> NewMessage {
    NewMessage {
        seq: i64::from(n) + 1,
        msgid: format!("m{n}"),
        at_ms,
        target: target.to_string(),
        command: "PRIVMSG".into(),
        source: format!("{from}!{from}@127.0.0.1"),
        sender_account: None,
        to_param: target.to_string(),
        text: text.to_string(),
        client_tags: String::new(),
        direct: None,
        hold_for: None,
    }
}

fn ids(page: &[StoredMessage]) -> Vec<&str> {
    page.iter().map(|m| m.msgid.as_str()).collect()
}

/// Ten messages in #room: m1..m10 at 1000, 1000, 2000, 2000, ... 5000 ms
/// (two a millisecond, to test ties), and m100 in #other between them.
fn ten() -> Store {
    let mut s = Store::in_memory().unwrap();
    let mut batch: Vec<NewMessage> = (1..=10)
        .map(|n| msg(n, 1000 * ((i64::from(n) + 1) / 2), "#room", "alice", "hi"))
        .collect();
    batch.insert(5, msg(100, 3000, "#other", "bob", "elsewhere"));
    assert_eq!(s.append(&batch).unwrap(), 11);
    s
}

#[test]
fn schema_is_migrated_once_and_a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let (s, was) = Store::open(&path).unwrap();
    assert_eq!((was, s.schema_version().unwrap()), (0, schema::VERSION));
    let mode: String = s
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    let fk: bool = s
        .conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), fk), ("wal", true));
    drop(s);
    let (s, was) = Store::open(&path).unwrap();
    assert_eq!(was, schema::VERSION, "nothing applied twice");
    s.conn
        .pragma_update(None, "user_version", schema::VERSION + 1)
        .unwrap();
    drop(s);
    let err = Store::open(&path).err().expect("a newer schema is refused");
    assert!(
        matches!(err, StoreError::TooNew { found, known } if found == known + 1),
        "{err}"
    );
}

#[test]
fn pages_follow_chathistory() {
    use HistoryQuery::*;
    let s = ten();
    let q =
        |query: HistoryQuery, limit| ids(&s.history("#room", &query, limit, 0).unwrap()).join(" ");
    let id = |n: u32| Selector::MsgId(format!("m{n}"));
    let ts = Selector::Timestamp;

    assert_eq!(q(Latest(None), 3), "m8 m9 m10");
    assert_eq!(q(Latest(Some(id(7))), 50), "m8 m9 m10");
    assert_eq!(
        q(Latest(Some(id(2))), 3),
        "m8 m9 m10",
        "newest first, then capped"
    );
    assert_eq!(
        q(Latest(Some(ts(4000))), 50),
        "m9 m10",
        "a timestamp excludes its ms"
    );
    assert_eq!(q(Before(id(4)), 2), "m2 m3", "ties broken by commit order");
    assert_eq!(q(Before(ts(2000)), 50), "m1 m2");
    assert_eq!(q(After(id(3)), 3), "m4 m5 m6");
    assert_eq!(q(After(ts(2000)), 2), "m5 m6");
    assert_eq!(
        q(Around(id(5)), 4),
        "m3 m4 m5 m6",
        "the reference is included"
    );
    assert_eq!(q(Around(ts(3000)), 4), "m3 m4 m5 m6");
    assert_eq!(
        q(Around(id(1)), 4),
        "m1 m2 m3 m4",
        "nothing older: the rest after"
    );
    assert_eq!(q(Between(id(2), id(7)), 50), "m3 m4 m5 m6");
    assert_eq!(
        q(Between(id(2), id(7)), 2),
        "m3 m4",
        "read from the first reference"
    );
    assert_eq!(
        q(Between(id(7), id(2)), 2),
        "m5 m6",
        "backwards from the first"
    );
    assert_eq!(q(Between(ts(1000), ts(4000)), 50), "m3 m4 m5 m6");
    assert_eq!(q(Latest(None), 0), "");

    let cut = |query: HistoryQuery| ids(&s.history("#room", &query, 50, 5).unwrap()).join(" ");
    assert_eq!(
        cut(Latest(None)),
        "m5 m6 m7 m8 m9 m10",
        "nothing before the cutoff"
    );
    assert_eq!(cut(Before(id(6))), "m5");
    assert_eq!(cut(Around(id(4))), "m5 m6 m7 m8 m9 m10");

    for missing in ["m999", "m100"] {
        let err = s
            .history("#room", &After(Selector::MsgId(missing.into())), 5, 0)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownMsgid(ref m) if m == missing),
            "{err}"
        );
    }
    let other = s.history("#other", &Latest(None), 50, 0).unwrap();
    assert_eq!(ids(&other), ["m100"]);
    assert_eq!(other[0].source, "bob!bob@127.0.0.1");
}

#[test]
fn appending_twice_stores_once() {
    let mut s = ten();
    let again = msg(3, 2000, "#room", "alice", "hi");
    assert_eq!(s.append([&again]).unwrap(), 0);
    let mut clash = msg(50, 9000, "#room", "bob", "same place");
    clash.seq = 4;
    s.append([&clash])
        .expect_err("two messages cannot share a place");
    assert_eq!(s.message_count().unwrap(), 11);
    assert_eq!(s.last_message().unwrap().unwrap().msgid, "m10");
}

#[test]
fn direct_messages_index_both_sides_and_wait_for_an_offline_account() {
    let mut s = Store::in_memory().unwrap();
    s.create_account("bob", "Bob", "$argon2id$x", 0).unwrap();
    let key = dm_key("~alice", "bob");
    assert_eq!(key, dm_key("bob", "~alice"));
    let dm = |n, at, text: &str, hold: bool| NewMessage {
        to_param: "Bob".into(),
        direct: Some(DirectParties {
            from: "~alice".into(),
            from_shown: "alice".into(),
            to: "bob".into(),
            to_shown: "Bob".into(),
        }),
        hold_for: hold.then(|| "bob".to_string()),
        ..msg(n, at, &key, "alice", text)
    };
    s.append(&[
        dm(1, 100, "one", true),
        dm(2, 200, "two", true),
        dm(3, 300, "three", false),
    ])
    .unwrap();
    // A hold for a name with no account is ignored, not an error.
    let mut stray = dm(4, 400, "four", false);
    stray.hold_for = Some("nobody".into());
    s.append([&stray]).unwrap();

    let bob = s.correspondents("bob", 0, i64::MAX, 10).unwrap();
    assert_eq!(
        bob,
        [Correspondent {
            shown: "alice".into(),
            target: key.clone(),
            last_ms: 400
        }]
    );
    assert_eq!(
        s.correspondents("~alice", 0, i64::MAX, 10).unwrap()[0].shown,
        "Bob"
    );
    assert!(
        s.correspondents("bob", 400, i64::MAX, 10)
            .unwrap()
            .is_empty()
    );

    let held = s.pending("bob").unwrap();
    assert_eq!(ids(&held), ["m1", "m2"]);
    assert_eq!(held[0].at_ms, 100, "delivered with its original time");
    assert!(s.pending("nobody").unwrap().is_empty());
    s.append([&dm(5, 500, "five", true)]).unwrap();
    assert_eq!(s.delivered("bob", held[1].id).unwrap(), 2);
    assert_eq!(
        ids(&s.pending("bob").unwrap()),
        ["m5"],
        "held meanwhile: kept"
    );
}

#[test]
fn the_away_summary_counts_mentions_as_words_and_not_ones_own_lines() {
    let mut s = Store::in_memory().unwrap();
    s.append(&[
        msg(1, 10, "#r", "bob", "carol: look"),
        msg(2, 20, "#r", "bob", "carolina is here"),
        msg(3, 30, "#r", "Carol", "I said carol"),
        msg(4, 40, "#r", "bob", "bye CAROL!"),
        msg(5, 50, "#r", "bob", "plain"),
    ])
    .unwrap();
    // seq is n + 1: m1 is 2 ... m5 is 6.
    assert_eq!(s.missed("#r", 0, "carol").unwrap(), (4, 2));
    assert_eq!(s.missed("#r", 3, "carol").unwrap(), (2, 1));
    assert_eq!(s.missed("#r", 5, "carol").unwrap(), (1, 0));
    assert_eq!(s.seq_at("#r", 45).unwrap(), 5, "a time falls after m4");
    assert_eq!(s.seq_at("#r", 5).unwrap(), 1, "just before m1");
    assert_eq!(s.seq_at("#r", 100).unwrap(), 6);
    assert_eq!(s.seq_at("#nowhere", 100).unwrap(), 0);
    assert_eq!(s.last_seqs().unwrap(), [("#r".to_string(), 6)]);
    let latest = |window| s.latest_visible("#r", window, 0, Lines::MessagesAndEvents);
    assert_eq!(latest((0, 45)).unwrap(), Some(40));
    assert_eq!(latest((50, 100)).unwrap(), None);
}

#[test]
fn accounts_rooms_and_markers() {
    let mut s = Store::in_memory().unwrap();
    s.create_account("alice", "Alice", "h1", 5).unwrap();
    assert!(matches!(
        s.create_account("alice", "ALICE", "h2", 6),
        Err(StoreError::AccountExists(_))
    ));
    s.set_password_hash("alice", "h3").unwrap();
    assert!(matches!(
        s.set_password_hash("zed", "h"),
        Err(StoreError::NoSuchAccount(_))
    ));
    s.seen("alice", 99).unwrap();
    let a = s.account("alice").unwrap().unwrap();
    assert_eq!(
        (
            a.shown.as_str(),
            a.password_hash.as_str(),
            a.created_ms,
            a.last_seen_ms
        ),
        ("Alice", "h3", 5, Some(99))
    );
    assert_eq!(s.account_names().unwrap(), ["alice"]);

    s.joined("alice", "#a", 10).unwrap();
    s.joined("alice", "#b", 20).unwrap();
    s.parted("alice", "#a").unwrap();
    s.joined("alice", "#b", 30).unwrap();
    assert_eq!(s.rooms_of("alice").unwrap(), ["#b"]);
    assert_eq!(
        s.joined_after("alice", "#a").unwrap(),
        Some(10),
        "kept after a part"
    );
    assert_eq!(
        s.joined_after("alice", "#b").unwrap(),
        Some(20),
        "the first join"
    );
    assert_eq!(s.joined_after("alice", "#c").unwrap(), None);
    assert!(
        s.joined("ghost", "#a", 1).is_err(),
        "no membership without an account"
    );

    assert_eq!(s.mark_read("alice", "#b", 50).unwrap(), 50);
    assert_eq!(
        s.mark_read("alice", "#b", 40).unwrap(),
        50,
        "never moves back"
    );
    assert_eq!(s.read_marker("alice", "#b").unwrap(), Some(50));

    let room = RegisteredRoom {
        name: "#b".into(),
        shown: "#B".into(),
        founder: "alice".into(),
        created_ms: 20,
        topic: "plans".into(),
        topic_by: "Alice".into(),
        topic_ms: 21,
        modes: "int".into(),
        key: Some("k".into()),
        limit: Some(30),
        bans: vec![RoomBan {
            mask: "*!*@10.0.0.*".into(),
            set_by: "Alice".into(),
            set_ms: 22,
        }],
    };
    s.save_room(&room).unwrap();
    assert_eq!(s.registered_rooms().unwrap(), std::slice::from_ref(&room));
    let mut changed = room.clone();
    changed.bans.clear();
    changed.topic = "new".into();
    s.save_room(&changed).unwrap();
    assert_eq!(s.registered_rooms().unwrap(), [changed]);

    // Deleting the account takes everything of its own with it.
    let mut own = msg(1, 60, "#b", "Alice", "mine");
    own.sender_account = Some("alice".into());
    s.append(&[own, msg(2, 61, "#b", "bob", "theirs")]).unwrap();
    s.delete_account("alice").unwrap();
    assert!(s.account("alice").unwrap().is_none());
    assert!(s.rooms_of("alice").unwrap().is_empty());
    assert_eq!(s.read_marker("alice", "#b").unwrap(), None);
    assert!(s.registered_rooms().unwrap().is_empty(), "its rooms go too");
    let left = s.history("#b", &HistoryQuery::Latest(None), 10, 0).unwrap();
    assert_eq!(ids(&left), ["m2"]);
    assert!(matches!(
        s.delete_account("alice"),
        Err(StoreError::NoSuchAccount(_))
    ));
}

#[test]
fn purge_removes_only_older_history() {
    let mut s = Store::in_memory().unwrap();
    let batch: Vec<NewMessage> = (0..12_000)
        .map(|n| msg(n, i64::from(n), "#r", "a", "x"))
        .collect();
    s.append(&batch).unwrap();
    assert_eq!(s.purge_before(11_000).unwrap(), 11_000);
    assert_eq!(s.message_count().unwrap(), 1_000);
    // A message stamped in the past but stored after newer ones (a clock
    // stepped back) goes with them.
    let mut late = msg(20_000, 5, "#r", "a", "stepped back");
    late.seq = 20_001;
    s.append([&late]).unwrap();
    assert_eq!(s.purge_before(11_000).unwrap(), 1);
    let first = s
        .history("#r", &HistoryQuery::After(Selector::Timestamp(-1)), 1, 0)
        .unwrap();
    assert_eq!(first[0].at_ms, 11_000);
}

#[test]
fn a_backup_taken_while_writing_holds_a_whole_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let (store, _) = Store::open(&path).unwrap();
    let (handle, join) = StoreHandle::spawn(store).unwrap();
    let writer = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            for n in 0..2_000u32 {
                handle.append(vec![msg(n, i64::from(n), "#r", "a", "x")], |e, _| {
                    panic!("append failed: {e}")
                });
            }
        })
    };
    // The backup runs from a second connection, as `tracker backup` does.
    let (reader, _) = Store::open(&path).unwrap();
    let copy = dir.path().join("copy.db");
    reader.backup_to(&copy).unwrap();
    writer.join().unwrap();
    drop(handle);
    join.join().unwrap();

    let (copy, _) = Store::open(&copy).unwrap();
    let n = copy.message_count().unwrap();
    let all = copy
        .history("#r", &HistoryQuery::Latest(None), 5_000, 0)
        .unwrap();
    assert_eq!(all.len() as u64, n);
    let expected: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    assert_eq!(ids(&all), expected, "a prefix with no gap");
    let (full, _) = Store::open(&path).unwrap();
    assert_eq!(full.message_count().unwrap(), 2_000);
}

#[tokio::test]
async fn appends_wait_for_others_to_join_them_but_a_call_does_not_wait() {
    let linger = std::time::Duration::from_secs(30);
    let (handle, join) = StoreHandle::spawn_lingering(Store::in_memory().unwrap(), linger).unwrap();
    let started = std::time::Instant::now();
    handle.append(vec![msg(1, 1, "#r", "a", "x")], |e, _| panic!("{e}"));
    // Well after the first append was taken: it is still waiting.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    handle.append(vec![msg(2, 2, "#r", "a", "y")], |e, _| panic!("{e}"));
    let n = handle.call(|s| s.message_count()).await.unwrap().unwrap();
    assert_eq!(n, 2, "a call sees every append queued before it");
    assert!(
        started.elapsed() < linger / 2,
        "the call ended the wait: {:?}",
        started.elapsed()
    );
    let stats = handle.stats();
    assert_eq!(
        (stats.appended, stats.transactions),
        (2, 1),
        "one transaction"
    );
    drop(handle);
    join.join().unwrap();
}

#[tokio::test]
async fn the_thread_joins_appends_and_reports_failures_to_their_senders() {
    let (handle, join) = StoreHandle::spawn(Store::in_memory().unwrap()).unwrap();
    // Hold the thread in a call so the appends behind it queue up.
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    handle.call_then(
        move |_| {
            let _ = started_tx.send(());
            release_rx.recv()
        },
        |_| {},
    );
    started_rx.recv().unwrap();
    for n in 0..50 {
        handle.append(vec![msg(n, i64::from(n), "#r", "a", "x")], |e, _| {
            panic!("{e}")
        });
    }
    assert_eq!(handle.stats().queued, 50, "held behind the call");
    release_tx.send(()).unwrap();
    let n = handle.call(|s| s.message_count()).await.unwrap().unwrap();
    assert_eq!(n, 50, "a call sees every append queued before it");
    let stats = handle.stats();
    assert_eq!((stats.queued, stats.appended, stats.failed), (0, 50, 0));
    assert_eq!(
        stats.transactions, 1,
        "the fifty appends were one transaction"
    );

    // A broken store: each batch reports its own messages, and the thread
    // carries on.
    handle
        .call(|s| {
            s.conn
                .execute_batch("DROP TABLE pending; DROP TABLE history;")
        })
        .await
        .unwrap()
        .unwrap();
    let (fail_tx, mut fail_rx) = tokio::sync::mpsc::unbounded_channel();
    for n in [100, 101] {
        let fail_tx = fail_tx.clone();
        handle.append(vec![msg(n, 0, "#r", "a", "x")], move |e, lost| {
            let _ = fail_tx.send((e.to_string(), lost[0].msgid.clone()));
        });
    }
    let mut lost = [fail_rx.recv().await.unwrap(), fail_rx.recv().await.unwrap()];
    lost.sort();
    assert_eq!(lost[0].1, "m100");
    assert_eq!(lost[1].1, "m101");
    assert!(lost[0].0.contains("history"), "{}", lost[0].0);
    assert_eq!(handle.stats().failed, 2);

    drop(handle);
    join.join().unwrap();
}

#[tokio::test]
async fn a_stopped_store_says_so() {
    let (handle, join) = StoreHandle::spawn(Store::in_memory().unwrap()).unwrap();
    let clone = handle.clone();
    handle
        .call(|_| panic!("the store's thread dies"))
        .await
        .expect_err("a panicked call has no answer");
    join.join().expect_err("the thread panicked");
    let err = clone.call(|s| s.message_count()).await.unwrap_err();
    assert!(matches!(err, StoreError::Stopped) && err.is_disk_fault());
    let (tx, rx) = std::sync::mpsc::channel();
    clone.append(vec![msg(1, 0, "#r", "a", "x")], move |e, lost| {
        tx.send((matches!(e, StoreError::Stopped), lost.len()))
            .unwrap();
    });
    assert_eq!(rx.recv().unwrap(), (true, 1));
}

#[test]
fn a_clock_stepped_back_never_reorders_a_room() {
    let mut s = Store::in_memory().unwrap();
    // The wall clock jumps back 10 s between m2 and m3.
    s.append(&[
        msg(1, 20_000, "#r", "a", "one"),
        msg(2, 20_500, "#r", "a", "two"),
        msg(3, 10_000, "#r", "a", "three"),
        msg(4, 10_500, "#r", "a", "four"),
    ])
    .unwrap();
    let all = s.history("#r", &HistoryQuery::Latest(None), 10, 0).unwrap();
    assert_eq!(
        ids(&all),
        ["m1", "m2", "m3", "m4"],
        "the order everyone saw"
    );
    let before = s
        .history(
            "#r",
            &HistoryQuery::Before(Selector::MsgId("m3".into())),
            10,
            0,
        )
        .unwrap();
    assert_eq!(ids(&before), ["m1", "m2"]);
    // A timestamp falls where the first message at or after it is.
    let after = s
        .history(
            "#r",
            &HistoryQuery::After(Selector::Timestamp(10_200)),
            10,
            0,
        )
        .unwrap();
    assert_eq!(ids(&after), ["m4"]);
}

/// A direct message from `from` to `to` (identities) kept at `seq` in
/// their conversation.
fn direct(n: u32, seq: i64, from: &str, to: &str, hold: bool) -> NewMessage {
    NewMessage {
        seq,
        to_param: to.to_string(),
        direct: Some(DirectParties {
            from: from.into(),
            from_shown: from.into(),
            to: to.into(),
            to_shown: to.into(),
        }),
        sender_account: Some(from.to_string()),
        hold_for: hold.then(|| to.to_string()),
        ..msg(n, 1000 + i64::from(n), &dm_key(from, to), from, "dm")
    }
}

#[test]
fn deleting_an_account_takes_its_conversations_rooms_and_marks_and_nothing_else() {
    let mut s = Store::in_memory().unwrap();
    for name in ["alice", "bob", "carol"] {
        s.create_account(name, name, "$argon2id$x", 0).unwrap();
    }
    let mut room = msg(1, 10, "#lab", "alice", "mine");
    room.sender_account = Some("alice".into());
    let mut theirs = msg(2, 11, "#lab", "bob", "theirs");
    theirs.seq = 3;
    s.append(&[
        room,
        theirs,
        // alice and bob both ways, one held for alice; bob and carol.
        direct(10, 1, "alice", "bob", false),
        direct(11, 2, "bob", "alice", true),
        direct(12, 1, "bob", "carol", false),
    ])
    .unwrap();
    s.joined("alice", "#lab", 0).unwrap();
    s.mark_read("alice", "#lab", 5).unwrap();
    let founded = RegisteredRoom {
        name: "#lab".into(),
        shown: "#Lab".into(),
        founder: "alice".into(),
        created_ms: 1,
        bans: vec![RoomBan {
            mask: "x!*@*".into(),
            set_by: "alice".into(),
            set_ms: 2,
        }],
        ..RegisteredRoom::default()
    };
    s.save_room(&founded).unwrap();
    let bobs = RegisteredRoom {
        name: "#bob".into(),
        shown: "#bob".into(),
        founder: "bob".into(),
        ..RegisteredRoom::default()
    };
    s.save_room(&bobs).unwrap();
    assert_eq!(ids(&s.pending("alice").unwrap()), ["m11"]);

    s.delete_account("alice").unwrap();

    let all = |s: &Store, target: &str| {
        ids(&s
            .history(target, &HistoryQuery::Latest(None), 50, 0)
            .unwrap())
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    assert!(
        all(&s, &dm_key("alice", "bob")).is_empty(),
        "the conversation went, bob's side too"
    );
    assert_eq!(all(&s, &dm_key("bob", "carol")), ["m12"], "others' kept");
    assert_eq!(all(&s, "#lab"), ["m2"], "only what alice said in the room");
    assert!(
        s.correspondents("bob", 0, i64::MAX, 10)
            .unwrap()
            .iter()
            .all(|c| c.shown != "alice")
    );
    assert!(s.pending("alice").unwrap().is_empty());
    assert_eq!(s.read_marker("alice", "#lab").unwrap(), None);
    assert_eq!(s.joined_after("alice", "#lab").unwrap(), None);
    assert_eq!(
        s.registered_rooms().unwrap(),
        [bobs],
        "its room went, bob's stayed"
    );
    let bans: i64 = s
        .conn
        .query_row("SELECT count(*) FROM room_bans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bans, 0, "the room's bans went with it");

    // A change on its way when the account went is refused, not an error
    // of the file.
    assert!(matches!(
        s.save_room(&founded),
        Err(StoreError::NoSuchAccount(a)) if a == "alice"
    ));
    // Someone registering the name afterwards inherits nothing.
    s.create_account("alice", "Alice", "$argon2id$y", 9)
        .unwrap();
    assert!(
        s.correspondents("alice", 0, i64::MAX, 10)
            .unwrap()
            .is_empty()
    );
    assert!(all(&s, &dm_key("alice", "bob")).is_empty());
}

#[test]
fn a_purge_remembers_how_far_it_went() {
    let mut s = Store::in_memory().unwrap();
    s.append(&[msg(1, 100, "#r", "a", "old"), msg(2, 300, "#r", "a", "new")])
        .unwrap();
    assert_eq!(s.meta(PURGED_BEFORE).unwrap(), None);
    assert_eq!(s.purge_before(200).unwrap(), 1);
    assert_eq!(s.meta(PURGED_BEFORE).unwrap().as_deref(), Some("200"));
    assert_eq!(s.purge_before(150).unwrap(), 0);
    assert_eq!(
        s.meta(PURGED_BEFORE).unwrap().as_deref(),
        Some("200"),
        "never moves back"
    );
    assert_eq!(s.message_count().unwrap(), 1);
}

#[test]
fn the_newest_message_kept_is_remembered_after_it_is_deleted() {
    let mut s = Store::in_memory().unwrap();
    assert_eq!(s.last_kept().unwrap(), None);
    s.create_account("eve", "eve", "$argon2id$x", 0).unwrap();
    let mut by_eve = msg(2, 2000, "#room", "eve", "mine");
    by_eve.sender_account = Some("eve".into());
    s.append([&msg(1, 1000, "#room", "alice", "hi"), &by_eve])
        .unwrap();
    assert_eq!(s.last_kept().unwrap(), Some(("m2".to_string(), 2000)));
    // Deleting eve takes her message; a repair must still start after it,
    // or it would bring it back from chat.log.
    s.delete_account("eve").unwrap();
    assert_eq!(s.last_message().unwrap().unwrap().msgid, "m1");
    assert_eq!(s.last_kept().unwrap(), Some(("m2".to_string(), 2000)));
    s.purge_before(10_000).unwrap();
    assert_eq!(s.message_count().unwrap(), 0);
    assert_eq!(
        s.last_kept().unwrap(),
        Some(("m2".to_string(), 2000)),
        "an emptied store is not a new one"
    );
}

#[test]
fn the_page_cache_and_the_write_ahead_log_are_given_back_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Store::open(&dir.path().join(FILE_NAME)).unwrap();
    let pages: i64 = s
        .conn
        .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
        .unwrap();
    assert_eq!(pages, WAL_CHECKPOINT_PAGES);
    let wal = dir.path().join(format!("{FILE_NAME}-wal"));
    let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let text = "x".repeat(128);
    for chunk in 0..20u32 {
        let batch: Vec<NewMessage> = (0..1000)
            .map(|i| msg(chunk * 1000 + i, i64::from(chunk), "#room", "alice", &text))
            .collect();
        s.append(&batch).unwrap();
    }
    let full = s.cache_used();
    assert!(
        full > 2 << 20,
        "20,000 messages fill more than 2 MiB of cache: {full}"
    );
    // 20,000 messages stay under the checkpoint's threshold: all in the
    // log, none checkpointed yet.
    let logged = wal_len();
    assert!(logged > 4 << 20, "the write-ahead log holds {logged} bytes");
    s.release_memory().unwrap();
    let after = s.cache_used();
    assert!(
        after < 256 << 10,
        "{full} bytes of cache before, {after} after"
    );
    assert_eq!(wal_len(), 0, "{logged} bytes of log before");
    assert_eq!(s.message_count().unwrap(), 20_000);
    // And the store works as before, the cache filling again.
    assert_eq!(
        s.append(&[msg(20_000, 20, "#room", "bob", "again")])
            .unwrap(),
        1
    );
    assert!(s.cache_used() > after);
}
