//! The client's application state. Server messages and typed input go in;
//! display events and messages to send come out. No I/O happens here, so
//! the plain mode and a full-screen UI can share it, and it is tested
//! without sockets or terminals.

use std::collections::{BTreeMap, HashSet, VecDeque};

use jiff::{SignedDuration, Timestamp};

use super::history::{self, Before, History, HistoryLine};
use super::input::{self, Command};
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::proto::numeric::*;
use crate::proto::sanitize::for_display;
use crate::proto::status::{self, Status};

pub const GENERAL: &str = "#general";
/// Capabilities the client asks for when the tracker offers them.
/// `labeled-response` (with `batch`, which it relies on) tags our own
/// lines so their echoes and refusals are matched exactly; without it they
/// are matched by target, in order.
pub const WANTED_CAPS: &[&str] = &[
    "away-notify",
    "batch",
    // Coming back: the tracker's replay and older pages (PgUp), and what
    // the account has read, shared by its connections.
    "draft/chathistory",
    "draft/read-marker",
    "echo-message",
    "labeled-response",
    "message-tags",
    // Every role of a member (`~@otto`), not just the highest, in NAMES
    // and WHO: a founder who is also an operator stays an operator when
    // the founder mark is taken away.
    "multi-prefix",
    "server-time",
];

/// Room roles as the tracker marks them (PREFIX=(qov)~@+), highest first.
pub const ROLE_MARKS: &str = "~&@%+";

/// Where a chat line belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    Room(String),
    /// A direct conversation, named by the other person.
    Dm(String),
    /// A direct session (`/session`), named by the other person: its
    /// lines go straight between the two clients.
    Session(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatKind {
    Message,
    Notice,
    Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEntry {
    pub nick: String,
    /// Room roles, highest first (`~@`, `+`); empty outside a room.
    pub roles: String,
    pub status: Status,
    /// The user's own words when BUSY, or the tracker's when INACTIVE.
    pub detail: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WhoisInfo {
    pub nick: String,
    pub user: String,
    pub ip: String,
    pub realname: String,
    pub rooms: Vec<String>,
    pub away: Option<String>,
    pub idle_secs: Option<u64>,
    pub signon: Option<i64>,
    /// The account they are logged in to (`330`).
    pub account: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Chat {
        time: Timestamp,
        window: Window,
        from: String,
        text: String,
        kind: ChatKind,
        own: bool,
        /// The tracker's echo of our own line [`Event::Sending`] showed
        /// with this id: the line is now confirmed.
        confirms: Option<u64>,
        /// The tracker's id for the line (`msgid`), where older history
        /// starts when the window is paged back.
        msgid: Option<String>,
    },
    /// A `chathistory` batch received whole: replay (lines missed while
    /// away, pushed at login) or, when `page`, an older page asked with
    /// PgUp (empty: there is no older history). Never unread, never a
    /// mention.
    History {
        /// When it arrived.
        time: Timestamp,
        window: Window,
        /// Oldest first, each with its own time.
        lines: Vec<HistoryLine>,
        page: bool,
    },
    /// The tracker's summary of what was missed in `window` (`While you
    /// were away: 12 messages in #general, 3 mention you`).
    Summary {
        time: Timestamp,
        window: Window,
        text: String,
    },
    /// How far the account has read `window` (`MARKREAD`): set at a join,
    /// moved by another connection of the account, or the answer to ours.
    ReadMarker {
        time: Timestamp,
        window: Window,
        /// `None`: nothing read yet.
        read: Option<Timestamp>,
        /// The answer to our own MARKREAD.
        ours: bool,
    },
    /// Our own line, sent and not yet confirmed by the tracker's echo
    /// (echo-message): shown at once, marked as pending.
    Sending {
        time: Timestamp,
        id: u64,
        window: Window,
        from: String,
        text: String,
        kind: ChatKind,
    },
    /// Lines the tracker never confirmed before the link ended: they may
    /// not have reached anyone.
    Unsent {
        time: Timestamp,
        /// Where each was going and its text, oldest first.
        lines: Vec<(Window, String)>,
        /// The tracker's refusal, shown as an error just before, already
        /// names the line: the plain mode prints nothing more.
        explained: bool,
    },
    Joined {
        time: Timestamp,
        room: String,
        nick: String,
        me: bool,
    },
    Parted {
        time: Timestamp,
        room: String,
        nick: String,
        reason: String,
        me: bool,
    },
    Quit {
        time: Timestamp,
        nick: String,
        reason: String,
        /// The rooms of ours they were in: their windows say so too.
        rooms: Vec<String>,
    },
    /// Someone was removed from a room by `by` (KICK).
    Kicked {
        time: Timestamp,
        room: String,
        nick: String,
        by: String,
        reason: String,
        /// We were the one removed: the room's window is no longer live.
        me: bool,
    },
    /// `by` closed the room (CLOSE): we are out of it and it is gone.
    RoomClosed {
        time: Timestamp,
        room: String,
        by: String,
        reason: Option<String>,
    },
    /// Something about a room in words: a mode change, its modes, a ban.
    RoomNote {
        time: Timestamp,
        room: String,
        text: String,
        /// The answer to our own question (`/mode`, `/topic`): shown where
        /// the person asked, not only in the room's window.
        answer: bool,
    },
    /// `/oper <name>` without a password: the next line typed is the
    /// password, and must not be shown or kept.
    AskSecret {
        time: Timestamp,
        prompt: String,
    },
    NickChanged {
        time: Timestamp,
        old: String,
        new: String,
        /// Our own rename.
        me: bool,
    },
    Status {
        time: Timestamp,
        nick: String,
        me: bool,
        status: Status,
        detail: Option<String>,
    },
    Topic {
        time: Timestamp,
        room: String,
        topic: String,
        by: Option<String>,
    },
    Users {
        time: Timestamp,
        room: String,
        users: Vec<UserEntry>,
    },
    Whois {
        time: Timestamp,
        info: WhoisInfo,
    },
    Rooms {
        time: Timestamp,
        rooms: Vec<(String, String, String)>,
    },
    Info {
        time: Timestamp,
        text: String,
    },
    Error {
        time: Timestamp,
        text: String,
    },
    Help {
        time: Timestamp,
        lines: Vec<String>,
    },
    /// The tracker closed the link (ERROR), with its reason.
    Closed {
        time: Timestamp,
        reason: String,
    },
    /// News of a direct session with `peer` (offered, open, closed,
    /// refused); `warn` when it is about safety (unencrypted, a wrong
    /// fingerprint, going through the tracker).
    SessionNote {
        time: Timestamp,
        peer: String,
        text: String,
        warn: bool,
    },
}

impl Event {
    /// When it happened.
    pub fn time(&self) -> Timestamp {
        match self {
            Event::Chat { time, .. }
            | Event::Sending { time, .. }
            | Event::Unsent { time, .. }
            | Event::Joined { time, .. }
            | Event::Parted { time, .. }
            | Event::Quit { time, .. }
            | Event::Kicked { time, .. }
            | Event::RoomClosed { time, .. }
            | Event::RoomNote { time, .. }
            | Event::AskSecret { time, .. }
            | Event::NickChanged { time, .. }
            | Event::Status { time, .. }
            | Event::Topic { time, .. }
            | Event::Users { time, .. }
            | Event::Whois { time, .. }
            | Event::Rooms { time, .. }
            | Event::Info { time, .. }
            | Event::Error { time, .. }
            | Event::Help { time, .. }
            | Event::Closed { time, .. }
            | Event::SessionNote { time, .. }
            | Event::History { time, .. }
            | Event::Summary { time, .. }
            | Event::ReadMarker { time, .. } => *time,
        }
    }
}

/// What one input or server message produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub events: Vec<Event>,
    pub send: Vec<Message>,
    /// The user asked to leave, with this QUIT reason.
    pub quit: Option<String>,
    /// What the direct sessions' links are to do.
    pub direct: Vec<super::direct::DirectCmd>,
}

#[derive(Default)]
struct Member {
    nick: String,
    away: Option<String>,
}

/// A room we are in: its members and their roles, as the tracker told us
/// (NAMES, WHO, then JOIN/PART/KICK/QUIT/NICK/MODE).
#[derive(Debug, Default)]
struct RoomMembers {
    /// Folded nick to (nick as shown, roles highest first).
    members: BTreeMap<String, (String, String)>,
}

/// `roles` with `mark` added or taken away, kept highest first.
fn with_role(roles: &str, mark: char, add: bool) -> String {
    ROLE_MARKS
        .chars()
        .filter(|&c| if c == mark { add } else { roles.contains(c) })
        .collect()
}

/// A NAMES entry split into its roles and the nick (`~@fay`).
fn split_roles(entry: &str) -> (String, &str) {
    let nick = entry.trim_start_matches(|c| ROLE_MARKS.contains(c));
    let roles = &entry[..entry.len() - nick.len()];
    (with_role(roles, ' ', false), nick)
}

pub struct App {
    pub me: String,
    pub tracker: String,
    /// Where typed lines go.
    pub room: String,
    pub my_status: Status,
    pub my_away: Option<String>,
    /// The tracker echoes our own AWAY (we have away-notify and
    /// echo-message): our status comes from that echo, never from what we
    /// asked for.
    away_echo: bool,
    pub rooms: Vec<String>,
    /// The rooms we are in, by folded name, with their members' roles.
    joined: BTreeMap<String, RoomMembers>,
    /// Everyone we share a room with, by folded nick.
    members: BTreeMap<String, Member>,
    /// `/topic` asked about this room: its "no topic" answer is shown.
    topic_asked: Option<String>,
    /// Bans listed since the last end of a ban list (`/mode +b`).
    bans_listed: usize,
    /// `/oper <name>` is waiting for its password: the next line typed.
    /// What the next line typed is the password for, when asked.
    secret_for: Option<SecretFor>,
    echo_message: bool,
    /// `labeled-response`: our lines carry `label=<pending id>`.
    labels: bool,
    /// WHO queries in flight, answered in order by the tracker: `None` for
    /// the client's own silent sync, `Some` for a `/users` from the person.
    who_queue: VecDeque<Option<UsersQuery>>,
    /// WHOIS queries in flight, in order: folded nick, and whether silent
    /// (asked by the client to learn an away reason).
    whois_queue: VecDeque<(String, bool)>,
    /// A finished `/users` still waiting for some away reasons.
    users_waiting: Option<UsersQuery>,
    whois: Option<WhoisInfo>,
    list: Option<Vec<(String, String, String)>>,
    /// The away text we asked for, shown when the tracker confirms.
    requested_away: Option<String>,
    /// A DM partner typed lines go to instead of `room` (the full-screen
    /// UI's DM windows; the plain mode never sets it).
    dm: Option<String>,
    /// Our lines sent and not yet echoed back, oldest first.
    pending: VecDeque<Pending>,
    next_pending: u64,
    /// The last sync barrier sent ([`App::sync_request`]) and the last
    /// one answered.
    sync_sent: u64,
    sync_seen: u64,
    /// Direct sessions (`/session`).
    pub sessions: super::p2p::DirectSessions,
    /// Replay, older pages and read markers (issue 17).
    history: History,
}

/// One of our own lines waiting for the tracker's echo.
struct Pending {
    id: u64,
    /// Folded target, to match the echo.
    target: String,
    window: Window,
    text: String,
    kind: ChatKind,
    sent: Timestamp,
    /// Already shown as "still sending" by [`App::overdue`].
    reported: bool,
}

/// How the reason of the KICK that CLOSE sends each member starts.
const CLOSED_BY: &str = "Room closed by ";

/// Our labels (`labeled-response`): this and the pending line's id.
const LABEL_PREFIX: &str = "c";

/// The mask of a sync barrier: `WHO` answers a mask that matches nobody
/// with just its end line, which names the mask. Nicks cannot contain a
/// dot, so no user matches it.
const SYNC_MASK: &str = "confab.sync.";

/// The tracker's reason inside `Closing link: <address> (<reason>)`, the
/// wording IRC servers use in `ERROR`; other texts are kept as they are.
pub fn closing_reason(text: &str) -> String {
    let text = for_display(text);
    let reason = text
        .strip_prefix("Closing link:")
        .and_then(|rest| rest.split_once('('))
        .and_then(|(_, r)| r.strip_suffix(')'))
        .map(|r| r.trim().to_string())
        .unwrap_or(text);
    // IRC's names for why a link was cut, explained; the name is kept, as
    // it is what a search or the operator's log shows.
    if reason == "Excess Flood" {
        return "you sent too many lines too fast (Excess Flood)".into();
    }
    if reason == "SendQ exceeded" {
        return "your connection could not keep up with the messages (SendQ exceeded)".into();
    }
    if let Some(secs) = reason.strip_prefix("Ping timeout: ") {
        return format!("nothing heard from your side for {secs} (Ping timeout)");
    }
    reason
}

/// What a refused username is called in our own words: `433` (taken) and
/// `432` (not allowed, with the tracker's rule after IRC's jargon).
/// `tried` is the name as the user typed it: the reply's copy of it may
/// have been altered on the wire (a space cannot travel in that place).
pub fn nick_refusal(code: &str, tried: &str, reason: &str) -> String {
    let tried = for_display(tried);
    if code == ERR_NICKNAMEINUSE {
        // The tracker keeps a registered name for its account's owner.
        if reason.contains("registered account") {
            return format!(
                "That username is a registered account: {tried} (if it is yours, log in with --account {tried}; else pick another)"
            );
        }
        return format!("That username is taken: {tried}");
    }
    let rule = reason
        .strip_prefix("Erroneous nickname")
        .map(|r| r.trim_start_matches(':').trim())
        .filter(|r| !r.is_empty())
        .unwrap_or(reason);
    format!(
        "That username is not allowed: {tried:?}: {}",
        for_display(rule)
    )
}

struct UsersQuery {
    room: String,
    /// Nick, whether the tracker flagged them away (G), and their roles.
    rows: Vec<(String, bool, String)>,
    /// Away users whose reason is being fetched.
    waiting: HashSet<String>,
}

fn time_of(msg: &Message, now: Timestamp) -> Timestamp {
    msg.tag_value("time")
        .and_then(|t| t.parse().ok())
        .unwrap_or(now)
}

impl App {
    pub fn new(me: &str, tracker: &str) -> Self {
        App {
            me: me.to_string(),
            tracker: tracker.to_string(),
            room: GENERAL.to_string(),
            my_status: Status::Active,
            my_away: None,
            away_echo: false,
            rooms: Vec::new(),
            joined: BTreeMap::new(),
            members: BTreeMap::new(),
            topic_asked: None,
            bans_listed: 0,
            secret_for: None,
            echo_message: false,
            labels: false,
            who_queue: VecDeque::new(),
            whois_queue: VecDeque::new(),
            users_waiting: None,
            whois: None,
            list: None,
            requested_away: None,
            dm: None,
            pending: VecDeque::new(),
            next_pending: 0,
            sync_sent: 0,
            sync_seen: 0,
            sessions: super::p2p::DirectSessions::default(),
            history: History::default(),
        }
    }

    /// A barrier: a request the tracker answers after everything sent
    /// before it. Not `PING`: a tracker may answer PING from the
    /// connection itself, ahead of replies the chat state is still
    /// preparing (ours does), while `WHO` is answered in order with the
    /// other commands. [`App::synced`] says when the latest one came back.
    pub fn sync_request(&mut self) -> Message {
        self.sync_sent += 1;
        Message::new("WHO").param(format!("{SYNC_MASK}{}", self.sync_sent))
    }

    /// Whether the tracker has answered everything sent before the latest
    /// [`App::sync_request`].
    pub fn synced(&self) -> bool {
        self.sync_seen >= self.sync_sent
    }

    /// Own lines not confirmed after `after`, not reported before: shown
    /// as [`Event::Sending`] by the plain mode, which cannot mark a line
    /// it printed already.
    pub fn overdue(&mut self, now: Timestamp, after: SignedDuration) -> Vec<Event> {
        let mut out = Vec::new();
        for p in self.pending.iter_mut().filter(|p| !p.reported) {
            if now.duration_since(p.sent) >= after {
                p.reported = true;
                out.push(Event::Sending {
                    time: p.sent,
                    id: p.id,
                    window: p.window.clone(),
                    from: self.me.clone(),
                    text: p.text.clone(),
                    kind: p.kind,
                });
            }
        }
        out
    }

    /// When the oldest unreported pending line becomes overdue.
    pub fn next_overdue(&self, after: SignedDuration) -> Option<Timestamp> {
        self.pending
            .iter()
            .find(|p| !p.reported)
            .and_then(|p| p.sent.checked_add(after).ok())
    }

    /// The link ended: the lines never confirmed, as one event (none if
    /// every line was confirmed).
    pub fn take_unsent(&mut self, now: Timestamp) -> Option<Event> {
        if self.pending.is_empty() {
            return None;
        }
        let lines = self.pending.drain(..).map(|p| (p.window, p.text)).collect();
        Some(Event::Unsent {
            time: now,
            lines,
            explained: false,
        })
    }

    /// The oldest pending line to `target`, taken out: the tracker
    /// refused or confirmed it.
    /// The pending line an answer is about: by its label when the tracker
    /// labels answers, else the oldest to `target`.
    fn take_answered(&mut self, msg: &Message, target: &str) -> Option<Pending> {
        let labelled = msg
            .tag_value("label")
            .and_then(|l| l.strip_prefix(LABEL_PREFIX))
            .and_then(|n| n.parse::<u64>().ok());
        match labelled {
            Some(id) => {
                let i = self.pending.iter().position(|p| p.id == id)?;
                self.pending.remove(i)
            }
            None => self.take_pending(target),
        }
    }

    fn take_pending(&mut self, target: &str) -> Option<Pending> {
        let key = casefold(target);
        let i = self.pending.iter().position(|p| p.target == key)?;
        self.pending.remove(i)
    }

    /// Capabilities the tracker acknowledged during login.
    pub fn set_caps(&mut self, acked: &[String]) {
        self.echo_message = acked.iter().any(|c| c == "echo-message");
        self.labels = self.echo_message && acked.iter().any(|c| c == "labeled-response");
        self.away_echo = self.echo_message && acked.iter().any(|c| c == "away-notify");
        self.history.set_caps(acked);
    }

    /// PgUp at the top of `window`: asks for the page before `before`
    /// (`CHATHISTORY BEFORE`), once at a time, only from a tracker that
    /// gives history and while there is older history.
    pub fn older_history(&mut self, window: &Window, before: Before) -> Update {
        let mut up = Update::default();
        up.send.extend(self.history.older(window, before));
        up
    }

    /// Whether a page of `window`'s history is asked and not yet here.
    pub fn asking_history(&self, window: &Window) -> bool {
        self.history.asking(window)
    }

    /// The person has `window` in view, its lines read up to `upto`: the
    /// MARKREAD to send, if any (throttled per window unless `switched`,
    /// the window just came into view).
    pub fn mark_read(
        &mut self,
        window: &Window,
        upto: Timestamp,
        now: Timestamp,
        switched: bool,
    ) -> Vec<Message> {
        self.history
            .read(window, upto, now, switched)
            .into_iter()
            .collect()
    }

    /// `window` left the view: its held MARKREAD, if any, goes now.
    pub fn left_window(&mut self, window: &Window, now: Timestamp) -> Vec<Message> {
        self.history.flush(window, now).into_iter().collect()
    }

    /// Held MARKREADs whose time has come, and when the next one is due.
    pub fn due_mark_reads(&mut self, now: Timestamp) -> Vec<Message> {
        self.history.due(now)
    }

    pub fn next_mark_read(&self) -> Option<Timestamp> {
        self.history.next_due()
    }

    fn is_me(&self, nick: &str) -> bool {
        casefold(nick) == casefold(&self.me)
    }

    /// The members of `room` as the tracker last told them: name, roles,
    /// status, detail; `None` when we are not in that room.
    pub fn room_users(&self, room: &str) -> Option<Vec<UserEntry>> {
        let r = self.joined.get(&casefold(room))?;
        Some(
            r.members
                .iter()
                .map(|(key, (nick, roles))| {
                    let away = if self.is_me(nick) {
                        self.my_away.clone()
                    } else {
                        self.members.get(key).and_then(|m| m.away.clone())
                    };
                    UserEntry {
                        roles: roles.clone(),
                        ..entry(nick, away.as_deref())
                    }
                })
                .collect(),
        )
    }

    /// Whether we are in `room`.
    pub fn in_room(&self, room: &str) -> bool {
        self.joined.contains_key(&casefold(room))
    }

    /// The status the tracker last told for `nick` (anyone we share a
    /// room with, or ourselves).
    pub fn user(&self, nick: &str) -> UserEntry {
        if self.is_me(nick) {
            return entry(&self.me, self.my_away.as_deref());
        }
        let away = self
            .members
            .get(&casefold(nick))
            .and_then(|m| m.away.clone());
        entry(nick, away.as_deref())
    }

    /// Whether `nick` is still in any room we are in.
    fn shares_a_room(&self, nick: &str) -> bool {
        let key = casefold(nick);
        self.joined.values().any(|r| r.members.contains_key(&key))
    }

    /// `nick` left `room` (PART, KICK): forgotten there, and altogether
    /// once we share no room with them.
    fn left_room(&mut self, room: &str, nick: &str) {
        let key = casefold(nick);
        if self.is_me(nick) {
            self.joined.remove(&casefold(room));
            self.rooms.retain(|r| casefold(r) != casefold(room));
            if casefold(&self.room) == casefold(room) {
                self.room = self
                    .rooms
                    .first()
                    .cloned()
                    .unwrap_or_else(|| GENERAL.to_string());
            }
            let gone: Vec<String> = self
                .members
                .keys()
                .filter(|k| !self.joined.values().any(|r| r.members.contains_key(*k)))
                .cloned()
                .collect();
            for k in gone {
                self.members.remove(&k);
            }
            return;
        }
        if let Some(r) = self.joined.get_mut(&casefold(room)) {
            r.members.remove(&key);
        }
        if !self.shares_a_room(nick) {
            self.members.remove(&key);
        }
    }

    /// Sets `nick`'s roles in `room` (NAMES, WHO), adding them if new.
    fn set_roles(&mut self, room: &str, nick: &str, roles: String) {
        if let Some(r) = self.joined.get_mut(&casefold(room)) {
            r.members.insert(casefold(nick), (nick.to_string(), roles));
        }
        if !self.is_me(nick) {
            self.members
                .entry(casefold(nick))
                .or_insert_with(|| Member {
                    nick: nick.to_string(),
                    away: None,
                });
        }
    }

    /// Where typed lines go from now on: a room, or a DM partner.
    pub fn focus(&mut self, window: &Window) {
        match window {
            Window::Room(r) => {
                self.room = r.clone();
                self.dm = None;
            }
            Window::Dm(nick) => self.dm = Some(nick.clone()),
            Window::Session(nick) => self.dm = Some(format!("={nick}")),
        }
    }

    /// The room or person typed lines go to.
    pub fn target(&self) -> String {
        self.dm.clone().unwrap_or_else(|| self.room.clone())
    }

    /// Sends `text` as it is, with no command parsing: each line of a
    /// multi-line paste, where a line starting with `/` or `@` is text the
    /// person pasted, not a command they typed.
    pub fn on_text(&mut self, text: &str, now: Timestamp) -> Update {
        let mut up = Update::default();
        let text = text.trim_end_matches(['\r', '\n']);
        if !text.trim().is_empty() {
            let to = self.target();
            self.say(&to, text, false, now, &mut up);
        }
        up
    }

    // ---- typed input ----------------------------------------------------

    /// Whether the next line typed is a password ([`Event::AskSecret`]).
    pub fn asking_secret(&self) -> bool {
        self.secret_for.is_some()
    }

    /// The answer to [`Event::AskSecret`]: the operator password, sent
    /// and forgotten. An empty answer gives up.
    pub fn on_secret(&mut self, secret: &str, now: Timestamp) -> Update {
        let mut up = Update::default();
        let Some(asked) = self.secret_for.take() else {
            return up;
        };
        let secret = secret.trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            let text = match asked {
                SecretFor::Oper(_) => "operator login cancelled",
                SecretFor::Register => "account registration cancelled",
            };
            up.events.push(Event::Info {
                time: now,
                text: text.into(),
            });
            return up;
        }
        up.send.push(match asked {
            SecretFor::Oper(name) => Message::new("OPER").param(name).param(secret.to_string()),
            SecretFor::Register => register_line(secret),
        });
        up
    }

    /// The room a room command is about: the one named, else the current.
    fn room_or_current(&self, room: Option<String>) -> String {
        room.unwrap_or_else(|| self.room.clone())
    }

    pub fn on_input(&mut self, line: &str, now: Timestamp) -> Update {
        if self.secret_for.is_some() {
            return self.on_secret(line, now);
        }
        let mut up = Update::default();
        let cmd = match input::parse(line) {
            Ok(Some(c)) => c,
            Ok(None) => return up,
            Err(e) => {
                up.events.push(Event::Error {
                    time: now,
                    text: e.to_string(),
                });
                return up;
            }
        };
        match cmd {
            Command::Say(text) => {
                let to = self.target();
                self.say(&to, &text, false, now, &mut up);
            }
            Command::Me(text) => {
                let to = self.target();
                self.say(&to, &text, true, now, &mut up);
            }
            Command::Msg { to, text } => self.say(&to, &text, false, now, &mut up),
            Command::Session(cmd) => {
                // In a session's window, `/session close` (accept,
                // decline) is about that session.
                use super::p2p::SessionCommand as S;
                let here = self
                    .dm
                    .as_deref()
                    .and_then(|d| d.strip_prefix('='))
                    .map(str::to_string);
                let cmd = match cmd {
                    S::Close(None) if here.is_some() => S::Close(here),
                    S::Accept(None) if here.is_some() => S::Accept(here),
                    S::Decline(None) if here.is_some() => S::Decline(here),
                    other => other,
                };
                self.sessions.command(cmd, &self.me, now, &mut up)
            }
            Command::Status { busy, text } => {
                if busy {
                    let text = text.unwrap_or_else(|| status::BUSY_WORD.into());
                    self.requested_away = Some(text.clone());
                    up.send.push(Message::new("AWAY").param(text));
                } else {
                    up.send.push(Message::new("AWAY"));
                }
            }
            Command::Info(nick) => {
                self.whois_queue.push_back((casefold(&nick), false));
                up.send.push(Message::new("WHOIS").param(nick));
            }
            Command::Users(room) => {
                let room = self.room_or_current(room);
                self.who_queue.push_back(Some(UsersQuery {
                    room: room.clone(),
                    rows: Vec::new(),
                    waiting: HashSet::new(),
                }));
                up.send.push(Message::new("WHO").param(room));
            }
            Command::Rooms => {
                self.list = Some(Vec::new());
                up.send.push(Message::new("LIST"));
            }
            Command::Join { room, key } => {
                let mut m = Message::new("JOIN").param(room);
                if let Some(key) = key {
                    m = m.param(key);
                }
                up.send.push(m);
            }
            Command::Part { room, reason } => {
                let mut m = Message::new("PART").param(self.room_or_current(room));
                if let Some(reason) = reason {
                    m = m.param(reason);
                }
                up.send.push(m);
            }
            Command::Topic { room, text } => {
                let room = self.room_or_current(room);
                let mut m = Message::new("TOPIC").param(room.clone());
                match text {
                    Some(text) => m = m.param(text),
                    None => self.topic_asked = Some(casefold(&room)),
                }
                up.send.push(m);
            }
            Command::Invite { nick, room } => {
                let room = self.room_or_current(room);
                up.send.push(Message::new("INVITE").param(nick).param(room));
            }
            Command::Kick { room, nick, reason } => {
                let mut m = Message::new("KICK")
                    .param(self.room_or_current(room))
                    .param(nick);
                if let Some(reason) = reason {
                    m = m.param(reason);
                }
                up.send.push(m);
            }
            Command::Mode { room, changes } => {
                let mut m = Message::new("MODE").param(self.room_or_current(room));
                for c in changes {
                    m = m.param(c);
                }
                up.send.push(m);
            }
            Command::CloseRoom { room, reason } => {
                let mut m = Message::new("CLOSE").param(self.room_or_current(room));
                if let Some(reason) = reason {
                    m = m.param(reason);
                }
                up.send.push(m);
            }
            Command::Oper {
                name,
                password: Some(password),
            } => up
                .send
                .push(Message::new("OPER").param(name).param(password)),
            Command::Oper {
                name,
                password: None,
            } => {
                up.events.push(Event::AskSecret {
                    time: now,
                    prompt: format!(
                        "operator password for {} (not shown; an empty line cancels):",
                        for_display(&name)
                    ),
                });
                self.secret_for = Some(SecretFor::Oper(name));
            }
            Command::Register(Some(password)) => up.send.push(register_line(&password)),
            Command::Register(None) => {
                up.events.push(Event::AskSecret {
                    time: now,
                    prompt: format!(
                        "password for the account {} (at least 8 characters, not shown; an empty line cancels):",
                        for_display(&self.me)
                    ),
                });
                self.secret_for = Some(SecretFor::Register);
            }
            Command::Kill { nick, reason } => {
                up.send.push(Message::new("KILL").param(nick).param(reason))
            }
            Command::Nick(n) => up.send.push(Message::new("NICK").param(n)),
            Command::Help => up.events.push(Event::Help {
                time: now,
                lines: input::help_lines(),
            }),
            Command::Quit(reason) => up.quit = Some(reason.unwrap_or_else(|| "Leaving".into())),
            Command::Raw(line) => match Message::parse(&line) {
                Ok(m) => up.send.push(m),
                Err(e) => up.events.push(Event::Error {
                    time: now,
                    text: format!("not an IRC line: {e}"),
                }),
            },
        }
        up
    }

    fn say(&mut self, target: &str, text: &str, action: bool, now: Timestamp, up: &mut Update) {
        // `=nick`: the direct session with nick (irssi's name for it);
        // relayed, it is an ordinary DM.
        if let Some(nick) = target.strip_prefix('=') {
            if self.sessions.route(nick) == Some(false) {
                return self.say(nick, text, action, now, up);
            }
            return self.sessions.say(nick, text, action, &self.me, now, up);
        }
        for chunk in input::split_message(text) {
            let body = if action {
                format!("\x01ACTION {chunk}\x01")
            } else {
                chunk.clone()
            };
            let mut line = Message::new("PRIVMSG").param(target).param(body);
            if self.labels {
                line = line.tag(
                    "label",
                    Some(format!("{LABEL_PREFIX}{}", self.next_pending + 1)),
                );
            }
            up.send.push(line);
            let window = if target.starts_with('#') {
                Window::Room(target.to_string())
            } else {
                Window::Dm(target.to_string())
            };
            let kind = if action {
                ChatKind::Action
            } else {
                ChatKind::Message
            };
            if self.echo_message {
                // Shown at once, marked pending until the echo confirms
                // it. With `labeled-response` the echo carries our label;
                // without (our tracker does not offer it), echoes come back
                // in the order sent, and as the tracker may clean the text,
                // they are matched by target, oldest first.
                self.next_pending += 1;
                let id = self.next_pending;
                self.pending.push_back(Pending {
                    id,
                    target: casefold(target),
                    window: window.clone(),
                    text: chunk.clone(),
                    kind,
                    sent: now,
                    reported: false,
                });
                up.events.push(Event::Sending {
                    time: now,
                    id,
                    window,
                    from: self.me.clone(),
                    text: chunk,
                    kind,
                });
            } else {
                up.events.push(Event::Chat {
                    time: now,
                    window,
                    from: self.me.clone(),
                    text: chunk,
                    kind,
                    own: true,
                    confirms: None,
                    msgid: None,
                });
            }
        }
    }

    // ---- server messages --------------------------------------------------

    /// News from a direct session's link.
    pub fn on_direct(&mut self, event: super::direct::DirectEvent, now: Timestamp) -> Update {
        let mut up = Update::default();
        self.sessions.on_direct(event, now, &mut up);
        up
    }

    pub fn on_message(&mut self, msg: &Message, now: Timestamp) -> Update {
        let mut up = Update::default();
        let time = time_of(msg, now);
        let from = for_display(msg.source_nick().unwrap_or(""));
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        if let Some(reference) = msg.tag_value("batch")
            && self.history.collects(reference)
        {
            // Replay: kept until the batch ends, then shown as a whole.
            if let Some(line) = self.history_line(msg, time, &from) {
                self.history.add(reference, line);
            }
            return up;
        }
        match msg.command.as_str() {
            "PING" => up.send.push(Message::new("PONG").param(p(0))),
            "PRIVMSG" | "NOTICE" => self.chat(msg, time, &from, &mut up),
            "JOIN" => {
                let room = p(0).to_string();
                let me = self.is_me(&from);
                if me {
                    if !self.rooms.iter().any(|r| casefold(r) == casefold(&room)) {
                        self.rooms.push(room.clone());
                    }
                    self.joined.insert(casefold(&room), RoomMembers::default());
                    self.room = room.clone();
                    self.dm = None;
                    // Learn who is away (and why) without showing the answer.
                    self.who_queue.push_back(None);
                    up.send.push(Message::new("WHO").param(room.clone()));
                }
                self.set_roles(&room, &from, String::new());
                up.events.push(Event::Joined {
                    time,
                    room,
                    nick: from,
                    me,
                });
            }
            "PART" => {
                let room = p(0).to_string();
                let me = self.is_me(&from);
                self.left_room(&room, &from);
                up.events.push(Event::Parted {
                    time,
                    room,
                    nick: from,
                    reason: for_display(p(1)),
                    me,
                });
            }
            "KICK" => {
                let (room, nick) = (p(0).to_string(), for_display(p(1)));
                let reason = for_display(p(2));
                let me = self.is_me(&nick);
                self.left_room(&room, &nick);
                // CLOSE removes each member with a KICK of themself whose
                // reason says so, which any IRC client shows.
                let closed = reason
                    .strip_prefix(CLOSED_BY)
                    .map(|rest| rest.split_once(": ").map(|(_, why)| why.to_string()));
                // Without a reason, IRC servers give the kicker's name.
                let reason = if reason == from {
                    String::new()
                } else {
                    reason
                };
                let by = if self.is_me(&from) {
                    "you".into()
                } else {
                    from
                };
                match closed {
                    Some(why) if me => up.events.push(Event::RoomClosed {
                        time,
                        room,
                        by,
                        reason: why,
                    }),
                    _ => up.events.push(Event::Kicked {
                        time,
                        room,
                        nick,
                        by,
                        reason,
                        me,
                    }),
                }
            }
            "MODE" if p(0).starts_with('#') => self.room_mode(msg, time, &from, &mut up),
            "INVITE" => {
                let room = for_display(p(1));
                let text = if self.is_me(p(0)) {
                    format!("{from} invites you to {room} — /join {room}")
                } else {
                    format!("{from} invited {} to {room}", for_display(p(0)))
                };
                up.events.push(Event::Info { time, text });
            }
            "QUIT" => {
                self.sessions.peer_left(&from, time, &mut up);
                let key = casefold(&from);
                let rooms = self
                    .rooms
                    .iter()
                    .filter(|r| {
                        self.joined
                            .get(&casefold(r))
                            .is_some_and(|j| j.members.contains_key(&key))
                    })
                    .cloned()
                    .collect();
                for r in self.joined.values_mut() {
                    r.members.remove(&key);
                }
                self.members.remove(&key);
                up.events.push(Event::Quit {
                    time,
                    nick: from,
                    reason: for_display(p(0)),
                    rooms,
                });
            }
            "NICK" => {
                let new = for_display(p(0));
                self.sessions.renamed(&from, &new);
                if self.is_me(&from) {
                    self.me = new.clone();
                }
                if self
                    .dm
                    .as_deref()
                    .is_some_and(|d| casefold(d) == casefold(&from))
                {
                    self.dm = Some(new.clone());
                }
                if let Some(mut m) = self.members.remove(&casefold(&from)) {
                    m.nick = new.clone();
                    self.members.insert(casefold(&new), m);
                }
                for r in self.joined.values_mut() {
                    if let Some((_, roles)) = r.members.remove(&casefold(&from)) {
                        r.members.insert(casefold(&new), (new.clone(), roles));
                    }
                }
                let me = casefold(&new) == casefold(&self.me);
                up.events.push(Event::NickChanged {
                    time,
                    old: from,
                    new,
                    me,
                });
            }
            "AWAY" => {
                let reason = msg.param_at(0).filter(|r| !r.is_empty()).map(for_display);
                if self.is_me(&from) {
                    self.set_my_status(reason, time, &mut up);
                } else {
                    let m = self
                        .members
                        .entry(casefold(&from))
                        .or_insert_with(|| Member {
                            nick: from.clone(),
                            away: None,
                        });
                    if m.away != reason {
                        m.away = reason.clone();
                        let e = entry(&from, reason.as_deref());
                        up.events.push(Event::Status {
                            time,
                            nick: from,
                            me: false,
                            status: e.status,
                            detail: e.detail,
                        });
                    }
                }
            }
            "TOPIC" => up.events.push(Event::Topic {
                time,
                room: p(0).into(),
                topic: for_display(p(1)),
                by: Some(from),
            }),
            "ERROR" => up.events.push(Event::Closed {
                time,
                reason: closing_reason(p(0)),
            }),
            "FAIL" => self.fail(msg, time, &mut up),
            "BATCH" => {
                if let Some(reference) = p(0).strip_prefix('+') {
                    self.history.open(reference, p(1), p(2));
                } else if let Some(done) =
                    p(0).strip_prefix('-').and_then(|r| self.history.close(r))
                {
                    up.events.push(Event::History {
                        time: now,
                        window: done.window,
                        lines: done.lines,
                        page: done.page,
                    });
                }
            }
            "MARKREAD" => {
                if let Some(m) = self.history.on_markread(p(0), p(1)) {
                    up.events.push(Event::ReadMarker {
                        time,
                        window: m.window,
                        read: m.read,
                        ours: m.ours,
                    });
                }
            }
            // draft/account-registration's success: the text says what next.
            "REGISTER" if p(0) == "SUCCESS" => up.events.push(Event::Info {
                time,
                text: for_display(msg.params.last().map_or("", String::as_str)),
            }),
            // Other MODEs are about users (our own, after OPER): 381 says it.
            code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                self.numeric(msg, time, &mut up)
            }
            _ => {}
        }
        up
    }

    /// A room's MODE: roles applied to its members, every change told in
    /// words (`fay made otto an operator`).
    fn room_mode(&mut self, msg: &Message, time: Timestamp, from: &str, up: &mut Update) {
        let room = msg.param_at(0).unwrap_or("").to_string();
        let by_tracker = msg.source.as_deref().is_none_or(|s| !s.contains('!'));
        let mut args = msg.params.iter().skip(2).map(|a| for_display(a));
        let mut add = true;
        for c in msg.param_at(1).unwrap_or("").chars() {
            match c {
                '+' => add = true,
                '-' => add = false,
                _ => {
                    let arg = match (c, add) {
                        ('q' | 'o' | 'v' | 'b' | 'k', _) | ('l', true) => args.next(),
                        _ => None,
                    };
                    if let Some(mark) = role_mark(c)
                        && let Some(nick) = &arg
                    {
                        let key = casefold(nick);
                        if let Some((shown, roles)) = self
                            .joined
                            .get(&casefold(&room))
                            .and_then(|r| r.members.get(&key))
                            .cloned()
                        {
                            self.set_roles(&room, &shown, with_role(&roles, mark, add));
                        }
                    }
                    let text = if by_tracker
                        && c == 'o'
                        && add
                        && arg.as_deref().is_some_and(|n| self.is_me(n))
                    {
                        // The tracker marks a room's creator as it is made.
                        format!("you created {room}: you are its founder (~) and an operator (@)")
                    } else {
                        let by = if by_tracker { "the tracker" } else { from };
                        let by = if self.is_me(by) { "you" } else { by };
                        let arg = arg.map(|a| if self.is_me(&a) { "you".to_string() } else { a });
                        mode_words(by, &room, c, add, arg.as_deref())
                    };
                    up.events.push(Event::RoomNote {
                        time,
                        room: room.clone(),
                        text,
                        answer: false,
                    });
                }
            }
        }
    }

    /// `FAIL <command> <code> [context...] :<text>` in our own words where
    /// the tracker's text would be read against the client's.
    fn fail(&mut self, msg: &Message, time: Timestamp, up: &mut Update) {
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        let text = for_display(msg.params.last().map_or("", String::as_str));
        if p(1).starts_with("DIRECT_SESSIONS_") {
            // Our session offer, refused: none of our pending lines.
            return self.sessions.on_refused(p(1), p(2), &text, time, up);
        }
        match p(0) {
            "CHATHISTORY" => self.history.page_failed(&msg.params),
            // No account on this connection: markers are not kept, which
            // the person did not ask about.
            "MARKREAD" => return self.history.markers_refused(),
            _ => {}
        }
        let text = match (p(0), p(1)) {
            // One answer wherever it is asked (/part, /close): everyone
            // stays in #general, and leaving the tracker is `exit`.
            ("PART", "CANNOT_LEAVE") | ("CLOSE", "CANNOT_CLOSE") => cannot_leave_general(),
            _ => text,
        };
        if p(0) == "AWAY" {
            // Refused: our status stays what it was.
            self.requested_away = None;
        }
        up.events.push(Event::Error { time, text });
        if matches!(p(0), "PRIVMSG" | "NOTICE")
            && let Some(pending) = match msg.tag_value("label") {
                Some(_) => self.take_answered(msg, ""),
                None => self.pending.pop_front(),
            }
        {
            // The line was refused: it is not pending any more. The
            // refusal names no target, and lines are handled in order, so
            // it is the oldest.
            up.events.push(Event::Unsent {
                time,
                lines: vec![(pending.window, pending.text)],
                explained: true,
            });
        }
    }

    fn fetch_away_reason(&mut self, nick: &str, up: &mut Update) {
        let key = casefold(nick);
        if !self
            .whois_queue
            .iter()
            .any(|(n, silent)| *n == key && *silent)
        {
            self.whois_queue.push_back((key, true));
            up.send.push(Message::new("WHOIS").param(nick));
        }
    }

    fn users_event(&self, q: UsersQuery, time: Timestamp) -> Event {
        let users = q
            .rows
            .iter()
            .map(|(nick, gone, roles)| {
                let away = if self.is_me(nick) {
                    self.my_away.clone()
                } else {
                    self.members
                        .get(&casefold(nick))
                        .and_then(|m| m.away.clone())
                };
                let e = match (gone, away) {
                    (false, _) => entry(nick, None),
                    (true, Some(r)) => entry(nick, Some(&r)),
                    // Away, but the reason never came (they left meanwhile):
                    // away is all the tracker said.
                    (true, None) => entry(nick, Some(status::BUSY_WORD)),
                };
                UserEntry {
                    roles: roles.clone(),
                    ..e
                }
            })
            .collect();
        Event::Users {
            time,
            room: q.room,
            users,
        }
    }

    fn set_my_status(&mut self, reason: Option<String>, time: Timestamp, up: &mut Update) {
        let e = entry(&self.me, reason.as_deref());
        if self.my_away == reason {
            return;
        }
        self.my_away = reason;
        self.my_status = e.status;
        up.events.push(Event::Status {
            time,
            nick: self.me.clone(),
            me: true,
            status: e.status,
            detail: e.detail,
        });
    }

    fn chat(&mut self, msg: &Message, time: Timestamp, from: &str, up: &mut Update) {
        let target = msg.param_at(0).unwrap_or("");
        let raw = msg.param_at(1).unwrap_or("");
        let own = self.is_me(from);
        if msg.command == "NOTICE"
            && let Some(about) = msg
                .tag_value("confab/away-summary")
                .filter(|a| !a.is_empty())
        {
            // Shown where the missed lines go: a room's window, or the
            // DM window with the person named (opened if need be).
            up.events.push(Event::Summary {
                time,
                window: history::window_of(about),
                text: for_display(raw),
            });
            return;
        }
        // A direct session's offer or answer (our own come back as echoes,
        // which confirm none of our pending lines).
        if raw.len() > 5 && raw.starts_with('\x01') && raw[1..5].eq_ignore_ascii_case("DCC ") {
            if !own && !target.starts_with('#') {
                self.sessions.on_ctcp(from, raw, time, up);
            }
            return;
        }
        let confirms = if own && msg.command == "PRIVMSG" {
            self.take_answered(msg, target).map(|p| p.id)
        } else {
            None
        };
        let (kind, text) = if msg.command == "NOTICE" {
            (ChatKind::Notice, raw)
        } else if let Some(rest) = raw.strip_prefix("\x01ACTION ") {
            (ChatKind::Action, rest.trim_end_matches('\x01'))
        } else if raw.starts_with('\x01') {
            return; // other CTCP requests are not shown
        } else {
            (ChatKind::Message, raw)
        };
        let window = if target.starts_with('#') {
            Window::Room(target.to_string())
        } else if msg.source.as_deref().is_none_or(|s| !s.contains('!')) {
            // From the tracker itself, not a person.
            up.events.push(Event::Info {
                time,
                text: for_display(text),
            });
            return;
        } else if own {
            Window::Dm(for_display(target))
        } else {
            Window::Dm(from.to_string())
        };
        up.events.push(Event::Chat {
            time,
            window,
            from: from.to_string(),
            text: for_display(text),
            kind,
            own,
            confirms,
            msgid: msg.tag_value("msgid").map(str::to_string),
        });
    }

    /// A line of a `chathistory` batch as shown: messages, notices and
    /// actions (other CTCP, and direct session offers, are not history).
    fn history_line(&self, msg: &Message, time: Timestamp, from: &str) -> Option<HistoryLine> {
        if !matches!(msg.command.as_str(), "PRIVMSG" | "NOTICE") {
            return None;
        }
        let raw = msg.param_at(1).unwrap_or("");
        let (kind, text) = if msg.command == "NOTICE" {
            (ChatKind::Notice, raw)
        } else if let Some(rest) = raw.strip_prefix("\x01ACTION ") {
            (ChatKind::Action, rest.trim_end_matches('\x01'))
        } else if raw.starts_with('\x01') {
            return None;
        } else {
            (ChatKind::Message, raw)
        };
        Some(HistoryLine {
            time,
            msgid: msg.tag_value("msgid").map(str::to_string),
            from: from.to_string(),
            text: for_display(text),
            kind,
            own: self.is_me(from),
        })
    }

    fn numeric(&mut self, msg: &Message, time: Timestamp, up: &mut Update) {
        // params[0] is always our own nick.
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        let last = for_display(msg.params.last().map_or("", String::as_str));
        if msg.command == ERR_NOSUCHNICK {
            // An offer to nobody: stop listening for them.
            up.direct.extend(self.sessions.no_such_user(p(1)));
        }
        let refused = match msg.command.as_str() {
            ERR_NOSUCHNICK | ERR_NOSUCHCHANNEL | ERR_CANNOTSENDTOCHAN => {
                self.take_answered(msg, p(1))
            }
            _ => None,
        };
        self.numeric_reply(msg, time, &last, up);
        if let Some(refused) = refused {
            // The line waiting for its echo was refused: it reached nobody.
            up.events.push(Event::Unsent {
                time,
                lines: vec![(refused.window, refused.text)],
                explained: false,
            });
        }
    }

    fn numeric_reply(&mut self, msg: &Message, time: Timestamp, last: &str, up: &mut Update) {
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        let last = last.to_string();
        match msg.command.as_str() {
            RPL_WELCOME => {
                self.me = p(0).to_string();
                // `Welcome ..., alice!alice@10.0.0.7`: the user@host part is
                // IRC's, not something a person needs to read.
                let me = casefold(&self.me);
                let text = last
                    .split(' ')
                    .map(|w| match w.split_once('!') {
                        Some((nick, rest)) if casefold(nick) == me && rest.contains('@') => nick,
                        _ => w,
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                up.events.push(Event::Info { time, text });
            }
            RPL_MOTD => up.events.push(Event::Info {
                time,
                text: last.trim_start_matches("- ").to_string(),
            }),
            RPL_TOPIC => {
                if self.topic_asked.as_deref() == Some(casefold(p(1)).as_str()) {
                    self.topic_asked = None;
                }
                up.events.push(Event::Topic {
                time,
                room: p(1).into(),
                topic: for_display(p(2)),
                by: None,
            })
            }
            RPL_NAMREPLY => {
                let room = p(2).to_string();
                for n in p(3).split(' ').filter(|n| !n.is_empty()) {
                    let (roles, nick) = split_roles(n);
                    self.set_roles(&room, &for_display(nick), roles);
                }
            }
            RPL_WHOREPLY => {
                // <me> <channel> <user> <host> <server> <nick> <flags> :<hop> <real>
                let (nick, flags) = (for_display(p(5)), p(6));
                let gone = flags.starts_with('G');
                // `H`/`G`, `*` for a tracker operator, then the roles.
                let roles = with_role(flags, ' ', false);
                if self.in_room(p(1)) {
                    self.set_roles(p(1), &nick, roles.clone());
                }
                if let Some(Some(q)) = self.who_queue.front_mut() {
                    q.rows.push((nick.clone(), gone, roles.clone()));
                }
                if !self.is_me(&nick) {
                    let m = self
                        .members
                        .entry(casefold(&nick))
                        .or_insert_with(|| Member {
                            nick: nick.clone(),
                            away: None,
                        });
                    if !gone {
                        m.away = None;
                    } else if m.away.is_none() {
                        // Away, reason unknown yet: ask quietly.
                        self.fetch_away_reason(&nick, up);
                    }
                }
            }
            RPL_ENDOFWHO if p(1).starts_with(SYNC_MASK) => {
                if let Ok(n) = p(1)[SYNC_MASK.len()..].parse::<u64>() {
                    self.sync_seen = self.sync_seen.max(n);
                }
            }
            RPL_ENDOFWHO => {
                let Some(Some(mut q)) = self.who_queue.pop_front() else {
                    return;
                };
                for (nick, gone, _) in &q.rows {
                    let known = self
                        .members
                        .get(&casefold(nick))
                        .is_some_and(|m| m.away.is_some());
                    if *gone && !self.is_me(nick) && !known {
                        q.waiting.insert(casefold(nick));
                        self.fetch_away_reason(nick, up);
                    }
                }
                if let Some(previous) = self.users_waiting.take() {
                    up.events.push(self.users_event(previous, time));
                }
                if q.waiting.is_empty() {
                    up.events.push(self.users_event(q, time));
                } else {
                    self.users_waiting = Some(q);
                }
            }
            RPL_WHOISUSER => {
                self.whois = Some(WhoisInfo {
                    nick: for_display(p(1)),
                    user: for_display(p(2)),
                    ip: for_display(p(3)),
                    realname: for_display(p(5)),
                    ..Default::default()
                })
            }
            RPL_WHOISACTUALLY => {
                if let Some(w) = &mut self.whois {
                    w.ip = for_display(p(2));
                }
            }
            RPL_WHOISACCOUNT => {
                if let Some(w) = &mut self.whois {
                    w.account = Some(for_display(p(2)));
                }
            }
            RPL_WHOISCHANNELS => {
                if let Some(w) = &mut self.whois {
                    w.rooms = p(2)
                        .split(' ')
                        .filter(|r| !r.is_empty())
                        .map(for_display)
                        .collect();
                }
            }
            RPL_WHOISIDLE => {
                if let Some(w) = &mut self.whois {
                    w.idle_secs = p(2).parse().ok();
                    w.signon = p(3).parse().ok();
                }
            }
            RPL_AWAY => {
                // Both a WHOIS line and the answer to messaging someone away.
                let nick = for_display(p(1));
                let reason = for_display(p(2));
                if let Some(m) = self.members.get_mut(&casefold(&nick))
                    && m.away.as_deref() != Some(reason.as_str())
                {
                    m.away = Some(reason.clone());
                }
                match &mut self.whois {
                    Some(w) if casefold(&w.nick) == casefold(&nick) => w.away = Some(reason),
                    _ => {
                        let e = entry(&nick, Some(&reason));
                        up.events.push(Event::Info {
                            time,
                            text: format!(
                                "{nick} is {}{}",
                                e.status,
                                e.detail.map(|d| format!(": {d}")).unwrap_or_default()
                            ),
                        });
                    }
                }
            }
            RPL_ENDOFWHOIS => {
                let nick = casefold(p(1));
                let info = self.whois.take();
                let silent = match self.whois_queue.front() {
                    Some((n, silent)) if *n == nick => {
                        let silent = *silent;
                        self.whois_queue.pop_front();
                        silent
                    }
                    _ => false,
                };
                if !silent {
                    if let Some(info) = info {
                        up.events.push(Event::Whois { time, info });
                    }
                    return;
                }
                if let Some(q) = &mut self.users_waiting {
                    q.waiting.remove(&nick);
                    if q.waiting.is_empty()
                        && let Some(q) = self.users_waiting.take()
                    {
                        up.events.push(self.users_event(q, time));
                    }
                }
            }
            // With the AWAY echo these are only acknowledgements. Without
            // it (a tracker that does not echo), 305/306 are all we learn.
            RPL_UNAWAY if !self.away_echo => self.set_my_status(None, time, up),
            RPL_NOWAWAY if !self.away_echo => {
                let asked = self.requested_away.take();
                if asked.is_some() || self.my_away.is_none() {
                    // The text as the tracker keeps it: as typed, cleaned.
                    let asked = for_display(&asked.unwrap_or_default());
                    let reason = status::user_away(&asked)
                        .unwrap_or_else(|_| status::BUSY_WORD.to_string());
                    self.set_my_status(Some(reason), time, up);
                }
            }
            RPL_UNAWAY | RPL_NOWAWAY => {}
            RPL_LISTSTART => {}
            RPL_LIST => {
                if let Some(rows) = &mut self.list {
                    rows.push((for_display(p(1)), for_display(p(2)), for_display(p(3))));
                }
            }
            RPL_LISTEND => {
                if let Some(rooms) = self.list.take() {
                    up.events.push(Event::Rooms { time, rooms });
                }
            }
            RPL_HELPSTART | RPL_HELPTXT => up.events.push(Event::Info { time, text: last }),
            // `<count> :operator(s) online`: the count is a parameter.
            RPL_LUSEROP | RPL_LUSERUNKNOWN | RPL_LUSERCHANNELS => up.events.push(Event::Info {
                time,
                text: format!("{} {last}", for_display(p(1))),
            }),
            ERR_NICKNAMEINUSE | ERR_ERRONEUSNICKNAME => up.events.push(Event::Error {
                time,
                text: nick_refusal(&msg.command, p(1), &last),
            }),
            ERR_NOSUCHNICK => {
                let nick = casefold(p(1));
                let silent = self
                    .whois_queue
                    .front()
                    .is_some_and(|(n, silent)| *n == nick && *silent);
                if !silent {
                    up.events.push(Event::Error {
                        time,
                        text: format!("no such user: {}", for_display(p(1))),
                    });
                }
            }
            RPL_NOTOPIC => {
                if self.topic_asked.take().as_deref() == Some(casefold(p(1)).as_str()) {
                    up.events.push(Event::RoomNote {
                        time,
                        room: for_display(p(1)),
                        text: "no topic is set".into(),
                    answer: true,
                });
                }
            }
            RPL_CHANNELMODEIS => {
                let args: Vec<String> = msg.params.iter().skip(3).map(|a| for_display(a)).collect();
                let modes = for_display(p(2));
                up.events.push(Event::RoomNote {
                    time,
                    room: for_display(p(1)),
                    text: format!("modes {modes}: {}", modes_in_words(&modes, &args)),
                    answer: true,
                });
            }
            RPL_BANLIST => {
                self.bans_listed += 1;
                up.events.push(Event::RoomNote {
                    time,
                    room: for_display(p(1)),
                    text: format!("banned: {} (by {})", for_display(p(2)), for_display(p(3))),
                    answer: true,
                });
            }
            RPL_ENDOFBANLIST => {
                if std::mem::take(&mut self.bans_listed) == 0 {
                    up.events.push(Event::RoomNote {
                        time,
                        room: for_display(p(1)),
                        text: "nobody is banned".into(),
                    answer: true,
                });
                }
            }
            RPL_INVITING => up.events.push(Event::Info {
                time,
                text: format!(
                    "you invited {} to {}",
                    for_display(p(1)),
                    for_display(p(2))
                ),
            }),
            RPL_LOGGEDOUT => up.events.push(Event::Info {
                time,
                text: "you are no longer logged in to an account".into(),
            }),
            RPL_YOUREOPER => up.events.push(Event::Info {
                time,
                text: "you are now a tracker operator: you may kick from and close any room, and /kill".into(),
            }),
            ERR_INVITEONLYCHAN | ERR_BANNEDFROMCHAN | ERR_BADCHANNELKEY | ERR_CHANNELISFULL
            | ERR_TOOMANYCHANNELS | ERR_NOTONCHANNEL | ERR_USERNOTINCHANNEL | ERR_USERONCHANNEL
            | ERR_NOPRIVILEGES | ERR_NOOPERHOST | ERR_CHANOPRIVSNEEDED => {
                up.events.push(Event::Error {
                    time,
                    text: refusal_words(&msg.command, p(1), p(2), &last),
                })
            }
            // Quiet numerics: the burst, counts, ends of lists.
            RPL_YOURHOST | RPL_CREATED | RPL_MYINFO | RPL_ISUPPORT | RPL_LUSERCLIENT
            | RPL_MOTDSTART | RPL_ENDOFMOTD | RPL_ENDOFNAMES | RPL_WHOISSERVER
            | RPL_WHOISHOST | "320" | RPL_ENDOFHELP | RPL_CREATIONTIME | RPL_TOPICWHOTIME
            | RPL_UMODEIS => {}
            code if code.starts_with('4') || code.starts_with('5') => {
                // `<me> <what> :<text>`: say what it is about (`#nope: No
                // such room`), not just the text.
                let text = match msg.params.len() {
                    3.. => format!("{}: {last}", for_display(p(1))),
                    _ => last,
                };
                up.events.push(Event::Error { time, text });
            }
            _ => up.events.push(Event::Info { time, text: last }),
        }
    }
}

/// A refusal about rooms and operators in plain words. `first` and
/// `second` are the reply's parameters after our nick; `text` the
/// tracker's words, kept where they are already plain (482).
pub fn refusal_words(code: &str, first: &str, second: &str, text: &str) -> String {
    let (a, b) = (for_display(first), for_display(second));
    match code {
        ERR_INVITEONLYCHAN => {
            format!("{a} is invite only: ask one of its operators to /invite you")
        }
        ERR_BANNEDFROMCHAN => format!("you are banned from {a}"),
        ERR_BADCHANNELKEY => format!("{a} needs its key: /join {a} <key> (wrong or missing key)"),
        ERR_CHANNELISFULL => format!("{a} is full: it has reached its member limit"),
        ERR_TOOMANYCHANNELS => {
            format!("you are in as many rooms as the tracker allows; /part one to join {a}")
        }
        ERR_NOTONCHANNEL => format!("you are not in {a}"),
        ERR_USERNOTINCHANNEL => format!("{a} is not in {b}"),
        ERR_USERONCHANNEL => format!("{a} is already in {b}"),
        ERR_NOPRIVILEGES => {
            "only a tracker operator may do that (/oper <name> if you are one)".to_string()
        }
        ERR_NOOPERHOST => "the tracker refused that operator name or password".to_string(),
        // The tracker already says who may, in words.
        _ => text.to_string(),
    }
}

/// The role a membership mode letter gives (`o` is `@`).
fn role_mark(mode: char) -> Option<char> {
    match mode {
        'q' => Some('~'),
        'o' => Some('@'),
        'v' => Some('+'),
        _ => None,
    }
}

/// One mode change in words: `fay made otto an operator`, `fay made
/// #lab invite only`.
pub fn mode_words(by: &str, room: &str, mode: char, add: bool, arg: Option<&str>) -> String {
    let who = arg.unwrap_or("?");
    let whose = if who == "you" {
        "your".to_string()
    } else {
        format!("{who}'s")
    };
    match (mode, add) {
        ('q', true) => format!("{by} made {who} a founder"),
        ('q', false) => format!("{by} took away {whose} founder mark"),
        ('o', true) => format!("{by} made {who} an operator"),
        ('o', false) => format!("{by} took away {whose} operator rights"),
        ('v', true) => format!("{by} gave {who} a voice (may speak when moderated)"),
        ('v', false) => format!("{by} took away {whose} voice"),
        ('b', true) => format!("{by} banned {who} from {room}"),
        ('b', false) => format!("{by} lifted the ban on {who}"),
        ('k', true) => format!("{by} set a key on {room}: joining needs it"),
        ('k', false) => format!("{by} removed the key of {room}"),
        ('l', true) => format!("{by} limited {room} to {who} members"),
        ('l', false) => format!("{by} removed the member limit of {room}"),
        ('i', true) => format!("{by} made {room} invite only"),
        ('i', false) => format!("{by} opened {room} to everyone (no invite needed)"),
        ('m', true) => {
            format!("{by} made {room} moderated: only operators and voiced members speak")
        }
        ('m', false) => format!("{by} made {room} unmoderated: everyone in it may speak"),
        ('n', true) => format!("{by} closed {room} to messages from outside it"),
        ('n', false) => format!("{by} let people outside {room} send to it"),
        ('t', true) => format!("{by} let only operators change the topic"),
        ('t', false) => format!("{by} let everyone change the topic"),
        ('s', true) => format!("{by} made {room} secret: hidden from /rooms"),
        ('s', false) => format!("{by} made {room} visible in /rooms"),
        (other, add) => {
            let sign = if add { '+' } else { '-' };
            match arg {
                Some(a) => format!("{by} set mode {sign}{other} {a}"),
                None => format!("{by} set mode {sign}{other}"),
            }
        }
    }
}

/// A room's modes (324) in words: `+ntk (...)`.
fn modes_in_words(modes: &str, args: &[String]) -> String {
    let mut args = args.iter();
    let mut words = Vec::new();
    for c in modes.chars().filter(|c| *c != '+') {
        words.push(match c {
            'i' => "invite only".to_string(),
            'k' => match args.next() {
                Some(k) if k != "*" => format!("key {k}"),
                _ => "a key".to_string(),
            },
            'l' => format!(
                "at most {} members",
                args.next().map_or("?", String::as_str)
            ),
            'm' => "moderated".to_string(),
            'n' => "no messages from outside".to_string(),
            's' => "secret".to_string(),
            't' => "only operators set the topic".to_string(),
            other => format!("+{other}"),
        });
    }
    if words.is_empty() {
        "no modes set".to_string()
    } else {
        words.join(", ")
    }
}

/// The one answer to leaving `#general`, by `/part` or `/close`.
pub fn cannot_leave_general() -> String {
    format!(
        "everyone stays in {GENERAL}, so it cannot be left or closed; to leave the tracker, type exit"
    )
}

/// Builds a roster entry from an away reason as the tracker sent it.
pub fn entry(nick: &str, away: Option<&str>) -> UserEntry {
    let status = status::from_away(away);
    let detail = match (status, away) {
        (Status::Busy, Some(r)) => status::busy_detail(r).map(str::to_string),
        (Status::Inactive, Some(r)) => status::inactive_detail(r).map(str::to_string),
        _ => None,
    };
    UserEntry {
        nick: nick.to_string(),
        roles: String::new(),
        status,
        detail,
    }
}

/// `REGISTER * * :<password>`: the account takes the current name.
fn register_line(password: &str) -> Message {
    Message::new("REGISTER")
        .param("*")
        .param("*")
        .param(password.to_string())
}

/// What a password being asked for is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretFor {
    /// `OPER <name>`.
    Oper(String),
    /// `REGISTER` of the current name.
    Register,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timestamp {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    fn feed(app: &mut App, line: &str) -> Update {
        app.on_message(&Message::parse(line).unwrap(), t())
    }

    fn app() -> App {
        let mut a = App::new("me", "tracker:6697");
        a.set_caps(&["echo-message".into()]);
        a
    }

    #[test]
    fn room_message_uses_server_time() {
        let mut a = app();
        let up = feed(
            &mut a,
            "@time=2026-01-02T03:04:05.000Z :alice!a@1.2.3.4 PRIVMSG #general :hi \x1b[31mthere",
        );
        assert_eq!(
            up.events,
            vec![Event::Chat {
                time: "2026-01-02T03:04:05Z".parse().unwrap(),
                window: Window::Room("#general".into()),
                from: "alice".into(),
                text: "hi there".into(),
                kind: ChatKind::Message,
                own: false,
                confirms: None,
                msgid: None,
            }]
        );
    }

    #[test]
    fn dm_window_is_the_other_person() {
        let mut a = app();
        let up = feed(&mut a, ":alice!a@h PRIVMSG me :psst");
        assert!(
            matches!(&up.events[0], Event::Chat { window: Window::Dm(w), own: false, .. } if w == "alice")
        );
        let up = feed(&mut a, ":me!m@h PRIVMSG bob :hello");
        assert!(
            matches!(&up.events[0], Event::Chat { window: Window::Dm(w), own: true, .. } if w == "bob")
        );
    }

    #[test]
    fn typing_sends_to_current_room_and_waits_for_echo() {
        let mut a = app();
        let up = a.on_input("hello all", t());
        assert_eq!(
            up.send,
            vec![Message::new("PRIVMSG").param("#general").param("hello all")]
        );
        // Shown at once as pending; the echo confirms it.
        let Event::Sending { id, text, .. } = &up.events[0] else {
            panic!("{up:?}")
        };
        assert_eq!(text, "hello all");
        let first = *id;
        let up = a.on_input("@bob hi", t());
        assert_eq!(
            up.send,
            vec![Message::new("PRIVMSG").param("bob").param("hi")]
        );
        let up = feed(&mut a, ":me!m@h PRIVMSG #general :hello all");
        assert!(
            matches!(&up.events[0], Event::Chat { own: true, confirms: Some(id), .. } if *id == first),
            "{up:?}"
        );
        // bob left meanwhile: the DM is refused, it is not pending any more.
        let up = feed(&mut a, ":confab 401 me bob :No such user");
        assert!(
            matches!(&up.events[0], Event::Error { text, .. } if text == "no such user: bob"),
            "{up:?}"
        );
        assert!(
            matches!(&up.events[1], Event::Unsent { lines, explained: false, .. } if lines == &vec![(Window::Dm("bob".into()), "hi".to_string())]),
            "{up:?}"
        );
        assert!(a.take_unsent(t()).is_none());
        let up = a.on_input("/exit", t());
        assert_eq!(up.quit.as_deref(), Some("Leaving"));
    }

    #[test]
    fn own_status_follows_the_trackers_echo() {
        let mut a = app();
        a.set_caps(&["echo-message".into(), "away-notify".into()]);
        a.on_input("/status busy lunch", t());
        assert!(
            feed(&mut a, ":confab 306 me :marked away")
                .events
                .is_empty()
        );
        let up = feed(&mut a, ":me!m@h AWAY :lunch");
        assert!(
            matches!(&up.events[0], Event::Status { me: true, status: Status::Busy, detail: Some(d), .. } if d == "lunch")
        );
        // A new text while busy, and text the tracker cleaned: the echo wins.
        a.on_input("/status busy meeting \x1b[31mred", t());
        feed(&mut a, ":confab 306 me :marked away");
        let up = feed(&mut a, ":me!m@h AWAY :meeting red");
        assert!(
            matches!(&up.events[0], Event::Status { me: true, status: Status::Busy, detail: Some(d), .. } if d == "meeting red")
        );
        assert_eq!(a.my_away.as_deref(), Some("meeting red"));
        // Inactive by the tracker, then busy by the user.
        feed(&mut a, ":me!m@h AWAY :Inactive: idle for 5 min");
        assert_eq!(a.my_status, Status::Inactive);
        feed(&mut a, ":me!m@h AWAY :Busy: coding");
        assert_eq!(a.my_away.as_deref(), Some("Busy: coding"), "kept as typed");
        assert_eq!(a.my_status, Status::Busy);
        feed(&mut a, ":confab 305 me :back");
        assert_eq!(a.my_status, Status::Busy, "305 alone changes nothing");
        feed(&mut a, ":me!m@h AWAY");
        assert_eq!(a.my_status, Status::Active);
    }

    #[test]
    fn status_comes_only_from_the_tracker() {
        let mut a = app();
        let up = a.on_input("/status busy in a meeting", t());
        assert_eq!(up.send, vec![Message::new("AWAY").param("in a meeting")]);
        assert_eq!(a.my_status, Status::Active, "not set locally");
        let up = feed(&mut a, ":confab 306 me :You have been marked as being away");
        assert_eq!(a.my_status, Status::Busy);
        assert!(
            matches!(&up.events[0], Event::Status { me: true, status: Status::Busy, detail: Some(d), .. } if d == "in a meeting")
        );
        // The tracker marks us inactive: AWAY about ourselves, then 306.
        feed(&mut a, ":confab 305 me :no longer away");
        let up = feed(&mut a, ":me!m@h AWAY :Inactive: idle for 5 min");
        assert!(matches!(
            &up.events[0],
            Event::Status {
                me: true,
                status: Status::Inactive,
                ..
            }
        ));
        assert!(
            feed(&mut a, ":confab 306 me :away (inactive)")
                .events
                .is_empty()
        );
        let up = feed(&mut a, ":me!m@h AWAY");
        assert!(matches!(
            &up.events[0],
            Event::Status {
                me: true,
                status: Status::Active,
                ..
            }
        ));
    }

    #[test]
    fn others_status_and_users_list() {
        let mut a = app();
        let up = feed(&mut a, ":me!m@h JOIN #general");
        assert_eq!(up.send, vec![Message::new("WHO").param("#general")]);
        feed(&mut a, ":confab 353 me = #general :me bob carol");
        // Silent sync: carol is away, the client asks why without showing it.
        feed(&mut a, ":confab 352 me #general m h confab me H :0 me");
        feed(&mut a, ":confab 352 me #general b h confab bob H :0 bob");
        let up = feed(
            &mut a,
            ":confab 352 me #general c h confab carol G :0 carol",
        );
        assert_eq!(up.send, vec![Message::new("WHOIS").param("carol")]);
        assert!(
            feed(&mut a, ":confab 315 me #general :End")
                .events
                .is_empty()
        );
        feed(&mut a, ":confab 311 me carol c h * :carol");
        feed(&mut a, ":confab 301 me carol :Inactive: idle for 5 min");
        assert!(feed(&mut a, ":confab 318 me carol :End").events.is_empty());
        let up = feed(&mut a, ":bob!b@h AWAY :lunch");
        assert!(
            matches!(&up.events[0], Event::Status { status: Status::Busy, detail: Some(d), .. } if d == "lunch")
        );
        a.on_input("/users", t());
        feed(&mut a, ":confab 352 me #general m h confab me H :0 me");
        feed(&mut a, ":confab 352 me #general b h confab bob G :0 bob");
        feed(
            &mut a,
            ":confab 352 me #general c h confab carol G :0 carol",
        );
        let up = feed(&mut a, ":confab 315 me #general :End");
        let Event::Users { users, .. } = &up.events[0] else {
            panic!("{up:?}")
        };
        let shown: Vec<(String, Status)> =
            users.iter().map(|u| (u.nick.clone(), u.status)).collect();
        assert_eq!(
            shown,
            vec![
                ("me".into(), Status::Active),
                ("bob".into(), Status::Busy),
                ("carol".into(), Status::Inactive)
            ]
        );
    }

    #[test]
    fn whois_collects_into_one_event() {
        let mut a = app();
        a.on_input("/info bob", t());
        feed(&mut a, ":confab 311 me bob b 10.0.0.7 * :Bob B");
        feed(
            &mut a,
            ":confab 338 me bob 10.0.0.7 :is connecting from this IP",
        );
        feed(&mut a, ":confab 319 me bob :#general");
        feed(
            &mut a,
            ":confab 317 me bob 12 1700000000 :seconds idle, signon time",
        );
        let up = feed(&mut a, ":confab 318 me bob :End");
        let Event::Whois { info, .. } = &up.events[0] else {
            panic!()
        };
        assert_eq!(info.ip, "10.0.0.7");
        assert_eq!(info.idle_secs, Some(12));
        assert_eq!(info.rooms, vec!["#general"]);
        let up = feed(&mut a, ":confab 401 me nobody :No such user");
        assert!(
            matches!(&up.events[0], Event::Error { text, .. } if text == "no such user: nobody")
        );
    }

    #[test]
    fn dm_focus_and_literal_text() {
        let mut a = app();
        a.focus(&Window::Dm("bob".into()));
        let up = a.on_input("/me waves", t());
        assert_eq!(
            up.send,
            vec![
                Message::new("PRIVMSG")
                    .param("bob")
                    .param("\x01ACTION waves\x01")
            ]
        );
        // A pasted line is text even when it looks like a command.
        let up = a.on_text("/exit is a command", t());
        assert_eq!(up.quit, None);
        assert_eq!(
            up.send,
            vec![
                Message::new("PRIVMSG")
                    .param("bob")
                    .param("/exit is a command")
            ]
        );
        assert!(a.on_text("   ", t()).send.is_empty());
        // The partner renames: the DM follows them.
        feed(&mut a, ":bob!b@h NICK robert");
        assert_eq!(a.target(), "robert");
        // /users still asks about the room.
        let up = a.on_input("/users", t());
        assert_eq!(up.send, vec![Message::new("WHO").param("#general")]);
        a.focus(&Window::Room("#games".into()));
        assert_eq!(a.target(), "#games");
        let up = a.on_text("hi", t());
        assert_eq!(
            up.send,
            vec![Message::new("PRIVMSG").param("#games").param("hi")]
        );
    }

    #[test]
    fn pending_lines_overdue_and_unsent() {
        let mut a = app();
        a.on_input("one", t());
        let later = |secs: i64| t().checked_add(SignedDuration::from_secs(secs)).unwrap();
        let after = SignedDuration::from_secs(1);
        assert_eq!(a.next_overdue(after), Some(later(1)));
        assert!(a.overdue(t(), after).is_empty(), "not yet");
        a.on_input("two", later(1));
        let shown = a.overdue(later(1), after);
        assert!(
            matches!(&shown[..], [Event::Sending { text, .. }] if text == "one"),
            "{shown:?}"
        );
        assert!(a.overdue(later(1), after).is_empty(), "reported once");
        assert_eq!(a.next_overdue(after), Some(later(2)));
        // The tracker cleaned the text: matched by target, oldest first.
        let up = feed(&mut a, ":me!m@h PRIVMSG #GENERAL :one!");
        assert!(matches!(
            &up.events[0],
            Event::Chat {
                confirms: Some(1),
                ..
            }
        ));
        let gone = a.take_unsent(later(9));
        assert_eq!(
            gone,
            Some(Event::Unsent {
                time: later(9),
                lines: vec![(Window::Room("#general".into()), "two".into())],
                explained: false
            })
        );
        // Refused by the tracker (FAIL): reported as not sent, with why.
        a.on_input("three", t());
        let up = feed(
            &mut a,
            ":confab FAIL PRIVMSG CANNOT_RECORD #general :Not recorded",
        );
        assert!(matches!(&up.events[0], Event::Error { text, .. } if text == "Not recorded"));
        assert!(matches!(
            &up.events[1],
            Event::Unsent {
                explained: true,
                ..
            }
        ));
    }

    #[test]
    fn labels_match_echoes_out_of_order() {
        let mut a = App::new("me", "t:1");
        a.set_caps(&[
            "echo-message".into(),
            "labeled-response".into(),
            "batch".into(),
        ]);
        let one = a.on_input("one", t()).send;
        let two = a.on_input("two", t()).send;
        assert_eq!(one[0].tag_value("label"), Some("c1"));
        assert_eq!(two[0].tag_value("label"), Some("c2"));
        let up = feed(&mut a, "@label=c2 :me!m@h PRIVMSG #general :two");
        assert!(matches!(
            &up.events[0],
            Event::Chat {
                confirms: Some(2),
                ..
            }
        ));
        let up = feed(&mut a, "@label=c1 :me!m@h PRIVMSG #general :one");
        assert!(matches!(
            &up.events[0],
            Event::Chat {
                confirms: Some(1),
                ..
            }
        ));
        // A labelled refusal takes the line it names.
        a.on_input("three", t());
        a.on_input("@bob four", t());
        let up = feed(&mut a, "@label=c4 :confab 401 me bob :No such user");
        assert!(
            matches!(&up.events[1], Event::Unsent { lines, .. } if lines[0].1 == "four"),
            "{up:?}"
        );
        // Without the cap, no label is sent.
        let mut plain = app();
        assert_eq!(plain.on_input("x", t()).send[0].tag_value("label"), None);
    }

    #[test]
    fn sync_barrier_is_answered_in_order() {
        let mut a = app();
        a.on_input("/users", t());
        let barrier = a.sync_request();
        assert_eq!(barrier, Message::new("WHO").param("confab.sync.1"));
        assert!(!a.synced());
        // The answer to /users is not taken for the barrier's, nor the
        // barrier's for a /users list.
        feed(&mut a, ":confab 352 me #general m h confab me H :0 me");
        let up = feed(&mut a, ":confab 315 me #general :End of WHO list");
        assert!(matches!(&up.events[0], Event::Users { .. }));
        assert!(!a.synced());
        let up = feed(&mut a, ":confab 315 me confab.sync.1 :End of WHO list");
        assert!(up.events.is_empty() && a.synced());
        a.sync_request();
        assert!(!a.synced());
    }

    #[test]
    fn irc_jargon_in_plain_words() {
        let mut a = App::new("alice", "t:1");
        let up = feed(
            &mut a,
            ":confab 001 alice :Welcome to the confab tracker, alice!alice@127.0.0.1",
        );
        assert!(
            matches!(&up.events[0], Event::Info { text, .. } if text == "Welcome to the confab tracker, alice")
        );
        let up = feed(&mut a, ":confab 433 alice bob :Nickname is already in use");
        assert!(
            matches!(&up.events[0], Event::Error { text, .. } if text == "That username is taken: bob")
        );
        let up = feed(
            &mut a,
            ":confab 432 alice 1x :Erroneous nickname: usernames may not start with a digit",
        );
        assert!(
            matches!(&up.events[0], Event::Error { text, .. } if text == "That username is not allowed: \"1x\": usernames may not start with a digit"),
            "{up:?}"
        );
        let up = feed(&mut a, ":alice!a@h NICK alicia");
        assert!(matches!(&up.events[0], Event::NickChanged { me: true, .. }));
        let up = feed(&mut a, ":bob!b@h NICK robert");
        assert!(matches!(
            &up.events[0],
            Event::NickChanged { me: false, .. }
        ));
        let up = feed(
            &mut a,
            ":confab FAIL PART CANNOT_LEAVE #general :Everyone stays in #general; /exit (QUIT) leaves the tracker",
        );
        assert!(
            matches!(&up.events[0], Event::Error { text, .. } if *text == cannot_leave_general())
        );
        assert_eq!(
            closing_reason("Closing link: 10.0.0.7 (tracker shutting down)"),
            "tracker shutting down"
        );
        assert_eq!(closing_reason("something else"), "something else");
        assert_eq!(
            closing_reason("Closing link: 10.0.0.7 (Excess Flood)"),
            "you sent too many lines too fast (Excess Flood)"
        );
    }

    fn room_roster(a: &App, room: &str) -> Vec<String> {
        a.room_users(room)
            .unwrap_or_default()
            .iter()
            .map(|u| format!("{}{} {}", u.roles, u.nick, u.status))
            .collect()
    }

    fn texts(up: &Update) -> Vec<String> {
        let r = crate::client::plain::PlainRenderer::new(jiff::tz::TimeZone::UTC);
        up.events.iter().flat_map(|e| r.describe(e)).collect()
    }

    #[test]
    fn room_members_and_roles_follow_the_events() {
        let mut a = App::new("fay", "t:1");
        assert!(WANTED_CAPS.contains(&"multi-prefix"));
        feed(&mut a, ":fay!f@h JOIN #lab");
        let up = feed(&mut a, ":confab MODE #lab +o fay");
        assert_eq!(
            texts(&up),
            ["#lab --- you created #lab: you are its founder (~) and an operator (@)"]
        );
        feed(&mut a, ":confab 353 fay = #lab :~@fay");
        feed(&mut a, ":otto!o@h JOIN #lab");
        feed(&mut a, ":vic!v@h JOIN #lab");
        assert_eq!(
            room_roster(&a, "#lab"),
            ["~@fay ACTIVE", "otto ACTIVE", "vic ACTIVE"]
        );
        let up = feed(&mut a, ":fay!f@h MODE #lab +ov otto vic");
        assert_eq!(
            texts(&up),
            [
                "#lab --- you made otto an operator",
                "#lab --- you gave vic a voice (may speak when moderated)"
            ]
        );
        let up = feed(&mut a, ":otto!o@h MODE #lab -o+b fay eve!*@*");
        assert_eq!(
            texts(&up),
            [
                "#lab --- otto took away your operator rights",
                "#lab --- otto banned eve!*@* from #lab"
            ]
        );
        assert_eq!(
            room_roster(&a, "#lab"),
            ["~fay ACTIVE", "@otto ACTIVE", "+vic ACTIVE"]
        );
        feed(&mut a, ":vic!v@h AWAY :in a meeting");
        feed(&mut a, ":otto!o@h NICK otto2");
        assert_eq!(
            room_roster(&a, "#lab"),
            ["~fay ACTIVE", "@otto2 ACTIVE", "+vic BUSY"]
        );
        // Someone else kicked: told in words, gone from the list.
        let up = feed(&mut a, ":otto2!o@h KICK #lab vic :too loud");
        assert_eq!(
            texts(&up),
            ["#lab <-- otto2 removed vic from #lab (too loud)"]
        );
        assert_eq!(room_roster(&a, "#lab"), ["~fay ACTIVE", "@otto2 ACTIVE"]);
        let up = feed(&mut a, ":otto2!o@h PART #lab :bye");
        assert_eq!(texts(&up), ["#lab <-- otto2 left (bye)"]);
        feed(&mut a, ":zed!z@h JOIN #lab");
        feed(&mut a, ":zed!z@h QUIT :Killed by teacher (spam)");
        assert_eq!(room_roster(&a, "#lab"), ["~fay ACTIVE"]);
        // WHO with multi-prefix flags sets roles too.
        feed(&mut a, ":confab 352 fay #lab f h confab fay H*~@ :0 fay");
        assert_eq!(room_roster(&a, "#lab"), ["~@fay ACTIVE"]);
        // Being kicked: the room is no longer ours.
        let up = feed(&mut a, ":boss!b@h KICK #lab fay :enough");
        assert_eq!(
            texts(&up),
            ["#lab <-- You were removed from #lab by boss (enough)"]
        );
        assert!(!a.in_room("#lab"));
        assert_eq!(a.room_users("#lab"), None);
    }

    #[test]
    fn a_closed_room_and_an_invite_in_words() {
        let mut a = App::new("otto", "t:1");
        feed(&mut a, ":otto!o@h JOIN #lab");
        feed(&mut a, ":confab 353 otto = #lab :~@fay otto");
        let up = feed(
            &mut a,
            ":fay!f@h KICK #lab otto :Room closed by fay: lesson over",
        );
        assert_eq!(texts(&up), ["#lab <-- fay closed #lab: lesson over"]);
        assert!(
            matches!(&up.events[0], Event::RoomClosed { reason: Some(r), .. } if r == "lesson over")
        );
        assert!(!a.in_room("#lab"));
        let up = feed(&mut a, ":fay!f@h INVITE otto #lab");
        assert_eq!(texts(&up), ["*** fay invites you to #lab — /join #lab"]);
        let up = feed(&mut a, ":fay!f@h KICK #x otto :Room closed by fay");
        assert_eq!(texts(&up), ["#x <-- fay closed #x"]);
    }

    #[test]
    fn room_commands_and_refusals() {
        let mut a = App::new("fay", "t:1");
        feed(&mut a, ":fay!f@h JOIN #lab");
        let sent = |a: &mut App, line: &str| {
            a.on_input(line, t())
                .send
                .iter()
                .map(|m| m.to_line().trim_end().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(sent(&mut a, "/join #code sekrit"), ["JOIN #code sekrit"]);
        assert_eq!(sent(&mut a, "/part"), ["PART #lab"]);
        assert_eq!(sent(&mut a, "/part #x see you"), ["PART #x :see you"]);
        assert_eq!(sent(&mut a, "/topic"), ["TOPIC #lab"]);
        assert_eq!(
            sent(&mut a, "/topic lesson one"),
            ["TOPIC #lab :lesson one"]
        );
        assert_eq!(sent(&mut a, "/invite otto"), ["INVITE otto #lab"]);
        assert_eq!(
            sent(&mut a, "/kick otto be nice"),
            ["KICK #lab otto :be nice"]
        );
        assert_eq!(sent(&mut a, "/kick #x otto"), ["KICK #x :otto"]);
        assert_eq!(sent(&mut a, "/mode"), ["MODE #lab"]);
        assert_eq!(sent(&mut a, "/mode +o otto"), ["MODE #lab +o otto"]);
        assert_eq!(sent(&mut a, "/ban eve"), ["MODE #lab +b eve!*@*"]);
        assert_eq!(sent(&mut a, "/unban eve!*@*"), ["MODE #lab -b eve!*@*"]);
        assert_eq!(
            sent(&mut a, "/close #lab lesson over"),
            ["CLOSE #lab :lesson over"]
        );
        assert_eq!(sent(&mut a, "/who #x"), ["WHO #x"]);
        assert_eq!(sent(&mut a, "/kill vic spam"), ["KILL vic spam"]);
        assert_eq!(
            sent(&mut a, "/oper teacher s3cret"),
            ["OPER teacher s3cret"]
        );
        let up = a.on_input("/close", t());
        assert!(
            matches!(&up.events[0], Event::Error { text, .. } if text.starts_with("usage: /close #room"))
        );
        // The password asked: the next line is it, sent once, shown nowhere.
        let up = a.on_input("/oper teacher", t());
        assert!(up.send.is_empty() && a.asking_secret());
        assert_eq!(
            texts(&up),
            ["*** operator password for teacher (not shown; an empty line cancels):"]
        );
        let up = a.on_input("hunter2", t());
        assert!(up.events.is_empty() && !a.asking_secret());
        assert_eq!(
            up.send,
            [Message::new("OPER").param("teacher").param("hunter2")]
        );
        a.on_input("/oper teacher", t());
        let up = a.on_secret("", t());
        assert!(up.send.is_empty());
        assert_eq!(texts(&up), ["*** operator login cancelled"]);
        // Refusals in plain words.
        for (line, words) in [
            (
                ":confab 473 fay #lab :Cannot join room (+i): invite only",
                "!!! #lab is invite only: ask one of its operators to /invite you",
            ),
            (
                ":confab 474 fay #lab :Cannot join room (+b): you are banned",
                "!!! you are banned from #lab",
            ),
            (
                ":confab 475 fay #lab :Cannot join room (+k): wrong or missing key",
                "!!! #lab needs its key: /join #lab <key> (wrong or missing key)",
            ),
            (
                ":confab 471 fay #lab :Cannot join room (+l): it is full",
                "!!! #lab is full: it has reached its member limit",
            ),
            (
                ":confab 405 fay #u :You have joined too many rooms",
                "!!! you are in as many rooms as the tracker allows; /part one to join #u",
            ),
            (
                ":confab 442 fay #lab :You're not in that room",
                "!!! you are not in #lab",
            ),
            (
                ":confab 441 fay vic #lab :They are not in that room",
                "!!! vic is not in #lab",
            ),
            (
                ":confab 443 fay otto #lab :is already in that room",
                "!!! otto is already in #lab",
            ),
            (
                ":confab 481 fay :Permission denied: you are not a tracker operator",
                "!!! only a tracker operator may do that (/oper <name> if you are one)",
            ),
            (
                ":confab 491 fay :No operator block for your name or password",
                "!!! the tracker refused that operator name or password",
            ),
            (
                ":confab 482 fay #lab :Only fay, who created #lab, or a tracker operator can close it",
                "!!! Only fay, who created #lab, or a tracker operator can close it",
            ),
            (
                ":confab 403 fay #zzz :No such room",
                "!!! #zzz: No such room",
            ),
            (
                ":confab 404 fay #lab :Cannot send to room: it is moderated (+m); only operators and voiced members (+v) speak",
                "!!! #lab: Cannot send to room: it is moderated (+m); only operators and voiced members (+v) speak",
            ),
            (
                ":confab FAIL CLOSE CANNOT_CLOSE #general :#general is the group room everyone is in; it cannot be closed",
                "!!! everyone stays in #general, so it cannot be left or closed; to leave the tracker, type exit",
            ),
            (
                ":confab 381 fay :You are now a tracker operator",
                "*** you are now a tracker operator: you may kick from and close any room, and /kill",
            ),
            (":confab 341 fay otto #lab", "*** you invited otto to #lab"),
            (
                ":confab 324 fay #lab +ntkl sekrit 5",
                "#lab --- modes +ntkl: no messages from outside, only operators set the topic, key sekrit, at most 5 members",
            ),
            (
                ":confab 367 fay #lab eve!*@* fay 1796167544",
                "#lab --- banned: eve!*@* (by fay)",
            ),
        ] {
            assert_eq!(texts(&feed(&mut a, line)), [words], "{line}");
        }
        assert!(texts(&feed(&mut a, ":confab 368 fay #lab :End")).is_empty());
        assert_eq!(
            texts(&feed(&mut a, ":confab 368 fay #lab :End")),
            ["#lab --- nobody is banned"]
        );
        // A topic asked for: "no topic" is said; at a join it is not.
        assert_eq!(
            texts(&feed(&mut a, ":confab 332 fay #lab :lesson one")),
            ["#lab *** topic: lesson one"]
        );
        assert!(texts(&feed(&mut a, ":confab 331 fay #lab :No topic is set")).is_empty());
        a.on_input("/topic", t());
        assert_eq!(
            texts(&feed(&mut a, ":confab 331 fay #lab :No topic is set")),
            ["#lab --- no topic is set"]
        );
    }

    #[test]
    fn away_text_refused_keeps_the_status() {
        let mut a = app();
        a.on_input("/status busy Inactive: idle for 9 min", t());
        let up = feed(
            &mut a,
            ":confab FAIL AWAY RESERVED_TEXT :Away texts starting with \"Inactive:\" are the tracker's own (INACTIVE after idling); your status is unchanged, say it in other words",
        );
        assert_eq!(
            texts(&up),
            [
                "!!! Away texts starting with \"Inactive:\" are the tracker's own (INACTIVE after idling); your status is unchanged, say it in other words"
            ]
        );
        assert_eq!(a.my_status, Status::Active);
    }

    #[test]
    fn ping_is_answered_and_error_closes() {
        let mut a = app();
        assert_eq!(
            feed(&mut a, "PING :abc").send,
            vec![Message::new("PONG").param("abc")]
        );
        let up = feed(
            &mut a,
            "ERROR :Closing link: 1.2.3.4 (tracker shutting down)",
        );
        assert!(
            matches!(&up.events[0], Event::Closed { reason, .. } if reason.contains("shutting down"))
        );
    }
}
