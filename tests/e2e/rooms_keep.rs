//! Registered rooms, retention and account deletion with the real tracker:
//! a room founded by an account survives a restart (topic, modes, bans,
//! its founder's `~` given to the account's login, seen by others), one
//! founded without an account does not; `--history-days` purges old
//! history (CHATHISTORY no longer returns it, chat.log records it); and
//! `ACCOUNT DELETE` takes the account's data with it.

use crate::harness::*;

const CAPS: &str = "batch server-time message-tags draft/chathistory sasl";
const ALICE_PW: &str = "river stone 42";

/// Logs in with the history caps, and to `account` with SASL PLAIN
/// (`Some(password)`; the account is named as the nick).
fn connect(port: u16, nick: &str, account: Option<&str>) -> Raw {
    login_with_caps(port, nick, CAPS, account)
}

/// A page of CHATHISTORY as `<nick>: <text>` lines.
fn page(r: &mut Raw, request: &str) -> Vec<String> {
    r.send(request);
    let open = r.expect("BATCH +");
    let reference = open
        .split("BATCH +")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("a batch reference")
        .to_string();
    let mut lines = Vec::new();
    loop {
        let line = r.lines.wait_for("the page", |l| l.contains(&reference));
        if line.contains(&format!("BATCH -{reference}")) {
            return lines;
        }
        let (_, rest) = line.split_once(" :").expect("source");
        let nick = rest.split('!').next().unwrap_or("");
        let text = line.rsplit_once(" :").map(|(_, t)| t).unwrap_or("");
        lines.push(format!("{nick}: {text}"));
    }
}

/// The rooms LIST names, each as `<room> <members> :<topic>`.
fn list(r: &mut Raw, nick: &str) -> Vec<String> {
    r.send("LIST");
    let mut rooms = Vec::new();
    loop {
        let line = r
            .lines
            .wait_for("LIST", |l| l.contains(" 322 ") || l.contains(" 323 "));
        if line.contains(" 323 ") {
            return rooms;
        }
        let row = line
            .split_once(&format!(" 322 {nick} "))
            .map(|(_, row)| row.to_string())
            .expect("a 322 row");
        rooms.push(row);
    }
}

/// Stops the tracker as the operator does (SIGTERM) and waits for it.
fn stop(tracker: &mut Tracker) {
    signal(&tracker.child, "TERM");
    let status = wait_exit(&mut tracker.child, WAIT);
    assert!(status.success(), "{status:?}\n{}", tracker.stderr_text());
}

const GENERAL_ROW: &str =
    "#general 1 :Group room: everyone is here. Everything said on this tracker is recorded.";

#[test]
fn a_registered_room_survives_a_restart_and_its_founder_is_the_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut alice = connect(tracker.port, "alice", None);
    alice.send(&format!("REGISTER * * :{ALICE_PW}"));
    alice.expect("REGISTER SUCCESS");
    alice.send("JOIN #plans");
    alice.expect(" 366 alice #plans ");
    alice.send("TOPIC #plans :trip on friday");
    alice.send("MODE #plans +kl sesame 10");
    alice.send("MODE #plans +b eve");
    alice.expect(":alice!alice@127.0.0.1 MODE #plans +b eve!*@*");
    // Founded without an account: not kept.
    let mut carol = connect(tracker.port, "carol", None);
    carol.send("JOIN #temp");
    carol.expect(" 366 carol #temp ");
    let mut rows = list(&mut carol, "carol");
    rows.sort();
    assert_eq!(
        rows,
        [
            GENERAL_ROW.replace(" 1 :", " 2 :"),
            "#plans 1 :trip on friday".to_string(),
            "#temp 1 :".to_string()
        ]
    );

    stop(&mut tracker);
    drop((alice, carol));
    let mut tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    // Before anyone who was in it is back: the room is there, empty.
    let mut bob = connect(tracker.port, "bob", None);
    assert_eq!(
        list(&mut bob, "bob"),
        [GENERAL_ROW, "#plans 0 :trip on friday"],
        "#temp is gone"
    );
    bob.send("JOIN #plans");
    bob.expect(":confab 475 bob #plans ");
    bob.send("JOIN #plans sesame");
    bob.expect(":bob!bob@127.0.0.1 JOIN #plans");
    bob.expect(":confab 332 bob #plans :trip on friday");
    let who_time = bob.expect(" 333 bob #plans ");
    assert!(
        who_time.starts_with(":confab 333 bob #plans alice "),
        "{who_time}"
    );
    bob.expect(":confab 366 bob #plans ");
    bob.send("MODE #plans");
    bob.expect(":confab 324 bob #plans +ntkl sesame 10");
    bob.send("MODE #plans b");
    let ban = bob.expect(" 367 ");
    assert!(
        ban.starts_with(":confab 367 bob #plans eve!*@* alice "),
        "{ban}"
    );

    // alice logs in: put back in #plans (its key does not keep her out)
    // and made its founder where bob sees it.
    let mut alice = connect(tracker.port, "alice", Some(ALICE_PW));
    bob.expect(":alice!alice@127.0.0.1 JOIN #plans");
    bob.expect(":confab MODE #plans +qo alice alice");
    alice.expect(":confab MODE #plans +qo alice alice");
    bob.send("NAMES #plans");
    bob.expect(":confab 353 bob = #plans :bob ~alice");
    // Only the founder closes it; closing it forgets it for good.
    bob.send("CLOSE #plans");
    bob.expect(":confab 482 bob #plans :Only its founder (whoever is logged in to the account alice) or a tracker operator can close #plans");
    alice.send("CLOSE #plans :trip cancelled");
    bob.expect(":alice!alice@127.0.0.1 KICK #plans bob :Room closed by alice: trip cancelled");
    stop(&mut tracker);
    drop((alice, bob));
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut dan = connect(tracker.port, "dan", None);
    assert_eq!(list(&mut dan, "dan"), [GENERAL_ROW]);
}

#[test]
fn history_days_purges_older_history_at_start_and_records_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let now = jiff::Timestamp::now().as_millisecond();
    {
        let (mut store, _) =
            confab::store::Store::open(&data.join(confab::store::FILE_NAME)).expect("store");
        store
            .create_account("alice", "alice", &operator_hash(ALICE_PW), now)
            .expect("account");
        let said = |seq: i64, ago_ms: i64, text: &str| confab::store::NewMessage {
            seq,
            msgid: format!("old-run-{seq}"),
            at_ms: now - ago_ms,
            target: "#old".into(),
            command: "PRIVMSG".into(),
            source: "alice!alice@127.0.0.1".into(),
            sender_account: Some("alice".into()),
            to_param: "#old".into(),
            text: text.into(),
            client_tags: String::new(),
            direct: None,
            hold_for: None,
        };
        store
            .append(&[
                said(1, 3 * 86_400_000, "three days ago"),
                said(2, 3_600_000, "an hour ago"),
            ])
            .expect("append");
        store.joined("alice", "#old", 0).expect("membership");
    }
    let mut tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay", "--history-days", "1"]);
    tracker.stdout.wait_for("the retention line", |l| {
        l == "history kept for 1 day(s): older messages purged at start and hourly (--history-days)"
    });
    let purge = crate::tmux::poll(
        "a history-purge line in chat.log",
        || {
            tracker
                .log_events()
                .into_iter()
                .find(|l| l.starts_with("history-purge "))
        },
        || tracker.log(),
    );
    let (count, rest) = purge["history-purge ".len()..]
        .split_once(" message(s) older than ")
        .expect("the line's shape");
    assert_eq!(count, "1", "{purge}");
    let (before, days) = rest.split_once(' ').expect("a time");
    assert_eq!(days, "(history-days 1)");
    let before: jiff::Timestamp = before.parse().expect("an RFC 3339 time");
    let day_ago = now - 86_400_000;
    assert!(
        (before.as_millisecond() - day_ago).abs() < 60_000,
        "{before} is a day before the start"
    );
    tracker.wait_stderr("history: purged 1 message(s) older than");

    // alice is put back in #old and reads only what is left.
    let mut alice = connect(tracker.port, "alice", Some(ALICE_PW));
    alice.expect(":alice!alice@127.0.0.1 JOIN #old");
    assert_eq!(
        page(&mut alice, "CHATHISTORY LATEST #old * 10"),
        ["alice: an hour ago"]
    );
    // `tracker log` reads the event.
    let out = std::process::Command::new(tracker_bin())
        .arg("log")
        .arg(dir.path().join("logs"))
        .args(["--event", "history-purge", "--json"])
        .output()
        .expect("tracker log");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("\"event\":\"history-purge\"") && text.contains("1 message(s) older than"),
        "{text}"
    );
    stop(&mut tracker);
}

#[test]
fn deleting_an_account_removes_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut alice = connect(tracker.port, "alice", None);
    alice.send(&format!("REGISTER * * :{ALICE_PW}"));
    alice.expect("REGISTER SUCCESS");
    alice.send("JOIN #plans");
    alice.expect(" 366 alice #plans ");
    let mut bob = connect(tracker.port, "bob", None);
    bob.send("JOIN #plans");
    bob.expect(" 366 bob #plans ");
    alice.send("PRIVMSG #plans :hello all");
    bob.expect("PRIVMSG #plans :hello all");
    bob.send("PRIVMSG #plans :hi alice");
    alice.expect("PRIVMSG #plans :hi alice");
    alice.send("PRIVMSG bob :secret plan");
    bob.expect("PRIVMSG bob :secret plan");
    bob.send("PRIVMSG alice :got it");
    alice.expect("PRIVMSG alice :got it");
    assert_eq!(
        page(&mut bob, "CHATHISTORY LATEST alice * 10"),
        ["alice: secret plan", "bob: got it"]
    );

    alice.send(&format!("ACCOUNT DELETE :{ALICE_PW}"));
    alice.expect(":confab NOTICE alice :Account alice and everything it kept were deleted; you are logged out");
    tracker.wait_log("account alice deleted");
    // The conversation went, bob's side too; alice's room message went,
    // bob's stayed; the room goes on for those in it.
    assert!(page(&mut bob, "CHATHISTORY LATEST alice * 10").is_empty());
    assert_eq!(
        page(&mut bob, "CHATHISTORY LATEST #plans * 10"),
        ["bob: hi alice"]
    );
    bob.send("PRIVMSG #plans :still here");
    alice.expect("PRIVMSG #plans :still here");

    stop(&mut tracker);
    drop((alice, bob));
    {
        let store = confab::store::Store::open_existing(
            &dir.path().join("data").join(confab::store::FILE_NAME),
        )
        .expect("store");
        assert!(store.account("alice").expect("read").is_none());
        assert!(store.registered_rooms().expect("read").is_empty());
        assert_eq!(
            store.message_count().expect("count"),
            2,
            "bob's two room messages"
        );
    }
    // After a restart the room is not there, and whoever registers the
    // name next inherits nothing.
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut other = connect(tracker.port, "alice", None);
    assert_eq!(list(&mut other, "alice"), [GENERAL_ROW]);
    other.send("REGISTER * * :another password");
    other.expect("REGISTER SUCCESS");
    assert!(page(&mut other, "CHATHISTORY LATEST bob * 10").is_empty());
}
