//! In-process tests of direct sessions (`p2p.rs`): the `--p2p` policy on
//! offers, what reaches the other side, what `chat.log` records and what
//! the console's snapshot lists.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::chat::{Chat, Clock};
use super::p2p::{SessionKind, SessionSnapshot, SessionState};
use super::users::NewUser;
use crate::proto::Message;
use crate::proto::caps::Caps;
use crate::tracker::policy::{self, DirectRefusal, P2pPolicy};
use crate::tracker::shared::{ConnId, RegisterOutcome};
use crate::tracker::transcript::{LogSync, Transcript};

const OFFER: &str = "\x01DCC CHAT chat 2130706433 40001\x01";
const FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

struct Rig {
    chat: Chat,
    dir: tempfile::TempDir,
    next: ConnId,
}

impl Rig {
    fn new(p2p: P2pPolicy) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let transcript = Transcript::open(dir.path(), LogSync::Write).expect("transcript");
        let config = super::tests::config(p2p);
        let started = config.started;
        let chat = Chat::new(config, transcript, Clock::at(started, Instant::now()));
        Rig { chat, dir, next: 1 }
    }

    fn user(&mut self, nick: &str) -> ConnId {
        let id = self.next;
        self.next += 1;
        let outcome = self.chat.register(
            id,
            NewUser {
                nick: nick.into(),
                user: nick.into(),
                realname: nick.into(),
                ip: IpAddr::from([127, 0, 0, 1]),
                caps: Caps::default(),
                account: None,
            },
        );
        assert_eq!(outcome, RegisterOutcome::Welcome);
        self.chat.out.pending.clear();
        id
    }

    fn send(&mut self, id: ConnId, line: &str) {
        self.chat.line(id, Message::parse(line).expect("parses"));
    }

    /// Lines each of `ids` got since the last call.
    fn got(&mut self, ids: &[ConnId]) -> Vec<Vec<String>> {
        let all = std::mem::take(&mut self.chat.out.pending);
        ids.iter()
            .map(|id| {
                all.iter()
                    .filter(|(to, _)| to == id)
                    .map(|(_, b)| String::from_utf8_lossy(b).trim_end().to_string())
                    .collect()
            })
            .collect()
    }

    /// `chat.log`'s session lines (event and details), as committed now.
    fn session_log(&mut self) -> Vec<String> {
        self.chat.transcript.commit().expect("commit");
        let text = std::fs::read_to_string(self.dir.path().join("chat.log")).expect("log");
        // A DM's tags (msgid, source: `tests_durable.rs`) left out.
        text.lines()
            .filter_map(crate::tracker::review::format::parse_line)
            .map(|e| format!("{} {}", e.event, e.detail))
            .filter(|l| l.starts_with("session-") || l.starts_with("dm"))
            .collect()
    }

    fn advance(&mut self, secs: u64) {
        let wall = self.chat.clock.wall + jiff::SignedDuration::from_secs(secs as i64);
        let mono = self.chat.clock.mono + Duration::from_secs(secs);
        self.chat.clock = Clock::at(wall, mono);
    }
}

fn at(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + secs).expect("time")
}

#[test]
fn the_policy_decides_offers_and_relayed_sessions() {
    use policy::{can_offer_direct_session as offer, can_relay_session as relay};
    assert_eq!(offer(P2pPolicy::Allow), Ok(()));
    assert_eq!(offer(P2pPolicy::RelayOnly), Err(DirectRefusal::RelayOnly));
    assert_eq!(offer(P2pPolicy::Off), Err(DirectRefusal::Off));
    assert_eq!(relay(P2pPolicy::Allow), Ok(()));
    assert_eq!(relay(P2pPolicy::RelayOnly), Ok(()));
    assert_eq!(relay(P2pPolicy::Off), Err(DirectRefusal::Off));
    assert_eq!(P2pPolicy::default(), P2pPolicy::Allow);
    for name in P2pPolicy::NAMES {
        let p: P2pPolicy = name.parse().expect("parses");
        assert_eq!(p.to_string(), *name);
    }
    assert!("sometimes".parse::<P2pPolicy>().is_err());
}

#[test]
fn an_allowed_session_is_relayed_and_recorded_open_to_close_without_content() {
    let mut rig = Rig::new(P2pPolicy::Allow);
    let (alice, bob, carol) = (rig.user("alice"), rig.user("bob"), rig.user("carol"));
    rig.send(
        alice,
        &format!("PRIVMSG bob :\x01DCC SCHAT chat 2130706433 40001 {FP}\x01"),
    );
    let got = rig.got(&[alice, bob, carol]);
    assert_eq!(got[0], Vec::<String>::new());
    assert_eq!(
        got[1],
        [format!(
            ":alice!alice@127.0.0.1 PRIVMSG bob :\x01DCC SCHAT chat 2130706433 40001 {FP}\x01"
        )]
    );
    assert_eq!(got[2], Vec::<String>::new(), "nobody else hears of it");
    rig.advance(2);
    rig.send(bob, &format!("NOTICE alice :\x01DCC SACCEPT chat {FP}\x01"));
    let got = rig.got(&[alice, bob]);
    assert_eq!(
        got[0],
        [format!(
            ":bob!bob@127.0.0.1 NOTICE alice :\x01DCC SACCEPT chat {FP}\x01"
        )]
    );
    assert_eq!(
        rig.chat.p2p_sessions(),
        [SessionSnapshot {
            from: "alice".into(),
            to: "bob".into(),
            kind: SessionKind::Tls,
            state: SessionState::Accepted,
            opened_at: at(0),
            closed_at: None,
        }]
    );
    rig.advance(60);
    rig.send(bob, "NOTICE alice :\x01DCC CLOSE chat\x01");
    let got = rig.got(&[alice, bob]);
    assert_eq!(
        got[0],
        [":bob!bob@127.0.0.1 NOTICE alice :\x01DCC CLOSE chat\x01"],
        "a TLS session's close reaches the confab peer"
    );
    assert_eq!(
        rig.session_log(),
        [
            "session-offer alice -> bob (direct, TLS)",
            "session-accept alice -> bob",
            "session-close alice -> bob (by bob)",
        ]
    );
    let snap = rig.chat.p2p_sessions();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].state, SessionState::Closed);
    assert_eq!(snap[0].closed_at, Some(at(62)));
    // A second close (the other side's) finds nothing to record or pass on.
    rig.send(alice, "NOTICE bob :\x01DCC CLOSE chat\x01");
    assert_eq!(rig.got(&[bob]), [Vec::<String>::new()]);
    assert_eq!(rig.session_log().len(), 3);
}

#[test]
fn a_plain_sessions_close_is_recorded_but_not_passed_to_an_irc_client() {
    let mut rig = Rig::new(P2pPolicy::Allow);
    let (alice, bob) = (rig.user("alice"), rig.user("bob"));
    rig.send(alice, &format!("PRIVMSG bob :{OFFER}"));
    rig.got(&[]);
    rig.send(alice, "NOTICE bob :\x01DCC CLOSE chat window closed\x01");
    assert_eq!(rig.got(&[bob]), [Vec::<String>::new()]);
    assert_eq!(
        rig.session_log(),
        [
            "session-offer alice -> bob (direct, plain)",
            "session-close alice -> bob (by alice: window closed)",
        ]
    );
}

#[test]
fn a_declined_offer_ends_the_session() {
    let mut rig = Rig::new(P2pPolicy::Allow);
    let (alice, bob) = (rig.user("alice"), rig.user("bob"));
    rig.send(alice, &format!("PRIVMSG bob :{OFFER}"));
    rig.send(bob, "NOTICE alice :\x01DCC REJECT CHAT chat\x01");
    let got = rig.got(&[alice]);
    assert_eq!(
        got[0],
        [":bob!bob@127.0.0.1 NOTICE alice :\x01DCC REJECT CHAT chat\x01"]
    );
    assert_eq!(
        rig.session_log(),
        [
            "session-offer alice -> bob (direct, plain)",
            "session-decline alice -> bob (by bob)",
        ]
    );
    assert_eq!(rig.chat.p2p_sessions()[0].state, SessionState::Declined);
}

#[test]
fn off_refuses_every_dcc_offer_and_nothing_reaches_the_target() {
    let mut rig = Rig::new(P2pPolicy::Off);
    let (alice, bob) = (rig.user("alice"), rig.user("bob"));
    for (cmd, text) in [
        ("PRIVMSG", OFFER.to_string()),
        (
            "PRIVMSG",
            format!("\x01DCC SCHAT chat 2130706433 40001 {FP}\x01"),
        ),
        (
            "PRIVMSG",
            "\x01dcc send notes.txt 2130706433 40002 120\x01".into(),
        ),
        ("NOTICE", OFFER.to_string()),
        ("NOTICE", "\x01DCC RELAY chat\x01".into()),
    ] {
        rig.send(alice, &format!("{cmd} bob :{text}"));
        let got = rig.got(&[alice, bob]);
        assert_eq!(
            got[0],
            [format!(
                ":confab FAIL {cmd} DIRECT_SESSIONS_OFF bob :Direct sessions (DCC) are turned off on this tracker; talk through it with direct messages instead (recorded)"
            )],
            "{text:?}"
        );
        assert_eq!(got[1], Vec::<String>::new(), "{text:?}");
    }
    assert_eq!(rig.session_log(), Vec::<String>::new());
    assert!(rig.chat.p2p_sessions().is_empty());
    // Ordinary DMs and other CTCPs are untouched.
    rig.send(alice, "PRIVMSG bob :\x01VERSION\x01");
    rig.send(alice, "PRIVMSG bob :hi");
    assert_eq!(rig.got(&[bob])[0].len(), 2);
}

#[test]
fn relay_only_refuses_the_direct_offer_and_lets_the_session_go_through_the_tracker() {
    let mut rig = Rig::new(P2pPolicy::RelayOnly);
    let (alice, bob) = (rig.user("alice"), rig.user("bob"));
    rig.send(alice, &format!("PRIVMSG bob :{OFFER}"));
    let got = rig.got(&[alice, bob]);
    assert_eq!(
        got[0],
        [
            ":confab FAIL PRIVMSG DIRECT_SESSIONS_RELAY_ONLY bob :This tracker allows only relayed sessions: no direct connection (DCC); the session goes through the tracker as direct messages (recorded)"
        ]
    );
    assert_eq!(got[1], Vec::<String>::new());
    rig.send(alice, "NOTICE bob :\x01DCC RELAY chat\x01");
    rig.send(alice, "PRIVMSG bob :hello through the tracker");
    let got = rig.got(&[bob]);
    assert_eq!(
        got[0],
        [
            ":alice!alice@127.0.0.1 NOTICE bob :\x01DCC RELAY chat\x01",
            ":alice!alice@127.0.0.1 PRIVMSG bob :hello through the tracker",
        ]
    );
    rig.send(bob, "NOTICE alice :\x01DCC CLOSE chat\x01");
    assert_eq!(rig.got(&[alice])[0].len(), 1, "a relayed session's close");
    assert_eq!(
        rig.session_log(),
        [
            "session-relay alice -> bob (by alice: through the tracker, recorded)",
            "dm alice -> bob: hello through the tracker",
            "session-close alice -> bob (by bob)",
        ]
    );
    let snap = rig.chat.p2p_sessions();
    assert_eq!(snap[0].kind, SessionKind::Relayed);
}

#[test]
fn a_fallback_to_the_tracker_is_recorded_and_its_messages_are_dms() {
    let mut rig = Rig::new(P2pPolicy::Allow);
    let (alice, bob) = (rig.user("alice"), rig.user("bob"));
    rig.send(
        alice,
        &format!("PRIVMSG bob :\x01DCC SCHAT chat 2130706433 40001 {FP}\x01"),
    );
    rig.send(bob, "NOTICE alice :\x01DCC RELAY chat\x01");
    rig.send(bob, "PRIVMSG alice :can you hear me?");
    assert_eq!(rig.chat.p2p_sessions()[0].state, SessionState::Relayed);
    assert_eq!(
        rig.session_log(),
        [
            "session-offer alice -> bob (direct, TLS)",
            "session-relay alice -> bob (by bob: through the tracker, recorded)",
            "dm bob -> alice: can you hear me?",
        ]
    );
}

#[test]
fn leaving_or_renaming_ends_or_follows_the_session() {
    let mut rig = Rig::new(P2pPolicy::Allow);
    let (alice, bob) = (rig.user("alice"), rig.user("bob"));
    rig.send(alice, &format!("PRIVMSG bob :{OFFER}"));
    rig.send(bob, "NICK robert");
    assert_eq!(rig.chat.p2p_sessions()[0].to, "robert");
    rig.advance(5);
    rig.send(alice, &format!("PRIVMSG robert :{OFFER}"));
    rig.chat.remove_user(alice, "Quit: bye");
    assert_eq!(
        rig.session_log(),
        [
            "session-offer alice -> bob (direct, plain)",
            "session-close alice -> robert (replaced by a new offer from alice)",
            "session-offer alice -> robert (direct, plain)",
            "session-close alice -> robert (alice left the tracker)",
        ]
    );
    let snap = rig.chat.p2p_sessions();
    assert_eq!(snap.len(), 2);
    assert!(snap.iter().all(|s| s.state == SessionState::Closed));
    assert_eq!(snap[1].closed_at, Some(at(5)));
}

#[test]
fn the_welcome_and_isupport_say_the_policy() {
    for (policy, words) in [
        (
            P2pPolicy::Allow,
            "Direct sessions (/session, DCC CHAT) are allowed",
        ),
        (P2pPolicy::RelayOnly, "relay-only"),
        (P2pPolicy::Off, "turned off"),
    ] {
        let mut rig = Rig::new(policy);
        let id = rig.next;
        rig.next += 1;
        rig.chat.register(
            id,
            NewUser {
                nick: "alice".into(),
                user: "alice".into(),
                realname: "alice".into(),
                ip: IpAddr::from([127, 0, 0, 1]),
                caps: Caps::default(),
                account: None,
            },
        );
        let got = rig.got(&[id]).remove(0);
        assert!(
            got.iter()
                .any(|l| l.starts_with(":confab 372 alice :") && l.contains(words)),
            "{got:#?}"
        );
        assert!(
            got.iter()
                .any(|l| l.starts_with(":confab 005 ")
                    && l.contains(&format!(" CONFAB_P2P={policy} "))),
            "{got:#?}"
        );
    }
}

#[test]
fn a_dcc_offer_is_never_recorded_as_a_dm() {
    let mut rig = Rig::new(P2pPolicy::Allow);
    let (alice, _bob) = (rig.user("alice"), rig.user("bob"));
    rig.send(alice, &format!("PRIVMSG bob :{OFFER}"));
    // A file offer, allowed, stays an ordinary (recorded) message.
    rig.send(
        alice,
        "PRIVMSG bob :\x01DCC SEND notes.txt 2130706433 40002 120\x01",
    );
    assert_eq!(
        rig.session_log(),
        [
            "session-offer alice -> bob (direct, plain)",
            "dm alice -> bob: DCC SEND notes.txt 2130706433 40002 120",
        ]
    );
}

#[test]
fn offers_sprayed_at_everyone_keep_a_bounded_record() {
    use super::p2p::MAX_OFFERED_PER_USER;
    let mut rig = Rig::new(P2pPolicy::Allow);
    let alice = rig.user("alice");
    let others: Vec<ConnId> = (0..MAX_OFFERED_PER_USER + 2)
        .map(|i| rig.user(&format!("u{i}")))
        .collect();
    for i in 0..others.len() {
        rig.send(alice, &format!("PRIVMSG u{i} :{OFFER}"));
    }
    let snap = rig.chat.p2p_sessions();
    let live = snap.iter().filter(|s| s.closed_at.is_none()).count();
    assert_eq!(live, MAX_OFFERED_PER_USER);
    let log = rig.session_log();
    assert_eq!(
        log[MAX_OFFERED_PER_USER],
        format!(
            "session-close alice -> u0 (alice opened more than {MAX_OFFERED_PER_USER} sessions)"
        )
    );
    assert_eq!(log.len(), others.len() + 2);
}
