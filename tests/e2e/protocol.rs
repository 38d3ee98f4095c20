//! The tracker's IRC behaviour on the wire, over plain TCP (`--no-tls`).

use crate::harness::*;

fn plain_tracker(extra: &[&str]) -> (tempfile::TempDir, Tracker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--no-tls"];
    args.extend_from_slice(extra);
    let t = Tracker::start_in(dir.path(), &args);
    (dir, t)
}

/// The command (or numeric) of a raw line, skipping tags and source.
fn command(line: &str) -> &str {
    let mut words = line.split(' ');
    let mut w = words.next().unwrap_or("");
    if w.starts_with('@') {
        w = words.next().unwrap_or("");
    }
    if w.starts_with(':') {
        w = words.next().unwrap_or("");
    }
    w
}

/// CAP LS 302 / REQ / END, the registration burst in order, and what
/// negotiated capabilities do.
#[test]
fn registration_burst_and_cap_negotiation() {
    let (_dir, tracker) = plain_tracker(&[]);
    let mut r = Raw::connect(tracker.port);
    r.send("JOIN #general");
    r.expect(":confab 451 * JOIN :You have not registered");
    r.send("CAP LS 302");
    assert_eq!(
        r.expect(" LS "),
        ":confab CAP * LS :away-notify batch draft/account-registration draft/chathistory draft/event-playback draft/read-marker echo-message message-tags multi-prefix sasl server-time"
    );
    r.send("CAP REQ :server-time unknown-cap");
    assert_eq!(
        r.expect(" NAK "),
        ":confab CAP * NAK :server-time unknown-cap"
    );
    r.send("CAP REQ :server-time echo-message away-notify");
    assert_eq!(
        r.expect(" ACK "),
        ":confab CAP * ACK :server-time echo-message away-notify"
    );
    r.send(&format!("PASS :{PASSWORD}"));
    r.send("NICK rawuser");
    r.send("USER raw 0 * :Raw User");
    // Registration waits for CAP END: a PING is answered, no 001 yet.
    r.send("PING :before-end");
    let pong = r.expect("PONG");
    assert_eq!(pong, ":confab PONG confab :before-end");
    assert!(
        !r.lines.seen.iter().any(|l| command(l) == "001"),
        "registered before CAP END: {:?}",
        r.lines.seen
    );
    r.send("CAP END");
    r.expect(" 366 ");
    let after_pong: Vec<&str> = r
        .lines
        .seen
        .iter()
        .skip_while(|l| !l.contains("PONG"))
        .skip(1)
        .map(|l| l.as_str())
        .collect();
    let commands: Vec<&str> = after_pong.iter().map(|l| command(l)).collect();
    assert_eq!(
        commands,
        [
            "001", "002", "003", "004", "005", "005", "251", "252", "254", "255", "265", "266",
            "375", "372", "372", "372", "372", "372", "372", "376", "JOIN", "332", "333", "353",
            "366"
        ],
        "{after_pong:#?}"
    );
    assert_eq!(
        after_pong[0],
        ":confab 001 rawuser :Welcome to the confab tracker, rawuser!raw@127.0.0.1"
    );
    assert!(
        after_pong[3].starts_with(":confab 004 rawuser confab confab-"),
        "{}",
        after_pong[3]
    );
    let isupport = format!("{} {}", after_pong[4], after_pong[5]);
    for token in [
        " AWAYLEN=200 ",
        " CASEMAPPING=rfc1459 ",
        " CHANLIMIT=#:20 ",
        " CHANMODES=b,k,l,imnst ",
        " CHANTYPES=# ",
        " KICKLEN=300 ",
        " NICKLEN=16 ",
        " NETWORK=confab ",
        " PREFIX=(qov)~@+ ",
        " TOPICLEN=300 ",
        " TARGMAX=PRIVMSG:4,NOTICE:4,TAGMSG:4,JOIN:4,PART:4,NAMES:4,LIST:4,KICK:4,WHOIS:1,WHOWAS:1,USERHOST:5 ",
        " UTF8ONLY ",
        " WHOX ",
    ] {
        assert!(isupport.contains(token), "005 lacks {token}: {isupport}");
    }
    assert!(after_pong[4].ends_with(":are supported by this server"));
    assert!(after_pong[5].ends_with(":are supported by this server"));
    let join = after_pong[20];
    assert!(
        join.starts_with("@time="),
        "JOIN should carry server-time: {join}"
    );
    assert!(
        join.ends_with(" :rawuser!raw@127.0.0.1 JOIN #general"),
        "{join}"
    );
    assert_eq!(after_pong[23], ":confab 353 rawuser = #general :rawuser");

    // echo-message with server-time: our own message comes back tagged.
    r.send("PRIVMSG #general :hello wire");
    let echo = r.expect("hello wire");
    assert!(
        echo.starts_with("@time=20")
            && echo.ends_with("Z :rawuser!raw@127.0.0.1 PRIVMSG #general :hello wire"),
        "{echo}"
    );

    // A second connection without caps sees the plain form; away-notify goes
    // only to those who asked.
    let mut plain = Raw::register(tracker.port, "plainuser");
    r.expect(":plainuser!plainuser@127.0.0.1 JOIN #general");
    plain.send("AWAY :out to lunch");
    plain.expect(":confab 306 plainuser :You have been marked as being away");
    let away = r.expect(" AWAY ");
    assert!(
        away.ends_with(":plainuser!plainuser@127.0.0.1 AWAY :out to lunch"),
        "{away}"
    );
    r.send("PRIVMSG plainuser :are you there?");
    r.expect(":confab 301 rawuser plainuser :out to lunch");
    assert_eq!(
        plain.expect("are you there"),
        ":rawuser!raw@127.0.0.1 PRIVMSG plainuser :are you there?"
    );

    // WHOIS carries the IP and the status; WHO the H/G flags.
    r.send("WHOIS plainuser");
    r.expect(":confab 311 rawuser plainuser plainuser 127.0.0.1 * :plainuser raw");
    r.expect(":confab 378 rawuser plainuser :is connecting from *@127.0.0.1 127.0.0.1");
    r.expect(":confab 301 rawuser plainuser :out to lunch");
    r.expect(":confab 320 rawuser plainuser :status BUSY");
    r.expect(":confab 318 rawuser plainuser :End of /WHOIS list");
    r.send("WHO #general");
    r.expect(":confab 352 rawuser #general raw 127.0.0.1 confab rawuser H :0 Raw User");
    r.expect(
        ":confab 352 rawuser #general plainuser 127.0.0.1 confab plainuser G :0 plainuser raw",
    );
    r.expect(":confab 315 rawuser #general :End of WHO list");
    r.send("LIST");
    r.expect(":confab 322 rawuser #general 2 :Group room");
    r.send("NAMES #general");
    r.expect(":confab 353 rawuser = #general :rawuser plainuser");
    r.send("HELP");
    r.expect(":confab 704 rawuser index :confab tracker commands");
    r.send("FROB x");
    r.expect(":confab 421 rawuser FROB :Unknown command");
    r.send("USER again 0 * :x");
    r.expect(":confab 462 rawuser :You may not reregister");
    r.send("PRIVMSG nobody :hi");
    r.expect(":confab 401 rawuser nobody :No such user");
    r.send("PRIVMSG #general");
    r.expect(":confab 412 rawuser :No text to send");
    r.send("PART #general");
    r.expect(":confab FAIL PART CANNOT_LEAVE #general :Everyone stays in #general, the group room; to leave the tracker, quit (/quit, or exit in confab's client)");
    plain.send("QUIT :done here");
    plain.expect("ERROR :Closing link: 127.0.0.1 (Quit: done here)");
    r.expect(":plainuser!plainuser@127.0.0.1 QUIT :Quit: done here");
}

/// Wrong password: 464 then ERROR and close; nothing else happens.
#[test]
fn wrong_password_is_refused_on_the_wire() {
    let (_dir, mut tracker) = plain_tracker(&[]);
    let mut r = Raw::connect(tracker.port);
    r.send("PASS :nope");
    r.send("NICK guesser");
    r.send("USER g 0 * :g");
    r.expect(":confab 464 guesser :Password incorrect");
    r.expect("ERROR :Closing link: 127.0.0.1 (Bad password)");
    r.lines.drain();
    // No password at all is refused the same way.
    let mut r = Raw::connect(tracker.port);
    r.send("NICK guesser");
    r.send("USER g 0 * :g");
    r.expect(":confab 464 guesser :Password incorrect");
    assert!(tracker.is_running());
    assert_eq!(
        tracker.log_events().len(),
        1,
        "only the start line: {:?}",
        tracker.log_events()
    );
    r.lines.drain();
    // A password with a space sent without the trailing `:` (as irssi does)
    // arrives as two parameters and is still accepted.
    let mut r = Raw::connect(tracker.port);
    r.send(&format!("PASS {PASSWORD}"));
    r.send("NICK spacey");
    r.send("USER s 0 * :s");
    r.expect(":confab 001 spacey ");
    r.send("QUIT");
    r.expect("ERROR :Closing link: 127.0.0.1 (");
    // The refused connections never counted as members: the one real member
    // leaving is the last, and the tracker stops.
    assert!(wait_exit(&mut tracker.child, WAIT).success());
    let events = tracker.log_events();
    assert_eq!(
        events[1..],
        [
            "join #general spacey (127.0.0.1)".to_string(),
            "leave spacey (Quit)".into(),
            "stop last member left".into()
        ],
        "{events:?}"
    );
}

/// A peer that stops answering is PINGed, then dropped; the others see why.
#[test]
fn ping_timeout_drops_silent_peers() {
    let (_dir, tracker) = plain_tracker(&["--ping-interval", "1"]);
    let mut watcher = ClientProc::spawn(
        client_command(&tracker, &["--no-tls", "--user", "watcher"]),
        "watcher",
    );
    watcher.expect("#general --> you joined");
    let mut ghost = Raw::register(tracker.port, "ghost");
    ghost.expect("PING confab");
    ghost.expect("ERROR :Closing link: 127.0.0.1 (Ping timeout: 2 seconds)");
    watcher.expect("<-- ghost left (Ping timeout: 2 seconds)");
    tracker.wait_log("leave ghost (Ping timeout: 2 seconds)");
    // The watcher answers PINGs (its client does), so it is still here.
    watcher.send("still alive");
    watcher.expect("#general <watcher> still alive");
}

/// Bad input gets an error and affects nothing else.
#[test]
fn malformed_input_gets_errors_and_nothing_else_breaks() {
    let (_dir, tracker) = plain_tracker(&["--register-timeout", "1"]);
    let mut a = Raw::register(tracker.port, "alpha");
    let mut b = Raw::register(tracker.port, "beta");
    a.expect(":beta!beta@127.0.0.1 JOIN #general");
    // A line over 512 bytes.
    a.send(&format!("PRIVMSG #general :{}", "x".repeat(600)));
    a.expect(":confab 417 alpha :Input line was too long");
    // Not UTF-8.
    a.send_bytes(b"PRIVMSG #general :\xff\xfe\r\n");
    a.expect("FAIL * INVALID_UTF8 :Line was not valid UTF-8 and was ignored");
    // Terminal escapes and control characters are stripped before relaying and logging.
    a.send("PRIVMSG #general :\x1b[2J\x1b]0;owned\x07clean\x08 text\x1b[31m");
    assert_eq!(
        b.expect("clean"),
        ":alpha!alpha@127.0.0.1 PRIVMSG #general :clean text"
    );
    tracker.wait_log("msg #general <alpha> clean text");
    // Garbage commands.
    a.send("12345 nonsense");
    a.expect(":confab 421 alpha 12345 :Unknown command");
    // (A bad tag name only drops the tag: wire::tag_values_...)
    a.send("@tags=1;but-no-message");
    a.expect("FAIL * INVALID_MESSAGE :Line ignored: malformed tag section");
    // NUL bytes, too many parameters, escapes in a nick or room name: an
    // error, and the reply quotes the input cleaned.
    a.send_bytes(b"PRIVMSG #general :nul\x00here\r\n");
    a.expect("FAIL * INVALID_MESSAGE :Line ignored: line contains a NUL, CR or LF byte");
    a.send(&format!("PRIVMSG #general {}:many", "p ".repeat(20)));
    a.expect("FAIL * INVALID_MESSAGE :Line ignored: too many parameters");
    a.send("NICK \x1b[31mred");
    assert_eq!(
        a.expect(" 432 "),
        ":confab 432 alpha red :Erroneous nickname: usernames may use letters, digits and - _ [ ] \\ ^ { } | ` and may not start with a digit or -"
    );
    a.send("JOIN #\u{202e}abc");
    assert_eq!(
        a.expect(" 403 "),
        ":confab 403 alpha #abc :Invalid room name: # and up to 31 more characters, without spaces, commas or colons"
    );
    // Replies quoting long input stay within IRC's line limit.
    a.send(&format!("{} x", "Q".repeat(450)));
    let reply = a.expect(" 421 ");
    assert!(reply.len() <= 510, "{} bytes: {reply}", reply.len());
    assert!(
        reply.starts_with(&format!(":confab 421 alpha {} :", "Q".repeat(64))),
        "{reply}"
    );
    a.send("PRIVMSG #general :still works");
    assert_eq!(
        b.expect("still works"),
        ":alpha!alpha@127.0.0.1 PRIVMSG #general :still works"
    );
    // A connection that never registers is closed after the time limit.
    let mut idle = Raw::connect(tracker.port);
    idle.send("NICK slowpoke");
    idle.expect("ERROR :Closing link: 127.0.0.1 (Registration timed out)");
    // An unterminated line from a peer that then goes away is not relayed.
    let mut c = Raw::register(tracker.port, "gamma");
    c.send_bytes(b"PRIVMSG #general :half a li");
    c.shutdown_write();
    b.expect(":gamma!gamma@127.0.0.1 QUIT :Connection closed");
    assert!(!b.lines.seen.iter().any(|l| l.contains("half a li")));
}

/// Bound to `::`, the tracker serves IPv6 and IPv4 peers; addresses go out
/// in a form IRC can carry (`0::1`, never `::ffff:127.0.0.1`).
#[test]
fn ipv6_and_dual_stack_addresses() {
    let (_dir, tracker) = plain_tracker(&["--bind", "::"]);
    let stream = std::net::TcpStream::connect(("::1", tracker.port)).expect("connect to ::1");
    let mut v6 = Raw::from_stream(stream);
    v6.send(&format!("PASS :{PASSWORD}"));
    v6.send("NICK six");
    v6.send("USER six 0 * :six");
    v6.expect(":six!six@0::1 JOIN #general");
    let mut v4 = Raw::register(tracker.port, "four");
    v6.send("WHOIS six");
    v6.expect(":confab 311 six six six 0::1 * :six");
    v6.send("WHOIS four");
    v6.expect(":confab 311 six four four 127.0.0.1 * :four raw");
    v4.send("WHO #general");
    v4.expect(":confab 352 four #general six 0::1 confab six H :0 six");
    tracker.wait_log("join #general six (::1)");
    tracker.wait_log("join #general four (127.0.0.1)");
}
