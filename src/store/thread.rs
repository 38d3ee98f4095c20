//! The store's own thread, and the handle the tracker reaches it by.
//!
//! A thread, not a task: every SQLite call blocks on the disk, and the hub
//! must never wait for one. The handle's queue is unbounded on purpose:
//! the hub has already committed a message to `chat.log` and delivered it
//! when it hands it here, so refusing it would lose it from history; the
//! queue's depth is counted ([`StoreStats::queued`]) so a store that falls
//! behind is visible instead. Consecutive appends are joined into one
//! transaction (one fsync of the WAL at checkpoint time, not one per
//! message), which is what keeps the store abreast of a busy hub; an
//! append waits [`APPEND_LINGER`] for others to join it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{NewMessage, Store, StoreError};

/// At most this many messages are joined into one append transaction, so
/// a call queued behind a burst is not kept waiting for long.
const MAX_JOINED: usize = 10_000;
/// How long an append waits for more to join its transaction. Each commit
/// writes every page it touched to the WAL again (the right edges of the
/// indexes, every time), and the checkpoint copies them back: with the
/// hub's batches taken as they came, B9 (8,333 messages a second) spent
/// a third of the tracker's CPU on this thread (32.6%), a third of that
/// checkpointing (BENCHMARKS.md). Waiting costs nothing that anyone sees: the message
/// is in `chat.log` and delivered before it gets here (the repair at start
/// refills what a crash loses), and a call (a `CHATHISTORY` page) ends the
/// wait at once, so it still sees every append queued before it.
/// Measured on B9 (`compare.py --no-build --servers tracker --repeat 3
/// b9`, medians): 20 ms took p99 from 76.5 to 55.8 ms and p50 from 35.1
/// to 25.6; 100 ms, p50 to 16.9 (p99 52.7, no better); 1 s made each
/// commit a burst that the chat waited behind (p99 63.1).
const APPEND_LINGER: Duration = Duration::from_millis(100);
/// This thread's appends let the chat's threads run every this many rows
/// ([`Store::yield_every`], where it is measured).
const YIELD_ROWS: usize = 64;

/// Messages not yet stored (queued, or joined into the transaction at
/// hand) from which the thread stops running as `SCHED_IDLE`
/// ([`priority_for`]), until fewer than a tenth of this are left.
const BEHIND_FROM: usize = MAX_JOINED;

/// How the store's thread is scheduled (Linux; elsewhere priority is per
/// process and nothing is changed).
///
/// Why `SCHED_IDLE` while it keeps up: while the hub is busy the runtime's
/// workers run as `SCHED_BATCH` (`tracker/yielding.rs`), and a woken
/// `SCHED_BATCH` thread never preempts the one running. On a core shared
/// with the store (a small host, the benchmarks' pinned server), a worker
/// woken by a member's message while the store commits waited for the
/// store's next yield or time slice: `perf sched` on B9 at 0.1M
/// deliveries a second, the worker woken while the store ran: p50 0.18
/// ms, p99 0.8 ms, against 10 us otherwise; the chat's p99 0.85 to 0.96 ms
/// with the store, 0.22 to 0.36 without. An idle-policy thread is
/// preempted by any other: set so, p99 0.39 to 0.57 ms (a nice level does
/// not do it: a `SCHED_BATCH` thread preempts nobody, whatever their
/// nice). But an idle-policy thread gets next to no CPU while others are
/// busy (the password checks gave it up for that, `password.rs`), and a
/// store that falls behind holds every message it has not written in
/// memory: so from [`BEHIND_FROM`] behind it competes as usual again.
/// That switch cannot wait for the thread itself: starved inside an
/// idle-policy transaction by a busy core, it does not run to make it
/// (measured: with a busy loop sharing the tracker's core and 990
/// messages a second, the store had stored 783 and 2,760 of 32,200 when
/// the chat ended, and did not catch up while watched; before the idle
/// policy, all of them). So the append that puts the queue past the
/// line raises the thread's policy itself, from the hub's thread
/// ([`QueueState::promote_if_behind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Idle,
    Normal,
}

/// The thread's priority for appends now, with `behind` messages not yet
/// stored (calls, and appends someone waits for, run at `Normal`).
fn priority_for(now: Priority, behind: usize) -> Priority {
    match now {
        Priority::Idle if behind >= BEHIND_FROM => Priority::Normal,
        Priority::Normal if behind < BEHIND_FROM / 10 => Priority::Idle,
        same => same,
    }
}

/// Schedules thread `tid` as `priority` says.
fn set_priority(tid: i32, priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        let policy = match priority {
            Priority::Idle => libc::SCHED_IDLE,
            Priority::Normal => libc::SCHED_OTHER,
        };
        if let Err(e) = crate::tracker::yielding::set_policy(tid, policy) {
            tracing::debug!("cannot run the store's thread as {priority:?}: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (tid, priority);
}

/// Test hook, never for use otherwise: when this variable is set, the
/// store's thread holds every append (in memory) until it stops, while
/// calls are served as usual. It makes the crash window (a message in
/// `chat.log`, delivered, not yet in the store) last, so the end-to-end
/// tests can `kill -9` the tracker inside it (`tests/e2e/durable.rs`).
pub const HOLD_APPENDS_VAR: &str = "CONFAB_TEST_HOLD_STORE_APPENDS";

/// Given the store, or why there is none (its thread has stopped).
type Call = Box<dyn FnOnce(Result<&mut Store, StoreError>) + Send>;
/// Told which messages were not stored, and why.
type OnFail = Box<dyn FnOnce(&StoreError, &[NewMessage]) + Send>;

enum Work {
    Append(Vec<NewMessage>, OnFail),
    Call(Call),
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    appended: AtomicU64,
    failed: AtomicU64,
    transactions: AtomicU64,
}

/// What the store's thread has done, for the console and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Appends and calls handed over and not yet done.
    pub queued: u64,
    /// Messages stored.
    pub appended: u64,
    /// Messages that could not be stored (each reported to its `on_fail`).
    pub failed: u64,
    /// Append transactions committed.
    pub transactions: u64,
}

/// The work handed to the store's thread, in order.
///
/// A mutex and a condition variable rather than a channel: a channel's
/// receiver is woken by every send, so while the thread lingered for
/// appends to join its transaction, each of the hub's batches (a thousand
/// a second in B9) woke it for nothing but a push, a context switch each
/// time on the core the chat runs on. Here an append made while the
/// thread lingers waits quietly for the linger's end; a call, or appends
/// past the join cap, still wake it at once. Measured in one B9 round
/// (`/proc/PID/task/TID/status`): 5,175 voluntary switches of this
/// thread with the channel, 770 with this queue. The lock also orders the
/// thread's scheduling policy: an append that puts the queue too far
/// behind changes it under the lock (one system call each time the store
/// falls behind), so the thread and the appender never undo each other.
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    work: VecDeque<Work>,
    /// Messages in the queued appends (the join cap wakes the thread).
    messages: usize,
    /// Calls queued: while any is, the thread runs as usual.
    calls: usize,
    /// Live handles: with none and nothing queued, the thread ends.
    handles: usize,
    /// The thread is gone (ended, or panicked): work is refused.
    closed: bool,
    /// How the thread waits now, which decides who wakes it.
    waiting: Waiting,
    /// What appends run at ([`priority_for`]): kept here, not on the
    /// thread, because an append can raise it ([`Self::promote_if_behind`]).
    appends_at: Priority,
    /// What the thread is scheduled as now (set only under this lock).
    set_to: Priority,
    /// The thread's id for the scheduler; `None` until it starts.
    tid: Option<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    No,
    /// For anything.
    Idle,
    /// Out its linger: only for a call, or for the join cap.
    Lingering,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The state stays consistent under a panic (each change is one
        // field at a time), so a poisoned lock is still used.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `work`, or hands it back when the thread is gone.
    fn push(&self, work: Work) -> Result<(), Work> {
        let mut state = self.lock();
        if state.closed {
            return Err(work);
        }
        match &work {
            Work::Append(batch, _) => {
                state.messages += batch.len();
                state.promote_if_behind();
            }
            // Someone waits for a call (a login, a history page): if the
            // thread is inside an idle-policy transaction, a busy core
            // would keep the caller waiting for as long as it starves.
            Work::Call(_) => {
                state.calls += 1;
                state.run_at(Priority::Normal);
            }
        }
        let wake = wakes(state.waiting, matches!(work, Work::Call(_)), state.messages);
        state.work.push_back(work);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The next work, waiting as long as it takes; `None` once every
    /// handle is gone and nothing is left.
    fn next(&self) -> Option<Work> {
        let mut state = self.lock();
        loop {
            if let Some(work) = state.take() {
                return Some(work);
            }
            if state.handles == 0 {
                return None;
            }
            state.waiting = Waiting::Idle;
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting = Waiting::No;
        }
    }

    /// The next work queued by `until`, woken early only by a call or by
    /// the join cap: appends queued meanwhile are taken at `until`.
    fn next_by(&self, until: Instant) -> Option<Work> {
        let mut state = self.lock();
        loop {
            if let Some(work) = state.take() {
                return Some(work);
            }
            let now = Instant::now();
            if state.handles == 0 || now >= until {
                return None;
            }
            state.waiting = Waiting::Lingering;
            state = self
                .wake
                .wait_timeout(state, until - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
            state.waiting = Waiting::No;
        }
    }
}

/// Whether work queued now wakes the thread: a thread waiting for
/// anything, yes; one lingering, only for a call or past the join cap
/// (`messages` queued, counting the new work).
fn wakes(waiting: Waiting, call: bool, messages: usize) -> bool {
    match waiting {
        Waiting::No => false,
        Waiting::Idle => true,
        Waiting::Lingering => call || messages >= MAX_JOINED,
    }
}

impl QueueState {
    /// One handle, nothing queued, the thread not started yet (its policy
    /// is set when it starts).
    fn new() -> QueueState {
        QueueState {
            work: VecDeque::new(),
            messages: 0,
            calls: 0,
            handles: 1,
            closed: false,
            waiting: Waiting::No,
            appends_at: Priority::Idle,
            set_to: Priority::Normal,
            tid: None,
        }
    }

    /// Schedules the thread as `priority` says, if it is not already.
    fn run_at(&mut self, priority: Priority) {
        if let Some(tid) = self.tid
            && priority != self.set_to
        {
            self.set_to = priority;
            set_priority(tid, priority);
        }
    }

    /// Raises the thread to `Normal` once the queue alone is
    /// [`BEHIND_FROM`] behind, whatever the thread is doing (see
    /// [`Priority`]). Only the thread lowers it again, between
    /// transactions.
    fn promote_if_behind(&mut self) {
        if self.appends_at == Priority::Idle
            && priority_for(Priority::Idle, self.messages) == Priority::Normal
        {
            self.appends_at = Priority::Normal;
            self.run_at(Priority::Normal);
        }
    }

    fn take(&mut self) -> Option<Work> {
        let work = self.work.pop_front()?;
        match &work {
            Work::Append(batch, _) => self.messages -= batch.len(),
            Work::Call(_) => self.calls -= 1,
        }
        Some(work)
    }
}

/// The thread's hold on the queue: when the thread ends, even by a panic,
/// the queue refuses more work and drops what is left (a call's reply is
/// dropped with it, which its caller sees as the store stopped).
struct Served(Arc<Queue>);

impl Drop for Served {
    fn drop(&mut self) {
        let left = {
            let mut state = self.0.lock();
            state.closed = true;
            state.messages = 0;
            state.calls = 0;
            std::mem::take(&mut state.work)
        };
        drop(left);
    }
}

/// The tracker's handle on the store. Cloning it is cheap; the thread ends
/// when the last handle is dropped, after finishing what was queued.
pub struct StoreHandle {
    queue: Arc<Queue>,
    counters: Arc<Counters>,
}

impl Clone for StoreHandle {
    fn clone(&self) -> Self {
        self.queue.lock().handles += 1;
        StoreHandle {
            queue: self.queue.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        let last = {
            let mut state = self.queue.lock();
            state.handles -= 1;
            state.handles == 0
        };
        if last {
            self.queue.wake.notify_one();
        }
    }
}

impl StoreHandle {
    /// Moves `store` onto a new thread. The join handle returns once every
    /// handle is dropped and the queue is done.
    pub fn spawn(store: Store) -> std::io::Result<(StoreHandle, JoinHandle<()>)> {
        StoreHandle::spawn_lingering(store, APPEND_LINGER)
    }

    /// [`StoreHandle::spawn`] with appends waiting `linger` for others:
    /// tests give it long enough that timing cannot decide what they see.
    pub(crate) fn spawn_lingering(
        mut store: Store,
        linger: Duration,
    ) -> std::io::Result<(StoreHandle, JoinHandle<()>)> {
        store.yield_every(YIELD_ROWS);
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::new()),
            wake: Condvar::new(),
        });
        let served = Served(queue.clone());
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let hold = std::env::var_os(HOLD_APPENDS_VAR).is_some();
        if hold {
            tracing::warn!(
                "{HOLD_APPENDS_VAR} is set: history is held in memory until the tracker stops (a test hook)"
            );
        }
        let join = std::thread::Builder::new()
            .name("confab-store".into())
            .spawn(move || serve(store, &served, &thread_counters, hold, linger))?;
        Ok((StoreHandle { queue, counters }, join))
    }

    /// Hands over messages to store, in order; returns at once.
    /// `on_fail` runs on the store's thread if they could not be stored.
    pub fn append(
        &self,
        batch: Vec<NewMessage>,
        on_fail: impl FnOnce(&StoreError, &[NewMessage]) + Send + 'static,
    ) {
        if batch.is_empty() {
            return;
        }
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(Work::Append(batch, on_fail)) =
            self.queue.push(Work::Append(batch, Box::new(on_fail)))
        {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            on_fail(&StoreError::Stopped, &batch);
        }
    }

    /// Runs `f` on the store's thread after everything queued before it,
    /// and hands its result to `reply` there; returns at once. What the
    /// hub uses: `reply` sends the answer back into the hub's inbox.
    pub fn call_then<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
        reply: impl FnOnce(Result<R, StoreError>) + Send + 'static,
    ) {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let work = Work::Call(Box::new(move |store: Result<&mut Store, StoreError>| {
            reply(store.map(f))
        }));
        if let Err(Work::Call(call)) = self.queue.push(work) {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            call(Err(StoreError::Stopped));
        }
    }

    /// Runs `f` on the store's thread and waits for its result: for the
    /// tracker's start, subcommands and tests, never the hub.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.call_then(f, move |r| {
            let _ = tx.send(r);
        });
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            queued: self.counters.queued.load(Ordering::Relaxed),
            appended: self.counters.appended.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            transactions: self.counters.transactions.load(Ordering::Relaxed),
        }
    }
}

fn serve(mut store: Store, served: &Served, counters: &Counters, hold: bool, linger: Duration) {
    let queue = &served.0;
    {
        let mut state = queue.lock();
        state.tid = Some(crate::tracker::yielding::current_tid());
        // As it was spawned until now: set it, whatever it inherited.
        let at = state.appends_at;
        state.set_to = at;
        set_priority(0, at);
    }
    let run_at = |wanted: Option<Priority>| {
        let mut state = queue.lock();
        let at = match wanted {
            Some(at) => at,
            None if state.calls > 0 => Priority::Normal,
            None => state.appends_at,
        };
        state.run_at(at);
    };
    let mut held = Vec::new();
    let mut next = queue.next();
    while let Some(work) = next.take() {
        match work {
            Work::Call(f) => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                // Someone waits for a call (a login, a history page): it
                // competes as usual, whatever else is busy.
                run_at(Some(Priority::Normal));
                f(Ok(&mut store));
                run_at(None);
                next = queue.next();
            }
            Work::Append(batch, on_fail) if hold => {
                counters.queued.fetch_sub(1, Ordering::Relaxed);
                held.push((batch, on_fail));
                next = queue.next();
            }
            Work::Append(batch, on_fail) => {
                // Join the appends arriving within the linger; stop at a
                // call (it must see them stored) or at the cap.
                let mut appends = vec![(batch, on_fail)];
                let mut joined = appends[0].0.len();
                let until = Instant::now() + linger;
                while joined < MAX_JOINED {
                    match queue.next_by(until) {
                        Some(Work::Append(b, f)) => {
                            joined += b.len();
                            appends.push((b, f));
                        }
                        Some(call) => {
                            next = Some(call);
                            break;
                        }
                        None => break,
                    }
                }
                counters
                    .queued
                    .fetch_sub(appends.len() as u64, Ordering::Relaxed);
                {
                    let mut state = queue.lock();
                    // The transaction at hand counts: thousands stored at
                    // the idle policy on a busy core is the starvation
                    // `Priority` is about.
                    state.appends_at = priority_for(state.appends_at, state.messages + joined);
                    // Someone waits for these appends: a call that ended
                    // the linger or is queued behind them, or the
                    // tracker's exit once every handle is gone.
                    let waited_for = state.handles == 0
                        || state.calls > 0
                        || matches!(next, Some(Work::Call(_)));
                    let at = if waited_for {
                        Priority::Normal
                    } else {
                        state.appends_at
                    };
                    state.run_at(at);
                }
                store_appends(&mut store, appends, counters);
                if next.is_none() {
                    next = queue.next();
                }
            }
        }
    }
    if !held.is_empty() {
        store_appends(&mut store, held, counters);
    }
}

/// Stores the joined appends in one transaction; if that fails, each on its
/// own, so one bad batch reports only its own messages.
fn store_appends(store: &mut Store, appends: Vec<(Vec<NewMessage>, OnFail)>, counters: &Counters) {
    if appends.len() > 1
        && store
            .append(appends.iter().flat_map(|(b, _)| b.iter()))
            .is_ok()
    {
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        let total: usize = appends.iter().map(|(b, _)| b.len()).sum();
        counters.appended.fetch_add(total as u64, Ordering::Relaxed);
        return;
    }
    for (batch, on_fail) in appends {
        match store.append(&batch) {
            Ok(_) => {
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters
                    .appended
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                counters
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                on_fail(&e, &batch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_runs_idle_until_it_falls_behind_and_again_once_caught_up() {
        use Priority::*;
        assert_eq!(priority_for(Idle, 0), Idle);
        assert_eq!(priority_for(Idle, BEHIND_FROM - 1), Idle);
        assert_eq!(priority_for(Idle, BEHIND_FROM), Normal);
        assert_eq!(priority_for(Normal, BEHIND_FROM / 10), Normal, "in the gap");
        assert_eq!(priority_for(Normal, BEHIND_FROM / 10 - 1), Idle);
    }

    /// The policy the store's thread actually runs at, from the kernel.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_store_thread_runs_as_sched_idle() {
        use crate::tracker::yielding::policy_of;
        let store = Store::in_memory().expect("store");
        let (handle, join) = StoreHandle::spawn(store).expect("spawn");
        let (tid, during) = handle
            .call(|_| (crate::tracker::yielding::current_tid(), policy_of(0)))
            .await
            .expect("call");
        assert_eq!(
            during.expect("policy"),
            libc::SCHED_OTHER,
            "a call runs as usual"
        );
        let policy = |tid: i32| policy_of(tid).expect("policy");
        // Back to idle once the call is done, which is just after its
        // answer is sent.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while policy(tid) != libc::SCHED_IDLE && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(policy(tid), libc::SCHED_IDLE, "between calls");
        drop(handle);
        join.join().expect("store thread");
    }

    fn message(n: i64) -> NewMessage {
        NewMessage {
            seq: n,
            msgid: format!("m{n}"),
            at_ms: 1000 * n,
            target: "#general".into(),
            command: "PRIVMSG".into(),
            source: "alice!alice@127.0.0.1".into(),
            sender_account: None,
            to_param: "#general".into(),
            text: format!("message {n}"),
            client_tags: String::new(),
            direct: None,
            hold_for: None,
        }
    }

    fn state_of_a_thread(tid: i32, appends_at: Priority) -> QueueState {
        QueueState {
            appends_at,
            set_to: appends_at,
            tid: Some(tid),
            ..QueueState::new()
        }
    }

    #[test]
    fn an_append_raises_the_thread_past_the_line_and_never_lowers_it() {
        let mut state = state_of_a_thread(0, Priority::Idle);
        state.messages = BEHIND_FROM - 1;
        state.promote_if_behind();
        assert_eq!(state.appends_at, Priority::Idle);
        state.messages = BEHIND_FROM;
        state.promote_if_behind();
        assert_eq!(state.appends_at, Priority::Normal);
        assert_eq!(state.set_to, Priority::Normal);
        // Lowering is the thread's, between transactions.
        state.messages = 0;
        state.promote_if_behind();
        assert_eq!(state.appends_at, Priority::Normal);
    }

    /// The store's thread, starved at the idle policy, cannot raise itself:
    /// the append that crosses the line does it from its own thread. A
    /// parked thread stands in for one stuck inside a transaction.
    #[cfg(target_os = "linux")]
    #[test]
    fn appends_past_the_line_and_calls_raise_an_idle_store_thread_from_the_pushing_thread() {
        use crate::tracker::yielding::policy_of;
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            set_priority(0, Priority::Idle);
            tid_tx
                .send(crate::tracker::yielding::current_tid())
                .expect("send tid");
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().expect("tid");
        assert_eq!(policy_of(tid).expect("policy"), libc::SCHED_IDLE);
        let queue = Queue {
            state: Mutex::new(state_of_a_thread(tid, Priority::Idle)),
            wake: Condvar::new(),
        };
        let append = |n: usize| {
            let batch = vec![message(1); n];
            assert!(queue.push(Work::Append(batch, Box::new(|_, _| {}))).is_ok());
        };
        append(BEHIND_FROM - 1);
        assert_eq!(policy_of(tid).expect("policy"), libc::SCHED_IDLE);
        append(1);
        assert_eq!(policy_of(tid).expect("policy"), libc::SCHED_OTHER);
        // A call raises it too, behind appends that are not behind.
        let mut state = queue.lock();
        *state = state_of_a_thread(tid, Priority::Idle);
        set_priority(tid, Priority::Idle);
        drop(state);
        append(1);
        assert_eq!(policy_of(tid).expect("policy"), libc::SCHED_IDLE);
        let call = Work::Call(Box::new(|_| {}));
        assert!(queue.push(call).is_ok());
        assert_eq!(policy_of(tid).expect("policy"), libc::SCHED_OTHER);
        drop(done_tx);
        stuck.join().expect("stuck thread");
    }

    #[test]
    fn appends_wake_a_lingering_thread_only_past_the_cap_and_calls_always() {
        assert!(!wakes(Waiting::Lingering, false, 1));
        assert!(!wakes(Waiting::Lingering, false, MAX_JOINED - 1));
        assert!(wakes(Waiting::Lingering, false, MAX_JOINED));
        assert!(wakes(Waiting::Lingering, true, 0));
        assert!(wakes(Waiting::Idle, false, 1));
        assert!(!wakes(Waiting::No, true, 0), "a busy thread looks again");
    }

    #[test]
    fn a_call_ends_the_linger_at_once_and_sees_the_appends_before_it() {
        // A linger of a minute: the call below must not wait for it.
        let (store, thread) = StoreHandle::spawn_lingering(
            Store::in_memory().expect("store"),
            Duration::from_secs(60),
        )
        .expect("thread");
        store.append(vec![message(1)], |e, _| panic!("not kept: {e}"));
        store.append(vec![message(2)], |e, _| panic!("not kept: {e}"));
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        store.call_then(
            |s| s.message_count(),
            move |r| {
                let _ = tx.send(r);
            },
        );
        let stored = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the call waited out the linger");
        assert_eq!(stored.expect("store").expect("count"), 2);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(store.stats().appended, 2);
        drop(store);
        thread.join().expect("the thread ends with its last handle");
    }
}
