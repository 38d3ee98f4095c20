//! The hub: sole owner of the chat state (users, rooms, statuses) and of the
//! transcript. Every registered connection's commands come here.
//!
//! Why one thread that owns everything, reached by a channel, rather than a
//! lock shared by connection tasks: every chat event must be written to
//! `chat.log` *before* anyone receives it. With one owner that drains its
//! inbox in batches, a whole batch costs one `write()` to the log, then the
//! deliveries follow: a group commit for free, and the log order is exactly
//! the delivery order. Because it runs on its own blocking thread, a slow
//! disk (fsync) stalls only the hub, never the socket I/O of the async
//! workers. Deliveries go into each connection's outbox, bounded in bytes:
//! the hub never waits for a client; one that cannot keep up is dropped.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::conn::{ConnControl, Overflow, SendBudget};
use super::transcript::{self, Transcript};
use crate::proto::Message;
use crate::proto::caps::{self, Caps};
use crate::proto::nick::{self, casefold};
use crate::proto::numeric::*;
use crate::proto::sanitize;
use crate::proto::status::{self, Status};

pub type ConnId = u64;

/// Hashes a `ConnId` with one multiplication (the constant is FxHash's).
/// Ids are sequential numbers the tracker hands out, not attacker-chosen
/// keys, so SipHash's flood resistance buys nothing here, and with every
/// delivery looking up its recipient it was 3% of the tracker's CPU in B1.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type IdBuild = std::hash::BuildHasherDefault<IdHasher>;
type IdMap<V> = HashMap<ConnId, V, IdBuild>;
type IdSet = HashSet<ConnId, IdBuild>;

/// The room every member joins on registration.
pub const GENERAL: &str = "#general";
/// Most targets in one PRIVMSG/NOTICE (advertised as TARGMAX).
const MAX_TARGETS: usize = 4;
/// Longest away text kept (advertised as AWAYLEN).
const AWAY_LEN: usize = 200;
const TOPIC_LEN: usize = 300;
/// Requests handled per batch before the transcript commit and deliveries.
const BATCH: usize = 1024;
/// Under load (a batch of at least `LINGER_FROM` requests, or one that
/// made at least `LINGER_FROM_DELIVERIES` deliveries) the hub waits
/// `LINGER` before taking the next batch, so each connection gets more per
/// write. A loopback write costs microseconds whatever its size, and at
/// high rates the tracker's CPU went mostly to writes of a few messages
/// each; a quiet room never waits. The delivery count is what a busy big
/// room trips: with clients sending one message per write, batches stay
/// small (B1 at 0.6M: a handful of requests) while each fans out to 99
/// writes; lingering there cut p50 by a quarter and CPU by 5% (B1 0.6M and
/// 1.2M), and B2's single messages (99 deliveries) never wait.
const LINGER_FROM: usize = 32;
const LINGER_FROM_DELIVERIES: usize = 256;
const LINGER: Duration = Duration::from_millis(1);

/// The hub's per-batch grouping of deliveries by recipient, kept between
/// batches so its map and lists are allocated once, not per batch.
#[derive(Default)]
struct Grouping {
    /// Recipient to index in `groups`.
    slot: IdMap<usize>,
    /// The first `used` entries are this batch's recipients and their parts.
    groups: Vec<(ConnId, Vec<Bytes>)>,
    used: usize,
}

/// A part list kept longer than this is let go after a burst.
const KEEP_PARTS: usize = 64;

/// One recipient's parts as one buffer (the part itself when there is only
/// one), leaving `parts` empty for the next batch.
fn join_parts(parts: &mut Vec<Bytes>) -> Bytes {
    let joined = if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        let len = parts.iter().map(Bytes::len).sum();
        let mut buf = bytes::BytesMut::with_capacity(len);
        for p in parts.iter() {
            buf.extend_from_slice(p);
        }
        parts.clear();
        buf.freeze()
    };
    if parts.capacity() > KEEP_PARTS {
        *parts = Vec::new();
    }
    joined
}

/// One chat message recorded in the current batch: its transcript line and
/// its deliveries, by position, to take back if the commit fails.
struct MessageMark {
    sender: ConnId,
    command: String,
    target: String,
    text: String,
    staged: std::ops::Range<usize>,
    pending: std::ops::Range<usize>,
}

/// What the hub needs to reach one connection.
pub struct ConnHandle {
    /// Unbounded as a channel; bounded in bytes by `control.reserve`.
    pub outbox: mpsc::UnboundedSender<Bytes>,
    pub control: Arc<ConnControl>,
}

pub struct Registration {
    pub conn: ConnId,
    pub nick: String,
    pub user: String,
    pub realname: String,
    pub ip: IpAddr,
    pub caps: Caps,
    pub handle: ConnHandle,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    Welcome,
    NickInUse,
    ShuttingDown,
}

pub enum HubRequest {
    Register(Box<Registration>, oneshot::Sender<RegisterOutcome>),
    /// A parsed line from a registered connection.
    Line {
        conn: ConnId,
        msg: Message,
    },
    /// A line the connection could not accept (too long, not UTF-8, malformed).
    BadLine {
        conn: ConnId,
        error: BadLine,
    },
    /// The connection is gone or asked to go; `reason` is shown to others.
    Leave {
        conn: ConnId,
        reason: String,
    },
    Tick,
    Shutdown {
        reason: String,
    },
}

#[derive(Debug)]
pub enum BadLine {
    TooLong,
    InvalidUtf8,
    UnknownCommand(String),
    Malformed(String),
}

/// Static settings the hub works with.
pub struct HubConfig {
    pub server_name: String,
    pub idle_timeout: Duration,
    pub stay: bool,
    pub log_path_shown: String,
    pub started: jiff::Timestamp,
    /// Shared with every connection's send queue (`--sendq-total`).
    pub send_budget: Arc<SendBudget>,
    /// The number of registered members, published on every join and
    /// leave: `run` decides from it when an empty tracker stops.
    pub members: tokio::sync::watch::Sender<usize>,
}

struct User {
    nick: String,
    user: String,
    realname: String,
    ip: IpAddr,
    caps: Caps,
    away: Option<String>,
    /// The away status was set by the tracker (INACTIVE), not the user.
    away_auto: bool,
    signon: jiff::Timestamp,
    /// Last time the user did something a person does (message, join, status).
    last_active: Instant,
    channels: BTreeSet<String>,
    handle: ConnHandle,
}

/// An address as IRC can carry it in a middle parameter, which may not
/// start with ':' (so `::1` is sent as `0::1`, as IRC servers do).
fn irc_host(ip: IpAddr) -> String {
    let text = ip.to_canonical().to_string();
    if text.starts_with(':') {
        format!("0{text}")
    } else {
        text
    }
}

impl User {
    fn mask(&self) -> String {
        format!("{}!{}@{}", self.nick, self.user, irc_host(self.ip))
    }

    fn status(&self) -> Status {
        status::from_away(self.away.as_deref())
    }
}

struct Channel {
    name: String,
    /// In join order, so NAMES lists people in the order they arrived.
    members: Vec<ConnId>,
    ops: IdSet,
    topic: Option<String>,
    created: jiff::Timestamp,
}

/// A message encoded once per capability variant and shared by recipients.
struct Outgoing {
    msg: Message,
    time: String,
    client_tags: Vec<(String, Option<String>)>,
    cache: [Option<Bytes>; 4],
}

impl Outgoing {
    fn new(msg: Message, time: &str) -> Self {
        Outgoing {
            msg,
            time: time.to_string(),
            client_tags: Vec::new(),
            cache: Default::default(),
        }
    }

    fn bytes_for(&mut self, caps: Caps) -> Bytes {
        let variant = caps.tag_variant();
        if let Some(b) = &self.cache[variant] {
            return b.clone();
        }
        let mut m = self.msg.clone();
        if caps.server_time {
            m.tags.push(("time".into(), Some(self.time.clone())));
        }
        if caps.message_tags {
            m.tags.extend(self.client_tags.iter().cloned());
        }
        let b = Bytes::from(m.to_line());
        self.cache[variant] = Some(b.clone());
        b
    }
}

pub struct Hub {
    config: HubConfig,
    users: IdMap<User>,
    nicks: HashMap<String, ConnId>,
    channels: HashMap<String, Channel>,
    transcript: Transcript,
    /// Deliveries held back until the batch's transcript lines are written.
    pending: Vec<(ConnId, Bytes)>,
    /// Handles of users removed in this batch: their last lines (QUIT's
    /// ERROR) still go out after the commit; dropped after delivery, which
    /// closes their outbox and ends their connection task.
    retired: IdMap<ConnHandle>,
    /// Users whose outbox overflowed during delivery, and why.
    overflowed: Vec<(ConnId, Overflow)>,
    grouping: Grouping,
    /// Chat messages recorded in this batch: what to take back if the
    /// transcript cannot be written.
    message_marks: Vec<MessageMark>,
    /// While `chat.log` cannot be written: deliveries waiting for their
    /// events' lines to reach it (in order), and whether we are in that
    /// state (to tell the operator once, and again on recovery).
    held: Vec<(ConnId, Bytes)>,
    /// `FAIL` replies for refused messages: delivered even while failing.
    refusals: Vec<(ConnId, Bytes)>,
    log_failing: bool,
    shutdown: CancellationToken,
    stopping: bool,
    had_member: bool,
}

impl Hub {
    pub fn new(config: HubConfig, transcript: Transcript, shutdown: CancellationToken) -> Self {
        let mut channels = HashMap::new();
        channels.insert(
            casefold(GENERAL),
            Channel {
                name: GENERAL.to_string(),
                members: Vec::new(),
                ops: IdSet::default(),
                topic: Some(
                    "Group room: everyone is here. Everything said on this tracker is recorded."
                        .into(),
                ),
                created: config.started,
            },
        );
        Hub {
            config,
            users: IdMap::default(),
            nicks: HashMap::new(),
            channels,
            transcript,
            pending: Vec::new(),
            retired: IdMap::default(),
            overflowed: Vec::new(),
            grouping: Grouping::default(),
            message_marks: Vec::new(),
            held: Vec::new(),
            refusals: Vec::new(),
            log_failing: false,
            shutdown,
            stopping: false,
            had_member: false,
        }
    }

    /// Runs on a dedicated blocking thread until shutdown.
    pub fn run(mut self, mut inbox: mpsc::Receiver<HubRequest>, start_line: String) {
        let now = transcript::timestamp(jiff::Timestamp::now());
        if self.transcript.previous_run_unclean {
            self.transcript.record(
                &now,
                "restart",
                "previous run ended without a stop line (crash or kill); appending",
            );
        }
        self.transcript.record(&now, "start", &start_line);
        if let Err(e) = self.transcript.sync() {
            tracing::error!("cannot write {}: {e}", self.transcript.path().display());
        }
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let Some(first) = inbox.blocking_recv() else {
                break;
            };
            batch.push(first);
            while batch.len() < BATCH {
                match inbox.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            let mut busy = batch.len() >= LINGER_FROM;
            for req in batch.drain(..) {
                // Nothing is handled (or recorded) after the stop line.
                if !self.stopping {
                    self.handle(req);
                }
            }
            busy |= self.pending.len() >= LINGER_FROM_DELIVERIES;
            self.flush();
            if self.stopping {
                break;
            }
            if busy {
                std::thread::sleep(LINGER);
            }
        }
        let reason = if self.stopping {
            None
        } else {
            Some("hub inbox closed")
        };
        self.finish(reason);
    }

    fn finish(&mut self, reason: Option<&str>) {
        if let Some(r) = reason {
            let now = self.now();
            self.transcript.record(&now, "stop", r);
        }
        if let Err(e) = self.transcript.sync() {
            tracing::error!(
                "cannot write the closing line to {}: {e}",
                self.transcript.path().display()
            );
        }
    }

    /// Commit the batch's transcript lines, then deliver. Repeats while
    /// delivery itself produced new events (clients dropped for overflow).
    ///
    /// When `chat.log` cannot be written (disk full, permissions), nothing
    /// unrecorded is delivered: chat messages of the batch are taken back and
    /// their senders get `FAIL ... CANNOT_RECORD`; other events (joins,
    /// leaves, statuses) stay staged and everything else waits in `held`
    /// until a later commit succeeds, then goes out in order.
    fn flush(&mut self) {
        loop {
            let deliveries = match self.transcript.commit() {
                Ok(()) => {
                    if self.log_failing {
                        self.log_failing = false;
                        tracing::warn!(
                            "{} is writable again; delivering {} held lines",
                            self.transcript.path().display(),
                            self.held.len()
                        );
                    }
                    if self.held.is_empty() {
                        std::mem::take(&mut self.pending)
                    } else {
                        let mut out = std::mem::take(&mut self.held);
                        out.append(&mut self.pending);
                        out
                    }
                }
                Err(e) => {
                    let refused = self.take_back_messages();
                    if !self.log_failing {
                        self.log_failing = true;
                        tracing::error!(
                            "cannot write {}: {e}; chat messages are refused and other events held until it is writable",
                            self.transcript.path().display()
                        );
                    }
                    tracing::warn!("chat.log still not writable: {refused} messages refused");
                    self.held.append(&mut self.pending);
                    std::mem::take(&mut self.refusals)
                }
            };
            self.message_marks.clear();
            let mut deliveries = deliveries;
            self.deliver(&mut deliveries);
            // The emptied vector goes back for the next batch: one
            // allocation fewer per batch.
            if self.pending.capacity() == 0 {
                self.pending = deliveries;
            }
            if self.log_failing {
                // Held lines to users who left still need the handle.
                let held: IdSet = self.held.iter().map(|h| h.0).collect();
                self.retired.retain(|id, _| held.contains(id));
            } else {
                self.retired.clear();
            }
            if self.overflowed.is_empty() {
                return;
            }
            let overflowed = std::mem::take(&mut self.overflowed);
            let shared = overflowed
                .iter()
                .filter(|o| o.1 == Overflow::Shared)
                .count();
            if shared > 0 {
                tracing::warn!(
                    "output queued for all clients passed --sendq-total ({} KiB); \
                     dropping the {shared} furthest behind",
                    self.config.send_budget.limit() / 1024
                );
            }
            for (id, why) in overflowed {
                let reason = match why {
                    Overflow::Own => "SendQ exceeded",
                    Overflow::Shared => "Tracker-wide SendQ exceeded",
                };
                if let Some(u) = self.users.get(&id) {
                    u.handle.control.kill(reason);
                }
                self.remove_user(id, reason);
            }
        }
    }

    /// Hands a batch's deliveries to the connections: everything for one
    /// connection joined into one buffer, in order, and sent as one item.
    /// Per message and recipient that leaves a copy into the buffer; per
    /// recipient and batch, one send-queue reservation, one channel send and
    /// at most one wake-up of its task, which then writes it with one
    /// `write()` (one TLS record). Sending each message separately cost
    /// a channel push and an atomic per delivery, and let the task wake and
    /// write after the first few.
    fn deliver(&mut self, deliveries: &mut Vec<(ConnId, Bytes)>) {
        // Recipients in order of first appearance, each with its parts. The
        // map and the part lists are kept from batch to batch (malloc and
        // free were 8% of the tracker's CPU in B1).
        let mut grouping = std::mem::take(&mut self.grouping);
        let Grouping { slot, groups, used } = &mut grouping;
        slot.clear();
        *used = 0;
        for (id, bytes) in deliveries.drain(..) {
            let i = *slot.entry(id).or_insert_with(|| {
                if *used == groups.len() {
                    groups.push((id, Vec::new()));
                } else {
                    groups[*used].0 = id;
                }
                *used += 1;
                *used - 1
            });
            groups[i].1.push(bytes);
        }
        let connections = self.users.len() + self.retired.len();
        for (id, parts) in groups[..*used].iter_mut() {
            let joined = join_parts(parts);
            let handle = match self.users.get(id) {
                Some(u) => &u.handle,
                None => match self.retired.get(id) {
                    Some(h) => h,
                    None => continue,
                },
            };
            if let Err(why) = handle.control.reserve(joined.len(), connections) {
                if self.users.contains_key(id) && !self.overflowed.iter().any(|o| o.0 == *id) {
                    self.overflowed.push((*id, why));
                }
                continue;
            }
            // Fails only when the connection task is already gone.
            let _ = handle.outbox.send(joined);
        }
        self.grouping = grouping;
    }

    /// Removes this batch's chat messages from the transcript's staged lines
    /// and from the deliveries, and queues a `FAIL` for each sender in
    /// `refusals`. Returns how many were refused.
    fn take_back_messages(&mut self) -> usize {
        let marks = std::mem::take(&mut self.message_marks);
        let n = marks.len();
        // Later ranges first, so earlier ones keep their positions.
        for mark in marks.iter().rev() {
            self.transcript.unstage(mark.staged.clone());
            self.pending.drain(mark.pending.clone());
        }
        for mark in marks {
            let text: String = mark.text.chars().take(60).collect();
            let fail = Message::new("FAIL")
                .with_source(self.config.server_name.clone())
                .param(mark.command)
                .param("CANNOT_RECORD")
                .param(mark.target)
                .param(format!(
                    "Not delivered: the tracker cannot write its chat log ({text})"
                ));
            self.refusals
                .push((mark.sender, Bytes::from(fail.to_line())));
        }
        n
    }

    fn now(&self) -> String {
        transcript::timestamp(jiff::Timestamp::now())
    }

    fn handle(&mut self, req: HubRequest) {
        match req {
            HubRequest::Register(reg, reply) => {
                let outcome = self.register(*reg);
                let _ = reply.send(outcome);
            }
            HubRequest::Line { conn, msg } => {
                if self.users.contains_key(&conn) {
                    self.command(conn, msg);
                }
            }
            HubRequest::BadLine { conn, error } => self.bad_line(conn, error),
            HubRequest::Leave { conn, reason } => self.remove_user(conn, &reason),
            HubRequest::Tick => self.tick(),
            HubRequest::Shutdown { reason } => {
                if !self.stopping {
                    let now = self.now();
                    self.transcript.record(&now, "stop", &reason);
                    self.stopping = true;
                }
            }
        }
    }

    // ---- sending helpers ----------------------------------------------

    fn send(&mut self, to: ConnId, line: Bytes) {
        self.pending.push((to, line));
    }

    fn send_msg(&mut self, to: ConnId, msg: Message) {
        self.send(to, Bytes::from(msg.to_line()));
    }

    /// `:server <code> <nick> <params...>`. Parameters are cleaned: error
    /// replies quote what the client sent (a bad nick, a room name), and
    /// that must not carry terminal escapes back to it.
    fn numeric(&mut self, to: ConnId, code: &str, params: &[&str]) {
        let Some(u) = self.users.get(&to) else { return };
        let m = Message::new(code)
            .with_source(self.config.server_name.clone())
            .param(u.nick.clone());
        let m = sanitize::reply_params(m, params);
        self.send_msg(to, m);
    }

    /// Everyone who shares a room with `id` (plus `id` when `include_self`).
    fn audience(&self, id: ConnId, include_self: bool) -> Vec<ConnId> {
        let mut seen = IdSet::default();
        let mut out = Vec::new();
        seen.insert(id);
        if include_self {
            out.push(id);
        }
        if let Some(u) = self.users.get(&id) {
            for key in &u.channels {
                if let Some(ch) = self.channels.get(key) {
                    for m in &ch.members {
                        if seen.insert(*m) {
                            out.push(*m);
                        }
                    }
                }
            }
        }
        out
    }

    fn broadcast(
        &mut self,
        recipients: &[ConnId],
        out: &mut Outgoing,
        only_caps: impl Fn(Caps) -> bool,
    ) {
        for id in recipients {
            let Some(u) = self.users.get(id) else {
                continue;
            };
            if !only_caps(u.caps) {
                continue;
            }
            let b = out.bytes_for(u.caps);
            self.pending.push((*id, b));
        }
    }

    // ---- registration and leaving -------------------------------------

    fn register(&mut self, reg: Registration) -> RegisterOutcome {
        if self.stopping {
            return RegisterOutcome::ShuttingDown;
        }
        let key = casefold(&reg.nick);
        if self.nicks.contains_key(&key) {
            return RegisterOutcome::NickInUse;
        }
        let id = reg.conn;
        let now = jiff::Timestamp::now();
        self.nicks.insert(key, id);
        self.users.insert(
            id,
            User {
                nick: reg.nick,
                user: reg.user,
                realname: reg.realname,
                ip: reg.ip,
                caps: reg.caps,
                away: None,
                away_auto: false,
                signon: now,
                last_active: Instant::now(),
                channels: BTreeSet::new(),
                handle: reg.handle,
            },
        );
        self.had_member = true;
        self.config.members.send_replace(self.users.len());
        self.welcome(id);
        self.join(id, GENERAL);
        RegisterOutcome::Welcome
    }

    fn welcome(&mut self, id: ConnId) {
        let Some(u) = self.users.get(&id) else { return };
        let (nick, mask) = (u.nick.clone(), u.mask());
        let server = self.config.server_name.clone();
        let version = concat!("confab-", env!("CARGO_PKG_VERSION"));
        self.numeric(
            id,
            RPL_WELCOME,
            &[&format!("Welcome to the confab tracker, {mask}")],
        );
        self.numeric(
            id,
            RPL_YOURHOST,
            &[&format!("Your host is {server}, running version {version}")],
        );
        self.numeric(
            id,
            RPL_CREATED,
            &[&format!(
                "This tracker was started {}",
                self.config.started.strftime("%Y-%m-%d %H:%M:%S UTC")
            )],
        );
        self.numeric(id, RPL_MYINFO, &[&server, version, "i", "nt"]);
        let isupport = [
            format!("AWAYLEN={AWAY_LEN}"),
            "CASEMAPPING=rfc1459".into(),
            "CHANMODES=,,,nt".into(),
            format!("CHANNELLEN={}", nick::CHANNEL_MAX),
            "CHANTYPES=#".into(),
            "NETWORK=confab".into(),
            format!("NICKLEN={}", nick::NICK_MAX),
            "PREFIX=(o)@".into(),
            format!("TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},JOIN:{MAX_TARGETS}"),
            format!("TOPICLEN={TOPIC_LEN}"),
            "UTF8ONLY".into(),
        ];
        let mut params: Vec<&str> = isupport.iter().map(String::as_str).collect();
        params.push("are supported by this server");
        self.numeric(id, RPL_ISUPPORT, &params);
        let count = self.users.len();
        self.numeric(
            id,
            RPL_LUSERCLIENT,
            &[&format!(
                "There are {count} users and 0 invisible on 1 server"
            )],
        );
        self.motd(id, &nick);
    }

    fn motd(&mut self, id: ConnId, nick: &str) {
        let server = self.config.server_name.clone();
        let idle = self.config.idle_timeout.as_secs();
        let idle_text = if idle.is_multiple_of(60) {
            format!("{} min", idle / 60)
        } else {
            format!("{idle} s")
        };
        let lines = [
            format!("Welcome to confab, {nick}."),
            format!(
                "This tracker records the whole conversation, direct messages included, in its chat log ({}), which the operator can read.",
                self.config.log_path_shown
            ),
            format!(
                "You are in {GENERAL}, the group room everyone is in. Send HELP (or /help in confab's client) for commands."
            ),
            format!(
                "Status: ACTIVE; BUSY while you are AWAY; INACTIVE after {idle_text} without activity, until you act again."
            ),
        ];
        self.numeric(
            id,
            RPL_MOTDSTART,
            &[&format!("- {server} message of the day -")],
        );
        for l in &lines {
            self.numeric(id, RPL_MOTD, &[&format!("- {l}")]);
        }
        self.numeric(id, RPL_ENDOFMOTD, &["End of /MOTD command."]);
    }

    fn remove_user(&mut self, id: ConnId, reason: &str) {
        let Some(u) = self.users.get(&id) else { return };
        let reason = sanitize::for_display(reason);
        let mut quit = Outgoing::new(
            Message::new("QUIT")
                .with_source(u.mask())
                .param(reason.clone()),
            &self.now(),
        );
        let nick = u.nick.clone();
        let ip = u.ip;
        let others: Vec<ConnId> = self.audience(id, false);
        self.transcript
            .record(&quit.time.clone(), "leave", &format!("{nick} ({reason})"));
        self.broadcast(&others, &mut quit, |_| true);
        self.send_msg(
            id,
            Message::new("ERROR").param(format!("Closing link: {ip} ({reason})")),
        );
        let Some(u) = self.users.remove(&id) else {
            return;
        };
        self.nicks.remove(&casefold(&u.nick));
        for key in &u.channels {
            if let Some(ch) = self.channels.get_mut(key) {
                ch.members.retain(|m| *m != id);
                ch.ops.remove(&id);
            }
        }
        self.channels
            .retain(|k, ch| !ch.members.is_empty() || *k == casefold(GENERAL));
        self.retired.insert(id, u.handle);
        // Once shutting down, who leaves no longer decides anything.
        if self.had_member && !self.shutdown.is_cancelled() {
            self.config.members.send_replace(self.users.len());
        }
    }

    // ---- commands -----------------------------------------------------

    fn command(&mut self, id: ConnId, msg: Message) {
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        match msg.command.as_str() {
            "PRIVMSG" | "NOTICE" | "TAGMSG" => self.message(id, &msg),
            "JOIN" => {
                if msg.params.is_empty() {
                    return self.numeric(
                        id,
                        ERR_NEEDMOREPARAMS,
                        &["JOIN", "Not enough parameters"],
                    );
                }
                self.touch(id);
                if p(0) == "0" {
                    let chans: Vec<String> = self.users[&id].channels.iter().cloned().collect();
                    for c in chans {
                        let name = self.channels[&c].name.clone();
                        self.part(id, &name, "Left all rooms");
                    }
                    return;
                }
                for name in p(0).split(',').take(MAX_TARGETS) {
                    self.join(id, name);
                }
            }
            "PART" => {
                if msg.params.is_empty() {
                    return self.numeric(
                        id,
                        ERR_NEEDMOREPARAMS,
                        &["PART", "Not enough parameters"],
                    );
                }
                self.touch(id);
                let reason = p(1).to_string();
                for name in p(0).split(',').take(MAX_TARGETS) {
                    self.part(id, name, &reason);
                }
            }
            "AWAY" => self.away(id, msg.param_at(0).filter(|t| !t.trim().is_empty())),
            "NICK" => self.nick(id, p(0)),
            "WHOIS" => {
                // WHOIS [server] nick
                let target = msg.params.last().map(String::as_str).unwrap_or("");
                if target.is_empty() {
                    return self.numeric(id, ERR_NONICKNAMEGIVEN, &["No nickname given"]);
                }
                self.whois(id, target);
            }
            "WHO" => self.who(id, p(0)),
            "NAMES" => {
                if msg.params.is_empty() {
                    let chans: Vec<String> = self.users[&id].channels.iter().cloned().collect();
                    for c in chans {
                        let name = self.channels[&c].name.clone();
                        self.names(id, &name);
                    }
                } else {
                    for name in p(0).split(',') {
                        self.names(id, name);
                    }
                }
            }
            "LIST" => self.list(id),
            "TOPIC" => self.topic(id, &msg),
            "MOTD" => {
                let nick = self.users[&id].nick.clone();
                self.motd(id, &nick);
            }
            "HELP" | "HELPOP" => self.help(id, p(0)),
            "MODE" => self.mode(id, &msg),
            "USERHOST" => {
                let mut replies = Vec::new();
                for n in msg.params.iter().take(5) {
                    if let Some(u) = self.find(n).and_then(|t| self.users.get(&t)) {
                        let away = if u.away.is_some() { '-' } else { '+' };
                        replies.push(format!("{}={away}{}@{}", u.nick, u.user, irc_host(u.ip)));
                    }
                }
                self.numeric(id, RPL_USERHOST, &[&replies.join(" ")]);
            }
            "ISON" => {
                let online: Vec<String> = msg
                    .params
                    .iter()
                    .flat_map(|p| p.split(' '))
                    .filter_map(|n| self.find(n).map(|t| self.users[&t].nick.clone()))
                    .collect();
                self.numeric(id, "303", &[&online.join(" ")]);
            }
            "LUSERS" => {
                let count = self.users.len();
                self.numeric(
                    id,
                    RPL_LUSERCLIENT,
                    &[&format!(
                        "There are {count} users and 0 invisible on 1 server"
                    )],
                );
            }
            "CAP" => self.cap(id, &msg),
            "PASS" | "USER" => self.numeric(id, ERR_ALREADYREGISTERED, &["You may not reregister"]),
            other => {
                let other = other.to_string();
                self.numeric(id, ERR_UNKNOWNCOMMAND, &[&other, "Unknown command"]);
            }
        }
    }

    fn bad_line(&mut self, id: ConnId, error: BadLine) {
        if !self.users.contains_key(&id) {
            return;
        }
        match error {
            BadLine::TooLong => self.numeric(id, ERR_INPUTTOOLONG, &["Input line was too long"]),
            BadLine::UnknownCommand(c) => {
                self.numeric(id, ERR_UNKNOWNCOMMAND, &[&c, "Unknown command"])
            }
            BadLine::InvalidUtf8 => {
                let m = Message::new("FAIL")
                    .with_source(self.config.server_name.clone())
                    .param("*")
                    .param("INVALID_UTF8")
                    .param("Line was not valid UTF-8 and was ignored");
                self.send_msg(id, m);
            }
            BadLine::Malformed(why) => {
                let m = Message::new("FAIL")
                    .with_source(self.config.server_name.clone())
                    .param("*")
                    .param("INVALID_MESSAGE")
                    .param(format!("Line ignored: {why}"));
                self.send_msg(id, m);
            }
        }
    }

    fn find(&self, nick: &str) -> Option<ConnId> {
        self.nicks.get(&casefold(nick)).copied()
    }

    /// The user did something a person does: clears tracker-set INACTIVE.
    fn touch(&mut self, id: ConnId) {
        let Some(u) = self.users.get_mut(&id) else {
            return;
        };
        u.last_active = Instant::now();
        if u.away_auto {
            u.away = None;
            u.away_auto = false;
            self.status_changed(id, true);
        }
    }

    fn message(&mut self, id: ConnId, msg: &Message) {
        let cmd = msg.command.as_str();
        let is_notice = cmd == "NOTICE";
        let is_tagmsg = cmd == "TAGMSG";
        let Some(targets) = msg.param_at(0).filter(|t| !t.is_empty()) else {
            if !is_notice {
                self.numeric(
                    id,
                    ERR_NORECIPIENT,
                    &[&format!("No recipient given ({cmd})")],
                );
            }
            return;
        };
        let text = if is_tagmsg {
            String::new()
        } else {
            sanitize::for_relay(msg.param_at(1).unwrap_or(""))
        };
        if !is_tagmsg && text.is_empty() {
            if !is_notice {
                self.numeric(id, ERR_NOTEXTTOSEND, &["No text to send"]);
            }
            return;
        }
        // Client-only tags (`+name`) travel to peers with message-tags.
        let client_tags: Vec<(String, Option<String>)> = msg
            .tags
            .iter()
            .filter(|(k, _)| k.starts_with('+'))
            .cloned()
            .collect();
        if is_tagmsg && client_tags.is_empty() {
            return;
        }
        if !is_tagmsg {
            self.touch(id);
        }
        for target in targets.split(',').take(MAX_TARGETS) {
            let staged = self.transcript.staged_len();
            let pending = self.pending.len();
            self.message_one(id, cmd, target, &text, &client_tags);
            if self.transcript.staged_len() > staged {
                self.message_marks.push(MessageMark {
                    sender: id,
                    command: cmd.to_string(),
                    target: target.to_string(),
                    text: text.clone(),
                    staged: staged..self.transcript.staged_len(),
                    pending: pending..self.pending.len(),
                });
            }
        }
    }

    fn message_one(
        &mut self,
        id: ConnId,
        cmd: &str,
        target: &str,
        text: &str,
        client_tags: &[(String, Option<String>)],
    ) {
        let is_notice = cmd == "NOTICE";
        let is_tagmsg = cmd == "TAGMSG";
        let sender = &self.users[&id];
        let (sender_nick, sender_mask, echo) =
            (sender.nick.clone(), sender.mask(), sender.caps.echo_message);
        let mut m = Message::new(cmd).with_source(sender_mask);
        let now = self.now();
        let shown = sanitize::for_display(text);
        let (action, body) = match shown.strip_prefix("ACTION ") {
            Some(rest) if text.starts_with("\x01ACTION") => (true, rest.to_string()),
            _ => (false, shown.clone()),
        };
        if target.starts_with('#') {
            let key = casefold(target);
            let Some(ch) = self.channels.get(&key) else {
                if !is_notice {
                    self.numeric(id, ERR_NOSUCHCHANNEL, &[target, "No such room"]);
                }
                return;
            };
            if !ch.members.contains(&id) {
                if !is_notice {
                    let name = ch.name.clone();
                    self.numeric(
                        id,
                        ERR_CANNOTSENDTOCHAN,
                        &[&name, "Cannot send to room: you are not in it"],
                    );
                }
                return;
            }
            let name = ch.name.clone();
            let recipients: Vec<ConnId> = ch
                .members
                .iter()
                .copied()
                .filter(|m| *m != id || echo)
                .collect();
            m = m.param(name.clone());
            if !is_tagmsg {
                m = m.param(text.to_string());
                let (event, line) = match (is_notice, action) {
                    (true, _) => ("notice", format!("{name} -{sender_nick}- {body}")),
                    (false, true) => ("action", format!("{name} * {sender_nick} {body}")),
                    (false, false) => ("msg", format!("{name} <{sender_nick}> {body}")),
                };
                self.transcript.record(&now, event, &line);
            }
            let mut out = Outgoing::new(m, &now);
            out.client_tags = client_tags.to_vec();
            let need_tags = is_tagmsg;
            self.broadcast(&recipients, &mut out, |c| !need_tags || c.message_tags);
        } else {
            let Some(to) = self.find(target) else {
                if !is_notice {
                    self.numeric(id, ERR_NOSUCHNICK, &[target, "No such user"]);
                }
                return;
            };
            let to_user = &self.users[&to];
            let (to_nick, to_away) = (to_user.nick.clone(), to_user.away.clone());
            m = m.param(to_nick.clone());
            if !is_tagmsg {
                m = m.param(text.to_string());
                let (event, line) = match (is_notice, action) {
                    (true, _) => ("dm-notice", format!("{sender_nick} -> {to_nick}: {body}")),
                    (false, true) => (
                        "dm-action",
                        format!("{sender_nick} -> {to_nick}: * {sender_nick} {body}"),
                    ),
                    (false, false) => ("dm", format!("{sender_nick} -> {to_nick}: {body}")),
                };
                self.transcript.record(&now, event, &line);
            }
            let mut out = Outgoing::new(m, &now);
            out.client_tags = client_tags.to_vec();
            let mut recipients = vec![to];
            if echo && to != id {
                recipients.push(id);
            }
            let need_tags = is_tagmsg;
            self.broadcast(&recipients, &mut out, |c| !need_tags || c.message_tags);
            if let (Some(reason), false, false) = (to_away, is_notice, is_tagmsg) {
                self.numeric(id, RPL_AWAY, &[&to_nick, &reason]);
            }
        }
    }

    fn join(&mut self, id: ConnId, name: &str) {
        if !nick::valid_channel(name) {
            return self.numeric(id, ERR_NOSUCHCHANNEL, &[name, "Invalid room name"]);
        }
        let key = casefold(name);
        let now_ts = jiff::Timestamp::now();
        let ch = self.channels.entry(key.clone()).or_insert_with(|| Channel {
            name: name.to_string(),
            members: Vec::new(),
            ops: IdSet::default(),
            topic: None,
            created: now_ts,
        });
        if ch.members.contains(&id) {
            return;
        }
        if ch.members.is_empty() && key != casefold(GENERAL) {
            ch.ops.insert(id);
        }
        ch.members.push(id);
        let (chname, members) = (ch.name.clone(), ch.members.clone());
        let Some(u) = self.users.get_mut(&id) else {
            return;
        };
        u.channels.insert(key);
        let (nick, mask, ip, away) = (u.nick.clone(), u.mask(), u.ip, u.away.clone());
        let now = self.now();
        self.transcript
            .record(&now, "join", &format!("{chname} {nick} ({ip})"));
        let mut out = Outgoing::new(
            Message::new("JOIN")
                .with_source(mask.clone())
                .param(chname.clone()),
            &now,
        );
        self.broadcast(&members, &mut out, |_| true);
        if let Some(reason) = away {
            // away-notify: tell the room the newcomer is away.
            let others: Vec<ConnId> = members.iter().copied().filter(|m| *m != id).collect();
            let mut out = Outgoing::new(Message::new("AWAY").with_source(mask).param(reason), &now);
            self.broadcast(&others, &mut out, |c| c.away_notify);
        }
        self.send_topic(id, &chname);
        self.names(id, &chname);
    }

    fn part(&mut self, id: ConnId, name: &str, reason: &str) {
        let key = casefold(name);
        let Some(ch) = self.channels.get(&key) else {
            return self.numeric(id, ERR_NOSUCHCHANNEL, &[name, "No such room"]);
        };
        if !ch.members.contains(&id) {
            let chname = ch.name.clone();
            return self.numeric(id, ERR_NOTONCHANNEL, &[&chname, "You're not in that room"]);
        }
        if key == casefold(GENERAL) {
            // Everyone stays in #general: it is where members see each
            // other arrive, leave and change status.
            let fail = Message::new("FAIL")
                .with_source(self.config.server_name.clone())
                .param("PART")
                .param("CANNOT_LEAVE")
                .param(GENERAL)
                .param("Everyone stays in #general; /exit (QUIT) leaves the tracker");
            return self.send_msg(id, fail);
        }
        let (chname, members) = (ch.name.clone(), ch.members.clone());
        let u = &self.users[&id];
        let (nick, mask) = (u.nick.clone(), u.mask());
        let reason = sanitize::for_relay(reason);
        let now = self.now();
        let shown = sanitize::for_display(&reason);
        self.transcript.record(
            &now,
            "part",
            &if shown.is_empty() {
                format!("{chname} {nick}")
            } else {
                format!("{chname} {nick} ({shown})")
            },
        );
        let mut m = Message::new("PART").with_source(mask).param(chname);
        if !reason.is_empty() {
            m = m.param(reason);
        }
        let mut out = Outgoing::new(m, &now);
        self.broadcast(&members, &mut out, |_| true);
        if let Some(ch) = self.channels.get_mut(&key) {
            ch.members.retain(|m| *m != id);
            ch.ops.remove(&id);
            if ch.members.is_empty() && key != casefold(GENERAL) {
                self.channels.remove(&key);
            }
        }
        if let Some(u) = self.users.get_mut(&id) {
            u.channels.remove(&key);
        }
    }

    fn send_topic(&mut self, id: ConnId, chname: &str) {
        let Some(ch) = self.channels.get(&casefold(chname)) else {
            return;
        };
        match ch.topic.clone() {
            Some(t) => self.numeric(id, RPL_TOPIC, &[chname, &t]),
            None => self.numeric(id, RPL_NOTOPIC, &[chname, "No topic is set"]),
        }
    }

    fn names(&mut self, id: ConnId, name: &str) {
        let key = casefold(name);
        let entries: Option<(String, Vec<String>)> = self.channels.get(&key).map(|ch| {
            let names = ch
                .members
                .iter()
                .filter_map(|m| {
                    self.users.get(m).map(|u| {
                        if ch.ops.contains(m) {
                            format!("@{}", u.nick)
                        } else {
                            u.nick.clone()
                        }
                    })
                })
                .collect();
            (ch.name.clone(), names)
        });
        let shown_name = entries
            .as_ref()
            .map_or(name.to_string(), |(n, _)| n.clone());
        if let Some((chname, names)) = entries {
            // Keep each 353 line well under 512 bytes.
            for chunk in names.chunks(20) {
                self.numeric(id, RPL_NAMREPLY, &["=", &chname, &chunk.join(" ")]);
            }
        }
        self.numeric(id, RPL_ENDOFNAMES, &[&shown_name, "End of /NAMES list"]);
    }

    fn who_line(&self, viewer_nick: &str, channel: &str, target: ConnId) -> Option<Message> {
        let u = self.users.get(&target)?;
        let mut flags = String::from(if u.away.is_some() { "G" } else { "H" });
        if let Some(ch) = self.channels.get(&casefold(channel))
            && ch.ops.contains(&target)
        {
            flags.push('@');
        }
        Some(
            Message::new(RPL_WHOREPLY)
                .with_source(self.config.server_name.clone())
                .param(viewer_nick)
                .param(channel)
                .param(u.user.clone())
                .param(irc_host(u.ip))
                .param(self.config.server_name.clone())
                .param(u.nick.clone())
                .param(flags)
                .param(format!("0 {}", u.realname)),
        )
    }

    fn who(&mut self, id: ConnId, mask: &str) {
        let viewer = self.users[&id].nick.clone();
        let mut lines = Vec::new();
        if mask.starts_with('#') {
            if let Some(ch) = self.channels.get(&casefold(mask)) {
                for m in &ch.members {
                    lines.extend(self.who_line(&viewer, &ch.name, *m));
                }
            }
        } else if let Some(t) = self.find(mask) {
            lines.extend(self.who_line(&viewer, "*", t));
        } else if mask.is_empty() || mask == "*" || mask == "0" {
            let mut ids: Vec<&ConnId> = self.users.keys().collect();
            ids.sort();
            for t in ids {
                lines.extend(self.who_line(&viewer, "*", *t));
            }
        }
        for l in lines {
            self.send_msg(id, l);
        }
        let end = if mask.is_empty() { "*" } else { mask };
        self.numeric(id, RPL_ENDOFWHO, &[end, "End of WHO list"]);
    }

    fn whois(&mut self, id: ConnId, target: &str) {
        let Some(t) = self.find(target) else {
            self.numeric(id, ERR_NOSUCHNICK, &[target, "No such user"]);
            return self.numeric(id, RPL_ENDOFWHOIS, &[target, "End of /WHOIS list"]);
        };
        let u = &self.users[&t];
        let (nick, user, ip, realname, away) = (
            u.nick.clone(),
            u.user.clone(),
            u.ip,
            u.realname.clone(),
            u.away.clone(),
        );
        let status = u.status();
        let idle = u.last_active.elapsed().as_secs();
        let signon = u.signon;
        let rooms: Vec<String> = u
            .channels
            .iter()
            .filter_map(|k| {
                self.channels.get(k).map(|ch| {
                    if ch.ops.contains(&t) {
                        format!("@{}", ch.name)
                    } else {
                        ch.name.clone()
                    }
                })
            })
            .collect();
        let server = self.config.server_name.clone();
        self.numeric(
            id,
            RPL_WHOISUSER,
            &[&nick, &user, &irc_host(ip), "*", &realname],
        );
        self.numeric(
            id,
            RPL_WHOISHOST,
            &[&nick, &format!("is connecting from *@{ip} {ip}")],
        );
        self.numeric(
            id,
            RPL_WHOISACTUALLY,
            &[&nick, &irc_host(ip), "is connecting from this IP"],
        );
        if !rooms.is_empty() {
            self.numeric(id, RPL_WHOISCHANNELS, &[&nick, &rooms.join(" ")]);
        }
        self.numeric(id, RPL_WHOISSERVER, &[&nick, &server, "confab tracker"]);
        if let Some(reason) = away {
            self.numeric(id, RPL_AWAY, &[&nick, &reason]);
        }
        self.numeric(id, "320", &[&nick, &format!("status {status}")]);
        self.numeric(
            id,
            RPL_WHOISIDLE,
            &[
                &nick,
                &idle.to_string(),
                &signon.as_second().to_string(),
                "seconds idle, signon time",
            ],
        );
        self.numeric(id, RPL_ENDOFWHOIS, &[&nick, "End of /WHOIS list"]);
    }

    fn list(&mut self, id: ConnId) {
        self.numeric(id, RPL_LISTSTART, &["Channel", "Users  Name"]);
        let mut rows: Vec<(String, usize, String)> = self
            .channels
            .values()
            .map(|c| {
                (
                    c.name.clone(),
                    c.members.len(),
                    c.topic.clone().unwrap_or_default(),
                )
            })
            .collect();
        rows.sort();
        for (name, count, topic) in rows {
            self.numeric(id, RPL_LIST, &[&name, &count.to_string(), &topic]);
        }
        self.numeric(id, RPL_LISTEND, &["End of /LIST"]);
    }

    fn topic(&mut self, id: ConnId, msg: &Message) {
        let Some(name) = msg.param_at(0) else {
            return self.numeric(id, ERR_NEEDMOREPARAMS, &["TOPIC", "Not enough parameters"]);
        };
        let key = casefold(name);
        let Some(ch) = self.channels.get(&key) else {
            return self.numeric(id, ERR_NOSUCHCHANNEL, &[name, "No such room"]);
        };
        let chname = ch.name.clone();
        let Some(new_topic) = msg.param_at(1) else {
            return self.send_topic(id, &chname);
        };
        if !ch.members.contains(&id) {
            return self.numeric(id, ERR_NOTONCHANNEL, &[&chname, "You're not in that room"]);
        }
        if !ch.ops.contains(&id) {
            return self.numeric(
                id,
                ERR_CHANOPRIVSNEEDED,
                &[&chname, "Only the room's creator can change its topic"],
            );
        }
        let topic: String = sanitize::for_relay(new_topic)
            .chars()
            .take(TOPIC_LEN)
            .collect();
        let members = ch.members.clone();
        let u = &self.users[&id];
        let (nick, mask) = (u.nick.clone(), u.mask());
        let now = self.now();
        self.transcript
            .record(&now, "topic", &format!("{chname} {nick}: {topic}"));
        if let Some(ch) = self.channels.get_mut(&key) {
            ch.topic = (!topic.is_empty()).then(|| topic.clone());
        }
        let mut out = Outgoing::new(
            Message::new("TOPIC")
                .with_source(mask)
                .param(chname)
                .param(topic),
            &now,
        );
        self.broadcast(&members, &mut out, |_| true);
    }

    fn mode(&mut self, id: ConnId, msg: &Message) {
        let Some(target) = msg.param_at(0) else {
            return self.numeric(id, ERR_NEEDMOREPARAMS, &["MODE", "Not enough parameters"]);
        };
        if target.starts_with('#') {
            let Some(ch) = self.channels.get(&casefold(target)) else {
                return self.numeric(id, ERR_NOSUCHCHANNEL, &[target, "No such room"]);
            };
            let (name, created) = (ch.name.clone(), ch.created.as_second().to_string());
            match msg.param_at(1) {
                None => {
                    self.numeric(id, RPL_CHANNELMODEIS, &[&name, "+nt"]);
                    self.numeric(id, RPL_CREATIONTIME, &[&name, &created]);
                }
                // Ban list queries (clients send these on join): empty.
                Some("b") | Some("+b") => {
                    self.numeric(id, "368", &[&name, "End of channel ban list"])
                }
                Some(_) => self.numeric(
                    id,
                    ERR_CHANOPRIVSNEEDED,
                    &[&name, "Room modes cannot be changed on confab"],
                ),
            }
        } else if self.find(target) == Some(id) {
            self.numeric(id, RPL_UMODEIS, &["+"]);
        } else {
            self.numeric(
                id,
                ERR_USERSDONTMATCH,
                &["Can't change mode for other users"],
            );
        }
    }

    fn cap(&mut self, id: ConnId, msg: &Message) {
        let server = self.config.server_name.clone();
        let Some(u) = self.users.get_mut(&id) else {
            return;
        };
        let nick = u.nick.clone();
        let sub = msg.param_at(0).unwrap_or("").to_ascii_uppercase();
        let reply = match sub.as_str() {
            "LS" => Message::new("CAP")
                .param(nick)
                .param("LS")
                .param(caps::SUPPORTED.join(" ")),
            "LIST" => Message::new("CAP")
                .param(nick)
                .param("LIST")
                .param(u.caps.enabled().join(" ")),
            "REQ" => {
                let asked = msg.param_at(1).unwrap_or("");
                let verdict = if u.caps.request(asked) { "ACK" } else { "NAK" };
                // A real request is short; only garbage needs cutting.
                Message::new("CAP")
                    .param(nick)
                    .param(verdict)
                    .param(sanitize::clip(asked, 400))
            }
            "END" => return,
            _ => {
                return self.numeric(id, "410", &[&sub, "Invalid CAP command"]);
            }
        };
        self.send_msg(id, reply.with_source(server));
    }

    fn help(&mut self, id: ConnId, topic: &str) {
        const TOPICS: &[(&str, &str)] = &[
            (
                "PRIVMSG",
                "PRIVMSG <#room|user> :<text>  send to a room or a direct message",
            ),
            (
                "NOTICE",
                "NOTICE <#room|user> :<text>  like PRIVMSG, never answered automatically",
            ),
            (
                "JOIN",
                "JOIN <#room>  join (or create) a room; the creator can set its topic",
            ),
            ("PART", "PART <#room> [:reason]  leave a room"),
            (
                "AWAY",
                "AWAY [:text]  BUSY with a reason; AWAY alone makes you ACTIVE again",
            ),
            (
                "WHOIS",
                "WHOIS <user>  address, status, idle time, sign-on time, rooms",
            ),
            (
                "WHO",
                "WHO <#room|user|*>  who is there and who is away (H=here, G=gone)",
            ),
            ("NAMES", "NAMES [#room]  members of a room"),
            ("LIST", "LIST  rooms with member counts and topics"),
            ("TOPIC", "TOPIC <#room> [:text]  show or set a room's topic"),
            ("NICK", "NICK <name>  change your username"),
            (
                "MOTD",
                "MOTD  the welcome message, with what this tracker records",
            ),
            ("QUIT", "QUIT [:reason]  leave the tracker"),
        ];
        let key = topic.to_ascii_uppercase();
        if key.is_empty() || key == "INDEX" {
            self.numeric(
                id,
                RPL_HELPSTART,
                &[
                    "index",
                    "confab tracker commands (HELP <command> for details):",
                ],
            );
            for (_, line) in TOPICS {
                self.numeric(id, RPL_HELPTXT, &["index", line]);
            }
            self.numeric(
                id,
                RPL_HELPTXT,
                &[
                    "index",
                    "Status: ACTIVE, BUSY (AWAY :text), INACTIVE (set by the tracker after idling)",
                ],
            );
            return self.numeric(id, RPL_ENDOFHELP, &["index", "End of /HELP"]);
        }
        match TOPICS.iter().find(|(k, _)| *k == key) {
            Some((k, line)) => {
                self.numeric(id, RPL_HELPSTART, &[k, line]);
                self.numeric(id, RPL_ENDOFHELP, &[k, "End of /HELP"]);
            }
            None => self.numeric(
                id,
                ERR_HELPNOTFOUND,
                &[topic, "No help available on this topic"],
            ),
        }
    }

    fn nick(&mut self, id: ConnId, new: &str) {
        if new.is_empty() {
            return self.numeric(id, ERR_NONICKNAMEGIVEN, &["No nickname given"]);
        }
        if let Err(e) = nick::validate_nick(new) {
            return self.numeric(
                id,
                ERR_ERRONEUSNICKNAME,
                &[new, &format!("Erroneous nickname: {e}")],
            );
        }
        let key = casefold(new);
        if let Some(owner) = self.nicks.get(&key)
            && *owner != id
        {
            return self.numeric(id, ERR_NICKNAMEINUSE, &[new, "Nickname is already in use"]);
        }
        let u = &self.users[&id];
        if u.nick == new {
            return;
        }
        let (old, mask) = (u.nick.clone(), u.mask());
        let now = self.now();
        self.transcript
            .record(&now, "nick", &format!("{old} -> {new}"));
        let recipients = self.audience(id, true);
        let mut out = Outgoing::new(Message::new("NICK").with_source(mask).param(new), &now);
        self.broadcast(&recipients, &mut out, |_| true);
        self.nicks.remove(&casefold(&old));
        self.nicks.insert(key, id);
        if let Some(u) = self.users.get_mut(&id) {
            u.nick = new.to_string();
        }
    }

    fn away(&mut self, id: ConnId, text: Option<&str>) {
        let Some(u) = self.users.get_mut(&id) else {
            return;
        };
        u.last_active = Instant::now();
        let was = u.away.clone();
        match text {
            Some(t) => {
                // AWAYLEN counts the whole stored reason, prefix included.
                let reason = status::busy_reason(&sanitize::for_display(t));
                u.away = Some(reason.chars().take(AWAY_LEN).collect());
                u.away_auto = false;
            }
            None => {
                u.away = None;
                u.away_auto = false;
            }
        }
        let changed = was != u.away;
        let now_away = u.away.is_some();
        if now_away {
            self.numeric(id, RPL_NOWAWAY, &["You have been marked as being away"]);
        } else {
            self.numeric(id, RPL_UNAWAY, &["You are no longer marked as being away"]);
        }
        if changed {
            self.status_changed(id, false);
        }
    }

    /// Records and announces a status change. `tell_self`: the tracker made
    /// the change, so the user's own client must hear about it too (with
    /// 305/306 as well). A client with both `away-notify` and
    /// `echo-message` also gets its own `AWAY` back when it set the status
    /// itself, as the tracker stored it (cleaned, cut to AWAYLEN): that is
    /// how confab's client shows the user's status as the tracker sees it.
    fn status_changed(&mut self, id: ConnId, tell_self: bool) {
        let Some(u) = self.users.get(&id) else { return };
        let (nick, mask, away, status) = (u.nick.clone(), u.mask(), u.away.clone(), u.status());
        let echo_self = tell_self || (u.caps.away_notify && u.caps.echo_message);
        let now = self.now();
        let detail = match &away {
            Some(r) => format!("{nick} {status} ({r})"),
            None => format!("{nick} {status}"),
        };
        self.transcript.record(&now, "status", &detail);
        let mut m = Message::new("AWAY").with_source(mask);
        if let Some(r) = &away {
            m = m.param(r.clone());
        }
        let recipients = self.audience(id, echo_self);
        let mut out = Outgoing::new(m, &now);
        self.broadcast(&recipients, &mut out, |c| c.away_notify);
        if tell_self {
            match away {
                Some(_) => self.numeric(
                    id,
                    RPL_NOWAWAY,
                    &["You have been marked as being away (inactive)"],
                ),
                None => self.numeric(id, RPL_UNAWAY, &["You are no longer marked as being away"]),
            }
        }
    }

    fn tick(&mut self) {
        let timeout = self.config.idle_timeout;
        let idle: Vec<ConnId> = self
            .users
            .iter()
            .filter(|(_, u)| u.away.is_none() && u.last_active.elapsed() >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(u) = self.users.get_mut(&id) {
                u.away = Some(status::inactive_reason(u.last_active.elapsed().as_secs()));
                u.away_auto = true;
            }
            self.status_changed(id, true);
        }
    }
}
