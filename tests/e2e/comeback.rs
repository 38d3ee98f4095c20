//! Coming back, with the real tracker and raw IRC clients: two
//! connections of one account as one user (what each sees, what others
//! see, chat.log), read markers shared between them, and at the next
//! login the summary, the unread lines with their original time, and a
//! direct message held while the account was away.

use base64::Engine;

use crate::harness::*;

const CAPS: &str = "batch server-time message-tags draft/chathistory draft/read-marker sasl";

/// Logs in as `nick` with every history cap, with SASL when `password`
/// is given; waits for the end of the #general join.
fn login(port: u16, nick: &str, password: Option<&str>) -> Raw {
    login_with_caps(port, nick, CAPS, password)
}

/// The value of tag `name` on `line`.
fn tag<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
}

/// The lines of the next `chathistory` batch for `target`, as
/// `<nick>: text`, checking each carries its time and msgid.
fn batch(r: &mut Raw, target: &str) -> Vec<(String, String)> {
    let open = r.expect(&format!(" chathistory {target}"));
    let reference = open
        .split("BATCH +")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("a batch reference")
        .to_string();
    let mut lines = Vec::new();
    loop {
        let line = r.lines.wait_for("the batch", |l| l.contains(&reference));
        if line.contains(&format!("BATCH -{reference}")) {
            return lines;
        }
        assert_eq!(tag(&line, "batch"), Some(reference.as_str()), "{line}");
        assert!(tag(&line, "msgid").is_some(), "{line}");
        let time = tag(&line, "time").expect("time").to_string();
        let (_, rest) = line.split_once(" :").expect("source");
        let nick = rest.split('!').next().unwrap_or("");
        let text = line.rsplit_once(" :").map(|(_, t)| t).unwrap_or("");
        lines.push((format!("{nick}: {text}"), time));
    }
}

#[test]
fn two_connections_of_one_account_are_one_user_sharing_read_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut laptop = login(tracker.port, "alice", None);
    laptop.send("REGISTER * * :river stone 42");
    laptop.expect("REGISTER SUCCESS");
    let mut bob = login(tracker.port, "bob", None);
    laptop.expect("JOIN #general");

    // The phone asks for another nick; it is alice all the same.
    let mut phone = Raw::connect(tracker.port);
    phone.send(&format!("CAP REQ :{CAPS}"));
    phone.expect(" ACK ");
    phone.send(&format!("PASS :{PASSWORD}"));
    phone.send("NICK alicephone");
    phone.send("USER alice 0 * :alice");
    phone.send("AUTHENTICATE PLAIN");
    phone.expect("AUTHENTICATE +");
    let plain = base64::engine::general_purpose::STANDARD.encode("alice\0alice\0river stone 42");
    phone.send(&format!("AUTHENTICATE {plain}"));
    phone.expect(" 903 ");
    phone.send("CAP END");
    phone.expect(":confab 001 alice ");
    phone.expect("JOIN #general");
    phone.expect(":confab MARKREAD #general *");
    tracker.wait_log("attach alice 2 (127.0.0.1)");

    bob.send("NAMES #general");
    let names = bob.expect(" 353 bob ");
    assert!(names.ends_with(":alice bob"), "one alice: {names}");
    bob.send("PRIVMSG #general :hello everyone");
    let seen_laptop = laptop.expect("PRIVMSG #general :hello everyone");
    let seen_phone = phone.expect("PRIVMSG #general :hello everyone");
    assert_eq!(tag(&seen_laptop, "msgid"), tag(&seen_phone, "msgid"));
    phone.send("PRIVMSG #general :typed on the phone");
    laptop.expect(":alice!alice@127.0.0.1 PRIVMSG #general :typed on the phone");
    bob.expect(":alice!alice@127.0.0.1 PRIVMSG #general :typed on the phone");

    // Read on the phone: the laptop hears it.
    let time = tag(&seen_phone, "time").expect("time").to_string();
    phone.send(&format!("MARKREAD #general timestamp={time}"));
    let line = format!(":confab MARKREAD #general timestamp={time}");
    phone.expect(&line);
    laptop.expect(&line);

    // The phone leaves: nobody sees alice go; the laptop carries on.
    phone.send("QUIT :train");
    phone.expect("ERROR :Closing link");
    tracker.wait_log("detach alice 1 (Quit: train)");
    bob.send("PRIVMSG #general :still there?");
    laptop.expect("PRIVMSG #general :still there?");
    laptop.send("QUIT :bye");
    bob.expect(":alice!alice@127.0.0.1 QUIT :Quit: bye");
    let log = tracker.log();
    assert!(
        !log.contains("leave alice (Quit: train)"),
        "the phone leaving is not alice leaving"
    );
    assert!(log.contains("leave alice (Quit: bye)"));

    // The marker outlives the connections.
    let mut again = login(tracker.port, "alice", Some("river stone 42"));
    again.expect(&line);
}

#[test]
fn coming_back_replays_what_was_missed_and_delivers_held_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut alice = login(tracker.port, "alice", None);
    alice.send("REGISTER * * :river stone 42");
    alice.expect("REGISTER SUCCESS");
    let mut bob = login(tracker.port, "bob", None);
    alice.send("QUIT :lunch");
    bob.expect("QUIT :Quit: lunch");

    bob.send("PRIVMSG #general :one");
    bob.send("PRIVMSG #general :alice: two, for you");
    bob.send("PRIVMSG alice :are you there?");
    bob.expect(
        ":confab NOTICE bob :alice is not connected; your message is kept and will be delivered when alice logs in",
    );
    bob.send("PRIVMSG nobody :hello?");
    bob.expect(":confab 401 bob nobody :No such user");
    tracker.wait_log("dm bob -> alice: are you there?");
    let sent_at: Vec<String> = tracker
        .log()
        .lines()
        .filter(|l| {
            (l.contains(" msg ") && l.contains(" #general <bob> "))
                || (l.contains(" dm ") && l.contains(" bob -> alice: "))
        })
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(sent_at.len(), 3);

    let mut alice = login(tracker.port, "alice", Some("river stone 42"));
    alice.expect(":confab MARKREAD #general *");
    alice.expect(
        "@confab/away-summary=#general :confab NOTICE #general :While you were away: 2 messages in #general, 1 mentions you",
    );
    let room = batch(&mut alice, "#general");
    assert_eq!(
        room,
        [
            ("bob: one".to_string(), sent_at[0].clone()),
            ("bob: alice: two, for you".to_string(), sent_at[1].clone()),
        ],
        "the missed lines, with the time they were sent"
    );
    alice.expect(
        "@confab/away-summary=bob :confab NOTICE alice :While you were away: 1 direct message from bob",
    );
    let dms = batch(&mut alice, "bob");
    assert_eq!(
        dms,
        [("bob: are you there?".to_string(), sent_at[2].clone())]
    );

    // Delivered once: the next login has nothing held (and reads from
    // the marker it sets).
    alice.send(&format!("MARKREAD bob timestamp={}", sent_at[2]));
    alice.expect(&format!(":confab MARKREAD bob timestamp={}", sent_at[2]));
    alice.send(&format!("MARKREAD #general timestamp={}", sent_at[1]));
    alice.expect(&format!(
        ":confab MARKREAD #general timestamp={}",
        sent_at[1]
    ));
    alice.send("QUIT :again");
    bob.expect("QUIT :Quit: again");
    let mut alice = login(tracker.port, "alice", Some("river stone 42"));
    alice.send("PING :done");
    alice.expect("PONG confab :done");
    let all = alice.lines.seen.clone();
    assert!(
        !all.iter()
            .any(|l| l.contains("BATCH") || l.contains("While you were away")),
        "nothing left unread: {all:?}"
    );
}
