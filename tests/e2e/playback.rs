//! `CHATHISTORY TARGETS` and `draft/event-playback` with the real tracker
//! and raw IRC clients: the targets listed are exactly the rooms one is in
//! and one's own conversations, each as far as one may read it; a room's
//! history replays its events, as they were seen live, to a reader who
//! asked for them, and only its messages to one who did not.

use crate::harness::*;

const HISTORY: &str = "batch server-time message-tags draft/chathistory";
const WITH_EVENTS: &str = "batch server-time message-tags draft/chathistory draft/event-playback";

/// Logs in with `caps` and waits for the end of the burst.
fn connect(port: u16, nick: &str, caps: &str) -> Raw {
    let mut r = Raw::connect(port);
    r.send(&format!("CAP REQ :{caps}"));
    r.expect(" ACK ");
    r.send(&format!("PASS :{PASSWORD}"));
    r.send(&format!("NICK {nick}"));
    r.send(&format!("USER {nick} 0 * :{nick}"));
    r.send("CAP END");
    r.expect(" 366 ");
    r
}

/// The `time` tag of a line.
fn time_of(line: &str) -> &str {
    line.split(['@', ';', ' '])
        .find_map(|t| t.strip_prefix("time="))
        .expect("a time tag")
}

/// Sends `request` and returns the lines of the batch it opens (of
/// `kind`), without the batch tag, checking the batch around them.
fn batch(r: &mut Raw, request: &str, kind: &str) -> Vec<String> {
    r.send(request);
    let open = r.expect("BATCH +");
    let (_, after) = open.split_once("BATCH +").expect("a batch");
    let (reference, rest) = after.split_once(' ').expect("a batch type");
    assert!(rest.starts_with(kind), "{open}");
    let mut lines = Vec::new();
    loop {
        let line = r.lines.wait_for("the batch", |l| l.contains(reference));
        if line.contains(&format!("BATCH -{reference}")) {
            return lines;
        }
        let tag = format!("batch={reference}");
        let untagged =
            line.replacen(&format!("@{tag};"), "@", 1)
                .replacen(&format!("@{tag} "), "", 1);
        assert_ne!(untagged, line, "every line in the batch: {line}");
        lines.push(untagged);
    }
}

#[test]
fn targets_are_exactly_the_rooms_one_is_in_and_ones_own_conversations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut alice = connect(tracker.port, "alice", HISTORY);
    let mut bob = connect(tracker.port, "bob", HISTORY);
    let mut carol = connect(tracker.port, "carol", HISTORY);
    let mut dave = connect(tracker.port, "dave", HISTORY);

    for r in [&mut alice, &mut bob] {
        r.send("JOIN #lab");
    }
    bob.expect(" 366 bob #lab ");
    bob.send("PRIVMSG #lab :hi");
    let hi = alice.expect("PRIVMSG #lab :hi");
    // A room she left before anyone spoke in it.
    alice.send("JOIN #gone");
    alice.expect(" 366 alice #gone ");
    alice.send("PART #gone");
    alice.expect("PART #gone");
    carol.send("JOIN #gone");
    carol.expect(" 366 carol #gone ");
    carol.send("PRIVMSG #gone :after she left");
    // A room whose only message came before she joined.
    carol.send("JOIN #early");
    carol.expect(" 366 carol #early ");
    carol.send("PRIVMSG #early :before she came");
    // The hub takes carol's lines in order: once it answered the NAMES,
    // her message is in, before alice joins.
    carol.send("NAMES #early");
    carol.expect(" 366 carol #early ");
    alice.send("JOIN #early");
    alice.expect(" 366 alice #early ");
    // Her conversation, and another pair's.
    carol.send("PRIVMSG dave :not hers");
    dave.expect("PRIVMSG dave :not hers");
    bob.send("PRIVMSG alice :psst");
    let psst = alice.expect("PRIVMSG alice :psst");

    assert_eq!(
        batch(
            &mut alice,
            "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 50",
            "draft/chathistory-targets"
        ),
        [
            format!(":confab CHATHISTORY TARGETS #lab {}", time_of(&hi)),
            format!(":confab CHATHISTORY TARGETS bob {}", time_of(&psst)),
        ]
    );
    // Dave's side of his conversation is carol.
    let daves = batch(
        &mut dave,
        "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 50",
        "draft/chathistory-targets",
    );
    assert_eq!(daves.len(), 1, "{daves:?}");
    assert!(
        daves[0].starts_with(":confab CHATHISTORY TARGETS carol "),
        "{daves:?}"
    );
    // A window that ends before the DM lists the room alone.
    let until = time_of(&psst).to_string();
    assert_eq!(
        batch(
            &mut alice,
            &format!("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp={until} 50"),
            "draft/chathistory-targets"
        ),
        [format!(":confab CHATHISTORY TARGETS #lab {}", time_of(&hi))]
    );
    alice.send("CHATHISTORY TARGETS msgid=abc timestamp=2100-01-01T00:00:00.000Z 50");
    alice.expect(
        ":confab FAIL CHATHISTORY INVALID_PARAMS TARGETS :TARGETS takes two references timestamp=<RFC 3339 time>",
    );
}

#[test]
fn two_readers_of_one_room_get_its_events_only_if_they_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let mut alice = connect(tracker.port, "alice", WITH_EVENTS);
    let mut bob = connect(tracker.port, "bob", HISTORY);
    let mut carol = Raw::register(tracker.port, "carol");

    // Everything alice sees happen in #lab, as she sees it live.
    let mut seen = Vec::new();
    alice.send("JOIN #lab");
    seen.push(alice.expect(":alice!alice@127.0.0.1 JOIN #lab"));
    seen.push(alice.expect(":confab MODE #lab +o alice"));
    bob.send("JOIN #lab");
    seen.push(alice.expect(":bob!bob@127.0.0.1 JOIN #lab"));
    carol.send("JOIN #lab");
    seen.push(alice.expect(":carol!carol@127.0.0.1 JOIN #lab"));
    carol.send("PRIVMSG #lab :hello");
    seen.push(alice.expect("PRIVMSG #lab :hello"));
    let hello_for_bob = bob.expect("PRIVMSG #lab :hello");
    alice.send("TOPIC #lab :plans");
    seen.push(alice.expect(" TOPIC #lab :plans"));
    alice.send("MODE #lab +v bob");
    seen.push(alice.expect(" MODE #lab +v bob"));
    carol.send("NICK carla");
    seen.push(alice.expect(":carol!carol@127.0.0.1 NICK carla"));
    alice.send("KICK #lab carla :enough");
    seen.push(alice.expect(" KICK #lab carla :enough"));
    let mut dave = Raw::register(tracker.port, "dave");
    dave.send("JOIN #lab");
    seen.push(alice.expect(":dave!dave@127.0.0.1 JOIN #lab"));
    dave.send("QUIT :off to lunch");
    seen.push(alice.expect(":dave!dave@127.0.0.1 QUIT :"));
    bob.send("PART #lab :later");
    seen.push(alice.expect(":bob!bob@127.0.0.1 PART #lab :later"));
    bob.send("JOIN #lab");
    seen.push(alice.expect(":bob!bob@127.0.0.1 JOIN #lab"));
    bob.expect(" 366 bob #lab ");

    assert_eq!(
        batch(
            &mut alice,
            "CHATHISTORY LATEST #lab * 100",
            "chathistory #lab"
        ),
        seen,
        "the room's history is what she saw, events and all, with their times and msgids"
    );
    assert_eq!(
        batch(
            &mut bob,
            "CHATHISTORY LATEST #lab * 100",
            "chathistory #lab"
        ),
        [hello_for_bob],
        "without draft/event-playback: the messages only"
    );
    // The limit counts the lines sent: the last two events for alice.
    assert_eq!(
        batch(
            &mut alice,
            "CHATHISTORY LATEST #lab * 2",
            "chathistory #lab"
        ),
        seen[seen.len() - 2..]
    );
}
