//! Bytes on the wire, in `chat.log` and on terminals: the IRCv3 tag size
//! limits, control characters in tag values, Unicode line separators, and
//! what our client says about a line it cannot use.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use std::path::Path;

use crate::harness::*;
use crate::terminal::wrapped;
use crate::tmux::{Tmux, have};

fn plain_tracker() -> (tempfile::TempDir, Tracker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tracker::start_in(dir.path(), &["--no-tls"]);
    (dir, t)
}

/// A raw connection that negotiated `caps` and registered as `nick`.
fn register_with_caps(port: u16, nick: &str, caps: &str) -> Raw {
    let mut r = Raw::connect(port);
    r.send("CAP LS 302");
    r.send(&format!("CAP REQ :{caps}"));
    r.expect(" ACK ");
    r.send(&format!("PASS :{PASSWORD}"));
    r.send(&format!("NICK {nick}"));
    r.send(&format!("USER {nick} 0 * :{nick}"));
    r.send("CAP END");
    r.expect(" 366 ");
    r
}

/// `client --plain` over plain TCP, joined as `name`.
fn plain_client(tracker: &Tracker, name: &str) -> ClientProc {
    let mut c = ClientProc::spawn(client_command(tracker, &["--user", name, "--no-tls"]), name);
    c.expect("#general --> you joined");
    c
}

/// The tag section of a raw line (`@...`, up to the first space).
fn tag_section(line: &str) -> &str {
    line.split(' ').next().unwrap_or("")
}

/// A `+example.com/big=ttt...` tag whose whole tag data is `len` bytes.
fn tag_data(len: usize) -> String {
    let key = "+example.com/big=";
    format!("{key}{}", "t".repeat(len - key.len()))
}

/// IRCv3 message-tags: a client's tag data is at most 4094 bytes. At the
/// limit the message is relayed with the tracker's `time` in front and the
/// whole tag section within 8191 bytes, and our own client shows it; one
/// byte more (or the 8189 bytes the issue saw accepted) is refused with
/// `417`, recorded nowhere and delivered to no one.
#[test]
fn client_tags_over_4094_bytes_are_refused_with_417() {
    let (_dir, tracker) = plain_tracker();
    let mut alice = register_with_caps(tracker.port, "alice", "message-tags server-time");
    let mut bob = register_with_caps(tracker.port, "bob", "message-tags server-time");
    let mut carol = plain_client(&tracker, "carol");
    bob.expect("carol!");

    alice.send(&format!(
        "@{} PRIVMSG #general :at the limit",
        tag_data(4094)
    ));
    let relayed = bob.expect("at the limit");
    let section = tag_section(&relayed);
    assert!(section.starts_with("@time=20"), "{}", &relayed[..60]);
    assert!(
        section.ends_with(&format!(";{}", tag_data(4094))),
        "client tags not relayed whole after time"
    );
    // With its trailing space: `@time=<24 bytes>;`, the tracker's
    // `msgid=<...>;` and the client's 4094 bytes, within 8191.
    let msgid = section
        .split(';')
        .find(|t| t.starts_with("msgid="))
        .expect("a msgid");
    assert_eq!(section.len() + 1, 4126 + msgid.len() + 1);
    assert!(section.len() < 8191);
    carol.expect("#general <alice> at the limit");

    for len in [4095, 8189 - 2] {
        alice.send(&format!(
            "@{} PRIVMSG #general :over the limit {len}",
            tag_data(len)
        ));
        assert_eq!(
            alice.expect(" 417 "),
            ":confab 417 alice :Input line was too long"
        );
    }
    alice.send("PRIVMSG #general :after");
    bob.expect(":alice!alice@127.0.0.1 PRIVMSG #general :after");
    carol.expect("#general <alice> after");
    tracker.wait_log("msg #general <alice> after");
    let over = |l: &String| l.contains("over the limit");
    assert!(!bob.lines.seen.iter().any(over), "{:?}", bob.lines.seen);
    assert!(!carol.bodies().iter().any(over), "{:?}", carol.bodies());
    assert!(!tracker.log_events().iter().any(over), "{}", tracker.log());
    assert!(
        !carol.bodies().iter().any(|l| l.starts_with("!!!")),
        "{:?}",
        carol.bodies()
    );
}

/// A relayed line with the tracker's `msgid` tag taken out (it differs
/// every time).
fn without_msgid(line: &str) -> String {
    let Some((tags, rest)) = line.strip_prefix('@').and_then(|l| l.split_once(' ')) else {
        return line.to_string();
    };
    let kept: Vec<&str> = tags
        .split(';')
        .filter(|t| !t.starts_with("msgid="))
        .collect();
    if kept.is_empty() {
        rest.to_string()
    } else {
        format!("@{} {rest}", kept.join(";"))
    }
}

/// Tag values reach other clients without escape sequences, control
/// characters, bidi controls or line separators (cleaned, the message
/// still delivered), on PRIVMSG and TAGMSG alike; tags with invalid names
/// are left out, not the message refused (IRCv3 message-tags).
#[test]
fn tag_values_are_relayed_without_control_characters() {
    let (_dir, tracker) = plain_tracker();
    let mut alice = register_with_caps(tracker.port, "alice", "message-tags");
    let mut bob = register_with_caps(tracker.port, "bob", "message-tags");
    alice.expect("bob!");

    alice.send(
        "@+x=\x1b[31mred\x1b[0m;+example.com/y=a\u{2028}b\u{202e}c;+z=\x07\x01;+t=\\:\\s\\\\ \
         PRIVMSG #general :tagged",
    );
    assert_eq!(
        without_msgid(&bob.expect("tagged")),
        "@+x=red;+example.com/y=a\\sbc;+z;+t=\\:\\s\\\\ :alice!alice@127.0.0.1 PRIVMSG #general :tagged"
    );
    // A tag with an invalid name is left out; the message still goes.
    alice.send("@+bad$name=\x1b[31m;+\u{202e}x=1;+ok=1 PRIVMSG #general :named");
    assert_eq!(
        without_msgid(&bob.expect("named")),
        "@+ok=1 :alice!alice@127.0.0.1 PRIVMSG #general :named"
    );
    alice.send("@+typing=active\x1b[2J\x1b]0\\x\x07 TAGMSG #general");
    assert_eq!(
        without_msgid(&bob.expect("TAGMSG")),
        "@+typing=active :alice!alice@127.0.0.1 TAGMSG #general"
    );
    for line in &bob.lines.seen {
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{line:?}"
        );
    }
}

/// A message holding U+2028 and then a fake timestamp and event would
/// read, to anything that splits lines the Unicode way, as a forged
/// `chat.log` line. The separator becomes a space: one line in the log,
/// none at all for other clients (raw IRC and our own). The same for the
/// other free texts that reach the log and other people (topic, away and
/// quit reasons), and a room name cannot hold one.
#[test]
fn line_separators_cannot_forge_a_log_line() {
    let (_dir, tracker) = plain_tracker();
    let mut alice = Raw::register(tracker.port, "alice");
    let mut bob = Raw::register(tracker.port, "bob");
    let mut carol = plain_client(&tracker, "carol");
    alice.expect("carol!");
    let fake = "2026-12-01T22:00:00.000Z msg #general <carol> my password is hunter2";

    alice.send(&format!("PRIVMSG #general :hello\u{2028}{fake}"));
    assert_eq!(
        bob.expect("hello"),
        format!(":alice!alice@127.0.0.1 PRIVMSG #general :hello {fake}")
    );
    carol.expect(&format!("#general <alice> hello {fake}"));
    tracker.wait_log(&format!("msg #general <alice> hello {fake}"));

    alice.send("JOIN #a\u{2028}b");
    alice.expect(":confab 403 alice #a_b :Invalid room name");
    alice.send("JOIN #side");
    alice.send(&format!("TOPIC #side :news\u{2029}{fake}"));
    tracker.wait_log(&format!("topic #side alice: news {fake}"));
    alice.send(&format!("AWAY :lunch\u{2028}{fake}"));
    tracker.wait_log(&format!("status alice BUSY (lunch {fake})"));
    alice.send(&format!("QUIT :bye\u{2028}{fake}"));
    assert_eq!(
        bob.expect(" QUIT "),
        format!(":alice!alice@127.0.0.1 QUIT :Quit: bye {fake}")
    );
    carol.expect(&format!("<-- alice left (Quit: bye {fake})"));
    tracker.wait_log(&format!("leave alice (Quit: bye {fake})"));

    let log = tracker.log();
    assert!(
        !log.contains(['\u{2028}', '\u{2029}', '\u{85}']),
        "separator in chat.log:\n{log}"
    );
    let forged = log.lines().filter(|l| l.starts_with(fake)).count();
    assert_eq!(forged, 0, "{log}");
    for line in bob.lines.seen.iter().chain(carol.out.seen.iter()) {
        assert!(!line.contains(['\u{2028}', '\u{2029}']), "{line:?}");
    }
}

/// In the full-screen client a line separator is a space and an
/// invisible character nothing: the message stays on its row, and no cell
/// holds a character the layout and the terminal disagree on the width of
/// (which left stale cells on the screen).
#[test]
fn full_screen_client_shows_separators_as_spaces() {
    if !have(&["tmux"]) {
        return;
    }
    let (_dir, tracker) = plain_tracker();
    let known = tracker.dir.join("known_trackers").display().to_string();
    let bob = Tmux::start(
        "wire-bob",
        &wrapped(
            &tracker.dir,
            client_bin(),
            &[
                &format!("127.0.0.1:{}", tracker.port),
                "--no-tls",
                "--user",
                "bob",
                "--known-trackers",
                &known,
            ],
        ),
        &[("CONFAB_PASSWORD", Path::new(PASSWORD))],
        &[],
    );
    bob.wait_screen("#general --> you joined");
    let mut alice = Raw::register(tracker.port, "alice");
    bob.wait_screen("#general --> alice joined");
    alice.send("PRIVMSG #general :one\u{2028}two\u{2029}three\u{200b}four\u{feff}!");
    let screen = bob.wait_screen("<alice> one two threefour!");
    assert!(
        !screen.contains(['\u{2028}', '\u{2029}', '\u{200b}', '\u{feff}']),
        "{screen}"
    );
}

/// Our client never drops a line without a word: a line over its limits
/// (8191 bytes of tags), one that is not UTF-8 and one that is not an IRC
/// message each show a `!!!` line, and the chat goes on.
#[test]
fn client_says_when_it_skips_a_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            std::thread::spawn(move || fake_tracker(stream));
        }
    });
    let mut cmd = std::process::Command::new(client_bin());
    cmd.arg(format!("127.0.0.1:{port}"))
        .args(["--plain", "--no-tls", "--user", "dave", "--known-trackers"])
        .arg(dir.path().join("known_trackers"))
        .env("CONFAB_PASSWORD", PASSWORD)
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut dave = ClientProc::spawn(cmd, "dave");
    dave.expect("#general --> you joined");
    dave.expect("#general <eve> before");
    dave.expect(
        "!!! A line from the tracker was skipped: it was longer than confab reads \
         (8191 bytes of tags, 4096 bytes of message)",
    );
    dave.expect("!!! A line from the tracker was skipped: it was not valid UTF-8");
    dave.expect(
        "!!! A line from the tracker was skipped: it is not an IRC message (malformed tag section)",
    );
    dave.expect("#general <eve> after");
}

/// Just enough of a tracker for the client to log in, then the lines the
/// client must report.
fn fake_tracker(stream: TcpStream) {
    let mut out = stream.try_clone().expect("clone");
    let mut send = |bytes: &[u8]| {
        let _ = out.write_all(bytes);
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let line = line.trim_end();
        if line.starts_with("CAP LS") {
            send(b":fake CAP * LS :server-time\r\n");
        } else if line.starts_with("CAP REQ") {
            send(b":fake CAP * ACK :server-time\r\n");
        } else if line.starts_with("PING") {
            send(
                format!(
                    ":fake PONG fake :{}\r\n",
                    line.rsplit(' ').next().unwrap_or("")
                )
                .as_bytes(),
            );
        } else if line == "CAP END" {
            send(b":fake 001 dave :Welcome\r\n:dave!dave@127.0.0.1 JOIN #general\r\n");
            send(b":eve!eve@127.0.0.1 PRIVMSG #general :before\r\n");
            let over = format!(
                "@time=2026-12-01T22:00:00.000Z;+big={} :eve!eve@127.0.0.1 PRIVMSG #general :lost\r\n",
                "t".repeat(8191)
            );
            send(over.as_bytes());
            send(b":eve!eve@127.0.0.1 PRIVMSG #general :caf\xe9\r\n");
            send(b"@tags-only\r\n");
            send(b":eve!eve@127.0.0.1 PRIVMSG #general :after\r\n");
        }
    }
}
