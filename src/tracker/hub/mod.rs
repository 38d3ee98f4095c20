//! The hub: sole owner of the chat state and of the transcript, on its own
//! thread. This file is the delivery machinery (batching, linger, the
//! transcript commit before delivery, take-back on a failed write,
//! per-recipient joined writes into bounded outboxes); the chat logic is
//! `Chat` (`chat.rs` and the handler files beside it), which does no I/O
//! and takes the time as an argument, so it is unit-tested in-process.
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
//!
//! What may run on this thread: handling a request in memory, and the one
//! transcript write per batch. Never a password hash, a store query, a DNS
//! lookup or anything else that waits (see DEVELOPING.md).

mod accounts;
pub mod chat;
mod comeback;
pub mod console;
mod durable;
mod history;
mod linger;
mod messages;
mod moderation;
pub mod p2p;
mod packed;
pub mod queries;
mod retention;
mod rooms;
mod rooms_keep;
mod server;
pub mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hub;
#[cfg(test)]
mod tests_p2p;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use self::linger::Linger;

use bytes::Bytes;
use tokio::sync::mpsc;

use self::chat::{Chat, Clock};
use self::users::NewUser;
use super::accounts::{AccountGate, AccountJob};
use super::replies;
use super::shared::{
    ConnHandle, ConnId, Departures, Handed, HubRequest, IdMap, IdSet, Overflow, RegisterOutcome,
    SendBudget,
};
use super::shared::{HistoryJob, HistoryPageDone, PageFailure, TargetsDone};
use super::transcript::Transcript;
use crate::store::{StoreError, StoreHandle};

pub use self::comeback::REPLAY_MAX;
pub use self::retention::MAX_DAYS as MAX_HISTORY_DAYS;
pub use self::state::GENERAL;

/// Requests handled per batch before the transcript commit and deliveries.
const BATCH: usize = 1024;
/// Under load (a batch of at least `LINGER_FROM` requests, or one that
/// made at least `LINGER_FROM_DELIVERIES` deliveries) the hub waits
/// (`linger.rs`: 1 ms while its CPU is scarce, as little as 0.25 ms while
/// it is not) before taking the next batch, so each connection gets more per
/// write. A loopback write costs microseconds whatever its size, and at
/// high rates the tracker's CPU went mostly to writes of a few messages
/// each; a quiet room never waits. The delivery count is what a busy big
/// room trips: with clients sending one message per write, batches stay
/// small (B1 at 0.6M: a handful of requests) while each fans out to 99
/// writes; lingering there cut p50 by a quarter and CPU by 5% (B1 0.6M and
/// 1.2M), and B2's single messages (99 deliveries) never wait.
const LINGER_FROM: usize = 32;
const LINGER_FROM_DELIVERIES: usize = 256;

/// Deliveries made by a batch's leaves that are delivered before the rest
/// of the batch is handled (see `handle_batch`): a crowd's first 16 or so
/// QUITs to everyone still there.
const DELIVER_EARLY_FROM: usize = 16 * 1024;

/// Static settings the hub works with.
pub struct HubConfig {
    pub server_name: String,
    pub idle_timeout: Duration,
    pub log_path_shown: String,
    pub started: jiff::Timestamp,
    /// Shared with every connection's send queue (`--sendq-total`).
    pub send_budget: Arc<SendBudget>,
    /// The number of registered members, published on every join and
    /// leave: `run` decides from it when an empty tracker stops.
    pub members: tokio::sync::watch::Sender<usize>,
    /// What the operator allows of direct sessions (`--p2p`).
    pub p2p: super::policy::P2pPolicy,
}

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

/// A batch's delivery list kept longer than this (entries of 40 bytes) is
/// let go; B1 at 2.0M makes about 10,000 a batch.
const KEEP_DELIVERIES: usize = 1 << 16;

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

pub struct Hub {
    chat: Chat,
    /// How to reach each member's connection.
    handles: IdMap<ConnHandle>,
    /// Handles of users removed in this batch: their last lines (QUIT's
    /// ERROR) still go out after the commit; dropped after delivery, which
    /// closes their outbox and ends their connection task.
    retired: IdMap<ConnHandle>,
    /// Users whose outbox overflowed during delivery, and why.
    overflowed: Vec<(ConnId, Overflow)>,
    /// Connections whose long reply's part the hub wrote directly, so no
    /// `Drained` will come from their task.
    drained: Vec<ConnId>,
    grouping: Grouping,
    /// While `chat.log` cannot be written: deliveries waiting for their
    /// events' lines to reach it (in order), and whether we are in that
    /// state (to tell the operator once, and again on recovery).
    held: Vec<(ConnId, Bytes)>,
    /// `FAIL` replies for refused messages: delivered even while failing.
    refusals: Vec<(ConnId, Bytes)>,
    log_failing: bool,
    /// `chat.membership_changes` as last published.
    published_changes: u64,
    /// Where account jobs run; `None` when the tracker keeps no accounts.
    account_runner: Option<AccountRunner>,
    /// Where history goes and is read from; `None` without a store.
    history_sink: Option<HistorySink>,
    /// What the start's refill of the store from chat.log did, for its
    /// `repair` line (`tracker::repair`).
    repair_note: Option<String>,
    /// Connections whose peer is gone, noted by their tasks (see
    /// `Departures`); taken into `chat.gone` at each batch.
    departures: Arc<Departures>,
    /// [`DELIVER_EARLY_FROM`]; smaller in tests, which drop a few.
    deliver_early_from: usize,
}

/// The store, for history, and the way its answers come back: a weak
/// sender, so a page being read at shutdown does not keep the inbox open.
/// The store's thread hands answers in with `blocking_send`: it may wait
/// for the hub, the hub never waits for it.
pub struct HistorySink {
    pub store: StoreHandle,
    pub inbox: mpsc::WeakSender<HubRequest>,
}

impl HistorySink {
    /// Hands this batch's messages to the store (after their `chat.log`
    /// commit); a failure comes back to the hub to tell their senders.
    fn keep(&self, batch: Vec<crate::store::NewMessage>) {
        if batch.is_empty() {
            return;
        }
        let inbox = self.inbox.clone();
        self.store.append(batch, move |e, lost| {
            tracing::error!("history: {} line(s) not kept: {e}", lost.len());
            // A sender is told of their message; a room event (a join)
            // was nobody's message: the diagnostics above say it.
            let sources: Vec<String> = lost
                .iter()
                .filter(|m| crate::store::is_message(&m.command))
                .map(|m| m.source.clone())
                .collect();
            if let (false, Some(inbox)) = (sources.is_empty(), inbox.upgrade()) {
                let _ = inbox.blocking_send(HubRequest::HistoryNotKept {
                    sources,
                    why: e.to_string(),
                });
            }
        });
    }

    fn start(&self, job: HistoryJob) {
        match job {
            HistoryJob::Parted { account, room } => self.store.call_then(
                move |s| s.parted(&account, &room),
                |r| {
                    if let Ok(Err(e)) | Err(e) = r {
                        tracing::error!("history: cannot record a part: {e}");
                    }
                },
            ),
            HistoryJob::Login {
                conn,
                account,
                nick,
                rooms_now,
                attached,
                cap,
                now_ms,
            } => {
                let inbox = self.inbox.clone();
                self.store.call_then(
                    move |s| s.login_view(&account, &nick, &rooms_now, attached, cap, now_ms),
                    move |r| match r {
                        Ok(Ok(view)) => {
                            if let Some(inbox) = inbox.upgrade() {
                                let view = Box::new(view);
                                let _ = inbox.blocking_send(HubRequest::LoginView { conn, view });
                            }
                        }
                        Ok(Err(e)) | Err(e) => {
                            tracing::error!("history: cannot read what an account missed: {e}")
                        }
                    },
                )
            }
            HistoryJob::MarkRead {
                account,
                target,
                at_ms,
            } => self.store.call_then(
                move |s| s.mark_read(&account, &target, at_ms),
                |r| {
                    if let Ok(Err(e)) | Err(e) = r {
                        tracing::error!("history: cannot keep a read marker: {e}");
                    }
                },
            ),
            HistoryJob::Delivered { account, through } => self.store.call_then(
                move |s| s.delivered(&account, through),
                |r| {
                    if let Ok(Err(e)) | Err(e) = r {
                        tracing::error!("history: cannot forget delivered messages: {e}");
                    }
                },
            ),
            HistoryJob::Seen {
                account,
                at_ms,
                rooms,
            } => self.store.call_then(
                move |s| s.left(&account, at_ms, &rooms),
                |r| {
                    if let Ok(Err(e)) | Err(e) = r {
                        tracing::error!("history: cannot note when an account left: {e}");
                    }
                },
            ),
            HistoryJob::Joined { account, room, seq } => self.store.call_then(
                move |s| s.joined(&account, &room, seq),
                |r| {
                    if let Ok(Err(e)) | Err(e) = r {
                        tracing::error!("history: cannot record a join: {e}");
                    }
                },
            ),
            HistoryJob::Page {
                conn,
                target,
                key,
                query,
                limit,
                floor,
                member_of,
                lines,
            } => {
                let inbox = self.inbox.clone();
                self.store.call_then(
                    move |s| {
                        // An account reads from its first join ever, which
                        // may be before this connection's.
                        let floor = match &member_of {
                            Some((account, room)) => match s.joined_after(account, room)? {
                                Some(first) => first.min(floor),
                                None => floor,
                            },
                            None => floor,
                        };
                        s.history_of(&key, &query, limit, floor, lines)
                    },
                    move |r| {
                        let result = match r {
                            Ok(Ok(page)) => Ok(page),
                            Ok(Err(StoreError::UnknownMsgid(m))) => {
                                Err(PageFailure::UnknownMsgid(m))
                            }
                            Ok(Err(e)) | Err(e) => Err(PageFailure::Store(e.to_string())),
                        };
                        if let Some(inbox) = inbox.upgrade() {
                            let done = HistoryPageDone {
                                conn,
                                target,
                                result,
                            };
                            let _ = inbox.blocking_send(HubRequest::HistoryPage(Box::new(done)));
                        }
                    },
                );
            }
            HistoryJob::Targets {
                conn,
                account,
                mut rooms,
                identity,
                window,
                limit,
                lines,
            } => {
                let inbox = self.inbox.clone();
                self.store.call_then(
                    move |s| {
                        // As for a page: an account reads each room from
                        // its first join ever.
                        if let Some(account) = &account {
                            for room in &mut rooms {
                                if let Some(first) = s.joined_after(account, &room.key)? {
                                    room.visible_after = room.visible_after.min(first);
                                }
                            }
                        }
                        s.targets(&rooms, &identity, window, limit, lines)
                    },
                    move |r| {
                        let result = match r {
                            Ok(Ok(found)) => Ok(found),
                            Ok(Err(e)) | Err(e) => Err(e.to_string()),
                        };
                        if let Some(inbox) = inbox.upgrade() {
                            let done = TargetsDone { conn, result };
                            let _ = inbox.blocking_send(HubRequest::HistoryTargets(Box::new(done)));
                        }
                    },
                );
            }
        }
    }
}

/// Runs the hub's account jobs (hashing, password checks, the store) as
/// tasks on the tracker's runtime, and hands each answer back to the hub's
/// inbox. A weak sender: a job still running at shutdown must not keep the
/// inbox open.
pub struct AccountRunner {
    pub gate: Arc<AccountGate>,
    pub runtime: tokio::runtime::Handle,
    pub inbox: mpsc::WeakSender<HubRequest>,
}

impl AccountRunner {
    fn start(&self, job: AccountJob) {
        let (gate, inbox) = (self.gate.clone(), self.inbox.clone());
        self.runtime.spawn(async move {
            let done = gate.run(job).await;
            if let Some(inbox) = inbox.upgrade() {
                let _ = inbox.send(HubRequest::AccountDone(Box::new(done))).await;
            }
        });
    }
}

impl Hub {
    pub fn new(config: HubConfig, transcript: Transcript) -> Self {
        Hub {
            chat: Chat::new(config, transcript, Clock::now()),
            handles: IdMap::default(),
            retired: IdMap::default(),
            overflowed: Vec::new(),
            drained: Vec::new(),
            grouping: Grouping::default(),
            held: Vec::new(),
            refusals: Vec::new(),
            log_failing: false,
            published_changes: 0,
            account_runner: None,
            history_sink: None,
            repair_note: None,
            departures: Arc::default(),
            deliver_early_from: DELIVER_EARLY_FROM,
        }
    }

    /// Where connections say their peer is gone (for `ConnContext`).
    pub fn departures(&self) -> Arc<Departures> {
        self.departures.clone()
    }

    /// Turns accounts on: `names` are the registered ones (casefolded).
    pub fn with_accounts(mut self, names: Vec<String>, runner: AccountRunner) -> Self {
        self.chat.enable_accounts(names);
        self.account_runner = Some(runner);
        self
    }

    /// Turns history on: each target's last place, and where to keep it;
    /// `replay_max`: unread lines sent per target at login.
    pub fn with_history(
        mut self,
        seqs: Vec<(String, i64)>,
        sink: HistorySink,
        replay_max: usize,
    ) -> Self {
        self.chat.history.replay_max = replay_max.max(1);
        self.chat.enable_history(seqs);
        self.history_sink = Some(sink);
        self
    }

    /// Loads the registered rooms (from the store, at start).
    pub fn with_rooms(mut self, rooms: Vec<crate::store::RegisteredRoom>) -> Self {
        self.chat.load_registered_rooms(rooms);
        self
    }

    /// Keeps history for `days` days (`--history-days`; 0 keeps all).
    pub fn with_retention(mut self, days: u32) -> Self {
        self.chat.enable_retention(days);
        self
    }

    /// Hands this batch's registered-room saves and purges to the store.
    fn start_store_jobs(&mut self) {
        self.chat.purge_if_due();
        for job in self.chat.take_store_jobs() {
            if let Some(sink) = &self.history_sink {
                sink.start_store_job(job);
            }
        }
    }

    /// What the refill of the store from chat.log did at start, if it is
    /// worth a line.
    pub fn with_repair_note(mut self, note: Option<String>) -> Self {
        self.repair_note = note;
        self
    }

    /// Runs on a dedicated blocking thread until shutdown.
    pub fn run(mut self, mut inbox: mpsc::Receiver<HubRequest>, start_line: String) {
        self.chat.clock = Clock::now();
        if self.chat.transcript.previous_run_unclean {
            self.chat.record(
                "restart",
                "previous run ended without a stop line (crash or kill); appending",
            );
        }
        if let Some(note) = self.repair_note.take() {
            self.chat.record("repair", &note);
        }
        self.chat.record("start", &start_line);
        self.start_store_jobs();
        if let Err(e) = self.chat.transcript.sync() {
            tracing::error!(
                "cannot write {}: {e}",
                self.chat.transcript.path().display()
            );
        }
        let mut batch = Vec::with_capacity(BATCH);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut linger = Linger::new(cpus);
        let mut looked = (Instant::now(), linger::cpu_used_now());
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
            let busy = self.handle_batch(&mut batch);
            if self.chat.stopping {
                break;
            }
            if busy {
                let now = Instant::now();
                if now.duration_since(looked.0) >= linger::LOOK_EVERY
                    && let (Some(before), Some(used)) = (looked.1, linger::cpu_used_now())
                {
                    let was = linger.wait();
                    linger.observe(used.since(before), now.duration_since(looked.0));
                    looked = (now, Some(used));
                    if linger.wait() != was {
                        tracing::debug!(wait_us = linger.wait().as_micros(), "the hub's linger");
                    }
                }
                std::thread::sleep(linger.wait());
            }
        }
        let reason = if self.chat.stopping {
            None
        } else {
            Some("hub inbox closed")
        };
        self.finish(reason);
    }

    /// Handles one batch of requests and delivers what they made (a turn
    /// of `run`, which tests call directly). Returns whether the batch was
    /// busy enough for the hub to linger before the next.
    fn handle_batch(&mut self, batch: &mut Vec<HubRequest>) -> bool {
        let members_before = self.chat.state.users.len();
        // After the batch is taken: a connection whose Leave is in it
        // noted its departure before sending it, so it is seen here.
        self.chat.gone.extend(self.departures.take());
        let mut busy = batch.len() >= LINGER_FROM;
        // One reading of the clocks per batch: every line of a batch
        // carries the same time, and formatting it once is cheaper.
        self.chat.clock = Clock::now();
        for req in batch.drain(..) {
            let leave = matches!(req, HubRequest::Leave { .. });
            // A crowd dropping at once: more of them may have been
            // noted since the batch began, and each leave's QUIT then
            // skips them (a lock and a swap, only for leaves).
            if leave {
                self.chat.gone.extend(self.departures.take());
            }
            // Nothing is handled (or recorded) after the stop line.
            if !self.chat.stopping {
                self.handle(req);
                self.publish_members();
            }
            // Also a crowd dropping (peers gone whose leaves are still to
            // come): what its first leaves made goes out before the rest
            // are handled, as if the batch ended here. Writing it finds
            // the sockets already reset (`Handed::Broken`), and the rest
            // of the crowd's QUITs skip them. A crowd quitting in good
            // order is not cut up so: each cut is a write to everyone.
            if leave
                && !self.chat.gone.is_empty()
                && self.chat.out.pending.len() >= self.deliver_early_from
            {
                busy |= self.deliver_made();
            }
        }
        busy |= self.deliver_made();
        if self.chat.state.users.len() < members_before {
            self.shrink_after_leaves();
        }
        busy
    }

    /// Delivers what the requests handled so far made, and starts the
    /// jobs they asked for, in that batch's order. Returns whether that
    /// was enough deliveries for the hub to linger after the batch.
    fn deliver_made(&mut self) -> bool {
        self.retire_removed();
        for job in std::mem::take(&mut self.chat.out.jobs) {
            if let Some(runner) = &self.account_runner {
                runner.start(job);
            }
        }
        for job in std::mem::take(&mut self.chat.out.history_jobs) {
            if let Some(sink) = &self.history_sink {
                sink.start(job);
            }
        }
        self.start_store_jobs();
        let busy = self.chat.out.pending.len() >= LINGER_FROM_DELIVERIES;
        self.flush();
        busy
    }

    fn handle(&mut self, req: HubRequest) {
        match req {
            HubRequest::Register(reg, reply) => {
                let reg = *reg;
                let id = reg.conn;
                self.handles.insert(id, reg.handle);
                let outcome = self.chat.register(
                    id,
                    NewUser {
                        nick: reg.nick,
                        user: reg.user,
                        realname: reg.realname,
                        ip: reg.ip,
                        caps: reg.caps,
                        account: reg.account,
                    },
                );
                if outcome != RegisterOutcome::Welcome {
                    // The connection makes a new outbox for its next try.
                    self.handles.remove(&id);
                }
                let _ = reply.send(outcome);
            }
            // A connection's request acts for its user; replies go back
            // to that connection (see `Chat::acting`).
            HubRequest::Line { conn, msg } => {
                let id = self.chat.act_for(conn);
                self.chat.line(id, msg)
            }
            HubRequest::BadLine { conn, error } => {
                let id = self.chat.act_for(conn);
                self.chat.bad_line(id, error)
            }
            HubRequest::Leave { conn, reason } => self.chat.leave(conn, &reason),
            HubRequest::Drained { conn } => {
                self.chat.act_for(conn);
                self.chat.continue_long(conn)
            }
            HubRequest::OperResult { conn, granted } => {
                let id = self.chat.act_for(conn);
                self.chat.oper_result(id, granted)
            }
            HubRequest::AccountDone(done) => self.chat.account_done(*done),
            HubRequest::HistoryPage(done) => self.chat.history_page(*done),
            HubRequest::LoginView { conn, view } => self.chat.login_view(conn, *view),
            HubRequest::HistoryTargets(done) => self.chat.history_targets(*done),
            HubRequest::HistoryNotKept { sources, why } => {
                self.chat.history_not_kept(sources, &why)
            }
            HubRequest::HistoryPurged {
                before_ms,
                days,
                removed,
            } => self.chat.history_purged(before_ms, days, removed),
            HubRequest::Tick => self.chat.tick(),
            HubRequest::EmptyAllocatorCache(done) => {
                crate::tracker::memory::empty_cache_if_asked();
                let _ = done.send(());
            }
            // The reply is a oneshot: sending never waits for the console.
            HubRequest::Console { query, reply } => {
                let _ = reply.send(self.chat.console(query));
            }
            HubRequest::Shutdown { reason } => {
                if !self.chat.stopping {
                    self.chat.record("stop", &reason);
                    self.chat.stopping = true;
                }
            }
        }
        self.chat.done_acting();
    }

    /// After members left: the hub's own per-connection maps and the
    /// delivery grouping, sized for the crowd, give their memory back
    /// with the chat's (`memory::give_back` then returns it to the system).
    fn shrink_after_leaves(&mut self) {
        use self::state::{oversized, shrink_map};
        self.chat.shrink_after_leaves();
        shrink_map(&mut self.handles);
        shrink_map(&mut self.retired);
        let Grouping { slot, groups, used } = &mut self.grouping;
        shrink_map(slot);
        let members = self.chat.state.users.len();
        // The delivery list kept from batch to batch (`flush`), sized by
        // the crowd's logins: 32,768 entries (1.25 MiB, its own mapping)
        // after 10,000 logged in, 0.7 to 1.2 MiB of it resident after
        // all had left (B4, smaps).
        let kept = &mut self.chat.out.pending;
        if kept.is_empty() && oversized(members, kept.capacity()) {
            kept.shrink_to(members);
        }
        if oversized(members, groups.len()) {
            // Each kept group holds a part list of up to KEEP_PARTS.
            groups.truncate(members);
            groups.shrink_to_fit();
            *used = (*used).min(members);
        }
    }

    /// Users the chat removed keep their handle until their last lines are
    /// delivered.
    fn retire_removed(&mut self) {
        for id in std::mem::take(&mut self.chat.out.removed) {
            if let Some(h) = self.handles.remove(&id) {
                self.retired.insert(id, h);
            }
        }
    }

    /// Publishes the member count after each join or leave (even one that
    /// leaves it as it was: a join and a leave in one go still show that
    /// someone was here); once stopping, who leaves decides nothing.
    fn publish_members(&mut self) {
        if self.chat.membership_changes != self.published_changes && !self.chat.stopping {
            self.published_changes = self.chat.membership_changes;
            self.chat
                .config
                .members
                .send_replace(self.chat.state.users.len());
        }
    }

    fn finish(&mut self, reason: Option<&str>) {
        if let Some(r) = reason {
            self.chat.clock = Clock::now();
            self.chat.record("stop", r);
        }
        if let Err(e) = self.chat.transcript.sync() {
            tracing::error!(
                "cannot write the closing line to {}: {e}",
                self.chat.transcript.path().display()
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
            // In chat.log: now it may be kept (chat.log is the commit
            // point; the store follows it), once the batch is delivered:
            // handing it to the store wakes the store's thread, which on
            // a busy core would run before the deliveries.
            let mut kept = Vec::new();
            let deliveries = match self.chat.transcript.commit() {
                Ok(()) => {
                    kept = std::mem::take(&mut self.chat.out.history);
                    if self.log_failing {
                        self.log_failing = false;
                        tracing::warn!(
                            "{} is writable again; delivering {} held lines",
                            self.chat.transcript.path().display(),
                            self.held.len()
                        );
                    }
                    if self.held.is_empty() {
                        std::mem::take(&mut self.chat.out.pending)
                    } else {
                        let mut out = std::mem::take(&mut self.held);
                        out.append(&mut self.chat.out.pending);
                        out
                    }
                }
                Err(e) => {
                    // Refused messages were never seen: not kept either.
                    // Events are held, not refused: kept once delivered.
                    self.chat
                        .out
                        .history
                        .retain(|m| !crate::store::is_message(&m.command));
                    let refused = self.take_back_messages();
                    if !self.log_failing {
                        self.log_failing = true;
                        tracing::error!(
                            "cannot write {}: {e}; chat messages are refused and other events held until it is writable",
                            self.chat.transcript.path().display()
                        );
                    }
                    tracing::warn!("chat.log still not writable: {refused} messages refused");
                    self.held.append(&mut self.chat.out.pending);
                    std::mem::take(&mut self.refusals)
                }
            };
            self.chat.out.marks.clear();
            // Set before the part goes out, so the task that writes it
            // cannot miss the request.
            for id in std::mem::take(&mut self.chat.out.want_drain) {
                if let Some(h) = self.handles.get(&id) {
                    h.control.request_drain();
                }
            }
            let mut deliveries = deliveries;
            self.deliver(&mut deliveries);
            if let Some(sink) = &self.history_sink {
                sink.keep(kept);
            }
            // The emptied vector goes back for the next batch: one
            // allocation fewer per batch. Not after a burst: thousands
            // leaving at once make millions of deliveries (each QUIT to
            // everyone), and a list that size, kept, stays resident.
            if self.chat.out.pending.capacity() == 0 && deliveries.capacity() <= KEEP_DELIVERIES {
                self.chat.out.pending = deliveries;
            }
            if self.log_failing {
                // Held lines to users who left still need the handle.
                let held: IdSet = self.held.iter().map(|h| h.0).collect();
                self.retired.retain(|id, _| held.contains(id));
            } else {
                self.retired.clear();
            }
            // Long replies whose part the hub wrote itself go on (their
            // next part is delivered by the next turn of this loop).
            for conn in std::mem::take(&mut self.drained) {
                self.chat.act_for(conn);
                self.chat.continue_long(conn);
                self.chat.done_acting();
            }
            if self.overflowed.is_empty() {
                if self.chat.out.pending.is_empty() {
                    return;
                }
                continue;
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
                    self.chat.config.send_budget.limit() / 1024
                );
            }
            for (id, why) in overflowed {
                let reason = match why {
                    Overflow::Own => "SendQ exceeded",
                    Overflow::Shared => "Tracker-wide SendQ exceeded",
                };
                if let Some(h) = self.handles.get(&id) {
                    h.control.kill(reason);
                }
                self.chat.leave(id, reason);
                self.chat.done_acting();
            }
            self.retire_removed();
            self.publish_members();
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
        let connections = self.handles.len() + self.retired.len();
        for (id, parts) in groups[..*used].iter_mut() {
            let joined = join_parts(parts);
            let handle = match self.handles.get(id) {
                Some(h) => h,
                None => match self.retired.get(id) {
                    Some(h) => h,
                    None => continue,
                },
            };
            match handle.deliver(joined, connections) {
                // Written by the hub: the task, not woken, will not see that
                // its outbox was written out, so a long reply's next part
                // is the hub's to start.
                Ok(Handed::Sent) => {
                    if handle.control.take_drain_request() {
                        self.drained.push(*id);
                    }
                }
                Ok(Handed::Queued) => {}
                // Its leave is on the way (the task reads the same error):
                // until then, nothing more is made for it.
                Ok(Handed::Broken) => {
                    if self.handles.contains_key(id) {
                        self.chat.gone.insert(*id);
                    }
                }
                Err(why) => {
                    if self.handles.contains_key(id) && !self.overflowed.iter().any(|o| o.0 == *id)
                    {
                        self.overflowed.push((*id, why));
                    }
                }
            }
        }
        self.grouping = grouping;
    }

    /// Removes this batch's chat messages from the transcript's staged lines
    /// and from the deliveries, and queues a `FAIL` for each sender in
    /// `refusals`. Returns how many were refused.
    fn take_back_messages(&mut self) -> usize {
        let marks = std::mem::take(&mut self.chat.out.marks);
        let n = marks.len();
        // Later ranges first, so earlier ones keep their positions.
        for mark in marks.iter().rev() {
            self.chat.transcript.unstage(mark.staged.clone());
            self.chat.out.pending.drain(mark.pending.clone());
        }
        for mark in marks {
            let text: String = mark.text.chars().take(60).collect();
            let fail = replies::fail_cannot_record(
                &self.chat.config.server_name,
                &mark.command,
                &mark.target,
                &text,
            );
            self.refusals
                .push((mark.sender, Bytes::from(fail.to_line())));
        }
        n
    }
}
