//! What a message's `chat.log` line carries: enough for the store to be
//! refilled from it after a crash (`tracker::repair`) with exactly what the
//! hub kept.

use super::Rig;
use crate::proto::caps::Caps;
use crate::store::NewMessage;
use crate::tracker::repair::message_of;
use crate::tracker::review::format::parse_line;
use crate::tracker::shared::ConnId;

impl Rig {
    fn logged_in(&mut self, nick: &str, account: Option<&str>, caps: Caps) -> ConnId {
        self.member_from(nick, account, caps, [192, 168, 1, 9])
    }

    /// chat.log's whole lines, as committed now.
    fn raw_log(&mut self) -> Vec<String> {
        self.chat.transcript.commit().expect("commit");
        std::fs::read_to_string(self.dir.path().join("chat.log"))
            .expect("log")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn every_message_line_rebuilds_what_the_hub_kept() {
    let mut rig = Rig::new();
    rig.chat.enable_history(Vec::new());
    let tags = Caps {
        message_tags: true,
        ..Caps::default()
    };
    let alice = rig.logged_in("alice", Some("Alice"), tags);
    let bob = rig.logged_in("bob", None, Caps::default());
    let carol = rig.logged_in("carol", Some("carol"), tags);
    rig.send(alice, "JOIN #Lab");
    rig.send(bob, "JOIN #lab");
    rig.chat.out.pending.clear();
    rig.send(alice, "PRIVMSG #Lab :one; two  three \\ four");
    rig.send(bob, "PRIVMSG #lab :\x01ACTION waves\x01");
    rig.send(bob, "NOTICE #lab :heads up");
    rig.send(alice, "PRIVMSG bob :psst");
    rig.send(bob, "PRIVMSG alice :\x01ACTION winks\x01");
    rig.send(carol, "NOTICE alice :fyi");
    // The messages kept (room events are kept too, and are not message lines).
    let kept: Vec<NewMessage> = std::mem::take(&mut rig.chat.out.history)
        .into_iter()
        .filter(|m| crate::store::is_message(&m.command))
        .collect();
    assert_eq!(kept.len(), 6);

    let log = rig.raw_log();
    let messages: Vec<&String> = log
        .iter()
        .filter(|l| {
            let e = parse_line(l).unwrap();
            e.kind.is_some_and(|k| k.is_room_message() || k.is_dm())
        })
        .collect();
    let ids: Vec<&str> = kept.iter().map(|m| m.msgid.as_str()).collect();
    let tail = |l: &str| l.split_once(' ').map(|(_, r)| r.to_string()).unwrap();
    assert_eq!(
        messages.iter().map(|l| tail(l)).collect::<Vec<_>>(),
        [
            format!(
                "msg @msgid={};source=alice!alice@192.168.1.9;account=Alice;seq=4 #Lab <alice> one; two  three \\ four",
                ids[0]
            ),
            format!(
                "action @msgid={};source=bob!bob@192.168.1.9;seq=5 #Lab * bob waves",
                ids[1]
            ),
            format!(
                "notice @msgid={};source=bob!bob@192.168.1.9;seq=6 #Lab -bob- heads up",
                ids[2]
            ),
            format!(
                "dm @msgid={};source=alice!alice@192.168.1.9;account=Alice;seq=1 alice -> bob: psst",
                ids[3]
            ),
            format!(
                "dm-action @msgid={};source=bob!bob@192.168.1.9;to-account=Alice;seq=2 bob -> alice: * bob winks",
                ids[4]
            ),
            format!(
                "dm-notice @msgid={};source=carol!carol@192.168.1.9;account=carol;to-account=Alice;seq=1 carol -> alice: fyi",
                ids[5]
            ),
        ]
    );
    // The msgid in chat.log is the one recipients saw.
    rig.chat.out.pending.clear();
    rig.send(carol, "PRIVMSG alice :again");
    let kept_again = std::mem::take(&mut rig.chat.out.history);
    let echoed = rig.got(alice);
    assert_eq!(
        echoed,
        [format!(
            "@msgid={} :carol!carol@192.168.1.9 PRIVMSG alice :again",
            kept_again[0].msgid
        )]
    );
    assert!(
        rig.raw_log()
            .last()
            .unwrap()
            .contains(&format!("@msgid={};", kept_again[0].msgid))
    );

    // The repair rebuilds each kept message from its line, but for its
    // place, which it gives in order.
    for (line, kept) in messages.iter().zip(&kept) {
        let rebuilt = message_of(&parse_line(line).unwrap())
            .expect("a message line")
            .expect("placeable");
        assert_eq!(
            NewMessage {
                seq: kept.seq,
                ..rebuilt
            },
            *kept,
            "{line}"
        );
    }
}

#[test]
fn a_tag_only_message_leaves_no_line_and_nothing_to_refill() {
    let mut rig = Rig::new();
    rig.chat.enable_history(Vec::new());
    let tags = Caps {
        message_tags: true,
        ..Caps::default()
    };
    let alice = rig.logged_in("alice", None, tags);
    let _bob = rig.logged_in("bob", None, tags);
    rig.chat.out.history.clear();
    rig.send(alice, "@+typing=active TAGMSG bob");
    assert!(rig.chat.out.history.is_empty());
    assert!(
        rig.raw_log()
            .iter()
            .all(|l| !l.contains(" dm ") && !l.contains("@msgid")),
        "{:?}",
        rig.raw_log()
    );
}
