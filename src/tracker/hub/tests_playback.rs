//! History in the hub: room events kept at their place (JOIN, PART, QUIT
//! and NICK in each room of the user, KICK, TOPIC, MODE), played back only
//! to a reader with `draft/event-playback`; `CHATHISTORY TARGETS`. Against
//! a real store in memory, through the hub's own `HistorySink`.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Rig;
use crate::proto::caps::Caps;
use crate::store::{Store, StoreHandle};
use crate::tracker::hub::HistorySink;
use crate::tracker::shared::{HistoryJob, HubRequest};

/// The store behind a rig, reached as the hub reaches it.
struct Kept {
    sink: HistorySink,
    // Held so the sink's weak sender can reach `answers`.
    _inbox: mpsc::Sender<HubRequest>,
    answers: mpsc::Receiver<HubRequest>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Kept {
    fn new(rig: &mut Rig) -> Kept {
        rig.chat.enable_history(Vec::new());
        let (store, thread) =
            StoreHandle::spawn(Store::in_memory().expect("store")).expect("thread");
        let (tx, answers) = mpsc::channel(16);
        Kept {
            sink: HistorySink {
                store,
                inbox: tx.downgrade(),
            },
            _inbox: tx,
            answers,
            thread: Some(thread),
        }
    }

    /// What the hub does after a batch's commit: hands what is to be kept
    /// to the store, starts the jobs, and hands each answer back.
    fn settle(&mut self, rig: &mut Rig) {
        self.sink.keep(std::mem::take(&mut rig.chat.out.history));
        let jobs = std::mem::take(&mut rig.chat.out.history_jobs);
        let answers = jobs
            .iter()
            .filter(|j| matches!(j, HistoryJob::Page { .. } | HistoryJob::Targets { .. }))
            .count();
        for job in jobs {
            self.sink.start(job);
        }
        for _ in 0..answers {
            match self.answers.blocking_recv() {
                Some(HubRequest::HistoryPage(done)) => rig.chat.history_page(*done),
                Some(HubRequest::HistoryTargets(done)) => rig.chat.history_targets(*done),
                _ => panic!("the store answered something else"),
            }
        }
    }

    /// `line` from `id` and the lines it got back once the store answered.
    fn ask(&mut self, rig: &mut Rig, id: u64, line: &str) -> Vec<String> {
        rig.chat.out.pending.clear();
        rig.send(id, line);
        self.settle(rig);
        rig.got(id)
    }
}

/// A reader of pages in batches with their times; `events`: with
/// `draft/event-playback`.
fn reader(events: bool) -> Caps {
    Caps {
        batch: true,
        server_time: true,
        event_playback: events,
        ..Caps::default()
    }
}

/// Lines of a `chathistory` page without their batch and time tags.
fn page(lines: Vec<String>) -> Vec<String> {
    let (first, last) = (lines.first().cloned(), lines.last().cloned());
    assert!(
        first.is_some_and(|l| l.starts_with(":confab BATCH +h") && l.contains(" chathistory ")),
        "{lines:?}"
    );
    assert!(
        last.is_some_and(|l| l.starts_with(":confab BATCH -h")),
        "{lines:?}"
    );
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| {
            let (tags, rest) = l.split_once(' ').expect("tags");
            assert!(
                tags.starts_with("@batch=h") && tags.contains(";time=2023-11-14T22:"),
                "{l}"
            );
            rest.to_string()
        })
        .collect()
}

#[test]
fn room_events_are_kept_in_order_and_played_back_only_with_event_playback() {
    let mut rig = Rig::new();
    let mut kept = Kept::new(&mut rig);
    let alice = rig.user_with("alice", reader(true));
    let bob = rig.user_with("bob", reader(false));
    let (carol, dave, erin) = (rig.user("carol"), rig.user("dave"), rig.user("erin"));
    for id in [alice, bob, carol, dave, erin] {
        rig.send(id, "JOIN #lab");
    }
    rig.advance(Duration::from_secs(1));
    rig.send(alice, "PRIVMSG #lab :hello");
    rig.send(alice, "TOPIC #lab :plans");
    rig.send(alice, "MODE #lab +v bob");
    rig.send(carol, "NICK carla");
    rig.send(alice, "KICK #lab carla :enough");
    rig.send(dave, "PART #lab :later");
    rig.chat.remove_user(erin, "Quit: off");
    rig.send(bob, "PRIVMSG #lab :bye");
    kept.settle(&mut rig);

    assert_eq!(
        page(kept.ask(&mut rig, alice, "CHATHISTORY LATEST #lab * 100")),
        [
            ":alice!alice@127.0.0.1 JOIN #lab",
            ":confab MODE #lab +o alice",
            ":bob!bob@127.0.0.1 JOIN #lab",
            ":carol!carol@127.0.0.1 JOIN #lab",
            ":dave!dave@127.0.0.1 JOIN #lab",
            ":erin!erin@127.0.0.1 JOIN #lab",
            ":alice!alice@127.0.0.1 PRIVMSG #lab :hello",
            ":alice!alice@127.0.0.1 TOPIC #lab :plans",
            ":alice!alice@127.0.0.1 MODE #lab +v bob",
            ":carol!carol@127.0.0.1 NICK carla",
            ":alice!alice@127.0.0.1 KICK #lab carla :enough",
            ":dave!dave@127.0.0.1 PART #lab :later",
            ":erin!erin@127.0.0.1 QUIT :Quit: off",
            ":bob!bob@127.0.0.1 PRIVMSG #lab :bye",
        ]
    );
    assert_eq!(
        page(kept.ask(&mut rig, bob, "CHATHISTORY LATEST #lab * 100")),
        [
            ":alice!alice@127.0.0.1 PRIVMSG #lab :hello",
            ":bob!bob@127.0.0.1 PRIVMSG #lab :bye",
        ],
        "no events without draft/event-playback"
    );
    // The limit counts what is sent.
    assert_eq!(
        page(kept.ask(&mut rig, alice, "CHATHISTORY LATEST #lab * 2")),
        [
            ":erin!erin@127.0.0.1 QUIT :Quit: off",
            ":bob!bob@127.0.0.1 PRIVMSG #lab :bye",
        ]
    );
    assert_eq!(
        page(kept.ask(
            &mut rig,
            bob,
            "CHATHISTORY BEFORE #lab timestamp=2030-01-01T00:00:00.000Z 1"
        )),
        [":bob!bob@127.0.0.1 PRIVMSG #lab :bye"],
        "the events after it never use up the page"
    );
    // A QUIT and a NICK are kept in every room of the user: #general too.
    let general = page(kept.ask(&mut rig, alice, "CHATHISTORY LATEST #general * 100"));
    assert_eq!(
        general[general.len() - 2..],
        [
            ":carol!carol@127.0.0.1 NICK carla",
            ":erin!erin@127.0.0.1 QUIT :Quit: off",
        ]
    );
}

#[test]
fn a_quit_seen_in_two_rooms_keeps_the_msgid_everyone_saw() {
    let mut rig = Rig::new();
    let mut kept = Kept::new(&mut rig);
    let tagged = Caps {
        message_tags: true,
        ..reader(true)
    };
    let alice = rig.user_with("alice", tagged);
    let erin = rig.user("erin");
    for id in [alice, erin] {
        rig.send(id, "JOIN #lab");
    }
    rig.chat.out.pending.clear();
    rig.chat.remove_user(erin, "Quit: off");
    let live = rig.got(alice);
    let msgid = |line: &str| {
        line.split(';')
            .find_map(|t| t.strip_prefix("msgid="))
            .and_then(|t| t.split(' ').next())
            .expect("a msgid")
            .to_string()
    };
    assert_eq!(live.len(), 1, "one QUIT, for both rooms: {live:?}");
    let seen = msgid(&live[0]);
    kept.settle(&mut rig);
    for room in ["#general", "#lab"] {
        let lines = kept.ask(&mut rig, alice, &format!("CHATHISTORY LATEST {room} * 1"));
        assert!(
            lines[1].ends_with(":erin!erin@127.0.0.1 QUIT :Quit: off"),
            "{lines:?}"
        );
        assert_eq!(msgid(&lines[1]), seen, "{room}");
    }
}

#[test]
fn targets_lists_what_the_asker_may_read_in_the_window() {
    let mut rig = Rig::new();
    let mut kept = Kept::new(&mut rig);
    let alice = rig.user_with("alice", reader(false));
    let bob = rig.user("bob");
    let carol = rig.user("carol");
    let plain = rig.user("dave");
    rig.send(alice, "JOIN #a");
    rig.send(bob, "JOIN #a");
    rig.advance(Duration::from_secs(10)); // 22:13:30
    rig.send(bob, "PRIVMSG #a :hi");
    rig.advance(Duration::from_secs(10)); // 22:13:40
    rig.send(carol, "JOIN #b");
    rig.send(carol, "PRIVMSG #b :before alice came");
    rig.advance(Duration::from_secs(10)); // 22:13:50
    rig.send(alice, "JOIN #b");
    rig.send(alice, "JOIN #left");
    rig.send(alice, "PART #left");
    rig.advance(Duration::from_secs(10)); // 22:14:00
    rig.send(bob, "JOIN #left");
    rig.send(bob, "PRIVMSG #left :after alice left");
    rig.advance(Duration::from_secs(10)); // 22:14:10
    rig.send(bob, "PRIVMSG alice :psst");
    rig.send(carol, "PRIVMSG bob :not hers");
    rig.send(plain, "PRIVMSG alice :hey");
    kept.settle(&mut rig);

    let window = "timestamp=2023-11-14T22:00:00.000Z timestamp=2023-11-14T23:00:00.000Z";
    assert_eq!(
        kept.ask(&mut rig, alice, &format!("CHATHISTORY TARGETS {window} 10")),
        [
            ":confab BATCH +h1 draft/chathistory-targets",
            "@batch=h1 :confab CHATHISTORY TARGETS #a 2023-11-14T22:13:30.000Z",
            "@batch=h1 :confab CHATHISTORY TARGETS bob 2023-11-14T22:14:10.000Z",
            "@batch=h1 :confab CHATHISTORY TARGETS dave 2023-11-14T22:14:10.000Z",
            ":confab BATCH -h1",
        ],
        "not #b (said before she came), #left (left), carol and bob's DM, \
         nor #general (only joins)"
    );
    // With events, her own join of #b is something she may read, and the
    // joins in #general count.
    if let Some(u) = rig.chat.state.users.get_mut(&alice) {
        u.links[0].caps.event_playback = true;
    }
    let lines = kept.ask(&mut rig, alice, &format!("CHATHISTORY TARGETS {window} 10"));
    let names: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split(" TARGETS ").nth(1))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(names, ["#general", "#a", "#b", "bob", "dave"]);
    // The limit, read backwards from the later time: the latest ones.
    assert_eq!(
        kept.ask(
            &mut rig,
            alice,
            "CHATHISTORY TARGETS timestamp=2023-11-14T23:00:00.000Z timestamp=2023-11-14T22:00:00.000Z 1"
        )[1],
        "@batch=h3 :confab CHATHISTORY TARGETS dave 2023-11-14T22:14:10.000Z"
    );
    // Without `batch`: the lines alone. Bad references are refused.
    assert_eq!(
        kept.ask(&mut rig, carol, &format!("CHATHISTORY TARGETS {window} 10")),
        [
            ":confab CHATHISTORY TARGETS #b 2023-11-14T22:13:40.000Z",
            ":confab CHATHISTORY TARGETS bob 2023-11-14T22:14:10.000Z",
        ]
    );
    assert_eq!(
        kept.ask(
            &mut rig,
            carol,
            "CHATHISTORY TARGETS msgid=x timestamp=2023-11-14T22:13:20.000Z 10"
        ),
        [
            ":confab FAIL CHATHISTORY INVALID_PARAMS TARGETS :TARGETS takes two references timestamp=<RFC 3339 time>"
        ]
    );
    assert_eq!(
        kept.ask(&mut rig, carol, &format!("CHATHISTORY TARGETS {window} 0")),
        [":confab FAIL CHATHISTORY INVALID_PARAMS TARGETS :The limit must be a number above 0"]
    );
}

#[test]
fn a_store_that_cannot_keep_tells_the_senders_of_messages_not_the_people_in_events() {
    let mut rig = Rig::new();
    let mut kept = Kept::new(&mut rig);
    let alice = rig.user("alice");
    let bob = rig.user("bob");
    kept.sink
        .store
        .call_then(|_| panic!("the store's thread dies"), |_| {});
    let thread = kept.thread.take().expect("the store's thread");
    thread.join().expect_err("the store's thread panicked");

    rig.send(bob, "JOIN #lab");
    kept.sink.keep(std::mem::take(&mut rig.chat.out.history));
    assert!(
        kept.answers.try_recv().is_err(),
        "bob's join was nobody's message: nobody is told"
    );
    rig.send(alice, "JOIN #lab");
    rig.send(alice, "PRIVMSG #lab :hi");
    kept.sink.keep(std::mem::take(&mut rig.chat.out.history));
    match kept.answers.try_recv() {
        Ok(HubRequest::HistoryNotKept { sources, .. }) => {
            assert_eq!(sources, ["alice!alice@127.0.0.1"])
        }
        _ => panic!("alice is told her message was not kept"),
    }
}
