//! Direct sessions (`/session`, DCC CHAT) between real clients: the
//! messages go straight between the two, the tracker relays only the offer
//! and its answers and records the session's opening and closing; TLS with
//! fingerprints checked; the fallback through the tracker; `--p2p`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use crate::harness::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// chat.log's session lines and DMs (what a session could leak into it).
fn session_events(tracker: &Tracker) -> Vec<String> {
    tracker
        .log_events()
        .into_iter()
        .filter(|e| e.starts_with("session-") || e.starts_with("dm"))
        .collect()
}

/// `client --plain --no-tls` (for a tracker started with `--no-tls`, so
/// a raw connection can join it too), in #general.
fn join_no_tls(tracker: &Tracker, name: &str) -> ClientProc {
    let mut c = ClientProc::spawn(client_command(tracker, &["--user", name, "--no-tls"]), name);
    c.expect("#general --> you joined");
    c
}

/// Fails if `who` ever showed a line containing `text`.
fn never_saw(who: &ClientProc, text: &str) {
    let seen: Vec<String> = who.bodies();
    assert!(
        !seen.iter().any(|l| l.contains(text)),
        "{} saw {text:?}:\n{}",
        who.name,
        seen.join("\n")
    );
}

/// Two confab clients open an encrypted session, talk both ways, and each
/// side closes one: the tracker's log holds only the openings and
/// closings, and a third member (who shares #general with both) sees
/// nothing of it.
#[test]
fn a_direct_session_goes_between_the_clients_not_through_the_tracker() {
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &[]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    let mut carol = ClientProc::join(&tracker, "carol");
    assert!(
        alice.bodies().contains(&"*** Direct sessions (/session, DCC CHAT) are allowed: the tracker records when one opens and closes, not what is said in it, and an offer shows the other person your IP address.".to_string()),
        "the welcome says the policy: {:?}",
        alice.bodies()
    );

    alice.send("/session bob");
    alice.expect("*** [session bob] offered bob an encrypted direct session (the offer shows them your address, 127.0.0.1); waiting for them to accept");
    bob.expect("*** [session alice] alice offers you an encrypted direct session: /session accept alice opens it, /session decline alice declines");
    bob.send("/session accept alice");
    let open = |peer: &str| {
        format!(
            "*** [session {peer}] direct session with {peer} open, encrypted (TLS; both certificates checked against the fingerprints sent through the tracker): what you say here goes straight to {peer}, not through the tracker, and is not recorded"
        )
    };
    alice.expect(&open("bob"));
    bob.expect(&open("alice"));

    alice.send("=bob the secret plan");
    bob.expect("[session alice] <alice> the secret plan");
    alice.expect("[session bob] <alice> the secret plan");
    bob.send("/msg =alice sounds good");
    alice.expect("[session bob] <bob> sounds good");
    bob.send("/me nods");
    // An action over the session, not in the room.
    alice.send("=bob /me is not a command here");
    bob.expect("[session alice] <alice> /me is not a command here");
    bob.send("=alice * one more");
    alice.expect("[session bob] <bob> * one more");

    bob.send("/session close");
    bob.expect("*** [session alice] you closed the session with alice");
    alice.expect("*** [session bob] bob closed the session");
    tracker.wait_log("session-close alice -> bob (by bob)");

    // A second session, closed by the side that offered it.
    bob.send("/session alice");
    alice.expect_matching("bob's offer", |l| {
        l.starts_with("*** [session bob] bob offers you an encrypted direct session")
    });
    alice.send("/session accept");
    alice.expect(&open("bob"));
    bob.expect(&open("alice"));
    alice.send("=bob round two");
    bob.expect("[session alice] <alice> round two");
    bob.send("/session close alice");
    alice.expect("*** [session bob] bob closed the session");
    tracker.wait_log("session-close bob -> alice (by bob)");

    // carol sees the #general action, nothing of the sessions.
    carol.expect("#general * bob nods");
    carol.send("last word");
    alice.expect("#general <carol> last word");
    for text in [
        "secret plan",
        "sounds good",
        "one more",
        "round two",
        "[session",
    ] {
        never_saw(&carol, text);
    }
    assert_eq!(
        session_events(&tracker),
        [
            "session-offer alice -> bob (direct, TLS)",
            "session-accept alice -> bob",
            "session-close alice -> bob (by bob)",
            "session-offer bob -> alice (direct, TLS)",
            "session-accept bob -> alice",
            "session-close bob -> alice (by bob)",
        ]
    );
    let log = tracker.log();
    for text in [
        "secret plan",
        "sounds good",
        "one more",
        "round two",
        "command here",
    ] {
        assert!(!log.contains(text), "chat.log holds {text:?}:\n{log}");
    }
}

#[test]
fn a_declined_offer_opens_nothing() {
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &[]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.send("/session bob");
    bob.expect_matching("the offer", |l| {
        l.starts_with("*** [session alice] alice offers")
    });
    bob.send("/session decline alice");
    bob.expect("*** [session alice] you declined alice's session");
    alice.expect("*** [session bob] bob declined the session");
    alice.send("=bob anyone there?");
    alice.expect("!!! no open direct session with bob; /session bob offers one");
    tracker.wait_log("session-decline alice -> bob (by bob)");
    assert_eq!(
        session_events(&tracker),
        [
            "session-offer alice -> bob (direct, TLS)",
            "session-decline alice -> bob (by bob)",
        ]
    );
}

/// When the offered address cannot be reached, the session goes on
/// through the tracker as ordinary (recorded) DMs, and both are told.
#[test]
fn an_unreachable_offer_falls_back_to_the_tracker() {
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &[]);
    // alice's offer names 127.0.0.2, where nothing listens (hers is on
    // 127.0.0.1): bob's connect is refused, as behind a NAT or firewall.
    let mut alice = ClientProc::spawn(
        client_command(
            &tracker,
            &[
                "--user",
                "alice",
                "--fingerprint",
                &tracker.fingerprint,
                "--p2p-address",
                "127.0.0.2",
            ],
        ),
        "alice",
    );
    alice.expect("#general --> you joined");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.send("/session bob");
    alice.expect_matching("the offer", |l| {
        l.contains("(the offer shows them your address, 127.0.0.2)")
    });
    bob.expect_matching("the offer", |l| {
        l.starts_with("*** [session alice] alice offers")
    });
    bob.send("/session accept alice");
    bob.expect_matching("the fallback", |l| {
        l.starts_with("!!! [session alice] no direct connection to alice (cannot connect to 127.0.0.2:")
            && l.ends_with("the session goes on through the tracker as direct messages, recorded in its log (/msg alice ...); alice is told")
    });
    alice.expect("!!! [session bob] bob could not connect to you directly: the session goes on through the tracker as direct messages, recorded in its log (/msg bob ...)");
    bob.send("=alice can you hear me?");
    alice.expect("[DM bob] <bob> can you hear me?");
    alice.send("=bob yes, through the tracker");
    bob.expect("[DM alice] <alice> yes, through the tracker");
    alice.send("/session close bob");
    bob.expect("*** [session alice] alice closed the session");
    tracker.wait_log("session-close alice -> bob (by alice)");
    assert_eq!(
        session_events(&tracker),
        [
            "session-offer alice -> bob (direct, TLS)",
            "session-accept alice -> bob",
            "session-relay alice -> bob (by bob: through the tracker, recorded)",
            "dm bob -> alice: can you hear me?",
            "dm alice -> bob: yes, through the tracker",
            "session-close alice -> bob (by alice)",
        ]
    );
}

/// A TLS listener whose certificate is not the one its offer names: the
/// accepting client refuses it with a warning and sends nothing over it.
#[test]
fn a_certificate_that_does_not_match_the_offer_is_refused() {
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &["--no-tls"]);
    let mut bob = join_no_tls(&tracker, "bob");
    let mut mallory = Raw::register(tracker.port, "mallory");

    // mallory's listener shows one certificate; the offer names another.
    let made = rcgen::generate_simple_self_signed(vec!["mallory".to_string()]).expect("cert");
    let cert = made.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let real = confab::tls::Fingerprint::of(&cert);
    let claimed = confab::tls::Fingerprint([0x42; 32]);
    let config = rustls::ServerConfig::builder_with_provider(confab::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let received = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        let conn = rustls::ServerConnection::new(Arc::new(config)).expect("tls");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut got = Vec::new();
        let _ = tls.read_to_end(&mut got);
        let _ = tls.flush();
        got
    });
    let hex: String = claimed.0.iter().map(|b| format!("{b:02x}")).collect();
    mallory.send(&format!(
        "PRIVMSG bob :\x01DCC SCHAT chat 2130706433 {port} {hex}\x01"
    ));
    bob.expect_matching("the offer", |l| {
        l.starts_with("*** [session mallory] mallory offers")
    });
    bob.send("/session accept mallory");
    bob.expect(&format!(
        "!!! [session mallory] REFUSED: the direct connection to mallory showed a certificate whose fingerprint is not the one that came through the tracker (expected {claimed}, got {real}). Someone may be intercepting the session; nothing was sent over it, and it is closed."
    ));
    mallory.expect("NOTICE mallory :\x01DCC CLOSE chat certificate fingerprint mismatch\x01");
    bob.send("=mallory are you there?");
    bob.expect("!!! no open direct session with mallory; /session mallory offers one");
    let got = received.join().expect("listener thread");
    assert!(got.is_empty(), "bob sent over a refused link: {got:?}");
    tracker.wait_log("session-close mallory -> bob (by bob: certificate fingerprint mismatch)");
    assert_eq!(
        session_events(&tracker),
        [
            "session-offer mallory -> bob (direct, TLS)",
            "session-accept mallory -> bob",
            "session-close mallory -> bob (by bob: certificate fingerprint mismatch)",
        ]
    );
}

#[test]
fn p2p_off_refuses_offers_and_relay_only_goes_through_the_tracker() {
    let dir = tempdir();
    let tracker = Tracker::start_in(&dir.path().join("off"), &["--p2p", "off", "--no-tls"]);
    let mut alice = join_no_tls(&tracker, "alice");
    let mut bob = join_no_tls(&tracker, "bob");
    assert!(
        alice
            .bodies()
            .contains(&"*** Direct sessions (DCC) are turned off on this tracker.".to_string()),
        "{:?}",
        alice.bodies()
    );
    alice.send("/session bob");
    alice.expect("!!! [session bob] Direct sessions (DCC) are turned off on this tracker; talk through it with direct messages instead (recorded)");
    // An IRC client's own offer is refused the same way.
    let mut raw = Raw::register(tracker.port, "rawdcc");
    raw.send("PRIVMSG bob :\x01DCC CHAT chat 2130706433 40000\x01");
    raw.expect(
        ":confab FAIL PRIVMSG DIRECT_SESSIONS_OFF bob :Direct sessions (DCC) are turned off",
    );
    alice.send("/msg bob plain dm");
    bob.expect("[DM alice] <alice> plain dm");
    never_saw(&bob, "[session");
    assert_eq!(session_events(&tracker), ["dm alice -> bob: plain dm"]);
    drop((alice, bob, raw));

    let tracker = Tracker::start_in(&dir.path().join("relay"), &["--p2p", "relay-only"]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.send("/session bob");
    alice.expect("!!! [session bob] this tracker allows only relayed sessions: the session with bob goes through the tracker as direct messages, recorded in its log (/msg bob ...)");
    bob.expect("!!! [session alice] alice opened a session through the tracker: the session goes on through the tracker as direct messages, recorded in its log (/msg alice ...)");
    alice.send("=bob hello via the tracker");
    bob.expect("[DM alice] <alice> hello via the tracker");
    bob.send("/session close alice");
    alice.expect("*** [session bob] bob closed the session");
    tracker.wait_log("session-close alice -> bob (by bob)");
    assert_eq!(
        session_events(&tracker),
        [
            "session-relay alice -> bob (by alice: through the tracker, recorded)",
            "dm alice -> bob: hello via the tracker",
            "session-close alice -> bob (by bob)",
        ]
    );
}

/// irssi (`/dcc chat`) and a confab client, both ways: irssi accepts
/// confab's plain offer (`/session plain`), and confab accepts irssi's
/// offer (with the warning that it is unencrypted); messages both ways
/// over the direct connection, none of them through the tracker.
#[test]
fn irssi_and_confab_chat_over_plain_dcc_both_ways() {
    use crate::irssi::Irssi;
    use crate::tmux::{have, poll};
    if !have(&["irssi", "tmux"]) {
        return;
    }
    let dir = tempdir();
    let tracker = Tracker::start_in(&dir.path().join("tracker"), &[]);
    let mut bob = ClientProc::join(&tracker, "bob");
    let pin = tracker
        .fingerprint
        .trim_start_matches("SHA256:")
        .to_string();
    let irssi = Irssi::start(&dir.path().join("irssi"), &tracker, "irc", &pin);
    bob.expect("#general --> irc joined");
    let screen_has = |text: &str| {
        poll(
            &format!("irssi's screen to show {text:?}"),
            || irssi.term.screen().contains(text).then_some(()),
            || irssi.term.screen(),
        )
    };

    // confab offers, irssi accepts.
    bob.send("/session plain irc");
    bob.expect("!!! [session irc] WARNING: this session is NOT encrypted (plain DCC CHAT): anyone on the network between you can read it");
    screen_has("DCC CHAT from bob");
    irssi.term.type_line("/dcc chat bob");
    bob.expect("!!! [session irc] direct session with irc open, NOT encrypted: what you say here goes straight to irc, not through the tracker, and is not recorded");
    bob.send("=irc hello irssi, directly");
    irssi.term.type_line("/window goto =bob");
    screen_has("hello irssi, directly");
    irssi.term.type_line("/msg =bob hello bob, from irssi");
    bob.expect("[session irc] <irc> hello bob, from irssi");
    irssi.term.type_line("/dcc close chat bob");
    bob.expect("*** [session irc] irc closed the session");
    tracker.wait_log("session-close bob -> irc (by bob)");

    // irssi offers, confab accepts.
    irssi.term.type_line("/dcc chat bob");
    bob.expect("!!! [session irc] irc offers you a direct session WITHOUT encryption (plain DCC CHAT, as other IRC clients offer): anyone on the network between you could read it. /session accept irc opens it anyway, /session decline irc declines");
    bob.send("/session accept irc");
    bob.expect("!!! [session irc] direct session with irc open, NOT encrypted: what you say here goes straight to irc, not through the tracker, and is not recorded");
    irssi.term.type_line("/msg =bob second hello from irssi");
    bob.expect("[session irc] <irc> second hello from irssi");
    bob.send("=irc and back to irssi");
    irssi.term.type_line("/window goto =bob");
    screen_has("and back to irssi");
    bob.send("/session close irc");
    bob.expect("*** [session irc] you closed the session with irc");
    tracker.wait_log("session-close irc -> bob (by bob)");

    assert_eq!(
        session_events(&tracker),
        [
            "session-offer bob -> irc (direct, plain)",
            "session-close bob -> irc (by bob)",
            "session-offer irc -> bob (direct, plain)",
            "session-close irc -> bob (by bob)",
        ]
    );
    let log = tracker.log();
    for text in ["directly", "from irssi", "back to irssi"] {
        assert!(!log.contains(text), "chat.log holds {text:?}:\n{log}");
    }
}

/// The other way round: the accepter's answer names one certificate and
/// its connection shows another; the offering client refuses it and shows
/// nothing that came over it.
#[test]
fn an_accepter_whose_certificate_does_not_match_its_answer_is_refused() {
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &["--no-tls"]);
    let mut alice = join_no_tls(&tracker, "alice");
    let mut mallory = Raw::register(tracker.port, "mallory");
    alice.send("/session mallory");
    let offer = mallory.expect("PRIVMSG mallory :\x01DCC SCHAT chat 2130706433 ");
    let port: u16 = offer
        .split(' ')
        .nth(7)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {offer:?}"));
    let claimed = confab::tls::Fingerprint([0x24; 32]);
    let hex: String = claimed.0.iter().map(|b| format!("{b:02x}")).collect();
    mallory.send(&format!("NOTICE alice :\x01DCC SACCEPT chat {hex}\x01"));

    let made = rcgen::generate_simple_self_signed(vec!["mallory".to_string()]).expect("cert");
    let cert = made.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let real = confab::tls::Fingerprint::of(&cert);
    let config = confab::client::connection::client_config_builder()
        .expect("builder")
        .with_client_auth_cert(vec![cert], key)
        .expect("client config");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let name = rustls::pki_types::ServerName::try_from("confab-session").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("tls");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The handshake happens with the first write.
    let _ = tls.write_all(b"let me in\r\n");
    let _ = tls.flush();

    alice.expect(&format!(
        "!!! [session mallory] REFUSED: the direct connection to mallory showed a certificate whose fingerprint is not the one that came through the tracker (expected {claimed}, got {real}). Someone may be intercepting the session; nothing was sent over it, and it is closed."
    ));
    mallory.expect("NOTICE mallory :\x01DCC CLOSE chat certificate fingerprint mismatch\x01");
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    assert!(rest.is_empty(), "alice sent over a refused link: {rest:?}");
    never_saw(&alice, "let me in");
    tracker.wait_log("session-close alice -> mallory (by alice: certificate fingerprint mismatch)");
    assert_eq!(
        session_events(&tracker),
        [
            "session-offer alice -> mallory (direct, TLS)",
            "session-accept alice -> mallory",
            "session-close alice -> mallory (by alice: certificate fingerprint mismatch)",
        ]
    );
}

/// The full-screen client: an offer opens a session window (marked, not
/// taking focus), Alt+Y accepts it, and lines typed in that window go over
/// the session.
#[test]
fn full_screen_session_window_accepts_with_alt_y() {
    use crate::tmux::{client_in_terminal, have, wait_until};
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &[]);
    let alice = client_in_terminal("p2p-alice", &tracker, "alice", &[]);
    let mut bob = ClientProc::join(&tracker, "bob");
    bob.send("/session alice");
    // A window for the session, listed and marked; #general stays in view.
    wait_until(&alice, "a marked session window", |s| {
        s.contains(" 2:=bob (1!)") && s.contains("#general --> bob joined")
    });
    alice.press("M-y");
    bob.expect_matching("the session open", |l| {
        l.starts_with("*** [session alice] direct session with alice open, encrypted")
    });
    bob.send("=alice over here");
    alice.press("M-2");
    let screen = wait_until(&alice, "bob's line in the session window", |s| {
        s.contains("<bob> over here") && s.contains("[=bob]")
    });
    assert!(
        screen.contains("direct session with bob open, encrypted"),
        "{screen}"
    );
    alice.type_line("hello from the big screen");
    bob.expect("[session alice] <alice> hello from the big screen");
    tracker.wait_log("session-accept bob -> alice");
    assert!(!tracker.log().contains("big screen"));
}

/// `p2p` in the configuration file, `--p2p` over it, a wrong value named.
#[test]
fn the_p2p_policy_comes_from_the_file_or_the_flag() {
    let dir = tempdir();
    let file = dir.path().join("tracker.toml");
    std::fs::write(&file, "p2p = \"relay-only\"\n").expect("write");
    let print = |extra: &[&str]| {
        std::process::Command::new(tracker_bin())
            .arg("--config")
            .arg(&file)
            .args(extra)
            .arg("--print-config")
            .env("XDG_DATA_HOME", dir.path())
            .output()
            .expect("run tracker")
    };
    let out = print(&[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\np2p = \"relay-only\"\n"),
        "{out:?}"
    );
    let out = print(&["--p2p", "off"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\np2p = \"off\"\n"),
        "{out:?}"
    );
    let out = print(&["--p2p", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown p2p policy \"sometimes\"; one of: allow, relay-only, off"),
        "{out:?}"
    );
    std::fs::write(&file, "p2p = \"sometimes\"\n").expect("write");
    let out = print(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("p2p"),
        "{out:?}"
    );
}
