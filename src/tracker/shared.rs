//! What connection tasks and the hub share: ids, the requests a connection
//! sends the hub, and the handle through which the hub reaches a
//! connection (its outbox, its send-queue accounting and its kill switch).
//!
//! Neither `conn` nor `hub` imports the other; both import this.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use super::write_side::{DirectSocket, Sent, Writer};

use crate::proto::Message;
use crate::proto::caps::Caps;

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

pub type IdBuild = std::hash::BuildHasherDefault<IdHasher>;
pub type IdMap<V> = HashMap<ConnId, V, IdBuild>;
pub type IdSet = HashSet<ConnId, IdBuild>;

/// Bytes queued in all outboxes together, and the most they may be before
/// the slowest readers are dropped (`--sendq-total`).
///
/// Each connection's own limit (`--sendq`) alone would let N slow readers
/// hold N times that: when the readers fall behind together (a burst of
/// JOINs and NAMES while thousands log in, a congested network), memory
/// grew with no bound but the per-connection one (779 MiB seen mid-login in
/// B4 at 10,000 clients). An atomic shared by every `ConnControl`, not a
/// lock: it is touched once per recipient per hub batch.
#[derive(Debug)]
pub struct SendBudget {
    total: AtomicUsize,
    limit: usize,
}

impl SendBudget {
    pub fn new(limit: usize) -> Self {
        SendBudget {
            total: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes queued in all outboxes now.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Why an outbox refused more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Past this connection's own limit.
    Own,
    /// All outboxes together are past the shared budget, and this one holds
    /// more than its share of it.
    Shared,
}

/// What the hub shares with one connection task besides its outbox: the
/// bytes queued for the client (the send queue, bounded) and a kill switch.
pub struct ConnControl {
    /// Cancelled when the hub kills the connection, and (a child of the
    /// tracker's shutdown token) when the tracker shuts down. Each task
    /// waits on its own token: with the shared shutdown token in its
    /// `select!`, every connection task took that token's one lock on every
    /// turn (2.5% of the tracker's CPU in B9's profile).
    token: CancellationToken,
    // A plain mutex: written once by the hub, read once by the task, never
    // held across an await.
    reason: Mutex<Option<String>>,
    /// Bytes in the outbox not yet taken by the task. An atomic, not a
    /// bounded channel, so the bound is in bytes (memory) rather than in
    /// messages of any size.
    queued: AtomicUsize,
    sendq: usize,
    budget: Arc<SendBudget>,
    /// The hub waits to hear when this outbox is written out (a long
    /// reply's next part): an atomic flag, set by the hub before it
    /// delivers the part, taken by the task after a write.
    drain_wanted: AtomicBool,
    /// Plain TCP: the socket, which the hub writes directly while the task
    /// has nothing to write (`write_side`).
    pub direct: Option<DirectSocket>,
}

impl ConnControl {
    pub fn new(sendq: usize, budget: Arc<SendBudget>, shutdown: &CancellationToken) -> Self {
        ConnControl {
            token: shutdown.child_token(),
            reason: Mutex::new(None),
            queued: AtomicUsize::new(0),
            sendq,
            budget,
            drain_wanted: AtomicBool::new(false),
            direct: None,
        }
    }

    /// A plain-TCP connection whose socket `fd` the hub may write directly
    /// (see [`DirectSocket`]); `fd` stays open until the task closes it.
    pub fn with_socket(mut self, fd: std::os::fd::RawFd) -> Self {
        self.direct = Some(DirectSocket::new(fd));
        self
    }

    /// Asks the task to send `HubRequest::Drained` once it has written out
    /// what is queued.
    pub fn request_drain(&self) {
        self.drain_wanted.store(true, Ordering::Release);
    }

    /// Whether the hub asked to hear of a drained outbox (and forgets it).
    pub fn take_drain_request(&self) -> bool {
        self.drain_wanted.load(Ordering::Acquire) && self.drain_wanted.swap(false, Ordering::AcqRel)
    }

    /// Accounts `len` more bytes for the outbox, or refuses them (and
    /// accounts nothing) when that would pass the connection's own limit,
    /// or when all outboxes together are past the shared budget and this
    /// one would hold more than its share of the budget (split evenly over
    /// `connections`). While the total is over, only the readers furthest
    /// behind are refused, so memory stays under about twice the budget and
    /// readers that keep up are never dropped for someone else's backlog.
    pub fn reserve(&self, len: usize, connections: usize) -> Result<(), Overflow> {
        let fair_share = self.budget.limit / connections.max(1);
        let mine = self.queued.fetch_add(len, Ordering::Relaxed) + len;
        let total = self.budget.total.fetch_add(len, Ordering::Relaxed) + len;
        let refused = if mine > self.sendq {
            Some(Overflow::Own)
        } else if total > self.budget.limit && mine > fair_share {
            Some(Overflow::Shared)
        } else {
            None
        };
        match refused {
            Some(why) => {
                self.release(len);
                Err(why)
            }
            None => Ok(()),
        }
    }

    /// Accounts `len` bytes whatever the limits: the rest of a line the
    /// hub cut, which has to reach the socket before the goodbye.
    fn reserve_anyway(&self, len: usize) {
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.budget.total.fetch_add(len, Ordering::Relaxed);
    }

    /// The connection task took `len` bytes out of the outbox.
    pub fn release(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.budget.total.fetch_sub(len, Ordering::Relaxed);
    }

    /// Bytes waiting in this outbox now (the hub sends a long reply in
    /// parts only while this is low).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn kill(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
        self.token.cancel();
    }

    /// Completes once the connection was killed or the tracker shuts down
    /// (the shutdown token then says which).
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Why the connection was killed.
    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "Killed".into())
    }
}

impl Drop for ConnControl {
    /// What a killed connection never took from its outbox leaves the
    /// shared count with it.
    fn drop(&mut self) {
        let left = *self.queued.get_mut();
        self.budget.total.fetch_sub(left, Ordering::Relaxed);
    }
}

/// An address as IRC can carry it in a middle parameter, which may not
/// start with ':' (so `::1` is sent as `0::1`, as IRC servers do).
pub fn irc_host(ip: IpAddr) -> String {
    let text = ip.to_canonical().to_string();
    if text.starts_with(':') {
        format!("0{text}")
    } else {
        text
    }
}

/// Connections whose peer is gone (closed, reset, silent past the ping
/// timeout), noted by their task just before its `Leave` goes to the hub.
/// The hub takes them at the start of each batch and sends them nothing
/// more (`Chat::gone`): when thousands drop at once, their leaves wait in
/// the inbox, and each would otherwise send a QUIT to all the others,
/// millions of deliveries that nobody reads and that the tracker holds
/// until their tasks end. A list behind a mutex rather than a channel: the
/// hub wants all of them at once, without waiting, and the lock is held
/// only for a push or a swap.
#[derive(Default)]
pub struct Departures(Mutex<Vec<ConnId>>);

impl Departures {
    pub fn note(&self, conn: ConnId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
    }

    /// Every connection noted since the last call.
    pub fn take(&self) -> Vec<ConnId> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What the hub needs to reach one connection.
pub struct ConnHandle {
    /// Unbounded as a channel; bounded in bytes by `control.reserve`.
    pub outbox: mpsc::UnboundedSender<Bytes>,
    pub control: Arc<ConnControl>,
}

/// What became of bytes handed to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// Written to the socket by the hub.
    Sent,
    /// Queued for the task (the socket was full, or is the task's now).
    Queued,
    /// Dropped: the hub found the socket broken (the peer is gone; its
    /// task will leave).
    Broken,
}

impl ConnHandle {
    /// Hands `bytes` (whole lines) to the connection: written at once when
    /// the hub may write its socket and the socket takes them, otherwise
    /// (what is left of them) queued for its task, within the send queue's
    /// limits (`connections` for the shared budget's fair share).
    pub fn deliver(&self, mut bytes: Bytes, connections: usize) -> Result<Handed, Overflow> {
        // Held until the rest is queued: the task hands the socket back
        // only under this lock, after finding its outbox empty.
        let mut writer = self.control.direct.as_ref().map(|d| (d, d.lock()));
        let mut cut_line = false;
        if let Some((direct, writer)) = &mut writer {
            match direct.send(writer, &bytes) {
                Sent::All => return Ok(Handed::Sent),
                Sent::Broken => return Ok(Handed::Broken),
                Sent::Queue { from } => {
                    bytes.advance(from);
                    cut_line = from > 0 && matches!(**writer, Writer::Task { cut_line: true });
                }
            }
        }
        if let Err(why) = self.control.reserve(bytes.len(), connections) {
            // The connection is killed, but a line the socket took only
            // part of is finished first, so the goodbye starts a line.
            if cut_line {
                let end = bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |i| i + 1);
                let rest = bytes.split_to(end);
                self.control.reserve_anyway(rest.len());
                let _ = self.outbox.send(rest);
            }
            return Err(why);
        }
        // Fails only when the connection task is already gone.
        let _ = self.outbox.send(bytes);
        Ok(Handed::Queued)
    }
}

/// A connection that passed the password and asks to become a member.
pub struct Registration {
    pub conn: ConnId,
    pub nick: String,
    pub user: String,
    pub realname: String,
    pub ip: IpAddr,
    pub caps: Caps,
    /// The account logged in to with SASL, as registered.
    pub account: Option<String>,
    pub handle: ConnHandle,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    Welcome,
    NickInUse,
    /// The nick is a registered account this connection is not logged in
    /// to.
    NickReserved,
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
    /// The connection wrote out everything queued after the hub asked to
    /// hear of it (the next part of a long reply may follow).
    Drained {
        conn: ConnId,
    },
    /// An `OPER` attempt, checked by the connection task: the operator
    /// block's name when the name and password matched.
    OperResult {
        conn: ConnId,
        granted: Option<String>,
    },
    /// An account job the hub asked for has ended.
    AccountDone(Box<super::accounts::AccountDone>),
    /// A history page the hub asked the store for.
    HistoryPage(Box<HistoryPageDone>),
    /// A `CHATHISTORY TARGETS` listing the hub asked the store for.
    HistoryTargets(Box<TargetsDone>),
    /// What a connection that just logged in to an account gets from the
    /// store: its rooms, read markers and what it has not read.
    LoginView {
        conn: ConnId,
        view: Box<crate::store::LoginView>,
    },
    /// Messages delivered and in `chat.log` that the store could not keep
    /// (their sources, and why): their senders are told.
    HistoryNotKept {
        sources: Vec<String>,
        why: String,
    },
    /// The store purged history older than `before_ms` (`--history-days
    /// days`): how many messages went, or why it could not.
    HistoryPurged {
        before_ms: i64,
        days: u32,
        removed: Result<usize, String>,
    },
    Tick,
    /// Empty the hub's allocator cache if asked (`memory::empty_cache_if_asked`),
    /// then answer: the leave watch's trim comes after.
    EmptyAllocatorCache(oneshot::Sender<()>),
    /// The operator's console asks (see `hub::console`).
    Console {
        query: super::hub::console::ConsoleQuery,
        reply: oneshot::Sender<super::hub::console::ConsoleAnswer>,
    },
    Shutdown {
        reason: String,
    },
}

/// History work the hub asks of the store and never waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryJob {
    /// An account joined a room when it had reached `seq`: its first join
    /// ever is kept, the point it reads the room from.
    Joined {
        account: String,
        room: String,
        seq: i64,
    },
    /// An account left a room by choice (part, kick, close): it is not
    /// put back there at its next login.
    Parted { account: String, room: String },
    /// Connection `conn` logged in to `account` (known as `nick`, now in
    /// `rooms_now`): its rooms, read markers and unread lines, up to
    /// `cap` per target. `attached`: the account was connected already.
    Login {
        conn: ConnId,
        account: String,
        nick: String,
        rooms_now: Vec<String>,
        attached: bool,
        cap: usize,
        /// The hub's time: the account is seen now.
        now_ms: i64,
    },
    /// An account's read marker on a history key moved to `at_ms`.
    MarkRead {
        account: String,
        target: String,
        at_ms: i64,
    },
    /// Held direct messages up to this store id were sent to the account.
    Delivered { account: String, through: i64 },
    /// The account's last connection left at `at_ms`.
    /// `rooms`: where each of its rooms (casefolded) had reached then.
    Seen {
        account: String,
        at_ms: i64,
        rooms: Vec<(String, i64)>,
    },
    /// A `CHATHISTORY` page of `key`'s history, for `conn`, shown as
    /// `target`; only what comes after `floor` (their first join in this
    /// connection), or after an account's first join ever (`member_of`:
    /// the account and room), whichever is earlier.
    Page {
        conn: ConnId,
        target: String,
        key: String,
        query: crate::store::HistoryQuery,
        limit: usize,
        floor: i64,
        member_of: Option<(String, String)>,
        /// With the room's events (the reader has draft/event-playback).
        lines: crate::store::Lines,
    },
    /// `CHATHISTORY TARGETS` for `conn`: its rooms (each read from its
    /// place, or from `account`'s first join when earlier) and the direct
    /// conversations of `identity`, active within `window`.
    Targets {
        conn: ConnId,
        account: Option<String>,
        rooms: Vec<crate::store::ReadableRoom>,
        identity: String,
        window: (i64, i64),
        limit: usize,
        lines: crate::store::Lines,
    },
}

/// A `CHATHISTORY TARGETS` listing read for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetsDone {
    pub conn: ConnId,
    pub result: Result<Vec<crate::store::TargetActivity>, String>,
}

/// Why a history page could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageFailure {
    UnknownMsgid(String),
    Store(String),
}

/// A history page read for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPageDone {
    pub conn: ConnId,
    pub target: String,
    pub result: Result<Vec<crate::store::StoredMessage>, PageFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadLine {
    TooLong,
    InvalidUtf8,
    UnknownCommand(String),
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_limit_then_shared_budget_refuse_only_the_reader_behind() {
        let budget = Arc::new(SendBudget::new(1000));
        let slow = ConnControl::new(600, budget.clone(), &CancellationToken::new());
        let keeping_up = ConnControl::new(600, budget.clone(), &CancellationToken::new());
        // Its own limit first: 600 bytes each, whatever the budget.
        assert_eq!(slow.reserve(500, 2), Ok(()));
        assert_eq!(slow.reserve(101, 2), Err(Overflow::Own));
        assert_eq!(budget.total(), 500, "a refusal accounts nothing");
        // Total 500 + 450 = 950, under the budget of 1000: both fine.
        assert_eq!(keeping_up.reserve(450, 2), Ok(()));
        // Past the budget (1050), and the slow one holds more than its
        // share (500 of 1000 over 2): refused.
        assert_eq!(slow.reserve(100, 2), Err(Overflow::Shared));
        assert_eq!(budget.total(), 950);
        // The reader that wrote out its queue gets the same bytes.
        keeping_up.release(450);
        assert_eq!(keeping_up.reserve(100, 2), Ok(()));
        // Over the budget again, but within its share: still accepted.
        assert_eq!(keeping_up.reserve(400, 2), Ok(()));
        assert_eq!(budget.total(), 1000);
        assert_eq!(keeping_up.reserve(1, 2), Err(Overflow::Shared));
        // What a killed connection never took leaves the count with it.
        drop(slow);
        assert_eq!(budget.total(), 500);
        drop(keeping_up);
        assert_eq!(budget.total(), 0);
    }
}
