//! The server password gate: an Argon2id hash, verified off the async threads.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::Output;
use argon2::{Argon2, Block};
use thiserror::Error;
use tokio::sync::oneshot;
use zeroize::Zeroize;

use super::memory::WorkArea;

#[derive(Debug, Error)]
pub enum PasswordError {
    #[error("the server password must not be empty")]
    Empty,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot start the password-check threads: {0}")]
    Threads(std::io::Error),
}

/// A password check waiting for a hashing thread.
struct Check {
    candidate: String,
    reply: oneshot::Sender<bool>,
}

/// Holds only the PHC string of the password's Argon2id hash, and the
/// threads that check candidates against it.
///
/// Each check costs tens of milliseconds of CPU and ~19 MiB of memory. They
/// run on a few threads of their own (one per core), fed by a queue, rather
/// than on tokio's blocking pool:
/// - a login storm queues here, and at most one check per core runs;
/// - memory stays at one Argon2 work area per thread, reused while checks
///   keep coming and given back [`KEEP_WORK_AREA`] after the last one
///   (mapped on its own, `memory::WorkArea`, so its pages really go):
///   allocating 19 MiB per check left glibc's arenas holding 150-220 MiB
///   after a few logins, and keeping the areas cost an idle tracker 38 MiB;
/// - on Linux the threads run as `SCHED_BATCH` at nice 10, so on a busy
///   core the chat's tasks and the hub come first, instead of checks
///   adding tens of milliseconds to every message, while other programs on
///   the host cannot starve logins (see `lower_priority`).
pub struct PasswordGate {
    queue: Arc<CheckQueue>,
}

/// The checks waiting for a thread. A condition variable rather than a
/// channel: every idle thread waits with a time limit of its own, to give
/// its work area back (a receiver shared behind a mutex lets only the
/// thread holding the mutex wait with one).
///
/// The password last found right is remembered here too, under the same
/// mutex: `verify` and the threads both consult it, and they already meet
/// at this lock for every check.
struct CheckQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    /// Work areas the threads hold now.
    areas_held: std::sync::atomic::AtomicUsize,
    /// Argon2 runs so far (what the remembered password saves is counted
    /// against it).
    hashed: std::sync::atomic::AtomicU64,
    /// The key of the remembered password's HMAC: random, made at start,
    /// never leaves the process.
    key: ring::hmac::Key,
}

struct QueueState {
    checks: VecDeque<Check>,
    /// The gate was dropped: the threads end.
    closed: bool,
    remembered: Option<Remembered>,
}

/// The password last found right, as an HMAC-SHA256 under the gate's own
/// key, until `until`: a member coming back (a reconnect storm after a
/// network blip brings a whole class at once) is let in without another
/// Argon2 run. Only a candidate equal to the password matches; any other
/// still goes to Argon2, so guessing gains nothing (SECURITY.md, "Password
/// guessing").
struct Remembered {
    tag: zeroize::Zeroizing<Vec<u8>>,
    until: Instant,
}

/// How long the right password stays remembered after the last login
/// that used it. A storm needs only the first check of its wave to finish
/// (the checks queued behind it find the password remembered), so this
/// covers the gaps within one, not the hours between them.
pub const REMEMBER: Duration = Duration::from_secs(60);

impl CheckQueue {
    fn new() -> Result<Self, PasswordError> {
        let key =
            ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .map_err(|_| PasswordError::Hash("no random bytes for the HMAC key".into()))?;
        Ok(CheckQueue {
            state: Mutex::new(QueueState {
                checks: VecDeque::new(),
                closed: false,
                remembered: None,
            }),
            ready: Condvar::new(),
            areas_held: Default::default(),
            hashed: Default::default(),
            key,
        })
    }

    /// Whether `candidate` is the remembered password at `now`; a match
    /// keeps it remembered for another [`REMEMBER`].
    fn recalls(&self, q: &mut QueueState, candidate: &str, now: Instant) -> bool {
        q.forget_expired(now);
        let Some(r) = q.remembered.as_mut() else {
            return false;
        };
        // Compares in constant time.
        let hit = ring::hmac::verify(&self.key, candidate.as_bytes(), &r.tag).is_ok();
        if hit {
            r.until = now + REMEMBER;
        }
        hit
    }

    fn remember(&self, q: &mut QueueState, candidate: &str, now: Instant) {
        let tag = ring::hmac::sign(&self.key, candidate.as_bytes());
        q.remembered = Some(Remembered {
            tag: zeroize::Zeroizing::new(tag.as_ref().to_vec()),
            until: now + REMEMBER,
        });
    }
}

impl QueueState {
    fn forget_expired(&mut self, now: Instant) {
        if self.remembered.as_ref().is_some_and(|r| r.until <= now) {
            self.remembered = None;
        }
    }
}

/// How long a checking thread keeps its 19 MiB work area after its last
/// check: through a login storm it is reused, and mapping it again costs
/// a few milliseconds against a check's tens.
pub const KEEP_WORK_AREA: Duration = Duration::from_secs(1);

impl PasswordGate {
    /// Hashes `plaintext` and wipes it.
    pub fn new(mut plaintext: String) -> Result<Self, PasswordError> {
        if plaintext.is_empty() {
            return Err(PasswordError::Empty);
        }
        let argon = Argon2::default();
        let hash = argon
            .hash_password(plaintext.as_bytes())
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        plaintext.zeroize();
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return Err(PasswordError::Hash("no salt or output in the hash".into()));
        };
        let reference = Arc::new(Reference {
            argon,
            salt: salt.to_vec(),
            expected,
        });
        // Whichever thread is free takes the next check.
        let queue = Arc::new(CheckQueue::new()?);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            let (queue, reference) = (queue.clone(), reference.clone());
            std::thread::Builder::new()
                .name(format!("password check {i}"))
                .spawn(move || check_loop(&queue, &reference))
                .map_err(PasswordError::Threads)?;
        }
        Ok(PasswordGate { queue })
    }

    pub async fn verify(&self, mut candidate: String) -> bool {
        let (reply, answer) = oneshot::channel();
        match self.queue.state.lock() {
            Ok(mut q) if !q.closed => {
                if self.queue.recalls(&mut q, &candidate, Instant::now()) {
                    candidate.zeroize();
                    return true;
                }
                q.checks.push_back(Check { candidate, reply });
            }
            _ => {
                candidate.zeroize();
                return false;
            }
        }
        self.queue.ready.notify_one();
        answer.await.unwrap_or(false)
    }

    /// How many Argon2 runs the gate has made.
    pub fn hashed(&self) -> u64 {
        self.queue.hashed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many checking threads hold a work area now.
    pub fn work_areas_held(&self) -> usize {
        self.queue
            .areas_held
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for PasswordGate {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.state.lock() {
            q.closed = true;
            for mut check in q.checks.drain(..) {
                check.candidate.zeroize();
            }
        }
        self.queue.ready.notify_all();
    }
}

/// What a candidate is hashed with and compared to.
struct Reference {
    argon: Argon2<'static>,
    salt: Vec<u8>,
    expected: Output,
}

/// The next check, or `None` once the gate is gone. A thread holding a
/// work area waits at most [`KEEP_WORK_AREA`] and then gives it back (and
/// asks the allocator to return what the logins freed), then waits on.
fn next_check(queue: &CheckQueue, work: &mut Option<WorkArea>) -> Option<Check> {
    let idle_since = Instant::now();
    let mut q = queue.state.lock().ok()?;
    loop {
        if let Some(check) = q.checks.pop_front() {
            return Some(check);
        }
        if q.closed {
            return None;
        }
        let now = Instant::now();
        // The remembered password is forgotten on time even when no login
        // comes to notice it expired.
        q.forget_expired(now);
        let forget_at = q.remembered.as_ref().map(|r| r.until);
        let give_back_at = work.is_some().then_some(idle_since + KEEP_WORK_AREA);
        if give_back_at.is_some_and(|at| at <= now) {
            drop(q);
            *work = None;
            queue
                .areas_held
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            super::memory::give_back();
            q = queue.state.lock().ok()?;
            continue;
        }
        q = match forget_at.into_iter().chain(give_back_at).min() {
            Some(at) => queue.ready.wait_timeout(q, at - now).ok()?.0,
            None => queue.ready.wait(q).ok()?,
        };
    }
}

/// A hashing thread: checks candidates until the gate is dropped.
fn check_loop(queue: &CheckQueue, reference: &Reference) {
    lower_priority();
    let mut work: Option<WorkArea> = None;
    while let Some(Check {
        mut candidate,
        reply,
    }) = next_check(queue, &mut work)
    {
        // A storm's checks queued while the first right one was hashed.
        let recalled = queue
            .state
            .lock()
            .is_ok_and(|mut q| queue.recalls(&mut q, &candidate, Instant::now()));
        if recalled {
            candidate.zeroize();
            let _ = reply.send(true);
            continue;
        }
        queue
            .hashed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let area = match work.take() {
            Some(area) => Ok(area),
            None => WorkArea::new(reference.argon.params().block_count()).inspect(|_| {
                queue
                    .areas_held
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }),
        };
        let mut out = vec![0u8; reference.expected.len()];
        let ok = match area {
            Ok(mut area) => {
                let ok = reference
                    .argon
                    .hash_password_into_with_memory(
                        candidate.as_bytes(),
                        &reference.salt,
                        &mut out,
                        area.as_mut(),
                    )
                    .is_ok()
                    // Output compares in constant time.
                    && Output::try_from(&out[..]).is_ok_and(|o| o == reference.expected);
                // What Argon2 left in its work area derives from the candidate.
                area.as_mut().fill(Block::new());
                work = Some(area);
                ok
            }
            Err(e) => {
                tracing::warn!("no memory for a password check: {e}");
                false
            }
        };
        if ok && let Ok(mut q) = queue.state.lock() {
            queue.remember(&mut q, &candidate, Instant::now());
        }
        candidate.zeroize();
        out.zeroize();
        let _ = reply.send(ok);
    }
}

/// The hashing threads' nice value (Linux: per thread).
pub const CHECK_NICE: i32 = 10;

/// Puts the calling hashing thread behind chat traffic without letting
/// unrelated load starve it. On Linux policy and nice value are per
/// thread, so the runtime's workers and the hub keep the normal policy at
/// nice 0 and win over a check on a shared core, while a check still gets
/// its weighted share against anything else: at nice 10 about a tenth of
/// a core against a nice-0 busy loop, so a ~30 ms check takes ~0.3 s on a
/// host whose cores are all taken by other programs. `SCHED_BATCH` on top
/// keeps the same share but never preempts anyone when a check wakes up,
/// so a check arriving does not interrupt a chat thread mid-burst.
/// `SCHED_IDLE` (used before) put chat first too, but yielded to every
/// process on the host: with two busy loops on a 2-core host, logins took
/// seconds (BENCHMARKS.md, "Logins under load").
/// Elsewhere priority is per process, so nothing is changed there.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        if let Err(e) = super::yielding::set_policy(0, libc::SCHED_BATCH) {
            tracing::debug!("cannot run the password-check thread as SCHED_BATCH: {e}");
        }
        if let Err(e) = rustix::process::setpriority_process(None, CHECK_NICE) {
            tracing::debug!("cannot lower the password-check thread's priority: {e}");
        }
    }
}

/// How many wrong passwords may be tried: `burst` at once, then
/// `per_minute` a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub burst: u32,
    pub per_minute: u32,
}

impl Allowance {
    /// What one guess costs, in time to earn it back.
    fn cost(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }

    fn capacity(self) -> Duration {
        self.cost() * self.burst.max(1)
    }
}

/// The allowances of wrong passwords, per address (IPv6: per /64) and for
/// the whole tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessLimits {
    pub per_address: Allowance,
    pub tracker: Allowance,
}

impl Default for GuessLimits {
    /// 10 a minute per address is more than a person mistyping can use up
    /// (each try means typing the password again), so a class behind one
    /// address never waits for its typo-ers; 60 a minute tracker-wide caps
    /// what many addresses together get.
    fn default() -> Self {
        GuessLimits {
            per_address: Allowance {
                burst: 10,
                per_minute: 10,
            },
            tracker: Allowance {
                burst: 60,
                per_minute: 60,
            },
        }
    }
}

/// A token bucket kept as time credit (exact, no floats): it holds up to
/// `capacity`, earns real time, and a guess costs `cost`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    credit: Duration,
    at: Instant,
}

impl Bucket {
    fn full(a: Allowance, now: Instant) -> Self {
        Bucket {
            credit: a.capacity(),
            at: now,
        }
    }

    fn refill(&mut self, a: Allowance, now: Instant) {
        if now > self.at {
            self.credit = (self.credit + (now - self.at)).min(a.capacity());
            self.at = now;
        }
    }

    fn tokens(&self, a: Allowance) -> u32 {
        u32::try_from(self.credit.as_nanos() / a.cost().as_nanos().max(1)).unwrap_or(u32::MAX)
    }

    fn take(&mut self, a: Allowance) {
        self.credit = self.credit.saturating_sub(a.cost());
    }

    fn give_back(&mut self, a: Allowance) {
        self.credit = (self.credit + a.cost()).min(a.capacity());
    }

    /// How long until the bucket holds `n` guesses, by refilling alone.
    fn time_until(&self, a: Allowance, n: u32) -> Duration {
        (a.cost() * n).saturating_sub(self.credit)
    }

    fn is_full(&self, a: Allowance) -> bool {
        self.credit >= a.capacity()
    }
}

/// One address's bucket, its checks running and its checks waiting, in
/// order of arrival (tickets).
#[derive(Debug)]
struct AddressRecord {
    bucket: Bucket,
    checking: u32,
    queue: VecDeque<u64>,
}

#[derive(Debug)]
struct Ledger {
    tracker: Bucket,
    checking: u32,
    addresses: HashMap<IpAddr, AddressRecord>,
    next_ticket: u64,
}

/// Past this many address records, idle ones (full bucket, nothing running
/// or waiting) are swept. Few records are ever not idle: a bucket below
/// full means a wrong password within the last minute or so, which the
/// tracker-wide allowance bounds, and a waiting or running check holds a
/// connection, which `--max-connections` bounds.
const SWEEP_AT: usize = 1024;

/// Slows password guessing without locking anyone out: each check takes a
/// guess from its address's allowance and from the tracker's BEFORE it is
/// hashed (a check in progress counts), a right password gives it back, a
/// wrong one keeps it. With no guess left a login is not refused: it waits
/// in its address's queue, in order of arrival, until a guess frees up or
/// its registration time runs out.
///
/// So a burst of parallel guesses gets no more checks than a sequence
/// (the old lockout checked before hashing and counted after, so 50 at
/// once were all hashed), right passwords never use up the allowance, and
/// a person mistyping at human speed never makes the rest of a class
/// behind the same address wait. What a hostile client at that address
/// can still do is queue wrong guesses ahead of others: see SECURITY.md.
///
/// A std mutex around the ledger: every use is one lookup or update with no
/// await inside, far cheaper than a task and a channel. Waiters are woken
/// through `freed` whenever a guess is given back or the queues change.
#[derive(Debug)]
pub struct GuessBudget {
    limits: GuessLimits,
    ledger: Mutex<Ledger>,
    freed: tokio::sync::Notify,
}

/// Why a check cannot start yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCause {
    /// Other checks from the address (or everywhere) are running and hold
    /// the guesses left; they come back when those passwords are right.
    ChecksRunning,
    /// Wrong passwords from the address used up its allowance.
    AddressSpent,
    /// Wrong passwords from everywhere used up the tracker's allowance.
    TrackerSpent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub cause: WaitCause,
    /// When a guess will have been earned back for this check, if no
    /// running check gives one back before.
    pub retry_in: Duration,
}

impl GuessBudget {
    pub fn new(limits: GuessLimits, now: Instant) -> Self {
        GuessBudget {
            limits,
            ledger: Mutex::new(Ledger {
                tracker: Bucket::full(limits.tracker, now),
                checking: 0,
                addresses: HashMap::new(),
                next_ticket: 0,
            }),
            freed: tokio::sync::Notify::new(),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // Every update leaves the ledger consistent, so a panic elsewhere
        // while it was held leaves nothing half done.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes when a guess is given back or a queue changes: time to
    /// try again. Call before `try_start` (and `enable` it) so a change in
    /// between is not missed.
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// Puts a password check from `ip` at the end of its address's queue.
    pub fn queue(self: &Arc<Self>, ip: IpAddr, now: Instant) -> QueuedCheck {
        let key = super::address_key(ip);
        let mut ledger = self.ledger();
        if ledger.addresses.len() >= SWEEP_AT {
            let per_address = self.limits.per_address;
            ledger.addresses.retain(|_, r| {
                r.bucket.refill(per_address, now);
                !(r.queue.is_empty() && r.checking == 0 && r.bucket.is_full(per_address))
            });
        }
        let ticket = ledger.next_ticket;
        ledger.next_ticket += 1;
        ledger
            .addresses
            .entry(key)
            .or_insert_with(|| AddressRecord {
                bucket: Bucket::full(self.limits.per_address, now),
                checking: 0,
                queue: VecDeque::new(),
            })
            .queue
            .push_back(ticket);
        QueuedCheck {
            budget: self.clone(),
            key,
            ticket,
        }
    }

    /// Forgets `key`'s record when it says nothing a fresh one would not
    /// (as of its last update: one still refilling is swept later).
    fn forget_if_idle(&self, ledger: &mut Ledger, key: IpAddr) {
        let per_address = self.limits.per_address;
        if let Some(r) = ledger.addresses.get(&key)
            && r.queue.is_empty()
            && r.checking == 0
            && r.bucket.is_full(per_address)
        {
            ledger.addresses.remove(&key);
        }
    }
}

/// A password check waiting for its turn; dropping it leaves the queue.
#[derive(Debug)]
pub struct QueuedCheck {
    budget: Arc<GuessBudget>,
    key: IpAddr,
    ticket: u64,
}

impl QueuedCheck {
    /// Takes a guess for this check if the ones ahead of it in its
    /// address's queue leave one, and the tracker has one.
    pub fn try_start(&mut self, now: Instant) -> Result<RunningCheck, Wait> {
        let limits = self.budget.limits;
        let mut ledger = self.budget.ledger();
        let ledger = &mut *ledger;
        ledger.tracker.refill(limits.tracker, now);
        let record = ledger
            .addresses
            .entry(self.key)
            .or_insert_with(|| AddressRecord {
                bucket: Bucket::full(limits.per_address, now),
                checking: 0,
                queue: VecDeque::from([self.ticket]),
            });
        record.bucket.refill(limits.per_address, now);
        let position = record.queue.iter().position(|&t| t == self.ticket);
        let ahead = match position {
            Some(p) => p as u32,
            // Swept meanwhile (cannot happen while queued; be safe).
            None => {
                record.queue.push_back(self.ticket);
                record.queue.len() as u32 - 1
            }
        };
        let address_tokens = record.bucket.tokens(limits.per_address);
        let tracker_tokens = ledger.tracker.tokens(limits.tracker);
        // Taking a guess out of turn is fine as long as enough stay for
        // every check ahead: the order of arrival is kept where it matters.
        if address_tokens > ahead && tracker_tokens >= 1 {
            record.bucket.take(limits.per_address);
            record.checking += 1;
            record.queue.retain(|&t| t != self.ticket);
            ledger.tracker.take(limits.tracker);
            ledger.checking += 1;
            return Ok(RunningCheck {
                budget: self.budget.clone(),
                key: self.key,
                settled: false,
            });
        }
        let address_wait = record.bucket.time_until(limits.per_address, ahead + 1);
        let tracker_wait = ledger.tracker.time_until(limits.tracker, 1);
        // Running checks hold guesses they may give back: only when even
        // those would not be enough is the wait due to wrong passwords.
        let cause = if address_tokens + record.checking <= ahead {
            WaitCause::AddressSpent
        } else if tracker_tokens + ledger.checking < 1 {
            WaitCause::TrackerSpent
        } else {
            WaitCause::ChecksRunning
        };
        Err(Wait {
            cause,
            retry_in: address_wait.max(tracker_wait),
        })
    }
}

impl Drop for QueuedCheck {
    fn drop(&mut self) {
        let mut ledger = self.budget.ledger();
        let mut left_queue = false;
        if let Some(r) = ledger.addresses.get_mut(&self.key)
            && let Some(at) = r.queue.iter().position(|&t| t == self.ticket)
        {
            r.queue.remove(at);
            left_queue = true;
        }
        self.budget.forget_if_idle(&mut ledger, self.key);
        drop(ledger);
        // The checks behind this one moved up (a check that started has
        // left the queue already).
        if left_queue {
            self.budget.freed.notify_waiters();
        }
    }
}

/// A check that holds a guess until its verdict is known.
#[derive(Debug)]
pub struct RunningCheck {
    budget: Arc<GuessBudget>,
    key: IpAddr,
    settled: bool,
}

impl RunningCheck {
    /// A right password gives its guess back; a wrong one keeps it.
    pub fn settle(mut self, right: bool, now: Instant) {
        self.finish(right, Some(now));
    }

    /// `now`: `None` from `drop`, which has no clock to go by; the buckets
    /// then catch up at their next use.
    fn finish(&mut self, right: bool, now: Option<Instant>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let limits = self.budget.limits;
        let mut ledger = self.budget.ledger();
        let ledger = &mut *ledger;
        if let Some(now) = now {
            ledger.tracker.refill(limits.tracker, now);
        }
        ledger.checking = ledger.checking.saturating_sub(1);
        if right {
            ledger.tracker.give_back(limits.tracker);
        }
        if let Some(r) = ledger.addresses.get_mut(&self.key) {
            if let Some(now) = now {
                r.bucket.refill(limits.per_address, now);
            }
            r.checking = r.checking.saturating_sub(1);
            if right {
                r.bucket.give_back(limits.per_address);
            }
        }
        self.budget.forget_if_idle(ledger, self.key);
        self.budget.freed.notify_waiters();
    }
}

impl Drop for RunningCheck {
    /// A check abandoned before its verdict (the tracker stopping) counts
    /// as wrong: its answer may have been seen.
    fn drop(&mut self) {
        self.finish(false, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// 3 per address at once, then 1 every 6 s; 5 tracker-wide, then 1
    /// every 2 s.
    fn small_limits() -> GuessLimits {
        GuessLimits {
            per_address: Allowance {
                burst: 3,
                per_minute: 10,
            },
            tracker: Allowance {
                burst: 5,
                per_minute: 30,
            },
        }
    }

    #[test]
    fn wrong_guesses_spend_the_allowance_right_ones_give_it_back() {
        let t0 = Instant::now();
        let budget = Arc::new(GuessBudget::new(small_limits(), t0));
        let a = ip("10.0.0.1");
        // Right passwords, one after another, never run out.
        for _ in 0..20 {
            let check = budget.queue(a, t0).try_start(t0).unwrap();
            check.settle(true, t0);
        }
        // Three wrong ones spend the address's burst.
        for _ in 0..3 {
            budget.queue(a, t0).try_start(t0).unwrap().settle(false, t0);
        }
        let mut next = budget.queue(a, t0);
        assert_eq!(
            next.try_start(t0).err(),
            Some(Wait {
                cause: WaitCause::AddressSpent,
                retry_in: Duration::from_secs(6)
            })
        );
        // Another address is not affected.
        budget
            .queue(ip("10.0.0.2"), t0)
            .try_start(t0)
            .unwrap()
            .settle(true, t0);
        // One guess is earned back every 6 s, not before.
        let almost = t0 + Duration::from_millis(5999);
        assert_eq!(
            next.try_start(almost).err().map(|w| w.retry_in),
            Some(Duration::from_millis(1))
        );
        let check = next.try_start(t0 + Duration::from_secs(6)).unwrap();
        // A check dropped without a verdict counts as wrong.
        drop(check);
        drop(next);
        let mut after = budget.queue(a, t0);
        assert!(after.try_start(t0 + Duration::from_secs(6)).is_err());
        // A minute later the whole burst is back (and no more).
        let later = t0 + Duration::from_secs(70);
        let mut checks = vec![after.try_start(later).unwrap()];
        drop(after);
        checks.extend((0..2).map(|_| budget.queue(a, later).try_start(later).unwrap()));
        assert!(budget.queue(a, later).try_start(later).is_err());
        drop(checks);
    }

    /// A check in progress holds its guess: a burst in parallel gets no more
    /// checks than a sequence. The waits it causes are not blamed on wrong
    /// passwords until the running checks turn out wrong.
    #[test]
    fn checks_in_progress_count() {
        let t0 = Instant::now();
        let budget = Arc::new(GuessBudget::new(small_limits(), t0));
        let a = ip("10.0.0.1");
        let mut queued: Vec<QueuedCheck> = (0..50).map(|_| budget.queue(a, t0)).collect();
        let mut running = Vec::new();
        for q in &mut queued {
            if let Ok(r) = q.try_start(t0) {
                running.push(r);
            }
        }
        assert_eq!(running.len(), 3, "the burst, not 50");
        assert_eq!(
            queued[3].try_start(t0).err().map(|w| w.cause),
            Some(WaitCause::ChecksRunning)
        );
        // One right password among them: its guess goes to the next in line.
        running.pop().unwrap().settle(true, t0);
        assert!(queued[4].try_start(t0).is_err(), "not before the 4th");
        running.push(queued[3].try_start(t0).unwrap());
        for r in running.drain(..) {
            r.settle(false, t0);
        }
        let wait = queued[4].try_start(t0).unwrap_err();
        assert_eq!(wait.cause, WaitCause::AddressSpent);
        // Fifth in line (after the 4th): waits for two guesses to come back.
        assert_eq!(
            queued[5].try_start(t0).err().map(|w| w.retry_in),
            Some(Duration::from_secs(12))
        );
    }

    /// Checks from one address start in order of arrival: a newcomer never
    /// takes the guess the one waiting longest is owed.
    #[test]
    fn waiting_checks_go_in_order() {
        let t0 = Instant::now();
        let budget = Arc::new(GuessBudget::new(small_limits(), t0));
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            budget.queue(a, t0).try_start(t0).unwrap().settle(false, t0);
        }
        let mut first = budget.queue(a, t0);
        let mut second = budget.queue(a, t0);
        let t6 = t0 + Duration::from_secs(6);
        assert!(second.try_start(t6).is_err(), "the first one is owed it");
        let running = first.try_start(t6).unwrap();
        drop(first);
        running.settle(true, t6);
        second.try_start(t6).unwrap().settle(true, t6);
        // A queued check that leaves (its connection closed) makes way.
        budget.queue(a, t6).try_start(t6).unwrap().settle(false, t6);
        let gone = budget.queue(a, t6);
        let mut behind = budget.queue(a, t6);
        let t12 = t0 + Duration::from_secs(12);
        assert!(behind.try_start(t12).is_err());
        drop(gone);
        assert!(behind.try_start(t12).is_ok());
    }

    #[test]
    fn the_tracker_wide_allowance_caps_all_addresses() {
        let t0 = Instant::now();
        let budget = Arc::new(GuessBudget::new(small_limits(), t0));
        for i in 0..5 {
            let from = ip(&format!("10.0.1.{i}"));
            budget
                .queue(from, t0)
                .try_start(t0)
                .unwrap()
                .settle(false, t0);
        }
        let mut fresh = budget.queue(ip("10.0.2.1"), t0);
        assert_eq!(
            fresh.try_start(t0).err(),
            Some(Wait {
                cause: WaitCause::TrackerSpent,
                retry_in: Duration::from_secs(2)
            })
        );
        assert!(fresh.try_start(t0 + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_idle_records_are_forgotten() {
        let t0 = Instant::now();
        let limits = GuessLimits {
            tracker: Allowance {
                burst: 2000,
                per_minute: 100,
            },
            ..small_limits()
        };
        let budget = Arc::new(GuessBudget::new(limits, t0));
        for _ in 0..3 {
            let mut check = budget.queue(ip("2001:db8:1:2::1"), t0);
            check.try_start(t0).unwrap().settle(false, t0);
        }
        assert!(
            budget
                .queue(ip("2001:db8:1:2:ffff::9"), t0)
                .try_start(t0)
                .is_err()
        );
        assert!(
            budget
                .queue(ip("2001:db8:1:3::1"), t0)
                .try_start(t0)
                .is_ok()
        );
        // IPv4 mapped into IPv6 is the IPv4 address.
        for _ in 0..3 {
            budget
                .queue(ip("10.9.9.9"), t0)
                .try_start(t0)
                .unwrap()
                .settle(false, t0);
        }
        assert!(
            budget
                .queue(ip("::ffff:10.9.9.9"), t0)
                .try_start(t0)
                .is_err()
        );
        // Right passwords leave no record behind.
        budget
            .queue(ip("10.0.0.1"), t0)
            .try_start(t0)
            .unwrap()
            .settle(true, t0);
        assert_eq!(budget.ledger().addresses.len(), 3);
        // Spent allowances are forgotten once earned back, when the map
        // grows.
        for i in 0..(SWEEP_AT as u32) {
            let from = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            budget
                .queue(from, t0)
                .try_start(t0)
                .unwrap()
                .settle(false, t0);
        }
        assert_eq!(budget.ledger().addresses.len(), SWEEP_AT + 3);
        let later = t0 + Duration::from_secs(60);
        let mut last = budget.queue(ip("10.0.0.1"), later);
        assert_eq!(budget.ledger().addresses.len(), 1);
        last.try_start(later).unwrap().settle(true, later);
        drop(last);
        assert_eq!(budget.ledger().addresses.len(), 0);
    }

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let gate = PasswordGate::new("s3cret pass".to_string()).unwrap();
        assert!(gate.verify("s3cret pass".into()).await);
        assert!(!gate.verify("s3cret".into()).await);
        assert!(!gate.verify(String::new()).await);
        // Several checks at once all get their answer, in any order.
        let answers = futures_util::future::join_all(
            ["s3cret pass", "nope", "s3cret pass"].map(|c| gate.verify(c.to_string())),
        )
        .await;
        assert_eq!(answers, [true, false, true]);
        assert!(matches!(
            PasswordGate::new(String::new()),
            Err(PasswordError::Empty)
        ));
    }

    /// A right password is hashed once; then, for `REMEMBER` after the
    /// last login that used it, it is let in from its HMAC. A wrong one is
    /// always hashed, and never remembered.
    #[tokio::test]
    async fn the_right_password_is_remembered_for_a_while() {
        let gate = PasswordGate::new("s3cret pass".to_string()).unwrap();
        assert!(!gate.verify("nope".into()).await);
        assert_eq!(gate.hashed(), 1);
        assert!(gate.verify("s3cret pass".into()).await);
        assert_eq!(gate.hashed(), 2);
        for _ in 0..5 {
            assert!(gate.verify("s3cret pass".into()).await);
        }
        assert!(!gate.verify("s3cret pass ".into()).await);
        assert!(!gate.verify(String::new()).await);
        assert_eq!(gate.hashed(), 4);

        // Forgotten once REMEMBER has passed since the last use (the clock
        // is the argument here; the threads use the real one).
        {
            let queue = &gate.queue;
            let mut q = queue.state.lock().unwrap();
            let used = Instant::now();
            assert!(queue.recalls(&mut q, "s3cret pass", used));
            assert!(queue.recalls(
                &mut q,
                "s3cret pass",
                used + REMEMBER - Duration::from_millis(1)
            ));
            let later = used + REMEMBER * 2 - Duration::from_millis(2);
            assert!(
                queue.recalls(&mut q, "s3cret pass", later),
                "each use extends it"
            );
            assert!(!queue.recalls(&mut q, "s3cret pass", later + REMEMBER));
            assert!(q.remembered.is_none());
        }
        assert!(gate.verify("s3cret pass".into()).await);
        assert_eq!(gate.hashed(), 5);
    }

    /// A storm of right passwords on a fresh gate: only the checks started
    /// before the first one finished are hashed.
    #[tokio::test]
    async fn a_storm_of_right_passwords_is_hashed_once_per_thread() {
        let gate = PasswordGate::new("s3cret pass".to_string()).unwrap();
        let answers =
            futures_util::future::join_all((0..64).map(|_| gate.verify("s3cret pass".to_string())))
                .await;
        assert!(answers.iter().all(|&a| a));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        assert!(
            (1..=threads).contains(&gate.hashed()),
            "{} hashed",
            gate.hashed()
        );
    }

    /// A thread keeps its work area between checks, and gives it back
    /// once the checks stop for `KEEP_WORK_AREA`.
    #[tokio::test]
    async fn work_areas_are_given_back_when_checks_stop() {
        let gate = PasswordGate::new("s3cret pass".to_string()).unwrap();
        assert_eq!(gate.work_areas_held(), 0);
        assert!(gate.verify("s3cret pass".into()).await);
        assert_eq!(gate.work_areas_held(), 1);
        let answers = futures_util::future::join_all(
            ["s3cret pass", "nope", "s3cret pass", "nope"].map(|c| gate.verify(c.to_string())),
        )
        .await;
        assert_eq!(answers, [true, false, true, false]);
        let held = gate.work_areas_held();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!((1..=threads).contains(&held), "{held} areas held");
        let deadline = std::time::Instant::now() + KEEP_WORK_AREA + Duration::from_secs(10);
        while gate.work_areas_held() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} work areas still held",
                gate.work_areas_held()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The next check maps one again (a wrong password: the right one
        // is remembered and needs none).
        assert!(!gate.verify("nope".into()).await);
        assert_eq!(gate.work_areas_held(), 1);
    }

    /// The checking threads run as SCHED_BATCH at nice 10 (not SCHED_IDLE,
    /// which other programs could starve); the thread that made the gate
    /// (standing for the runtime's threads and the hub) keeps the normal
    /// policy and its nice value.
    #[cfg(target_os = "linux")]
    #[test]
    fn check_threads_run_behind_chat_traffic_but_not_idle() {
        let _gate = PasswordGate::new("pw".to_string()).unwrap();
        // (policy, nice); None when the thread is gone (other tests' gates
        // end theirs).
        let priority_of = |task: &std::path::Path| -> Option<(i64, i64)> {
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            // Fields 19 (nice) and 41 (policy), counted after the ")" that
            // ends the name (field 3 is the first).
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
            Some((fields.get(38)?.parse().ok()?, fields.get(16)?.parse().ok()?))
        };
        let wanted = (i64::from(libc::SCHED_BATCH), i64::from(CHECK_NICE));
        // Each thread names itself and sets its priority as it starts.
        let checkers = || -> Vec<(i64, i64)> {
            let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
                return Vec::new();
            };
            tasks
                .filter_map(|t| {
                    let task = t.ok()?.path();
                    let comm = std::fs::read_to_string(task.join("comm")).ok()?;
                    comm.starts_with("password check")
                        .then(|| priority_of(&task))
                        .flatten()
                })
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = checkers();
        while (seen.is_empty() || seen.iter().any(|&p| p != wanted)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            seen = checkers();
        }
        assert!(
            !seen.is_empty() && seen.iter().all(|&p| p == wanted),
            "{seen:?}"
        );
        let task = |id: u32| std::path::PathBuf::from(format!("/proc/self/task/{id}"));
        let me = task(crate::tracker::yielding::current_tid() as u32);
        // The main thread's, normally (SCHED_OTHER, 0). Read from its task
        // entry, not /proc/self/stat, which qemu-user (the aarch64 tests)
        // makes up with zeros for nice.
        let unchanged = priority_of(&task(std::process::id()));
        assert_eq!(unchanged.map(|p| p.0), Some(i64::from(libc::SCHED_OTHER)));
        assert_eq!(priority_of(&me), unchanged);
    }
}
