//! Rooms and their moderation over real sockets: what every member saw and
//! what `chat.log` holds. The permission matrix is tested in-process
//! (`src/tracker/hub/tests.rs`); these prove the wiring.

use crate::harness::*;

fn plain_tracker(extra: &[&str]) -> (tempfile::TempDir, Tracker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--no-tls", "--stay"];
    args.extend_from_slice(extra);
    let t = Tracker::start_in(dir.path(), &args);
    (dir, t)
}

/// A room's life: created (its creator is founder and operator), joined,
/// listed, moderated (key, invite-only, bans, kick), left, and closed by
/// its founder only, with everyone told why.
#[test]
fn a_room_from_creation_to_close() {
    let (_dir, tracker) = plain_tracker(&[]);
    let port = tracker.port;
    let mut alice = Raw::register(port, "alice");
    let mut bob = Raw::register(port, "bob");
    let mut carol = Raw::register(port, "carol");
    let mut eve = Raw::register(port, "eve");

    alice.send("JOIN #lab");
    alice.expect(":alice!alice@127.0.0.1 JOIN #lab");
    alice.expect(":confab MODE #lab +o alice");
    assert_eq!(alice.expect(" 353 "), ":confab 353 alice = #lab :~alice");
    alice.send("TOPIC #lab :fractions, part 2");
    alice.expect(":alice!alice@127.0.0.1 TOPIC #lab :fractions, part 2");

    bob.send("JOIN #lab");
    assert_eq!(
        bob.expect(" 332 "),
        ":confab 332 bob #lab :fractions, part 2"
    );
    assert_eq!(bob.expect(" 353 "), ":confab 353 bob = #lab :~alice bob");
    alice.expect(":bob!bob@127.0.0.1 JOIN #lab");

    // The room list and the member list.
    carol.send("LIST");
    carol.expect(":confab 321 carol Channel :Users  Name");
    carol.expect(":confab 322 carol #lab 2 :fractions, part 2");
    carol.expect(":confab 323 carol :End of /LIST");
    carol.send("WHO #lab");
    carol.expect(":confab 352 carol #lab alice 127.0.0.1 confab alice H~@ :0 alice raw");
    carol.expect(":confab 352 carol #lab bob 127.0.0.1 confab bob H :0 bob raw");
    carol.expect(":confab 315 carol #lab :End of WHO list");

    // Only the founder (or a tracker operator) closes; others are told who may.
    carol.send("CLOSE #lab :mine now");
    carol.expect(
        ":confab 482 carol #lab :Only alice, who created #lab, or a tracker operator can close it",
    );
    bob.send("CLOSE #lab");
    bob.expect(
        ":confab 482 bob #lab :Only alice, who created #lab, or a tracker operator can close it",
    );
    bob.send("KICK #lab alice");
    bob.expect(
        ":confab 482 bob #lab :You need to be an operator of #lab (or a tracker operator) to kick",
    );

    // A key, then invite-only, then a ban.
    alice.send("MODE #lab +k sesame");
    bob.expect(":alice!alice@127.0.0.1 MODE #lab +k sesame");
    carol.send("JOIN #lab");
    carol.expect(":confab 475 carol #lab :Cannot join room (+k): wrong or missing key");
    carol.send("JOIN #lab sesame");
    carol.expect(":carol!carol@127.0.0.1 JOIN #lab");
    alice.send("MODE #lab -k+ib * eve");
    alice.expect(":alice!alice@127.0.0.1 MODE #lab -k+ib * eve!*@*");
    eve.send("JOIN #lab");
    eve.expect(":confab 474 eve #lab :Cannot join room (+b): you are banned");
    let mut dan = Raw::register(port, "dan");
    dan.send("JOIN #lab");
    dan.expect(":confab 473 dan #lab :Cannot join room (+i): invite only");
    alice.send("MODE #lab -i");
    alice.expect(":alice!alice@127.0.0.1 MODE #lab -i");
    eve.send("JOIN #lab");
    eve.expect(":confab 474 eve #lab :Cannot join room (+b): you are banned");
    alice.send("INVITE eve #lab");
    alice.expect(":confab 341 alice eve #lab");
    eve.expect(":alice!alice@127.0.0.1 INVITE eve #lab");
    eve.send("JOIN #lab");
    eve.expect(":eve!eve@127.0.0.1 JOIN #lab");

    // Kick by the founder: everyone in the room sees it.
    alice.send("KICK #lab eve :off topic");
    for r in [&mut bob, &mut carol, &mut eve] {
        r.expect(":alice!alice@127.0.0.1 KICK #lab eve :off topic");
    }
    eve.send("PRIVMSG #lab :let me back");
    eve.expect(":confab 404 eve #lab :Cannot send to room: you are not in it");

    carol.send("PART #lab :see you");
    bob.expect(":carol!carol@127.0.0.1 PART #lab :see you");

    // Closing: each member is told, by a KICK of themself any IRC client
    // shows; the room is gone.
    alice.send("CLOSE #lab :lesson over");
    alice.expect(":alice!alice@127.0.0.1 KICK #lab alice :Room closed by alice: lesson over");
    bob.expect(":alice!alice@127.0.0.1 KICK #lab bob :Room closed by alice: lesson over");
    carol.send("LIST");
    carol.expect(":confab 322 carol #general 5 :");
    carol.expect(":confab 323 carol :End of /LIST");
    assert!(
        !carol
            .lines
            .seen
            .iter()
            .rev()
            .take(3)
            .any(|l| l.contains("#lab")),
        "closed room still listed: {:?}",
        carol.lines.seen
    );
    bob.send("PRIVMSG #lab :anyone?");
    bob.expect(":confab 403 bob #lab :No such room");

    for line in [
        "create #lab alice",
        "join #lab alice (127.0.0.1)",
        "topic #lab alice: fractions, part 2",
        "mode #lab alice +k sesame",
        "mode #lab alice -k+ib * eve!*@*",
        "invite #lab alice -> eve",
        "kick #lab alice -> eve (off topic)",
        "part #lab carol (see you)",
        "close #lab alice (lesson over)",
    ] {
        tracker.wait_log(line);
    }
}

/// Nobody takes over a room by taking its founder's name: founder rights
/// belong to the connection that created the room and end when it leaves.
#[test]
fn the_founders_name_does_not_carry_the_room() {
    let (_dir, tracker) = plain_tracker(&[]);
    let port = tracker.port;
    let mut alice = Raw::register(port, "alice");
    let mut bob = Raw::register(port, "bob");
    alice.send("JOIN #club");
    alice.expect(" 366 ");
    bob.send("JOIN #club");
    bob.expect(" 366 ");
    alice.send("QUIT :bye");
    bob.expect(":alice!alice@127.0.0.1 QUIT :Quit: bye");

    let mut mallory = Raw::register(port, "alice");
    mallory.send("JOIN #club");
    assert_eq!(
        mallory.expect(" 353 "),
        ":confab 353 alice = #club :bob alice"
    );
    mallory.send("CLOSE #club");
    mallory.expect(
        ":confab 482 alice #club :Only a tracker operator can close #club (its creator has left)",
    );
    mallory.send("MODE #club +i");
    mallory.expect(
        ":confab 482 alice #club :You need to be an operator of #club (or a tracker operator) to change its modes",
    );
    mallory.send("HELP CLOSE");
    mallory.expect(":confab 705 alice CLOSE :Only the room's founder (its creator, while connected) or a tracker operator may close it.");
}

/// Tracker operators come from the configuration file (a hash printed by
/// `tracker hash-password`): after OPER they are marked in WHOIS, close any
/// room, kick anywhere and KILL; wrong attempts get nothing.
#[test]
fn tracker_operators_close_kick_and_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = operator_hash("chalk dust");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let config = dir.path().join("tracker.toml");
    std::fs::write(
        &config,
        format!("[[oper]]\nname = \"teacher\"\npassword-hash = \"{hash}\"\n"),
    )
    .expect("config");
    let tracker = Tracker::start_in(
        dir.path(),
        &[
            "--no-tls",
            "--stay",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--server-name",
            "lab.school",
        ],
    );
    let port = tracker.port;
    let mut ann = Raw::register(port, "ann");
    let mut bob = Raw::register(port, "bob");
    let mut carol = Raw::register(port, "carol");
    assert!(ann.lines.seen[0].starts_with(":lab.school 001 ann "));
    bob.send("JOIN #bobs");
    bob.expect(" 366 ");
    carol.send("JOIN #bobs");
    carol.expect(" 366 ");

    ann.send("OPER teacher wrong");
    ann.expect(":lab.school 491 ann :No operator block for your name or password");
    ann.send("KILL bob :spam");
    ann.expect(":lab.school 481 ann :Permission denied: you are not a tracker operator");
    ann.send("OPER teacher :chalk dust");
    ann.expect(":lab.school 381 ann :You are now a tracker operator");
    ann.expect(":ann MODE ann +o");
    bob.send("WHOIS ann");
    bob.expect(":lab.school 313 bob ann :is a tracker operator");

    // Close a room she is not in: its members are told.
    ann.send("CLOSE #bobs :not during class");
    bob.expect(":ann!ann@127.0.0.1 KICK #bobs bob :Room closed by ann: not during class");
    carol.expect(":ann!ann@127.0.0.1 KICK #bobs carol :Room closed by ann: not during class");
    ann.expect(":lab.school NOTICE ann :#bobs is closed; its 2 member(s) were told and removed");

    ann.send("KILL bob :spam");
    bob.expect("ERROR :Closing link: 127.0.0.1 (Killed by ann (spam))");
    carol.expect(":bob!bob@127.0.0.1 QUIT :Killed by ann (spam)");
    ann.send("KILL lab.school :x");
    ann.expect(":lab.school 483 ann :You cannot kill the tracker");

    for line in [
        "oper ann as teacher",
        "close #bobs ann (not during class)",
        "kill ann -> bob (spam)",
        "leave bob (Killed by ann (spam))",
    ] {
        tracker.wait_log(line);
    }
    assert!(
        tracker
            .stderr_text()
            .contains("wrong OPER name or password"),
        "{}",
        tracker.stderr_text()
    );
}
