//! In-process tests of what the hub answers the operator's console:
//! snapshots on a clock the test sets, and kick, announce and close as the
//! members and `chat.log` see them.

use std::net::IpAddr;
use std::time::Duration;

use super::super::console::{
    ConsoleAnswer, ConsoleQuery, DMS_KEEP, DmRow, MemberRow, RoomRow, SEEN_KEEP, SeenRow,
};
use super::Rig;
use crate::proto::caps::Caps;
use crate::proto::status::Status;
use crate::tracker::hub::users::NewUser;
use crate::tracker::shared::{ConnId, RegisterOutcome};

fn t0() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000).expect("time")
}

fn at(secs: i64) -> jiff::Timestamp {
    t0() + jiff::SignedDuration::from_secs(secs)
}

/// What the console's tests add to the hub's test rig (`tests.rs`, whose
/// clock starts at `t0`).
impl Rig {
    /// Registers `nick` from `ip` and forgets the welcome burst.
    fn user_from(&mut self, nick: &str, ip: [u8; 4]) -> ConnId {
        let id = self.next;
        self.next += 1;
        let outcome = self.chat.register(
            id,
            NewUser {
                nick: nick.into(),
                user: nick.into(),
                realname: nick.into(),
                ip: IpAddr::from(ip),
                caps: Caps::default(),
                account: None,
            },
        );
        assert_eq!(outcome, RegisterOutcome::Welcome);
        self.drain_long();
        self.chat.out.pending.clear();
        id
    }

    fn advance_secs(&mut self, secs: u64) {
        self.advance(Duration::from_secs(secs));
    }

    fn ask(&mut self, q: ConsoleQuery) -> ConsoleAnswer {
        self.chat.console(q)
    }
}

#[test]
fn users_lists_everyone_seen_with_when_they_came_and_left() {
    let mut r = Rig::new();
    let alice = r.user_from("alice", [10, 0, 0, 7]);
    r.advance_secs(60);
    let bob = r.user("bob");
    r.advance_secs(30);
    r.send(bob, "QUIT :gone home");
    r.chat.remove_user(bob, "Quit: gone home");
    r.advance_secs(10);
    // The same name back later is a second visit.
    let _bob2 = r.user("bob");
    r.send(alice, "NICK alicia");
    assert_eq!(
        r.ask(ConsoleQuery::Users),
        ConsoleAnswer::Users(vec![
            SeenRow {
                nick: "alicia".into(),
                address: IpAddr::from([10, 0, 0, 7]),
                came: at(0),
                left: None,
            },
            SeenRow {
                nick: "bob".into(),
                address: IpAddr::from([127, 0, 0, 1]),
                came: at(60),
                left: Some((at(90), "Quit: gone home".into())),
            },
            SeenRow {
                nick: "bob".into(),
                address: IpAddr::from([127, 0, 0, 1]),
                came: at(100),
                left: None,
            },
        ])
    );
}

#[test]
fn users_keeps_the_most_recent_departures_only() {
    let mut r = Rig::new();
    let stays = r.user("stays");
    for i in 0..SEEN_KEEP + 5 {
        r.advance_secs(1);
        let id = r.user(&format!("u{i}"));
        r.chat.remove_user(id, "Quit");
    }
    let ConsoleAnswer::Users(rows) = r.ask(ConsoleQuery::Users) else {
        panic!("not users");
    };
    assert_eq!(
        rows.len(),
        SEEN_KEEP + 1,
        "the departed, capped, and who is online"
    );
    assert!(
        rows.iter()
            .any(|row| row.nick == "stays" && row.left.is_none())
    );
    assert!(
        !rows.iter().any(|row| row.nick == "u4"),
        "the oldest forgotten"
    );
    assert!(rows.iter().any(|row| row.nick == "u5"));
    let _ = stays;
}

#[test]
fn online_shows_address_status_idle_and_rooms() {
    let mut r = Rig::new();
    let alice = r.user_from("alice", [10, 0, 0, 7]);
    let bob = r.user("bob");
    r.send(alice, "JOIN #maths");
    r.send(bob, "AWAY :lunch");
    r.advance_secs(125);
    r.send(alice, "PRIVMSG #maths :hi");
    let ConsoleAnswer::Online(rows) = r.ask(ConsoleQuery::Online) else {
        panic!("not online");
    };
    let summary: Vec<_> = rows
        .iter()
        .map(|o| {
            (
                o.nick.as_str(),
                o.address.to_string(),
                o.status,
                o.away.clone(),
                o.idle.as_secs(),
                o.rooms.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "alice",
                "10.0.0.7".to_string(),
                Status::Active,
                None,
                0,
                vec!["#general".to_string(), "#maths".to_string()]
            ),
            (
                "bob",
                "127.0.0.1".to_string(),
                Status::Busy,
                Some("lunch".to_string()),
                125,
                vec!["#general".to_string()]
            ),
        ]
    );
}

#[test]
fn sessions_count_direct_messages_per_pair_and_keep_the_latest() {
    let mut r = Rig::new();
    let alice = r.user("alice");
    let bob = r.user("bob");
    let carol = r.user("carol");
    r.send(alice, "PRIVMSG bob :hi");
    r.advance_secs(5);
    r.send(bob, "PRIVMSG Alice :hello");
    r.send(bob, "NOTICE alice :psst");
    r.send(bob, "PRIVMSG #general :not a dm");
    r.advance_secs(5);
    r.send(carol, "PRIVMSG alice :\x01ACTION waves\x01");
    r.send(carol, "PRIVMSG nobody :lost");
    assert_eq!(
        r.ask(ConsoleQuery::Sessions),
        ConsoleAnswer::Sessions {
            dms: vec![
                DmRow {
                    between: ("alice".into(), "carol".into()),
                    messages: 1,
                    first: at(10),
                    last: at(10),
                },
                DmRow {
                    between: ("alice".into(), "bob".into()),
                    messages: 3,
                    first: at(0),
                    last: at(5),
                },
            ],
            direct: Vec::new(),
        }
    );
}

#[test]
fn sessions_forget_the_quietest_conversation_past_the_cap() {
    let mut records = super::super::console::ConsoleRecords::default();
    for i in 0..DMS_KEEP {
        records.dm("a", &format!("b{i}"), at(i as i64 + 1));
    }
    records.dm("a", "b0", at(100_000));
    records.dm("x", "y", at(100_001));
    let mut r = Rig::new();
    r.chat.console_records = records;
    let ConsoleAnswer::Sessions { dms: rows, .. } = r.ask(ConsoleQuery::Sessions) else {
        panic!("not sessions");
    };
    assert_eq!(rows.len(), DMS_KEEP);
    assert_eq!(rows[0].between, ("x".to_string(), "y".to_string()));
    assert_eq!(rows[1].between, ("a".to_string(), "b0".to_string()));
    assert!(
        !rows.iter().any(|d| d.between.1 == "b1"),
        "b1 was the quietest"
    );
}

#[test]
fn rooms_and_one_room_with_roles() {
    let mut r = Rig::new();
    let alice = r.user("alice");
    let bob = r.user("bob");
    r.send(alice, "JOIN #maths");
    r.send(bob, "JOIN #maths");
    r.send(alice, "TOPIC #maths :fractions");
    r.send(alice, "MODE #maths +v bob");
    r.send(alice, "MODE #maths +l 30");
    assert_eq!(
        r.ask(ConsoleQuery::Rooms),
        ConsoleAnswer::Rooms(vec![
            RoomRow {
                name: "#general".into(),
                founder: None,
                members: 2,
                modes: "+nt".into(),
                topic: Some(
                    "Group room: everyone is here. Everything said on this tracker is recorded."
                        .into()
                ),
            },
            RoomRow {
                name: "#maths".into(),
                founder: Some("alice".into()),
                members: 2,
                modes: "+ntl 30".into(),
                topic: Some("fractions".into()),
            },
        ])
    );
    let ConsoleAnswer::Room(detail) = r.ask(ConsoleQuery::Room("#MATHS".into())) else {
        panic!("not a room");
    };
    assert_eq!(detail.room.name, "#maths");
    assert_eq!(
        detail.members,
        vec![
            MemberRow {
                nick: "alice".into(),
                roles: "founder,op".into(),
                status: Status::Active,
            },
            MemberRow {
                nick: "bob".into(),
                roles: "voice".into(),
                status: Status::Active,
            },
        ]
    );
    assert_eq!(
        r.ask(ConsoleQuery::Room("#nope".into())),
        ConsoleAnswer::Refused("no room named #nope".into())
    );
    assert_eq!(
        r.ask(ConsoleQuery::Names),
        ConsoleAnswer::Names {
            users: vec!["alice".into(), "bob".into()],
            rooms: vec!["#general".into(), "#maths".into()],
        }
    );
}

#[test]
fn kick_disconnects_with_the_reason_everyone_sees_and_the_log_keeps() {
    let mut r = Rig::new();
    let alice = r.user("alice");
    let bob = r.user("bob");
    let answer = r.ask(ConsoleQuery::Kick {
        user: "BOB".into(),
        reason: Some("spamming".into()),
    });
    assert_eq!(answer, ConsoleAnswer::Done("bob was disconnected".into()));
    let got = r.got_each(&[alice, bob]);
    assert_eq!(
        got[0],
        vec![":bob!bob@127.0.0.1 QUIT :Killed by confab (spamming)"]
    );
    assert_eq!(
        got[1],
        vec!["ERROR :Closing link: 127.0.0.1 (Killed by confab (spamming))"]
    );
    assert_eq!(
        r.log().last().map(String::as_str),
        Some("leave bob (Killed by confab (spamming))")
    );
    assert!(
        r.log()
            .contains(&"kill confab -> bob (spamming)".to_string())
    );
    assert_eq!(
        r.ask(ConsoleQuery::Kick {
            user: "bob".into(),
            reason: None,
        }),
        ConsoleAnswer::Refused("nobody named bob is online".into())
    );
    let ConsoleAnswer::Users(rows) = r.ask(ConsoleQuery::Users) else {
        panic!("not users");
    };
    assert_eq!(
        rows[1].left,
        Some((at(0), "Killed by confab (spamming)".into()))
    );
}

#[test]
fn announce_is_a_server_notice_to_every_member_recorded() {
    let mut r = Rig::new();
    let alice = r.user("alice");
    let bob = r.user("bob");
    r.send(bob, "PART #general");
    r.chat.out.pending.clear();
    assert_eq!(
        r.ask(ConsoleQuery::Announce("back in 5 minutes\x1b[2J".into())),
        ConsoleAnswer::Done("announced to 2 member(s)".into())
    );
    assert_eq!(
        r.got_each(&[alice, bob]),
        vec![
            vec![":confab NOTICE alice :back in 5 minutes"],
            vec![":confab NOTICE bob :back in 5 minutes"],
        ]
    );
    assert_eq!(
        r.log().last().map(String::as_str),
        Some("announce confab: back in 5 minutes")
    );
    assert_eq!(
        r.ask(ConsoleQuery::Announce("  ".into())),
        ConsoleAnswer::Refused("nothing to announce".into())
    );
}

#[test]
fn close_removes_every_member_as_an_operator_close_does() {
    let mut r = Rig::new();
    let alice = r.user("alice");
    let bob = r.user("bob");
    let carol = r.user("carol");
    r.send(alice, "JOIN #maths");
    r.send(bob, "JOIN #maths");
    r.chat.out.pending.clear();
    assert_eq!(
        r.ask(ConsoleQuery::Close {
            room: "#Maths".into(),
            reason: Some("lesson over".into()),
        }),
        ConsoleAnswer::Done("#maths is closed; its 2 member(s) were told and removed".into())
    );
    assert_eq!(
        r.got_each(&[alice, bob, carol]),
        vec![
            vec![":confab KICK #maths alice :Room closed by confab: lesson over"],
            vec![":confab KICK #maths bob :Room closed by confab: lesson over"],
            Vec::<&str>::new(),
        ]
    );
    assert_eq!(
        r.log().last().map(String::as_str),
        Some("close #maths confab (lesson over)")
    );
    assert!(r.chat.state.room("#maths").is_none());
    assert_eq!(
        r.ask(ConsoleQuery::Close {
            room: "#general".into(),
            reason: None,
        }),
        ConsoleAnswer::Refused(
            "#general is the group room everyone is in; it cannot be closed".into()
        )
    );
    assert_eq!(
        r.ask(ConsoleQuery::Close {
            room: "#maths".into(),
            reason: None,
        }),
        ConsoleAnswer::Refused("no room named #maths".into())
    );
}

#[test]
fn sessions_lists_direct_sessions_as_they_open_and_close() {
    use super::super::p2p::{SessionKind, SessionState};
    let mut r = Rig::new();
    let alice = r.user("alice");
    let _bob = r.user("bob");
    r.send(alice, "PRIVMSG bob :\x01DCC CHAT chat 2130706433 40001\x01");
    let ConsoleAnswer::Sessions { dms, direct } = r.ask(ConsoleQuery::Sessions) else {
        panic!("not sessions");
    };
    assert!(dms.is_empty(), "an offer is not a DM: {dms:?}");
    assert_eq!(direct.len(), 1);
    let s = &direct[0];
    assert_eq!(
        (s.from.as_str(), s.to.as_str(), s.kind, s.state, s.closed_at),
        (
            "alice",
            "bob",
            SessionKind::Plain,
            SessionState::Offered,
            None
        )
    );
    r.advance_secs(3);
    r.send(alice, "NOTICE bob :\x01DCC CLOSE chat done\x01");
    let ConsoleAnswer::Sessions { direct, .. } = r.ask(ConsoleQuery::Sessions) else {
        panic!("not sessions");
    };
    assert_eq!(direct[0].state, SessionState::Closed);
    assert_eq!(direct[0].closed_at, Some(at(3)));
}
