//! Registered rooms and retention in the hub: what is handed to the store
//! (exactly), founder rights that follow the account, rooms loaded at
//! start, an account's deletion, and purges on the test's clock.

use std::time::Duration;

use super::super::console::{ConsoleAnswer, ConsoleQuery};
use super::super::rooms_keep::StoreJob;
use super::Rig;
use crate::proto::Message;
use crate::proto::caps::Caps;
use crate::store::{RegisteredRoom, RoomBan};
use crate::tracker::accounts::AccountDone;
use crate::tracker::shared::ConnId;

impl Rig {
    fn say(&mut self, id: ConnId, line: &str) {
        self.chat.line(id, Message::parse(line).expect("parses"));
        self.drain_long();
    }
}

/// A tracker with accounts (`alice` registered) and history on.
fn rig() -> Rig {
    let mut rig = Rig::new();
    rig.chat.enable_accounts(["alice".to_string()]);
    rig.chat.enable_history(Vec::<(String, i64)>::new());
    rig
}

const T0_MS: i64 = 1_700_000_000_000;

fn saved(jobs: Vec<StoreJob>) -> Vec<RegisteredRoom> {
    jobs.into_iter()
        .map(|j| match j {
            StoreJob::SaveRoom(r) => r,
            other => panic!("not a save: {other:?}"),
        })
        .collect()
}

#[test]
fn a_room_founded_logged_in_is_registered_and_saved_once_per_batch() {
    let mut rig = rig();
    let alice = rig.member_from("alice", Some("alice"), Caps::default(), [127, 0, 0, 1]);
    let bob = rig.user("bob");

    rig.say(alice, "JOIN #Plans");
    let fresh = RegisteredRoom {
        name: "#plans".into(),
        shown: "#Plans".into(),
        founder: "alice".into(),
        created_ms: T0_MS,
        modes: "nt".into(),
        ..RegisteredRoom::default()
    };
    assert_eq!(
        saved(rig.chat.take_store_jobs()),
        std::slice::from_ref(&fresh)
    );

    // Three changes in one batch: one save, of the room as it ends up.
    rig.advance(Duration::from_secs(5));
    rig.say(alice, "TOPIC #plans :trip on friday");
    rig.say(alice, "MODE #plans +kl sesame 10");
    rig.say(alice, "MODE #plans +b eve");
    rig.say(alice, "MODE #plans +v alice");
    let changed = RegisteredRoom {
        topic: "trip on friday".into(),
        topic_by: "alice".into(),
        topic_ms: T0_MS + 5000,
        key: Some("sesame".into()),
        limit: Some(10),
        bans: vec![RoomBan {
            mask: "eve!*@*".into(),
            set_by: "alice".into(),
            set_ms: T0_MS + 5000,
        }],
        ..fresh
    };
    assert_eq!(saved(rig.chat.take_store_jobs()), [changed]);
    assert!(
        rig.chat.take_store_jobs().is_empty(),
        "nothing changed since"
    );
    // A refused change saves nothing.
    rig.say(bob, "MODE #plans +m");
    assert!(rig.chat.take_store_jobs().is_empty());

    // Someone without an account founds a room that is not registered.
    rig.say(bob, "JOIN #temp");
    rig.say(bob, "TOPIC #temp :scratch");
    assert!(rig.chat.take_store_jobs().is_empty());

    // Both founders leave: the registered room stays, empty, and LIST
    // shows it; the other is gone.
    rig.chat.remove_user(alice, "Quit");
    rig.say(bob, "PART #temp");
    rig.got(bob);
    rig.say(bob, "LIST");
    assert_eq!(
        rig.got(bob),
        [
            ":confab 321 bob Channel :Users  Name",
            ":confab 322 bob #general 1 :Group room: everyone is here. Everything said on this tracker is recorded.",
            ":confab 322 bob #Plans 0 :trip on friday",
            ":confab 323 bob :End of /LIST",
        ]
    );
    assert!(
        rig.chat.take_store_jobs().is_empty(),
        "leaving changes nothing kept"
    );
    // The console names the founder account.
    let ConsoleAnswer::Rooms(rows) = rig.chat.console(ConsoleQuery::Rooms) else {
        panic!("rooms")
    };
    let founders: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.founder.as_deref()))
        .collect();
    assert_eq!(
        founders,
        [("#general", None), ("#Plans", Some("account alice"))]
    );
}

#[test]
fn the_founder_rights_belong_to_the_account() {
    let mut rig = rig();
    let alice = rig.member_from("alice", Some("alice"), Caps::default(), [127, 0, 0, 1]);
    let bob = rig.user("bob");
    rig.say(alice, "JOIN #plans");
    rig.say(alice, "MODE #plans +ik sesame");
    rig.say(alice, "INVITE bob #plans");
    rig.say(bob, "JOIN #plans sesame");
    // A nick change keeps it (the role is the connection's).
    rig.say(alice, "NICK ally");
    rig.chat.remove_user(alice, "Quit");
    rig.got(bob);
    rig.say(bob, "CLOSE #plans");
    assert_eq!(
        rig.got(bob),
        [
            ":confab 482 bob #plans :Only its founder (whoever is logged in to the account alice) or a tracker operator can close #plans"
        ]
    );

    // Another login of the account, under another nick: not kept out by
    // +i and +k, made founder and operator where everyone sees it.
    let again = rig.member_from("alice_", Some("alice"), Caps::default(), [127, 0, 0, 1]);
    rig.say(again, "JOIN #plans");
    let [to_bob, to_again] = rig.got_each(&[bob, again]).try_into().expect("two");
    assert_eq!(
        to_bob,
        [
            ":alice_!alice_@127.0.0.1 JOIN #plans",
            ":confab MODE #plans +qo alice_ alice_",
        ]
    );
    assert_eq!(&to_again[..2], &to_bob[..]);
    assert!(
        to_again.contains(&":confab 353 alice_ = #plans :bob ~alice_".to_string()),
        "{to_again:?}"
    );
    // ...and may kick, as the founder may; bob may not kick them.
    rig.say(bob, "KICK #plans alice_");
    assert_eq!(
        rig.got(bob),
        [
            ":confab 482 bob #plans :You need to be an operator of #plans (or a tracker operator) to kick"
        ]
    );

    // Someone else with an account is nobody special there.
    rig.chat
        .enable_accounts(["alice".to_string(), "carol".to_string()]);
    let carol = rig.member_from("carol", Some("carol"), Caps::default(), [127, 0, 0, 1]);
    rig.say(again, "INVITE carol #plans");
    rig.say(carol, "JOIN #plans");
    assert!(
        rig.got(bob).iter().all(|l| !l.contains("MODE #plans +q")),
        "no founder mark for carol"
    );

    // The founder account closes the room from outside: dropped.
    rig.say(again, "PART #plans");
    rig.chat.take_store_jobs();
    rig.say(again, "CLOSE #plans :done");
    assert_eq!(
        rig.chat.take_store_jobs(),
        [StoreJob::DropRoom("#plans".into())]
    );
    assert!(rig.chat.state.room("#plans").is_none());
    assert!(
        rig.log()
            .contains(&"close #plans alice_ (done)".to_string())
    );
}

#[test]
fn registered_rooms_are_loaded_at_start_as_kept() {
    let mut rig = rig();
    rig.chat.load_registered_rooms(vec![
        RegisteredRoom {
            name: "#plans".into(),
            shown: "#Plans".into(),
            founder: "alice".into(),
            created_ms: T0_MS - 86_400_000,
            topic: "trip on friday".into(),
            topic_by: "alice".into(),
            topic_ms: T0_MS - 3_600_000,
            modes: "int".into(),
            key: Some("sesame".into()),
            limit: Some(5),
            bans: vec![RoomBan {
                mask: "eve!*@*".into(),
                set_by: "alice".into(),
                set_ms: T0_MS - 60_000,
            }],
        },
        RegisteredRoom {
            name: "plans".into(),
            shown: "plans".into(),
            founder: "alice".into(),
            ..RegisteredRoom::default()
        },
    ]);
    assert!(rig.chat.state.room("plans").is_none(), "not a room name");
    let bob = rig.user("bob");
    rig.say(bob, "MODE #plans");
    rig.say(bob, "TOPIC #plans");
    rig.say(bob, "MODE #plans b");
    rig.say(bob, "JOIN #plans");
    assert_eq!(
        rig.got(bob),
        [
            ":confab 324 bob #Plans +intkl * 5",
            ":confab 329 bob #Plans 1699913600",
            ":confab 332 bob #Plans :trip on friday",
            ":confab 333 bob #Plans alice 1699996400",
            ":confab 367 bob #Plans eve!*@* alice 1699999940",
            ":confab 368 bob #Plans :End of room ban list",
            ":confab 473 bob #Plans :Cannot join room (+i): invite only",
        ]
    );
    let alice = rig.member_from("alice", Some("alice"), Caps::default(), [127, 0, 0, 1]);
    rig.say(alice, "JOIN #plans");
    let got = rig.got(alice);
    assert_eq!(got[0], ":alice!alice@127.0.0.1 JOIN #Plans");
    assert_eq!(got[1], ":confab MODE #Plans +qo alice alice");
    assert!(
        got.contains(&":confab 353 alice = #Plans :~alice".to_string()),
        "{got:?}"
    );
    assert!(
        rig.chat.take_store_jobs().is_empty(),
        "loading saves nothing"
    );
}

/// Every mode a registered room has comes back from the store as it was
/// (the list names every field: a new mode does not compile here until it
/// is kept).
#[test]
fn every_mode_survives_the_store() {
    use super::super::rooms_keep::{restore, snapshot};
    use super::super::state::{Room, RoomModes};
    let at = jiff::Timestamp::from_second(1_700_000_000).expect("time");
    for on in [false, true] {
        let mut room = Room::new("#Lab", at);
        room.founder_account = Some("alice".into());
        room.modes = RoomModes {
            invite_only: on,
            key: on.then(|| "k3y".to_string()),
            limit: on.then_some(7),
            moderated: on,
            no_outside: !on,
            topic_ops_only: on,
            secret: on,
        };
        let back = restore(snapshot(&room), at);
        assert_eq!(back.modes, room.modes, "all {on}");
        assert_eq!(back.name, "#Lab");
        assert_eq!(back.created, at);
    }
}

#[test]
fn deleting_the_founder_account_leaves_its_rooms_unregistered() {
    let mut rig = rig();
    let alice = rig.member_from("alice", Some("alice"), Caps::default(), [127, 0, 0, 1]);
    let bob = rig.user("bob");
    rig.say(alice, "JOIN #busy");
    rig.say(bob, "JOIN #busy");
    rig.say(alice, "JOIN #empty");
    rig.say(alice, "PART #empty");
    assert!(
        rig.chat.state.room("#empty").is_some(),
        "kept while registered"
    );
    rig.chat.take_store_jobs();

    rig.chat.account_done(AccountDone::Deleted {
        conn: alice,
        account: "alice".into(),
        result: Ok(()),
    });
    assert!(rig.chat.state.room("#empty").is_none(), "empty: gone");
    let busy = rig.chat.state.room("#busy").expect("#busy stays for bob");
    assert_eq!(busy.founder_account, None);
    // The store dropped the rows with the account: nothing to save or
    // drop, now or after a change.
    rig.say(alice, "TOPIC #busy :still here");
    assert!(rig.chat.take_store_jobs().is_empty());
    rig.chat.remove_user(alice, "Quit");
    rig.say(bob, "PART #busy");
    assert!(
        rig.chat.state.room("#busy").is_none(),
        "gone with its last member"
    );
}

#[test]
fn registering_an_account_registers_the_rooms_one_founded() {
    let mut rig = rig();
    let carol = rig.user("carol");
    rig.say(carol, "JOIN #mine");
    let dan = rig.user("dan");
    rig.say(dan, "JOIN #theirs");
    rig.say(carol, "JOIN #theirs");
    assert!(rig.chat.take_store_jobs().is_empty());
    rig.chat.account_done(AccountDone::Created {
        conn: carol,
        account: "carol".into(),
        result: Ok(()),
    });
    let rooms = saved(rig.chat.take_store_jobs());
    assert_eq!(
        rooms
            .iter()
            .map(|r| (r.shown.as_str(), r.founder.as_str()))
            .collect::<Vec<_>>(),
        [("#mine", "carol")],
        "not #general, not a room someone else founded"
    );
}

#[test]
fn retention_purges_at_start_then_hourly_and_records_what_went() {
    let mut rig = rig();
    rig.chat.enable_retention(1);
    rig.chat.purge_if_due();
    let day_ago = T0_MS - 86_400_000;
    assert_eq!(
        rig.chat.take_store_jobs(),
        [StoreJob::Purge {
            before_ms: day_ago,
            days: 1
        }]
    );
    rig.chat.purge_if_due();
    rig.advance(Duration::from_secs(59 * 60));
    rig.chat.purge_if_due();
    assert!(rig.chat.take_store_jobs().is_empty(), "not before an hour");
    rig.advance(Duration::from_secs(60));
    rig.chat.purge_if_due();
    assert_eq!(
        rig.chat.take_store_jobs(),
        [StoreJob::Purge {
            before_ms: day_ago + 3_600_000,
            days: 1
        }]
    );

    rig.chat.history_purged(day_ago, 1, Ok(3));
    rig.chat.history_purged(day_ago, 1, Ok(0));
    rig.chat
        .history_purged(day_ago, 1, Err("disk I/O error".into()));
    let purges: Vec<String> = rig
        .log()
        .into_iter()
        .filter(|l| l.starts_with("history-purge"))
        .collect();
    assert_eq!(
        purges,
        ["history-purge 3 message(s) older than 2023-11-13T22:13:20.000Z (history-days 1)"],
        "only a purge that removed something is recorded"
    );

    // 0 keeps everything; no history, nothing to purge.
    rig.chat.enable_retention(0);
    rig.advance(Duration::from_secs(7200));
    rig.chat.purge_if_due();
    assert!(rig.chat.take_store_jobs().is_empty());
    let mut plain = super::Rig::new();
    plain.chat.enable_retention(1);
    plain.chat.purge_if_due();
    assert!(plain.chat.take_store_jobs().is_empty());
}
