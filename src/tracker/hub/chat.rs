//! `Chat`: the chat state and the commands that change it, with no I/O of
//! its own. It is given the time (`Clock`) and requests, and leaves what is
//! to be said in `Outbound` (deliveries by connection, transcript lines
//! staged in the transcript, users to drop). The hub's runtime (`mod.rs`)
//! commits the transcript and delivers; the unit tests in `tests.rs` drive
//! a `Chat` directly and read the lines each fake connection got.
//!
//! Handlers are grouped by role in sibling files (`messages`, `rooms`,
//! `moderation`, `queries`, `users`, `server`), each an `impl Chat` block;
//! permissions come from `tracker::policy`, reply texts from
//! `tracker::replies`, the command rules from `tracker::commands`.

use std::time::Instant;

use bytes::Bytes;

use super::super::commands::{self, Cmd};
use super::super::policy::Actor;
use super::super::replies::{self, Numeric};
use super::super::shared::{BadLine, ConnId, IdMap, IdSet};
use super::super::transcript::{self, Transcript};
use super::HubConfig;
use super::state::{ChatState, GENERAL, Room};
use crate::proto::Message;
use crate::proto::caps::Caps;

/// Most targets in one PRIVMSG/NOTICE/JOIN/PART/... (advertised as
/// TARGMAX); the rest of a list is refused with `407`.
pub const MAX_TARGETS: usize = 4;
/// Most rooms a user may be in (advertised as CHANLIMIT), `#general`
/// included.
pub const MAX_ROOMS_PER_USER: usize = 20;
/// Longest away text kept, in bytes (advertised as AWAYLEN).
pub const AWAY_LEN: usize = 200;
/// Longest topic, in bytes (TOPICLEN).
pub const TOPIC_LEN: usize = 300;
/// Longest kick or close reason, in bytes (KICKLEN).
pub const KICK_LEN: usize = 300;
/// Most bans in one room (MAXLIST).
pub const MAX_BANS: usize = 100;
/// Most mode changes with a parameter in one MODE line (MODES).
pub const MAX_MODES: usize = 4;

/// The time a batch is handled at: the hub reads the clocks once per batch
/// (tests set them), so every line of a batch carries the same time.
#[derive(Clone, Debug)]
pub struct Clock {
    pub wall: jiff::Timestamp,
    pub mono: Instant,
    /// `wall` as `chat.log` and `server-time` write it.
    pub stamp: String,
}

impl Clock {
    pub fn at(wall: jiff::Timestamp, mono: Instant) -> Clock {
        Clock {
            wall,
            mono,
            stamp: transcript::timestamp(wall),
        }
    }

    pub fn now() -> Clock {
        Clock::at(jiff::Timestamp::now(), Instant::now())
    }
}

/// Message ids (`msgid` tag): unique across trackers and runs, not a bare
/// per-process counter (several trackers will share history), yet cheap:
/// a random prefix drawn at start, then a counter.
pub struct MsgIds {
    prefix: String,
    next: u64,
}

impl MsgIds {
    pub fn new() -> MsgIds {
        use std::hash::{BuildHasher, Hasher};
        // std seeds each RandomState from the OS's random source; two of
        // them and the start time give 128 bits no other run shares.
        let mut a = std::collections::hash_map::RandomState::new().build_hasher();
        a.write_u128(jiff::Timestamp::now().as_nanosecond() as u128);
        let mut b = std::collections::hash_map::RandomState::new().build_hasher();
        b.write_u64(a.finish());
        MsgIds {
            prefix: format!("{:016x}{:016x}-", a.finish(), b.finish()),
            next: 0,
        }
    }

    /// The next id's number; [`MsgIds::format`] makes the tag's text, only
    /// for recipients that asked for tags (most of a busy room's
    /// deliveries never need it).
    pub fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn format(&self, n: u64) -> String {
        format!("{}{n:x}", self.prefix)
    }
}

impl Default for MsgIds {
    fn default() -> Self {
        MsgIds::new()
    }
}

/// A message encoded once per capability variant and shared by recipients.
pub struct Outgoing {
    pub msg: Message,
    pub time: String,
    /// The number of its `msgid` (see [`MsgIds`]).
    pub msgid: Option<u64>,
    pub client_tags: Vec<(String, Option<String>)>,
    cache: [Option<Bytes>; 4],
}

impl Outgoing {
    pub fn new(msg: Message, clock: &Clock) -> Self {
        Outgoing {
            msg,
            time: clock.stamp.clone(),
            msgid: None,
            client_tags: Vec::new(),
            cache: Default::default(),
        }
    }

    pub fn bytes_for(&mut self, caps: Caps, ids: &MsgIds) -> Bytes {
        let variant = caps.tag_variant();
        if let Some(b) = &self.cache[variant] {
            return b.clone();
        }
        let mut m = self.msg.clone();
        if caps.server_time {
            m.tags.push(("time".into(), Some(self.time.clone())));
        }
        if caps.message_tags {
            if let Some(n) = self.msgid {
                m.tags.push(("msgid".into(), Some(ids.format(n))));
            }
            m.tags.extend(self.client_tags.iter().cloned());
        }
        let b = Bytes::from(m.to_line());
        self.cache[variant] = Some(b.clone());
        b
    }
}

/// One chat message recorded in the current batch: its transcript line and
/// its deliveries, by position, to take back if the commit fails.
pub struct MessageMark {
    pub sender: ConnId,
    pub command: String,
    pub target: String,
    pub text: String,
    pub staged: std::ops::Range<usize>,
    pub pending: std::ops::Range<usize>,
}

/// What handlers leave for the runtime.
#[derive(Default)]
pub struct Outbound {
    /// Deliveries, in order, held until the batch's transcript lines are
    /// written.
    pub pending: Vec<(ConnId, Bytes)>,
    /// Chat messages of this batch, to take back if `chat.log` fails.
    pub marks: Vec<MessageMark>,
    /// Users removed in this batch: their last lines still go out, then
    /// their outbox is closed.
    pub removed: Vec<ConnId>,
    /// Connections with a long reply waiting for their outbox to drain.
    pub want_drain: Vec<ConnId>,
    /// Account work to run outside the hub (hashing, the store); its
    /// answer comes back as `HubRequest::AccountDone`.
    pub jobs: Vec<crate::tracker::accounts::AccountJob>,
    /// Messages of this batch to keep in history, handed to the store once
    /// `chat.log` has them (dropped with the batch if it does not).
    pub history: Vec<crate::store::NewMessage>,
    /// History pages and joins to ask the store for.
    pub history_jobs: Vec<crate::tracker::shared::HistoryJob>,
}

/// A long reply sent in parts as the reader drains (LIST, NAMES, WHO of
/// big rooms), so its size never costs the one who asked their connection
/// and never holds more than a part in memory. What it lists is chosen
/// when it reaches the front of the asker's queue, so a queued request
/// costs a few bytes, not a copy of a room.
pub enum LongReply {
    /// Rooms to list: `only` the named ones (already case-folded), or all.
    List {
        only: Option<Vec<String>>,
        rooms: Option<std::collections::VecDeque<String>>,
    },
    /// A room's members still to name.
    Names {
        room: String,
        members: Option<std::collections::VecDeque<ConnId>>,
    },
    /// WHO of a mask: the rows once chosen, and the room they are seen in.
    Who {
        mask: String,
        fields: Option<super::queries::WhoxFields>,
        rows: Option<(String, std::collections::VecDeque<ConnId>)>,
    },
}

/// Long replies one connection may have waiting; more get `263` (try
/// again), so a client that asks and never reads cannot grow the queue.
pub const MAX_LONG_REPLIES: usize = 16;

pub struct Chat {
    pub config: HubConfig,
    pub state: ChatState,
    pub transcript: Transcript,
    pub clock: Clock,
    pub out: Outbound,
    pub msgids: MsgIds,
    /// Long replies in progress, per connection, in order asked.
    pub long_replies: IdMap<std::collections::VecDeque<LongReply>>,
    /// The stop line is written: nothing more is handled.
    pub stopping: bool,
    /// Someone registered this run (a failed login never counts).
    pub had_member: bool,
    /// Counts registrations and removals (the runtime publishes the member
    /// count when it moves).
    pub membership_changes: u64,
    /// Direct sessions (`p2p.rs`): the policy and the sessions seen.
    pub p2p: super::p2p::P2pSessions,
    /// Registered names and whether the tracker keeps accounts.
    pub accounts: super::accounts::Accounts,
    /// Whether history is kept, and each target's last place in it.
    pub history: super::history::History,
    /// Who came and left, and the DM conversations, for the console.
    pub console_records: super::console::ConsoleRecords,
    /// The connection whose request is being handled, if any: what is
    /// said back to its user goes to that connection alone (a reply is for
    /// the client that asked), while what happens to the user reaches all
    /// of its connections. Set by [`Chat::act_for`], cleared after.
    pub acting: Option<ConnId>,
    /// Each connection attached to a user other than its first, to that
    /// user's id (multiclient; see `users.rs`).
    pub attached: IdMap<ConnId>,
    /// Registered rooms changed in this batch, and work for the store.
    pub keep: super::rooms_keep::Keep,
    /// `--history-days`: whether and when history is purged.
    pub retention: super::retention::Retention,
    /// Connections whose peer is gone and whose leave is still to come:
    /// what is broadcast skips them (see `shared::Departures`). Each
    /// leaves the set when its leave is handled.
    pub gone: IdSet,
}

impl Chat {
    pub fn new(config: HubConfig, transcript: Transcript, clock: Clock) -> Chat {
        let mut state = ChatState::default();
        let mut general = Room::new(GENERAL, config.started);
        general.topic = Some(super::state::Topic {
            text: "Group room: everyone is here. Everything said on this tracker is recorded."
                .into(),
            setter: config.server_name.clone(),
            at: config.started,
        });
        state
            .rooms
            .insert(crate::proto::nick::casefold(GENERAL), general);
        Chat {
            p2p: super::p2p::P2pSessions::new(config.p2p),
            config,
            state,
            transcript,
            clock,
            out: Outbound::default(),
            msgids: MsgIds::new(),
            long_replies: IdMap::default(),
            stopping: false,
            had_member: false,
            membership_changes: 0,
            accounts: Default::default(),
            history: Default::default(),
            console_records: Default::default(),
            acting: None,
            attached: IdMap::default(),
            keep: Default::default(),
            retention: Default::default(),
            gone: IdSet::default(),
        }
    }

    // ---- connections and users -------------------------------------------

    /// The user a connection belongs to: its own id, or the user it was
    /// attached to.
    pub fn user_of(&self, conn: ConnId) -> ConnId {
        self.attached.get(&conn).copied().unwrap_or(conn)
    }

    /// Handles a request of connection `conn` from here on: returns its
    /// user's id, and replies go to `conn` (until [`Chat::done_acting`]).
    pub fn act_for(&mut self, conn: ConnId) -> ConnId {
        self.acting = Some(conn);
        self.user_of(conn)
    }

    pub fn done_acting(&mut self) {
        self.acting = None;
    }

    /// The connection of `id` that asked, when one of its connections is
    /// acting; otherwise `id` itself (its first connection).
    pub fn here(&self, id: ConnId) -> ConnId {
        match self.acting {
            Some(c) if self.user_of(c) == id => c,
            _ => id,
        }
    }

    /// The connections of user `id` other than the one asking now (all of
    /// them when none of its connections is acting).
    pub fn other_connections(&self, id: ConnId) -> Vec<super::state::Link> {
        let here = self.here(id);
        self.state
            .users
            .get(&id)
            .map(|u| u.links.iter().filter(|l| l.conn != here).copied().collect())
            .unwrap_or_default()
    }

    /// The capabilities that decide how a reply to `id` is written: those
    /// of the connection that asked.
    pub fn caps_of(&self, id: ConnId) -> Caps {
        self.state
            .users
            .get(&id)
            .map(|u| u.caps_of(self.here(id)))
            .unwrap_or_default()
    }

    // ---- sending ---------------------------------------------------------

    /// A line to a user: to the connection that asked when it is this
    /// user's (a reply), else to every connection of the user.
    pub fn send(&mut self, to: ConnId, line: Bytes) {
        if let Some(c) = self.acting
            && self.user_of(c) == to
        {
            return self.out.pending.push((c, line));
        }
        match self.state.users.get(&to) {
            Some(u) if u.links.len() > 1 || u.links.first().is_some_and(|l| l.conn != to) => {
                for l in &u.links {
                    self.out.pending.push((l.conn, line.clone()));
                }
            }
            _ => self.out.pending.push((to, line)),
        }
    }

    pub fn send_msg(&mut self, to: ConnId, msg: Message) {
        self.send(to, Bytes::from(msg.to_line()));
    }

    /// A numeric to a member, addressed to their current nick.
    pub fn reply(&mut self, to: ConnId, n: Numeric) {
        let Some(u) = self.state.users.get(&to) else {
            return;
        };
        let m = n.to_message(&self.config.server_name, &u.nick);
        self.send_msg(to, m);
    }

    pub fn reply_all(&mut self, to: ConnId, ns: Vec<Numeric>) {
        for n in ns {
            self.reply(to, n);
        }
    }

    /// `msg` to each connection of each recipient (that passes
    /// `only_caps`), encoded once per capability variant. When the acting
    /// user is not a recipient (their own message, without echo-message),
    /// their other connections still get it: what one of a user's clients
    /// says, the others show.
    pub fn broadcast(
        &mut self,
        recipients: &[ConnId],
        out: &mut Outgoing,
        only_caps: impl Fn(Caps) -> bool,
    ) {
        for id in recipients {
            let Some(u) = self.state.users.get(id) else {
                continue;
            };
            for l in &u.links {
                if only_caps(l.caps) && !self.is_gone(l.conn) {
                    let b = out.bytes_for(l.caps, &self.msgids);
                    self.out.pending.push((l.conn, b));
                }
            }
        }
        let Some(conn) = self.acting else {
            return;
        };
        let actor = self.user_of(conn);
        let Some(u) = self.state.users.get(&actor) else {
            return;
        };
        if u.links.len() > 1 && !recipients.contains(&actor) {
            for l in u.links.iter().filter(|l| l.conn != conn) {
                if only_caps(l.caps) && !self.is_gone(l.conn) {
                    let b = out.bytes_for(l.caps, &self.msgids);
                    self.out.pending.push((l.conn, b));
                }
            }
        }
    }

    /// After many have left: everything sized by the number of members
    /// gives back what it no longer needs.
    pub fn shrink_after_leaves(&mut self) {
        use super::state::{oversized, shrink_map};
        self.state.shrink_after_leaves();
        if oversized(self.gone.len(), self.gone.capacity()) {
            self.gone.shrink_to_fit();
        }
        shrink_map(&mut self.attached);
        shrink_map(&mut self.long_replies);
        shrink_map(&mut self.accounts.online);
        self.console_records.shrink_after_leaves();
    }

    /// Whether `conn`'s peer is gone (its leave on the way).
    fn is_gone(&self, conn: ConnId) -> bool {
        // Empty but for a moment after connections drop: no hashing then.
        !self.gone.is_empty() && self.gone.contains(&conn)
    }

    /// An event with a `msgid`, for everything a person says or does. A
    /// room event is kept in history here, where it gets its msgid, before
    /// anything changes the rooms it concerns (`history.rs`).
    pub fn outgoing(&mut self, msg: Message) -> Outgoing {
        let mut out = Outgoing::new(msg, &self.clock);
        out.msgid = Some(self.msgids.next_id());
        self.keep_event(&out);
        out
    }

    /// Stages a `chat.log` line at the batch's time.
    pub fn record(&mut self, event: &str, detail: &str) {
        self.transcript.record(&self.clock.stamp, event, detail);
    }

    /// A room's members plus `actor` if they are not one (a tracker
    /// operator acting from outside): whoever made a change sees it.
    pub fn members_and(&self, room: &str, actor: ConnId) -> Vec<ConnId> {
        let mut ids = self
            .state
            .room(room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        if !ids.contains(&actor) {
            ids.push(actor);
        }
        ids
    }

    /// The acting user's standing in `room`, for the policy functions.
    pub fn actor(&self, id: ConnId, room: &Room) -> Actor {
        let user = self.state.users.get(&id);
        Actor {
            roles: room.roles_of(id),
            tracker_oper: user.is_some_and(|u| u.oper.is_some()),
            founder_account: super::super::policy::is_founder_account(
                room,
                user.and_then(|u| u.account.as_deref()),
            ),
        }
    }

    pub fn nick_of(&self, id: ConnId) -> String {
        self.state
            .users
            .get(&id)
            .map(|u| u.nick.clone())
            .unwrap_or_default()
    }

    pub fn mask_of(&self, id: ConnId) -> String {
        self.state
            .users
            .get(&id)
            .map(|u| u.mask())
            .unwrap_or_default()
    }

    /// Splits a comma list of targets: empty items and duplicates (by case
    /// folding) dropped, at most `MAX_TARGETS` kept; what is cut is
    /// answered once with `407`.
    pub fn targets<'a>(&mut self, id: ConnId, list: &'a str) -> Vec<&'a str> {
        // One target (nearly every line): nothing to split or compare.
        if !list.contains(',') {
            return if list.is_empty() {
                Vec::new()
            } else {
                vec![list]
            };
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for t in list.split(',').filter(|t| !t.is_empty()) {
            if !seen.insert(crate::proto::nick::casefold(t)) {
                continue;
            }
            if out.len() == MAX_TARGETS {
                self.reply(id, replies::too_many_targets(t));
                break;
            }
            out.push(t);
        }
        out
    }

    // ---- requests ----------------------------------------------------------

    /// A line from a registered member: checked against the command table,
    /// then handed to its handler.
    pub fn line(&mut self, id: ConnId, msg: Message) {
        if !self.state.users.contains_key(&id) {
            return;
        }
        let command = match commands::admit(&msg, true) {
            Ok(c) => c,
            Err(n) => return self.reply(id, n),
        };
        // AWAY sets the status itself; anything else a person does ends
        // INACTIVE first.
        if command.activity && command.cmd != Cmd::Away {
            self.touch(id);
        }
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        match command.cmd {
            Cmd::Privmsg | Cmd::Notice | Cmd::Tagmsg => self.message(id, &msg),
            Cmd::Join => self.join_command(id, p(0), p(1)),
            Cmd::Part => self.part_command(id, p(0), p(1)),
            Cmd::Topic => self.topic(id, &msg),
            Cmd::Names => self.names_command(id, msg.param_at(0)),
            Cmd::List => self.list(id, msg.param_at(0)),
            Cmd::Invite => self.invite(id, p(0), p(1)),
            Cmd::Kick => self.kick_command(id, p(0), p(1), msg.param_at(2)),
            Cmd::Mode => self.mode(id, &msg),
            Cmd::Close => self.close(id, p(0), msg.param_at(1)),
            Cmd::Who => self.who(id, p(0), msg.param_at(1)),
            Cmd::Whois => self.whois_command(id, &msg),
            Cmd::Whowas => self.whowas(id, p(0), msg.param_at(1)),
            Cmd::Away => self.away(id, msg.param_at(0).filter(|t| !t.trim().is_empty())),
            Cmd::Nick => self.nick(id, p(0)),
            Cmd::Userhost => self.userhost(id, &msg.params),
            Cmd::Ison => self.ison(id, &msg.params),
            Cmd::Kill => self.kill(id, p(0), p(1)),
            Cmd::Motd => self.motd(id),
            Cmd::Lusers => self.lusers(id),
            Cmd::Version => self.version(id),
            Cmd::Time => self.time(id),
            Cmd::Info => self.info(id),
            Cmd::Help => {
                let lines = commands::help(p(0));
                self.reply_all(id, lines);
            }
            Cmd::Cap => self.cap(id, &msg),
            Cmd::Pass | Cmd::User => self.reply(id, replies::already_registered()),
            Cmd::Ping => self.pong(id, p(0)),
            // Answered by the connection task itself (OPER's password check
            // too, which then sends `OperResult`); never sent here.
            Cmd::Pong | Cmd::Quit | Cmd::Oper => {}
            Cmd::Register => self.register_account(id, &msg),
            Cmd::Account => self.account_command(id, &msg),
            Cmd::Authenticate => self.authenticate_registered(id),
            Cmd::Chathistory => self.chathistory(id, &msg),
            Cmd::Markread => self.markread(id, &msg),
        }
    }

    pub fn bad_line(&mut self, id: ConnId, error: BadLine) {
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let m = replies::bad_line(&self.config.server_name, &u.nick, &error);
        self.send_msg(id, m);
    }
}
