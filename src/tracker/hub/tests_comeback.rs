//! Coming back, in-process: several connections of one account as one
//! user, read markers shared between them, the summary and unread lines
//! at login, and direct messages held for an account that is away. The
//! hub's history jobs run through the real `HistorySink` against a store
//! in memory; the test hands the store's answers back to the chat.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Rig;
use crate::proto::Message;
use crate::proto::caps::Caps;
use crate::store::{Store, StoreHandle};
use crate::tracker::hub::HistorySink;
use crate::tracker::hub::users::NewUser;
use crate::tracker::shared::{ConnId, HistoryJob, HubRequest, RegisterOutcome};

/// The rig with history on, a store in memory holding `accounts`.
struct Kept {
    rig: Rig,
    sink: HistorySink,
    store: StoreHandle,
    inbox: mpsc::Receiver<HubRequest>,
    _tx: mpsc::Sender<HubRequest>,
}

fn kept(accounts: &[&str]) -> Kept {
    let store = Store::in_memory().expect("store");
    for a in accounts {
        store.create_account(a, a, "hash", 0).expect("account");
    }
    let (store, _) = StoreHandle::spawn(store).expect("thread");
    let (tx, inbox) = mpsc::channel(64);
    let sink = HistorySink {
        store: store.clone(),
        inbox: tx.downgrade(),
    };
    let mut rig = Rig::new();
    rig.chat
        .enable_accounts(accounts.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    rig.chat.enable_history(Vec::new());
    Kept {
        rig,
        sink,
        store,
        inbox,
        _tx: tx,
    }
}

/// Every capability a full client asks for.
fn full() -> Caps {
    let mut c = Caps::default();
    assert!(c.request(
        "batch server-time message-tags draft/read-marker draft/chathistory",
        true
    ));
    c
}

impl Kept {
    /// Commits the batch, hands what to keep and the jobs to the store,
    /// and feeds the store's answers back, until nothing is left.
    fn settle(&mut self) {
        loop {
            self.rig.chat.transcript.commit().expect("commit");
            self.sink
                .keep(std::mem::take(&mut self.rig.chat.out.history));
            let jobs = std::mem::take(&mut self.rig.chat.out.history_jobs);
            if jobs.is_empty() {
                return;
            }
            let answers = jobs
                .iter()
                .filter(|j| matches!(j, HistoryJob::Login { .. } | HistoryJob::Page { .. }))
                .count();
            for job in jobs {
                self.sink.start(job);
            }
            for _ in 0..answers {
                match self.inbox.blocking_recv() {
                    Some(HubRequest::LoginView { conn, view }) => {
                        self.rig.chat.login_view(conn, *view)
                    }
                    Some(HubRequest::HistoryPage(done)) => self.rig.chat.history_page(*done),
                    _ => panic!("an answer the test did not expect"),
                }
                self.rig.chat.done_acting();
            }
            self.rig.drain_long();
        }
    }

    /// A connection logged in to `account` (or none) as `nick`.
    fn connect(&mut self, nick: &str, account: Option<&str>, caps: Caps) -> ConnId {
        let id = self.rig.next;
        self.rig.next += 1;
        let outcome = self.rig.chat.register(
            id,
            NewUser {
                nick: nick.into(),
                user: nick.into(),
                realname: nick.into(),
                ip: IpAddr::from([127, 0, 0, 1]),
                caps,
                account: account.map(str::to_string),
            },
        );
        assert_eq!(outcome, RegisterOutcome::Welcome);
        self.rig.chat.done_acting();
        self.rig.drain_long();
        id
    }

    /// A line from connection `conn`, as the hub hands it over.
    fn from(&mut self, conn: ConnId, line: &str) {
        let id = self.rig.chat.act_for(conn);
        self.rig
            .chat
            .line(id, Message::parse(line).expect("parses"));
        self.rig.chat.done_acting();
        self.rig.drain_long();
    }

    fn leave(&mut self, conn: ConnId, reason: &str) {
        self.rig.chat.leave(conn, reason);
        self.rig.chat.done_acting();
    }

    /// Lines `conn` got, without the welcome's numbers and the NAMES
    /// lists (checked elsewhere).
    fn said(&mut self, conn: ConnId) -> Vec<String> {
        self.rig
            .got(conn)
            .into_iter()
            .filter(|l| !l.contains(" 353 ") && !l.contains(" 366 "))
            .collect()
    }

    fn query<R: Send + 'static>(&self, f: impl FnOnce(&mut Store) -> R + Send + 'static) -> R {
        let (tx, rx) = std::sync::mpsc::channel();
        self.store.call_then(f, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().expect("answer").expect("store")
    }
}

/// Drops the `time=` and `msgid=` values (the clock and the ids are the
/// test's, checked by shape) so lines compare exactly otherwise.
fn shape(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let Some(rest) = l.strip_prefix('@') else {
                return l.clone();
            };
            let (tags, rest) = rest.split_once(' ').expect("tags");
            let tags: Vec<String> = tags
                .split(';')
                .map(|t| match t.split_once('=') {
                    Some(("time", _)) => "time=T".to_string(),
                    Some(("msgid", _)) => "msgid=M".to_string(),
                    _ => t.to_string(),
                })
                .collect();
            format!("@{} {rest}", tags.join(";"))
        })
        .collect()
}

#[test]
fn a_second_login_is_the_same_user_on_another_connection() {
    let mut k = kept(&["alice"]);
    let laptop = k.connect("alice", Some("alice"), Caps::default());
    let bob = k.connect("bob", None, Caps::default());
    k.settle();
    k.rig.got(laptop);

    let phone = k.connect("alicephone", Some("alice"), Caps::default());
    k.settle();
    let got = k.said(phone);
    assert_eq!(
        got[0], ":confab 001 alice :Welcome to the confab tracker, alice!alice@127.0.0.1",
        "welcomed under the user's nick, not the one the phone asked for"
    );
    assert!(got.contains(&":alice!alice@127.0.0.1 JOIN #general".to_string()));
    assert!(
        got.iter()
            .any(|l| l.starts_with(":confab 332 alice #general "))
    );
    assert_eq!(k.rig.chat.state.users.len(), 2, "still two members");
    k.rig.chat.transcript.commit().expect("commit");
    assert!(
        k.rig
            .log()
            .contains(&"attach alice 2 (127.0.0.1)".to_string())
    );

    // What one connection says, the other shows; bob sees it once.
    k.from(laptop, "PRIVMSG #general :from the laptop");
    k.from(bob, "PRIVMSG alice :hi alice");
    let each = k.rig.got_each(&[laptop, phone, bob]);
    assert_eq!(
        each,
        [
            vec![":bob!bob@127.0.0.1 PRIVMSG alice :hi alice"],
            vec![
                ":alice!alice@127.0.0.1 PRIVMSG #general :from the laptop",
                ":bob!bob@127.0.0.1 PRIVMSG alice :hi alice",
            ],
            vec![":alice!alice@127.0.0.1 PRIVMSG #general :from the laptop"],
        ]
    );

    // A reply goes to the connection that asked.
    k.from(phone, "PING :are-you-there");
    assert_eq!(
        k.rig.got_each(&[laptop, phone]),
        [
            Vec::<String>::new(),
            vec![":confab PONG confab :are-you-there".to_string()]
        ]
    );

    // A JOIN on one: the other gets the join as a join.
    k.from(phone, "JOIN #lab");
    let each = k.rig.got_each(&[laptop, phone]);
    for lines in &each {
        assert!(lines.contains(&":alice!alice@127.0.0.1 JOIN #lab".to_string()));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(":confab 366 alice #lab "))
        );
    }

    // The phone leaves: nobody else sees anything; the laptop carries on.
    k.leave(phone, "Quit: train");
    let each = k.rig.got_each(&[laptop, phone, bob]);
    assert_eq!(each[0], Vec::<String>::new());
    assert_eq!(each[1], ["ERROR :Closing link: 127.0.0.1 (Quit: train)"]);
    assert_eq!(each[2], Vec::<String>::new());
    assert_eq!(k.rig.chat.out.removed, [phone]);
    k.rig.chat.out.removed.clear();
    assert!(
        k.rig
            .log()
            .contains(&"detach alice 1 (Quit: train)".to_string())
    );
    // The last connection leaving is the user leaving.
    k.leave(laptop, "Quit: bye");
    let each = k.rig.got_each(&[laptop, bob]);
    assert_eq!(each[1], [":alice!alice@127.0.0.1 QUIT :Quit: bye"]);
    assert_eq!(k.rig.chat.out.removed, [laptop]);
}

#[test]
fn read_markers_are_kept_per_account_and_shared_by_its_connections() {
    let mut k = kept(&["alice"]);
    let laptop = k.connect("alice", Some("alice"), full());
    k.settle();
    let got = k.said(laptop);
    assert!(
        got.contains(&":confab MARKREAD #general *".to_string()),
        "the marker follows the join once the store answered: {got:?}"
    );
    let phone = k.connect("alice", Some("alice"), full());
    k.settle();
    assert!(
        k.said(phone)
            .contains(&":confab MARKREAD #general *".to_string())
    );

    k.from(
        laptop,
        "MARKREAD #general timestamp=2026-12-02T10:00:00.000Z",
    );
    let line = ":confab MARKREAD #general timestamp=2026-12-02T10:00:00.000Z";
    assert_eq!(k.rig.got_each(&[laptop, phone]), [vec![line], vec![line]]);
    // Never backwards: the asker hears the kept one, the other nothing.
    k.from(
        phone,
        "MARKREAD #general timestamp=2026-12-02T09:00:00.000Z",
    );
    assert_eq!(
        k.rig.got_each(&[laptop, phone]),
        [Vec::<String>::new(), vec![line.to_string()]]
    );
    k.from(phone, "MARKREAD #general");
    assert_eq!(k.rig.got(phone), [line]);
    k.from(phone, "MARKREAD #general 10:00");
    assert_eq!(
        k.rig.got(phone),
        [
            ":confab FAIL MARKREAD INVALID_PARAMS #general 10:00 :The marker is timestamp=<RFC 3339 time>"
        ]
    );
    k.settle();
    let kept = k.query(|s| s.read_marker("alice", "#general"));
    assert_eq!(
        kept.expect("marker"),
        Some(
            "2026-12-02T10:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond()
        )
    );
    // Someone without an account has none.
    let bob = k.connect("bob", None, full());
    k.rig.got(bob);
    k.from(bob, "MARKREAD #general timestamp=2026-12-02T10:00:00.000Z");
    assert_eq!(
        k.rig.got(bob),
        [
            ":confab FAIL MARKREAD ACCOUNT_REQUIRED #general :Read markers are kept for accounts: log in first"
        ]
    );
}

#[test]
fn coming_back_gets_a_summary_then_the_unread_lines_and_held_messages() {
    let mut k = kept(&["alice", "carol"]);
    let alice = k.connect("alice", Some("alice"), full());
    let bob = k.connect("bob", None, Caps::default());
    k.from(alice, "JOIN #lab");
    k.from(bob, "JOIN #lab");
    k.settle();
    k.rig.advance(Duration::from_secs(1));
    k.from(bob, "PRIVMSG #lab :before she left");
    k.settle();
    k.from(alice, "MARKREAD #lab timestamp=2023-11-14T22:13:20.500Z");
    k.rig.advance(Duration::from_secs(1));
    k.leave(alice, "Quit: lunch");
    k.settle();
    k.rig.advance(Duration::from_secs(60));
    k.rig.got(bob);

    k.from(bob, "PRIVMSG #general :one");
    k.from(bob, "PRIVMSG #general :alice: two, for you");
    k.from(bob, "PRIVMSG #lab :three");
    k.from(bob, "PRIVMSG alice :are you there?");
    assert_eq!(
        k.rig.got(bob),
        [
            ":confab NOTICE bob :alice is not connected; your message is kept and will be delivered when alice logs in"
        ]
    );
    k.from(bob, "PRIVMSG nobody :hello?");
    assert_eq!(k.rig.got(bob), [":confab 401 bob nobody :No such user"]);
    k.settle();
    // Tagged for a repair: the DM is filed under alice's account.
    let log = k.rig.log();
    assert!(
        log.iter().any(|l| l.starts_with("dm @msgid=")
            && l.contains(";to-account=alice;seq=1 ")
            && l.ends_with(" bob -> alice: are you there?")),
        "{log:?}"
    );
    assert_eq!(k.query(|s| s.pending("alice")).expect("pending").len(), 1);

    // A newcomer reads nothing from before she came.
    let carol = k.connect("carol", Some("carol"), full());
    k.settle();
    assert!(
        !k.said(carol)
            .iter()
            .any(|l| l.contains(" NOTICE #") || l.contains("BATCH")),
        "nothing to replay for a newcomer: {:?}",
        k.said(carol)
    );

    k.rig.advance(Duration::from_secs(60));
    let alice = k.connect("alice", Some("alice"), full());
    k.settle();
    let got = shape(&k.said(alice));
    let from = got
        .iter()
        .position(|l| l.contains("JOIN #lab"))
        .expect("put back in #lab");
    assert_eq!(
        got[from..],
        [
            "@time=T;msgid=M :alice!alice@127.0.0.1 JOIN #lab",
            // #lab is registered: its founder is alice's account.
            "@time=T;msgid=M :confab MODE #lab +qo alice alice",
            ":confab MARKREAD #lab timestamp=2023-11-14T22:13:20.500Z",
            ":confab 331 alice #lab :No topic is set",
            ":confab MARKREAD #general *",
            "@confab/away-summary=#general :confab NOTICE #general :While you were away: 2 messages in #general, 1 mentions you",
            ":confab BATCH +h1 chathistory #general",
            "@batch=h1;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG #general :one",
            "@batch=h1;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG #general :alice: two, for you",
            ":confab BATCH -h1",
            "@confab/away-summary=#lab :confab NOTICE #lab :While you were away: 2 messages in #lab",
            ":confab BATCH +h2 chathistory #lab",
            "@batch=h2;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG #lab :before she left",
            "@batch=h2;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG #lab :three",
            ":confab BATCH -h2",
            "@confab/away-summary=bob :confab NOTICE alice :While you were away: 1 direct message from bob",
            ":confab MARKREAD bob *",
            ":confab BATCH +h3 chathistory bob",
            "@batch=h3;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG alice :are you there?",
            ":confab BATCH -h3",
        ][..]
    );
    assert!(
        k.query(|s| s.pending("alice")).expect("pending").is_empty(),
        "held messages are let go once delivered"
    );
}

#[test]
fn the_replay_cap_cuts_room_lines_but_never_held_messages() {
    let mut k = kept(&["alice"]);
    k.rig.chat.history.replay_max = 1;
    let alice = k.connect("alice", Some("alice"), full());
    let bob = k.connect("bob", None, Caps::default());
    k.settle();
    k.leave(alice, "Quit: away");
    k.settle();
    k.rig.advance(Duration::from_secs(5));
    for text in ["r1", "r2", "r3"] {
        k.from(bob, &format!("PRIVMSG #general :{text}"));
    }
    for text in ["d1", "d2"] {
        k.from(bob, &format!("PRIVMSG alice :{text}"));
    }
    k.settle();
    let alice = k.connect("alice", Some("alice"), full());
    k.settle();
    let got = shape(&k.said(alice));
    let from = got
        .iter()
        .position(|l| l.contains("While you were away"))
        .expect("a summary");
    assert_eq!(
        got[from..],
        [
            "@confab/away-summary=#general :confab NOTICE #general :While you were away: 3 messages in #general (the last 1 follow; page back for more)",
            ":confab BATCH +h1 chathistory #general",
            "@batch=h1;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG #general :r3",
            ":confab BATCH -h1",
            "@confab/away-summary=bob :confab NOTICE alice :While you were away: 2 direct messages from bob",
            ":confab MARKREAD bob *",
            ":confab BATCH +h2 chathistory bob",
            "@batch=h2;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG alice :d1",
            "@batch=h2;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG alice :d2",
            ":confab BATCH -h2",
        ][..]
    );
}

#[test]
fn a_line_in_the_millisecond_of_leaving_is_not_lost() {
    let mut k = kept(&["alice"]);
    let alice = k.connect("alice", Some("alice"), full());
    let bob = k.connect("bob", None, Caps::default());
    k.settle();
    k.rig.advance(Duration::from_secs(1));
    // One batch, one time: the leave, then bob's line.
    k.leave(alice, "Quit: gone");
    k.from(bob, "PRIVMSG #general :just after");
    k.settle();
    let alice = k.connect("alice", Some("alice"), full());
    k.settle();
    let got = shape(&k.said(alice));
    assert!(
        got.contains(
            &"@batch=h1;time=T;msgid=M :bob!bob@127.0.0.1 PRIVMSG #general :just after".to_string()
        ),
        "{got:?}"
    );
}
