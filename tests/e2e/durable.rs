//! One durable order with the real tracker: `chat.log` is the commit
//! point, and a `kill -9` between a message's `chat.log` line and its
//! store write loses nothing anyone saw (the next start refills the store
//! from `chat.log`); and a backup taken while people chat holds every
//! message up to its moment, in order, with no gap.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab::proto::Message;

use crate::harness::*;

const CAPS: &str = "batch server-time message-tags draft/chathistory sasl";

/// Logs in with the history caps (and SASL when `password` is given).
fn connect(port: u16, nick: &str, password: Option<&str>) -> Raw {
    login_with_caps(port, nick, CAPS, password)
}

/// A message as a client saw it: (time, msgid, source, target, text).
type Seen = (String, String, String, String, String);

fn seen(line: &str) -> Seen {
    let m = Message::parse(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
    let tag = |k: &str| {
        m.tags
            .iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
    };
    (
        tag("time"),
        tag("msgid"),
        m.source.clone().unwrap_or_default(),
        m.param_at(0).unwrap_or("").to_string(),
        m.param_at(1).unwrap_or("").to_string(),
    )
}

/// One CHATHISTORY page, as its messages.
fn page(r: &mut Raw, request: &str) -> Vec<Seen> {
    r.send(request);
    let open = r.expect("BATCH +");
    let reference = open
        .split("BATCH +")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("a batch reference")
        .to_string();
    let mut out = Vec::new();
    loop {
        let line = r.lines.wait_for("the page", |l| l.contains(&reference));
        if line.contains(&format!("BATCH -{reference}")) {
            return out;
        }
        out.push(seen(&line));
    }
}

/// How many messages the store file holds now (read beside the tracker).
fn stored(data: &Path) -> i64 {
    let db = rusqlite::Connection::open(data.join("store.db")).expect("open store.db");
    db.query_row(
        "SELECT count(*) FROM history WHERE command IN ('PRIVMSG', 'NOTICE')",
        [],
        |r| r.get(0),
    )
    .expect("count")
}

#[test]
fn a_kill_between_chat_log_and_the_store_loses_nothing_anyone_saw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The store's thread holds its appends (a test hook): every message
    // below is in chat.log and delivered, and not in the store, when the
    // tracker is killed.
    let mut tracker = Tracker::start_wrapped(
        dir.path(),
        &["--no-tls", "--stay"],
        "export CONFAB_TEST_HOLD_STORE_APPENDS=1",
    );
    tracker.wait_stderr("CONFAB_TEST_HOLD_STORE_APPENDS is set");
    let mut alice = connect(tracker.port, "alice", None);
    alice.send("REGISTER * * :river stone 42");
    alice.expect("REGISTER SUCCESS");
    let mut bob = connect(tracker.port, "bob", None);
    bob.send("REGISTER * * :lake pebble 17");
    bob.expect("REGISTER SUCCESS");
    alice.send("JOIN #lab");
    alice.expect(" 366 alice #lab ");
    bob.send("JOIN #lab");
    bob.expect(" 366 bob #lab ");

    // What each saw of the other, each line sent once the one before it
    // was seen, so the room's order is known.
    alice.send("PRIVMSG #lab :one");
    alice.send("PRIVMSG #lab :two; with a \\ and  spaces");
    let mut room = vec![
        seen(&bob.expect("PRIVMSG #lab :one")),
        seen(&bob.expect("PRIVMSG #lab :two")),
    ];
    bob.send("PRIVMSG #lab :\x01ACTION waves\x01");
    room.push(seen(&alice.expect("PRIVMSG #lab :\x01ACTION waves")));
    alice.send("NOTICE #lab :heads up");
    room.push(seen(&bob.expect("NOTICE #lab :heads up")));
    alice.send("PRIVMSG bob :psst");
    let dm = seen(&bob.expect("PRIVMSG bob :psst"));
    assert_eq!(
        stored(&data),
        0,
        "the store held its appends: the crash window is open"
    );

    signal(&tracker.child, "KILL");
    wait_exit(&mut tracker.child, Duration::from_secs(5));
    drop((alice, bob));
    assert_eq!(stored(&data), 0, "killed before the store wrote anything");

    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    tracker.wait_log(&format!(
        "start tracker listening on 127.0.0.1:{} (plain TCP, password required)",
        tracker.port
    ));
    let events = tracker.log_events();
    let tail = &events[events.len() - 3..];
    assert_eq!(
        tail,
        [
            "restart previous run ended without a stop line (crash or kill); appending",
            "repair history: 5 messages refilled from chat.log into the store",
            &format!(
                "start tracker listening on 127.0.0.1:{} (plain TCP, password required)",
                tracker.port
            ),
        ]
    );
    tracker.wait_stderr("history: 5 messages refilled from chat.log into the store");
    assert_eq!(stored(&data), 5);

    // Every message, with the msgid and time people saw, in its room or
    // DM, in order; readers from their first join, as before the crash.
    let mut alice = connect(tracker.port, "alice", Some("river stone 42"));
    alice.expect(" 366 alice #lab ");
    assert_eq!(page(&mut alice, "CHATHISTORY LATEST #lab * 10"), room);
    assert_eq!(
        page(&mut alice, "CHATHISTORY LATEST bob * 10"),
        std::slice::from_ref(&dm)
    );
    let mut bob = connect(tracker.port, "bob", Some("lake pebble 17"));
    bob.expect(" 366 bob #lab ");
    assert_eq!(page(&mut bob, "CHATHISTORY LATEST alice * 10"), [dm]);
    // The room's numbering goes on after the refilled messages.
    alice.send("PRIVMSG #lab :after the crash");
    room.push(seen(&bob.expect("PRIVMSG #lab :after the crash")));
    assert_eq!(page(&mut bob, "CHATHISTORY LATEST #lab * 10"), room);
    let before_two = page(
        &mut bob,
        &format!("CHATHISTORY BEFORE #lab msgid={} 10", room[1].1),
    );
    assert_eq!(before_two, room[..1]);

    // Killed again with the store caught up: nothing to refill, no
    // `repair` line.
    drop(tracker);
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    tracker.wait_log(&format!(
        "start tracker listening on 127.0.0.1:{} (plain TCP, password required)",
        tracker.port
    ));
    let repairs = tracker
        .log_events()
        .iter()
        .filter(|e| e.starts_with("repair "))
        .count();
    assert_eq!(repairs, 1, "{}", tracker.log());
    assert_eq!(stored(&data), 6);
}

/// `tracker backup PATH` with the test's folders.
fn backup(dir: &Path, to: &Path) -> std::process::Output {
    Command::new(tracker_bin())
        .arg("backup")
        .arg(to)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("XDG_CONFIG_HOME", dir)
        .output()
        .expect("tracker backup")
}

#[test]
fn a_backup_during_a_burst_holds_every_message_up_to_its_moment_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay", "--flood-rate", "0"]);
    // One watches the room; another asks the store what it kept.
    let mut watcher = connect(tracker.port, "watcher", None);
    let mut reader = connect(tracker.port, "reader", None);
    let stop = Arc::new(AtomicBool::new(false));
    // Three people send as fast as the tracker takes it until told to
    // stop, then 100 more each: the burst runs before, during and after
    // the backup.
    let senders: Vec<_> = (0..3)
        .map(|s| {
            let stop = stop.clone();
            let mut r = connect(tracker.port, &format!("sender{s}"), None);
            std::thread::spawn(move || {
                let mut sent = 0;
                let mut after_stop = 0;
                while after_stop < 100 && sent < 5000 {
                    r.send(&format!("PRIVMSG #general :s{s} m{sent}"));
                    sent += 1;
                    if stop.load(Ordering::Relaxed) {
                        after_stop += 1;
                    }
                    // Every 50 messages, a barrier the hub answers in
                    // order (WHO of nobody): never more than 50 ahead.
                    if sent % 50 == 0 {
                        r.send(&format!("WHO nobody-{s}-{sent}"));
                        r.expect(&format!(" 315 sender{s} nobody-{s}-{sent} "));
                    }
                }
                (r, sent)
            })
        })
        .collect();

    // Once the store has kept a good part of the burst, copy it.
    let mut order: Vec<Seen> = Vec::new();
    while order.len() < 300 {
        let l = watcher.expect("PRIVMSG #general :s");
        order.push(seen(&l));
    }
    let kept = page(&mut reader, "CHATHISTORY LATEST #general * 1");
    let newest_kept_before = kept[0].1.clone();
    let copy = dir.path().join("copy.db");
    let out = backup(dir.path(), &copy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    let total: usize = senders
        .into_iter()
        .map(|t| t.join().expect("sender").1)
        .sum();
    while order.len() < total {
        let l = watcher.expect("PRIVMSG #general :s");
        order.push(seen(&l));
    }

    // The copy opens and is whole; its #general is the first messages
    // everyone saw, in the order they saw them, numbered 1, 2, 3...
    let db = rusqlite::Connection::open(&copy).expect("the copy opens");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let mut rows = db
        .prepare(
            "SELECT seq, msgid, at_ms, text FROM history
             WHERE target = '#general' AND command IN ('PRIVMSG', 'NOTICE') ORDER BY seq",
        )
        .expect("select");
    let copied: Vec<(i64, String, i64, String)> = rows
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert!(
        copied.iter().any(|c| c.1 == newest_kept_before),
        "the copy lacks {newest_kept_before}, kept before it started"
    );
    assert!(
        copied.len() < total,
        "the burst went on after the copy: {} of {total}",
        copied.len()
    );
    for (i, (seq, msgid, at_ms, text)) in copied.iter().enumerate() {
        let (time, seen_id, _, _, seen_text) = &order[i];
        // In order (room events such as joins take places between).
        if i > 0 {
            assert!(*seq > copied[i - 1].0, "in order");
        }
        assert_eq!((msgid, text), (seen_id, seen_text), "message {}", i + 1);
        let at: jiff::Timestamp = time.parse().expect("server-time");
        assert_eq!(*at_ms, at.as_millisecond());
    }
}
