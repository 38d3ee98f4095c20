//! History with the real tracker: CHATHISTORY pages of a room and a DM,
//! each reader seeing a room only from when they first joined, and the
//! history (and an account's first join) surviving a restart.

use crate::harness::*;

const CAPS: &str = "batch server-time message-tags draft/chathistory sasl";

/// Logs in with the history caps (and SASL when `account` is given).
fn connect(port: u16, nick: &str, account: Option<&str>) -> Raw {
    login_with_caps(port, nick, CAPS, account)
}

/// Asks for a page and returns its lines' `<nick>: text`, checking the
/// batch around them.
fn page(r: &mut Raw, request: &str) -> Vec<String> {
    r.send(request);
    let open = r.expect("BATCH +");
    let reference = open
        .split("BATCH +")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("a batch reference")
        .to_string();
    assert!(open.contains(" chathistory "), "{open}");
    let mut lines = Vec::new();
    loop {
        let line = r.lines.wait_for("the page", |l| l.contains(&reference));
        if line.contains(&format!("BATCH -{reference}")) {
            return lines;
        }
        assert!(
            line.starts_with(&format!("@batch={reference};time=")),
            "{line}"
        );
        assert!(line.contains(";msgid="), "{line}");
        let (_, rest) = line.split_once(" :").expect("source");
        let nick = rest.split('!').next().unwrap_or("");
        let text = line.rsplit_once(" :").map(|(_, t)| t).unwrap_or("");
        lines.push(format!("{nick}: {text}"));
    }
}

#[test]
fn rooms_and_dms_are_read_back_from_first_join_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut alice = connect(tracker.port, "alice", None);
    alice.send("REGISTER * * :river stone 42");
    alice.expect("REGISTER SUCCESS");
    alice.send("JOIN #lab");
    alice.expect(" 366 alice #lab ");
    for text in ["one", "two"] {
        alice.send(&format!("PRIVMSG #lab :{text}"));
    }
    let mut bob = connect(tracker.port, "bob", None);
    bob.send("JOIN #lab");
    bob.expect(" 366 bob #lab ");
    alice.send("PRIVMSG #lab :three");
    bob.expect("PRIVMSG #lab :three");
    alice.send("PRIVMSG bob :psst");
    bob.expect("PRIVMSG bob :psst");

    assert_eq!(
        page(&mut alice, "CHATHISTORY LATEST #lab * 10"),
        ["alice: one", "alice: two", "alice: three"]
    );
    assert_eq!(
        page(&mut bob, "CHATHISTORY LATEST #lab * 10"),
        ["alice: three"],
        "bob came after one and two"
    );
    assert_eq!(
        page(&mut bob, "CHATHISTORY LATEST alice * 10"),
        ["alice: psst"]
    );
    assert_eq!(
        page(&mut alice, "CHATHISTORY LATEST bob * 10"),
        ["alice: psst"]
    );
    assert_eq!(
        page(&mut alice, "CHATHISTORY LATEST #lab * 2"),
        ["alice: two", "alice: three"]
    );

    bob.send("CHATHISTORY LATEST #nowhere * 10");
    bob.expect(":confab FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere :You are not in that room");
    bob.send("CHATHISTORY BEFORE #lab msgid=nope 10");
    bob.expect(":confab FAIL CHATHISTORY INVALID_MSGREFS #lab nope :No message with that msgid in this history");
    bob.send("CHATHISTORY LATEST #lab * many");
    bob.expect(
        ":confab FAIL CHATHISTORY INVALID_PARAMS LATEST #lab :The limit must be a number above 0",
    );

    // A room left by choice is not given back at the next login.
    alice.send("JOIN #quiet");
    alice.expect(" 366 alice #quiet ");
    alice.send("PART #quiet :bye");
    alice.expect("PART #quiet :bye");
    // The store takes work in order: once a page is read, the part is
    // kept too, before the kill below.
    page(&mut alice, "CHATHISTORY LATEST #lab * 1");

    // A restart (kill -9): logging in puts the account back in its rooms,
    // it reads them from its first join, and new messages continue the
    // room's numbering.
    drop((alice, bob));
    drop(tracker);
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut alice = connect(tracker.port, "alice", Some("river stone 42"));
    alice.expect(":alice!alice@127.0.0.1 JOIN #lab");
    alice.expect(" 366 alice #lab ");
    alice.send("WHOIS alice");
    let rooms = alice.expect(" 319 alice alice ");
    assert!(
        rooms.contains("#lab") && !rooms.contains("#quiet"),
        "{rooms}"
    );
    alice.send("PRIVMSG #lab :four");
    let mut carol = connect(tracker.port, "carol", None);
    carol.send("JOIN #lab");
    carol.expect(" 366 carol #lab ");
    assert_eq!(
        page(&mut alice, "CHATHISTORY LATEST #lab * 10"),
        ["alice: one", "alice: two", "alice: three", "alice: four"]
    );
    assert!(page(&mut carol, "CHATHISTORY LATEST #lab * 10").is_empty());
    let before = page(
        &mut alice,
        "CHATHISTORY BEFORE #lab timestamp=2100-01-01T00:00:00.000Z 2",
    );
    assert_eq!(before, ["alice: three", "alice: four"]);
}
