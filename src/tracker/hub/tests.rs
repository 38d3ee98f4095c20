//! In-process tests of the hub's chat logic: requests in, exact lines out,
//! on a clock the test sets. The permission matrix lives here; the real
//! binaries prove the wiring in `tests/e2e`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::HubConfig;
use super::chat::{Chat, Clock, MAX_ROOMS_PER_USER};
use super::rooms::PART_BYTES;
use super::users::NewUser;
use crate::proto::Message;
use crate::proto::caps::Caps;
use crate::tracker::shared::{ConnId, RegisterOutcome, SendBudget};
use crate::tracker::transcript::{LogSync, Transcript};

/// The settings every in-process hub test starts from.
pub(super) fn config(p2p: crate::tracker::policy::P2pPolicy) -> HubConfig {
    HubConfig {
        server_name: "confab".into(),
        idle_timeout: Duration::from_secs(300),
        log_path_shown: "logs/chat.log".into(),
        started: jiff::Timestamp::from_second(1_700_000_000).expect("time"),
        send_budget: Arc::new(SendBudget::new(1 << 30)),
        members: tokio::sync::watch::channel(0).0,
        p2p,
    }
}

struct Rig {
    chat: Chat,
    dir: tempfile::TempDir,
    next: ConnId,
    start: Instant,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let transcript = Transcript::open(dir.path(), LogSync::Write).expect("transcript");
        let config = config(crate::tracker::policy::P2pPolicy::Allow);
        let (started, start) = (config.started, Instant::now());
        let chat = Chat::new(config, transcript, Clock::at(started, start));
        Rig {
            chat,
            dir,
            next: 1,
            start,
        }
    }

    /// Registers `nick` (caps as given) and forgets the welcome burst.
    fn user_with(&mut self, nick: &str, caps: Caps) -> ConnId {
        let id = self.next;
        self.next += 1;
        let outcome = self.chat.register(
            id,
            NewUser {
                nick: nick.into(),
                user: nick.into(),
                realname: format!("{nick} real"),
                ip: IpAddr::from([127, 0, 0, 1]),
                caps,
                account: None,
            },
        );
        assert_eq!(outcome, RegisterOutcome::Welcome);
        self.drain_long();
        self.chat.out.pending.clear();
        id
    }

    /// A member from `ip`, logged in to `account` when given (SASL at
    /// connect), caps as given; the welcome burst forgotten.
    fn member_from(
        &mut self,
        nick: &str,
        account: Option<&str>,
        caps: Caps,
        ip: [u8; 4],
    ) -> ConnId {
        let id = self.next;
        self.next += 1;
        let outcome = self.chat.register(
            id,
            NewUser {
                nick: nick.into(),
                user: nick.into(),
                realname: nick.into(),
                ip: IpAddr::from(ip),
                caps,
                account: account.map(str::to_string),
            },
        );
        assert_eq!(outcome, RegisterOutcome::Welcome);
        self.drain_long();
        self.chat.out.pending.clear();
        id
    }

    fn user(&mut self, nick: &str) -> ConnId {
        self.user_with(nick, Caps::default())
    }

    fn oper(&mut self, nick: &str) -> ConnId {
        let id = self.user(nick);
        self.chat.oper_result(id, Some("teacher".into()));
        self.chat.out.pending.clear();
        id
    }

    /// Sends the rest of every long reply, as drained connections ask.
    fn drain_long(&mut self) {
        while let Some(id) = self.chat.out.want_drain.pop() {
            self.chat.continue_long(id);
        }
    }

    fn send(&mut self, id: ConnId, line: &str) {
        self.chat.line(id, Message::parse(line).expect("parses"));
        self.drain_long();
    }

    /// Lines `id` got since the last call (other connections' are dropped).
    fn got(&mut self, id: ConnId) -> Vec<String> {
        let all = std::mem::take(&mut self.chat.out.pending);
        all.into_iter()
            .filter(|(to, _)| *to == id)
            .map(|(_, b)| String::from_utf8_lossy(&b).trim_end().to_string())
            .collect()
    }

    /// Lines each of `ids` got, in order.
    fn got_each(&mut self, ids: &[ConnId]) -> Vec<Vec<String>> {
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

    /// `chat.log`'s lines after the timestamp, as committed now.
    fn log(&mut self) -> Vec<String> {
        self.chat.transcript.commit().expect("commit");
        let text = std::fs::read_to_string(self.dir.path().join("chat.log")).expect("log");
        text.lines()
            .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
            .collect()
    }

    fn advance(&mut self, by: Duration) {
        let wall = self.chat.clock.wall + jiff::SignedDuration::try_from(by).expect("fits");
        let mono = self.chat.clock.mono + by;
        self.chat.clock = Clock::at(wall, mono);
        let _ = self.start;
    }
}

/// Who acts in the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Founder,
    Op,
    Voiced,
    Member,
    Outsider,
    TrackerOp,
}

const EVERYONE: [Who; 6] = [
    Who::Founder,
    Who::Op,
    Who::Voiced,
    Who::Member,
    Who::Outsider,
    Who::TrackerOp,
];

/// `#lab` founded by `founder`, with `op` (+o), `voiced` (+v) and `member`
/// in it; `outsider` and the tracker operator `teach` are not.
struct Lab {
    rig: Rig,
    founder: ConnId,
    op: ConnId,
    voiced: ConnId,
    member: ConnId,
    outsider: ConnId,
    teach: ConnId,
    target: ConnId,
}

impl Lab {
    fn new(modes: &str) -> Lab {
        let mut rig = Rig::new();
        let founder = rig.user("fay");
        let op = rig.user("otto");
        let voiced = rig.user("vic");
        let member = rig.user("meg");
        let outsider = rig.user("owen");
        let teach = rig.oper("teach");
        let target = rig.user("tim");
        rig.send(founder, "JOIN #lab");
        for id in [op, voiced, member, target, teach] {
            rig.send(id, "JOIN #lab");
        }
        rig.send(founder, "MODE #lab +ov otto vic");
        if !modes.is_empty() {
            rig.send(founder, &format!("MODE #lab {modes}"));
        }
        rig.chat.out.pending.clear();
        Lab {
            rig,
            founder,
            op,
            voiced,
            member,
            outsider,
            teach,
            target,
        }
    }

    fn id(&self, who: Who) -> ConnId {
        match who {
            Who::Founder => self.founder,
            Who::Op => self.op,
            Who::Voiced => self.voiced,
            Who::Member => self.member,
            Who::Outsider => self.outsider,
            Who::TrackerOp => self.teach,
        }
    }

    fn nick(&self, who: Who) -> String {
        self.rig.chat.nick_of(self.id(who))
    }

    /// What `who` got back for `line`.
    fn try_as(&mut self, who: Who, line: &str) -> Vec<String> {
        let id = self.id(who);
        self.rig.send(id, line);
        self.rig.got(id)
    }
}

fn op_needed(nick: &str, text: &str) -> String {
    format!(":confab 482 {nick} #lab :{text}")
}

const ROOM_OPS: &str = "You need to be an operator of #lab (or a tracker operator)";

#[test]
fn topic_in_a_plus_t_room_is_for_moderators() {
    for who in EVERYONE {
        let mut lab = Lab::new("");
        let nick = lab.nick(who);
        let got = lab.try_as(who, "TOPIC #lab :new topic");
        let expected = match who {
            Who::Founder | Who::Op | Who::TrackerOp => {
                vec![format!(":{nick}!{nick}@127.0.0.1 TOPIC #lab :new topic")]
            }
            Who::Voiced | Who::Member => {
                vec![op_needed(
                    &nick,
                    &format!("{ROOM_OPS} to change the topic (+t)"),
                )]
            }
            Who::Outsider => vec![format!(":confab 442 {nick} #lab :You're not in that room")],
        };
        assert_eq!(got, expected, "{who:?}");
    }
    // -t: any member.
    let mut lab = Lab::new("-t");
    assert_eq!(
        lab.try_as(Who::Member, "TOPIC #lab :mine"),
        vec![":meg!meg@127.0.0.1 TOPIC #lab :mine"]
    );
}

#[test]
fn kick_is_for_moderators_and_the_founder_only_for_tracker_operators() {
    for who in EVERYONE {
        let mut lab = Lab::new("");
        let nick = lab.nick(who);
        let got = lab.try_as(who, "KICK #lab tim :out");
        let expected = match who {
            Who::Founder | Who::Op | Who::TrackerOp => {
                vec![format!(":{nick}!{nick}@127.0.0.1 KICK #lab tim :out")]
            }
            Who::Voiced | Who::Member => vec![op_needed(&nick, &format!("{ROOM_OPS} to kick"))],
            Who::Outsider => vec![format!(":confab 442 {nick} #lab :You're not in that room")],
        };
        assert_eq!(got, expected, "{who:?}");
        let still_in = lab
            .rig
            .chat
            .state
            .room("#lab")
            .is_some_and(|r| r.has(lab.target));
        assert_eq!(still_in, expected[0].contains(" 4"), "{who:?} membership");
    }
    let mut lab = Lab::new("");
    assert_eq!(
        lab.try_as(Who::Op, "KICK #lab fay"),
        vec![op_needed(
            "otto",
            "The room's founder can be kicked only by a tracker operator"
        )]
    );
    assert_eq!(
        lab.try_as(Who::TrackerOp, "KICK #lab fay"),
        vec![":teach!teach@127.0.0.1 KICK #lab fay :teach"]
    );
}

#[test]
fn invite_only_rooms_let_in_whom_a_moderator_invited() {
    for who in EVERYONE {
        let mut lab = Lab::new("+i");
        let nick = lab.nick(who);
        let newcomer = lab.rig.user("nia");
        let got = lab.try_as(who, "INVITE nia #lab");
        let allowed = matches!(who, Who::Founder | Who::Op | Who::TrackerOp);
        let expected = if allowed {
            vec![format!(":confab 341 {nick} nia #lab")]
        } else if who == Who::Outsider {
            vec![format!(":confab 442 {nick} #lab :You're not in that room")]
        } else {
            vec![op_needed(
                &nick,
                &format!("{ROOM_OPS} to invite to an invite-only room"),
            )]
        };
        assert_eq!(got, expected, "{who:?}");
        lab.rig.send(newcomer, "JOIN #lab");
        let joined = lab.rig.got(newcomer);
        if allowed {
            assert_eq!(joined[0], ":nia!nia@127.0.0.1 JOIN #lab", "{who:?}");
        } else {
            assert_eq!(
                joined,
                vec![":confab 473 nia #lab :Cannot join room (+i): invite only"],
                "{who:?}"
            );
        }
    }
}

#[test]
fn moderated_rooms_hear_only_moderators_and_voiced_members() {
    for who in EVERYONE {
        let mut lab = Lab::new("+m");
        let nick = lab.nick(who);
        let id = lab.id(who);
        lab.rig.send(id, "PRIVMSG #lab :hello");
        let [mine, megs] =
            <[Vec<String>; 2]>::try_from(lab.rig.got_each(&[id, lab.target])).expect("two");
        let speaks = !matches!(who, Who::Member | Who::Outsider);
        if speaks {
            assert!(mine.is_empty(), "{who:?}: {mine:?}");
            assert_eq!(
                megs,
                vec![format!(":{nick}!{nick}@127.0.0.1 PRIVMSG #lab :hello")]
            );
        } else {
            let why = if who == Who::Outsider {
                "you are not in it"
            } else {
                "it is moderated (+m); only operators and voiced members (+v) speak"
            };
            assert_eq!(
                mine,
                vec![format!(
                    ":confab 404 {nick} #lab :Cannot send to room: {why}"
                )],
                "{who:?}"
            );
            assert!(megs.is_empty());
        }
    }
}

#[test]
fn modes_are_set_by_moderators_and_shown_to_everyone() {
    for who in EVERYONE {
        let mut lab = Lab::new("");
        let nick = lab.nick(who);
        let got = lab.try_as(who, "MODE #lab +ik-t sesame");
        let expected = match who {
            Who::Founder | Who::Op | Who::TrackerOp => {
                vec![format!(":{nick}!{nick}@127.0.0.1 MODE #lab +ik-t sesame")]
            }
            _ => vec![
                op_needed(&nick, &format!("{ROOM_OPS} to change its modes")),
                op_needed(&nick, &format!("{ROOM_OPS} to change its modes")),
                op_needed(&nick, &format!("{ROOM_OPS} to change its modes")),
            ],
        };
        assert_eq!(got, expected, "{who:?}");
    }
    let mut lab = Lab::new("+kl sesame 3");
    assert_eq!(
        lab.try_as(Who::Member, "MODE #lab"),
        vec![
            ":confab 324 meg #lab +ntkl sesame 3",
            ":confab 329 meg #lab 1700000000"
        ]
    );
    assert_eq!(
        lab.try_as(Who::Outsider, "MODE #lab")[0],
        ":confab 324 owen #lab +ntkl * 3",
        "the key is for members"
    );
    assert_eq!(
        lab.try_as(Who::Op, "MODE #lab +x"),
        vec![":confab 472 otto x :is not a room mode this tracker knows"]
    );
    assert_eq!(
        lab.try_as(Who::Op, "MODE #lab +o fay")[..],
        [] as [String; 0],
        "already an operator: nothing to say"
    );
    assert_eq!(
        lab.try_as(Who::Op, "MODE #lab -o fay"),
        vec![op_needed(
            "otto",
            "The founder's operator status is theirs to give up"
        )]
    );
}

#[test]
fn keys_limits_and_bans_keep_people_out() {
    let mut lab = Lab::new("+k sesame");
    let nia = lab.rig.user("nia");
    lab.rig.send(nia, "JOIN #lab");
    assert_eq!(
        lab.rig.got(nia),
        vec![":confab 475 nia #lab :Cannot join room (+k): wrong or missing key"]
    );
    lab.rig.send(nia, "JOIN #lab sesame");
    assert_eq!(lab.rig.got(nia)[0], ":nia!nia@127.0.0.1 JOIN #lab");

    let mut lab = Lab::new("+l 5");
    let nia = lab.rig.user("nia");
    lab.rig.send(nia, "JOIN #lab");
    assert_eq!(
        lab.rig.got(nia),
        vec![":confab 471 nia #lab :Cannot join room (+l): it is full"]
    );

    let mut lab = Lab::new("+b nia");
    assert_eq!(
        lab.try_as(Who::Member, "MODE #lab b"),
        vec![
            ":confab 367 meg #lab nia!*@* fay 1700000000",
            ":confab 368 meg #lab :End of room ban list"
        ]
    );
    let nia = lab.rig.user("nia");
    lab.rig.send(nia, "JOIN #lab");
    assert_eq!(
        lab.rig.got(nia),
        vec![":confab 474 nia #lab :Cannot join room (+b): you are banned"]
    );
    // A banned member who is still in the room cannot speak.
    lab.rig.send(lab.founder, "MODE #lab +b meg!*@*");
    lab.rig.got(lab.founder);
    assert_eq!(
        lab.try_as(Who::Member, "PRIVMSG #lab :hi"),
        vec![":confab 404 meg #lab :Cannot send to room: you are banned (+b)"]
    );
    // Tracker operators are never kept out.
    let mut lab = Lab::new("+ikl sesame 1");
    let boss = lab.rig.oper("boss");
    lab.rig.send(boss, "JOIN #lab");
    assert_eq!(lab.rig.got(boss)[0], ":boss!boss@127.0.0.1 JOIN #lab");
}

#[test]
fn only_the_founder_or_a_tracker_operator_closes_a_room() {
    for who in EVERYONE {
        let mut lab = Lab::new("");
        let nick = lab.nick(who);
        let got = lab.try_as(who, "CLOSE #lab :lesson over");
        match who {
            Who::Founder | Who::TrackerOp => {
                assert!(lab.rig.chat.state.room("#lab").is_none(), "{who:?}");
                assert_eq!(
                    got,
                    vec![format!(
                        ":{nick}!{nick}@127.0.0.1 KICK #lab {nick} :Room closed by {nick}: lesson over"
                    )]
                );
            }
            _ => {
                assert_eq!(
                    got,
                    vec![op_needed(
                        &nick,
                        "Only fay, who created #lab, or a tracker operator can close it"
                    )],
                    "{who:?}"
                );
                assert!(lab.rig.chat.state.room("#lab").is_some());
            }
        }
    }
}

#[test]
fn closing_tells_every_member_and_records_it() {
    let mut lab = Lab::new("");
    lab.rig.send(lab.founder, "CLOSE #lab :lesson over");
    let ids = [lab.founder, lab.op, lab.member, lab.outsider];
    let got = lab.rig.got_each(&ids);
    assert_eq!(
        got[1],
        vec![":fay!fay@127.0.0.1 KICK #lab otto :Room closed by fay: lesson over"]
    );
    assert_eq!(
        got[2],
        vec![":fay!fay@127.0.0.1 KICK #lab meg :Room closed by fay: lesson over"]
    );
    assert!(got[3].is_empty(), "outsiders hear nothing");
    assert!(!lab.rig.chat.state.users[&lab.member].rooms.contains("#lab"));
    let log = lab.rig.log();
    assert!(
        log.contains(&"close #lab fay (lesson over)".to_string()),
        "{log:?}"
    );
    // #general is never closed, not even by a tracker operator.
    let got = lab.try_as(Who::TrackerOp, "CLOSE #general");
    assert_eq!(
        got,
        vec![
            ":confab FAIL CLOSE CANNOT_CLOSE #general :#general is the group room everyone is in; it cannot be closed"
        ]
    );
}

#[test]
fn a_founder_who_leaves_takes_the_rights_along() {
    let mut lab = Lab::new("");
    lab.rig.chat.remove_user(lab.founder, "Quit");
    lab.rig.chat.out.pending.clear();
    // Someone takes the name and joins: no founder rights.
    let fay2 = lab.rig.user("fay");
    lab.rig.send(fay2, "JOIN #lab");
    let joined = lab.rig.got(fay2);
    assert!(
        joined.contains(&":confab 353 fay = #lab :@otto +vic meg tim teach fay".to_string()),
        "{joined:?}"
    );
    lab.rig.send(fay2, "CLOSE #lab");
    assert_eq!(
        lab.rig.got(fay2),
        vec![op_needed(
            "fay",
            "Only a tracker operator can close #lab (its creator has left)"
        )]
    );
    lab.rig.send(fay2, "KICK #lab meg");
    assert_eq!(
        lab.rig.got(fay2),
        vec![op_needed("fay", &format!("{ROOM_OPS} to kick"))]
    );
}

#[test]
fn general_is_moderated_by_tracker_operators_only() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let teach = rig.oper("teach");
    rig.send(alice, "PART #general");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab FAIL PART CANNOT_LEAVE #general :Everyone stays in #general, the group room; to leave the tracker, quit (/quit, or exit in confab's client)"
        ]
    );
    rig.send(alice, "TOPIC #general :mine now");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 482 alice #general :Only tracker operators moderate #general to change the topic (+t)"
        ]
    );
    rig.send(alice, "MODE #general +m");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 482 alice #general :Only tracker operators moderate #general to change its modes"
        ]
    );
    rig.send(teach, "MODE #general +m");
    let got = rig.got_each(&[alice]);
    assert_eq!(got[0], vec![":teach!teach@127.0.0.1 MODE #general +m"]);
    rig.send(alice, "PRIVMSG #general :hi");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 404 alice #general :Cannot send to room: it is moderated (+m); only operators and voiced members (+v) speak"
        ]
    );
}

#[test]
fn kill_is_for_tracker_operators() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let bob = rig.user("bob");
    rig.send(alice, "KILL bob :spam");
    assert_eq!(
        rig.got(alice),
        vec![":confab 481 alice :Permission denied: you are not a tracker operator"]
    );
    rig.chat.oper_result(alice, Some("teacher".into()));
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 381 alice :You are now a tracker operator",
            ":alice MODE alice +o"
        ]
    );
    rig.send(alice, "KILL bob :spam");
    let got = rig.got_each(&[alice, bob]);
    assert_eq!(
        got[0],
        vec![":bob!bob@127.0.0.1 QUIT :Killed by alice (spam)"]
    );
    assert_eq!(
        got[1],
        vec!["ERROR :Closing link: 127.0.0.1 (Killed by alice (spam))"]
    );
    assert_eq!(rig.chat.out.removed, vec![bob]);
    let log = rig.log();
    assert!(
        log.contains(&"kill alice -> bob (spam)".to_string()),
        "{log:?}"
    );
    assert!(
        log.contains(&"oper alice as teacher".to_string()),
        "{log:?}"
    );
}

#[test]
fn names_prefixes_with_and_without_multi_prefix() {
    let mut lab = Lab::new("");
    let multi = Caps {
        multi_prefix: true,
        ..Caps::default()
    };
    let mp = lab.rig.user_with("mia", multi);
    lab.rig.send(lab.founder, "INVITE mia #lab");
    lab.rig.send(mp, "JOIN #lab");
    lab.rig.send(lab.founder, "MODE #lab +v otto");
    lab.rig.got(lab.founder);
    lab.rig.send(mp, "NAMES #lab");
    assert_eq!(
        lab.rig.got(mp),
        vec![
            ":confab 353 mia = #lab :~@fay @+otto +vic meg tim teach mia",
            ":confab 366 mia #lab :End of /NAMES list"
        ]
    );
    assert_eq!(
        lab.try_as(Who::Member, "NAMES #lab"),
        vec![
            ":confab 353 meg = #lab :~fay @otto +vic meg tim teach mia",
            ":confab 366 meg #lab :End of /NAMES list"
        ]
    );
}

#[test]
fn lists_of_targets_are_capped_and_deduplicated() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let many = vec!["#general"; 500].join(",");
    rig.send(alice, &format!("NAMES {many}"));
    let got = rig.got(alice);
    assert_eq!(got.len(), 2, "one room once: {got:?}");
    rig.send(alice, "NAMES #a,#b,#c,#d,#e,#f");
    let got = rig.got(alice);
    assert_eq!(
        got.iter().filter(|l| l.contains(" 366 ")).count(),
        4,
        "{got:?}"
    );
    assert_eq!(
        got[0],
        ":confab 407 alice #e :Too many targets; the rest were ignored"
    );
    rig.send(alice, &format!("PRIVMSG {} :x", vec!["bob"; 300].join(",")));
    assert_eq!(rig.got(alice), vec![":confab 401 alice bob :No such user"]);
}

#[test]
fn rooms_per_user_are_limited() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    for i in 1..MAX_ROOMS_PER_USER {
        rig.send(alice, &format!("JOIN #r{i}"));
    }
    rig.chat.out.pending.clear();
    rig.send(alice, "JOIN #one-too-many");
    assert_eq!(
        rig.got(alice),
        vec![":confab 405 alice #one-too-many :You have joined too many rooms"]
    );
}

#[test]
fn a_big_list_goes_out_in_parts_as_the_reader_drains() {
    let mut rig = Rig::new();
    let topic = "t".repeat(290);
    for u in 0..10 {
        let id = rig.user(&format!("u{u}"));
        for r in 0..19 {
            rig.send(id, &format!("JOIN #room-{u}-{r}"));
            rig.send(id, &format!("TOPIC #room-{u}-{r} :{topic}"));
        }
    }
    let asker = rig.user("asker");
    rig.chat.out.pending.clear();
    rig.chat
        .line(asker, Message::parse("LIST").expect("parses"));
    let first = rig.got(asker);
    let first_bytes: usize = first.iter().map(|l| l.len() + 2).sum();
    assert!(
        first_bytes <= PART_BYTES + 512,
        "first part {first_bytes} bytes, more than one part"
    );
    assert_eq!(rig.chat.out.want_drain, vec![asker]);
    let mut rows = first.iter().filter(|l| l.contains(" 322 ")).count();
    let mut parts = 1;
    while let Some(id) = rig.chat.out.want_drain.pop() {
        rig.chat.continue_long(id);
        parts += 1;
        let got = rig.got(asker);
        rows += got.iter().filter(|l| l.contains(" 322 ")).count();
        assert!(got.iter().all(|l| l.len() + 2 <= 512), "fits a line");
        if got.last().is_some_and(|l| l.contains(" 323 ")) {
            assert!(rig.chat.out.want_drain.is_empty(), "done");
        }
    }
    assert_eq!(rows, 10 * 19 + 1, "every room once");
    assert!(parts >= 4, "{parts} parts");
}

#[test]
fn replies_that_list_things_fit_512_bytes() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let bob = rig.user("bob");
    for i in 1..MAX_ROOMS_PER_USER {
        let name = format!("#{}{i:02}", "r".repeat(29));
        rig.send(alice, &format!("JOIN {name}"));
        rig.send(alice, &format!("TOPIC {name} :{}", "é".repeat(400)));
    }
    rig.send(alice, &format!("AWAY :{}", "ü".repeat(400)));
    rig.chat.out.pending.clear();
    rig.send(bob, "WHOIS alice");
    rig.send(bob, "LIST");
    let got = rig.got(bob);
    assert!(got.iter().filter(|l| l.contains(" 319 ")).count() > 1);
    for l in &got {
        assert!(l.len() + 2 <= 512, "{} bytes: {l}", l.len() + 2);
    }
    let topic = &rig
        .chat
        .state
        .room(&format!("#{}01", "r".repeat(29)))
        .expect("room")
        .topic;
    assert_eq!(
        topic.as_ref().map(|t| t.text.len()),
        Some(300),
        "TOPICLEN in bytes"
    );
    let away = rig.chat.state.users[&alice]
        .away
        .clone()
        .unwrap_or_default();
    assert!(away.len() <= 200, "AWAYLEN in bytes: {}", away.len());
}

#[test]
fn who_answers_whox_fields() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let bob = rig.user("bob");
    rig.send(bob, "AWAY :lunch");
    rig.got(bob);
    rig.send(alice, "WHO #general %tcnuhfr,42");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 354 alice 42 #general alice 127.0.0.1 alice H :alice real",
            ":confab 354 alice 42 #general bob 127.0.0.1 bob G :bob real",
            ":confab 315 alice #general :End of WHO list"
        ]
    );
    rig.send(alice, "WHO bob");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 352 alice * bob 127.0.0.1 confab bob G :0 bob real",
            ":confab 315 alice bob :End of WHO list"
        ]
    );
}

#[test]
fn whowas_remembers_who_left() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let bob = rig.user("bob");
    rig.chat.remove_user(bob, "Quit");
    rig.chat.out.pending.clear();
    rig.send(alice, "WHOWAS bob");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 314 alice bob bob 127.0.0.1 * :bob real",
            ":confab 312 alice bob confab :2023-11-14 22:13:20 UTC",
            ":confab 369 alice bob :End of WHOWAS"
        ]
    );
    rig.send(alice, "WHOWAS nobody");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 406 alice nobody :There was no such user",
            ":confab 369 alice nobody :End of WHOWAS"
        ]
    );
}

/// Thousands dropping at once: a connection whose peer is gone gets
/// nothing more, and the others still hear each leave once, in order.
#[test]
fn connections_already_gone_are_sent_nothing_more() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let bob = rig.user("bob");
    let carol = rig.user("carol");
    let dave = rig.user("dave");
    rig.chat.gone.extend([bob, carol]);
    rig.send(alice, "PRIVMSG #general :still here?");
    assert_eq!(
        rig.got_each(&[bob, carol, dave]),
        vec![
            vec![],
            vec![],
            vec![":alice!alice@127.0.0.1 PRIVMSG #general :still here?"]
        ]
    );
    rig.chat.leave(bob, "Connection closed");
    rig.chat.leave(carol, "Connection closed");
    let quits = [
        ":bob!bob@127.0.0.1 QUIT :Connection closed",
        ":carol!carol@127.0.0.1 QUIT :Connection closed",
    ];
    let got = rig.got_each(&[alice, bob, carol, dave]);
    assert_eq!(got[0], quits);
    assert_eq!(got[3], quits);
    // Their own goodbye is still addressed to them (the writer may yet
    // be able to send it), and nothing else.
    assert_eq!(
        got[1],
        [r"ERROR :Closing link: 127.0.0.1 (Connection closed)"]
    );
    assert_eq!(
        got[2],
        [r"ERROR :Closing link: 127.0.0.1 (Connection closed)"]
    );
    assert!(rig.chat.gone.is_empty(), "a handled leave is forgotten");
    let log = rig.log();
    let leaves: Vec<&String> = log.iter().filter(|l| l.starts_with("leave ")).collect();
    assert_eq!(
        leaves,
        [
            "leave bob (Connection closed)",
            "leave carol (Connection closed)"
        ]
    );
}

/// A crowd that came and went leaves no maps sized for it behind.
#[test]
fn maps_sized_for_a_crowd_shrink_once_it_left() {
    let mut rig = Rig::new();
    let stays = rig.user("stays");
    let crowd: Vec<ConnId> = (0..2000).map(|i| rig.user(&format!("m{i}"))).collect();
    // Measured while the crowd is in: once entries are removed, a hash
    // map's `capacity()` also drops by the tombstones it keeps, how many
    // depending on the CPU's probe width (on aarch64 it fell below 2,000).
    assert!(rig.chat.state.users.capacity() > 2000);
    for id in crowd {
        rig.chat.leave(id, "Connection closed");
    }
    rig.chat.shrink_after_leaves();
    assert_eq!(rig.chat.state.users.len(), 1);
    assert!(rig.chat.state.users.capacity() <= 256);
    assert!(rig.chat.state.nicks.capacity() <= 256);
    assert!(rig.chat.console_records.online.capacity() <= 256);
    let general = rig.chat.state.room("#general").expect("general");
    assert_eq!(general.members, [stays]);
    assert!(general.members.capacity() <= 256 && general.roles.capacity() <= 256);
    // Not for a few: a room that fills and empties by a handful keeps its
    // room rather than reallocating on every change.
    let few: Vec<ConnId> = (0..100).map(|i| rig.user(&format!("f{i}"))).collect();
    for id in few.into_iter().take(50) {
        rig.chat.leave(id, "Connection closed");
    }
    let cap = rig.chat.state.users.capacity();
    rig.chat.shrink_after_leaves();
    assert_eq!(rig.chat.state.users.capacity(), cap);
}

#[test]
fn idle_users_become_inactive_on_the_hubs_clock() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let bob = rig.user_with(
        "bob",
        Caps {
            away_notify: true,
            ..Caps::default()
        },
    );
    rig.advance(Duration::from_secs(299));
    rig.chat.tick();
    assert!(rig.got(bob).is_empty());
    rig.send(bob, "PRIVMSG alice :still here");
    rig.chat.out.pending.clear();
    rig.advance(Duration::from_secs(1));
    rig.chat.tick();
    assert_eq!(
        rig.got(bob),
        vec![":alice!alice@127.0.0.1 AWAY :Inactive: idle for 5 min"]
    );
    rig.send(alice, "PRIVMSG #general :back");
    let got = rig.got(bob);
    assert_eq!(got[0], ":alice!alice@127.0.0.1 AWAY");
}

#[test]
fn unknown_short_and_early_commands_are_refused_in_one_place() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    rig.send(alice, "FROB");
    rig.send(alice, "KICK #general");
    rig.send(alice, "USER a b c d");
    assert_eq!(
        rig.got(alice),
        vec![
            ":confab 421 alice FROB :Unknown command",
            ":confab 461 alice KICK :Not enough parameters",
            ":confab 462 alice :You may not reregister"
        ]
    );
    rig.send(alice, "HELP CLOSE");
    let help = rig.got(alice);
    assert_eq!(
        help[0],
        ":confab 704 alice CLOSE :CLOSE <#room> [:reason]  close a room: every member is told why and removed, the room is gone"
    );
    assert_eq!(
        help.last().map(String::as_str),
        Some(":confab 706 alice CLOSE :End of /HELP")
    );
}

#[test]
fn every_event_is_recorded() {
    let mut lab = Lab::new("");
    lab.rig.send(lab.founder, "TOPIC #lab :fractions");
    lab.rig.send(lab.founder, "INVITE owen #lab");
    lab.rig.send(lab.founder, "KICK #lab tim :noise");
    lab.rig.send(lab.member, "PART #lab :bye");
    let log = lab.rig.log();
    for want in [
        "create #lab fay",
        "join #lab fay (127.0.0.1)",
        "mode #lab fay +ov otto vic",
        "topic #lab fay: fractions",
        "invite #lab fay -> owen",
        "kick #lab fay -> tim (noise)",
        "part #lab meg (bye)",
    ] {
        assert!(log.iter().any(|l| l == want), "{want:?} not in {log:#?}");
    }
}

#[test]
fn a_tracker_operator_acting_from_outside_sees_what_they_did() {
    let mut lab = Lab::new("");
    let boss = lab.rig.oper("boss");
    lab.rig.send(boss, "TOPIC #lab :from outside");
    lab.rig.send(boss, "MODE #lab +m");
    lab.rig.send(boss, "KICK #lab tim :enough");
    lab.rig.send(boss, "CLOSE #lab");
    assert_eq!(
        lab.rig.got(boss),
        vec![
            ":boss!boss@127.0.0.1 TOPIC #lab :from outside",
            ":boss!boss@127.0.0.1 MODE #lab +m",
            ":boss!boss@127.0.0.1 KICK #lab tim :enough",
            ":confab NOTICE boss :#lab is closed; its 5 member(s) were told and removed",
        ]
    );
}

#[path = "tests_accounts.rs"]
mod accounts;
#[path = "tests_comeback.rs"]
mod comeback;
#[path = "tests_console.rs"]
mod console;
#[path = "tests_durable.rs"]
mod durable;
#[path = "tests_playback.rs"]
mod playback;
#[path = "tests_rooms_keep.rs"]
mod rooms_keep;

/// A QUIT or a NICK reaches everyone who shares a room with the user once,
/// however many rooms they share (one room, `#general` alone, takes the
/// short way; more take the set).
#[test]
fn quits_and_nicks_reach_each_room_mate_once() {
    let mut rig = Rig::new();
    let alice = rig.user("alice");
    let bob = rig.user("bob");
    let carol = rig.user("carol");
    for id in [alice, bob] {
        rig.send(id, "JOIN #x,#y");
    }
    rig.got_each(&[]);
    rig.send(alice, "NICK alicia");
    let nick = ":alice!alice@127.0.0.1 NICK alicia";
    assert_eq!(
        rig.got_each(&[alice, bob, carol]),
        vec![vec![nick], vec![nick], vec![nick]]
    );
    // Carol, in #general only, quits: each of the others hears it once.
    rig.chat.leave(carol, "Quit: bye");
    let quit = ":carol!carol@127.0.0.1 QUIT :Quit: bye";
    let got = rig.got_each(&[alice, bob]);
    assert_eq!(got, vec![vec![quit], vec![quit]]);
    // Alicia shares three rooms with bob: one QUIT.
    rig.chat.leave(alice, "Quit: later");
    let got = rig.got_each(&[bob]);
    assert_eq!(got, vec![vec![":alicia!alice@127.0.0.1 QUIT :Quit: later"]]);
}
