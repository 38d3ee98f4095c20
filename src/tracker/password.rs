//! The server password gate: an Argon2id hash, verified off the async threads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::Output;
use argon2::{Argon2, Block};
use thiserror::Error;
use tokio::sync::oneshot;
use zeroize::Zeroize;

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
/// - memory stays at one Argon2 work area per thread, allocated once and
///   reused: allocating 19 MiB per check left glibc's arenas holding
///   150-220 MiB after a few logins;
/// - on Linux the threads run as `SCHED_IDLE`, so on a busy core the
///   chat's tasks and the hub come first and logins take what is left,
///   instead of checks adding tens of milliseconds to every message. The
///   price: while chat traffic fills every core, logins wait (a core the
///   chat leaves idle hashes at full speed).
pub struct PasswordGate {
    checks: std::sync::mpsc::Sender<Check>,
}

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
        let (checks, queue) = std::sync::mpsc::channel::<Check>();
        // One receiver shared by the threads: whichever is free takes the
        // next check. The lock is held only while waiting for one.
        let queue = Arc::new(Mutex::new(queue));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            let (queue, reference) = (queue.clone(), reference.clone());
            std::thread::Builder::new()
                .name(format!("password check {i}"))
                .spawn(move || check_loop(&queue, &reference))
                .map_err(PasswordError::Threads)?;
        }
        Ok(PasswordGate { checks })
    }

    pub async fn verify(&self, candidate: String) -> bool {
        let (reply, answer) = oneshot::channel();
        if let Err(mut unsent) = self.checks.send(Check { candidate, reply }) {
            unsent.0.candidate.zeroize();
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// What a candidate is hashed with and compared to.
struct Reference {
    argon: Argon2<'static>,
    salt: Vec<u8>,
    expected: Output,
}

/// A hashing thread: checks candidates until the gate is dropped.
fn check_loop(queue: &Mutex<std::sync::mpsc::Receiver<Check>>, reference: &Reference) {
    lower_priority();
    // Allocated on the first check, kept for the next ones.
    let mut work: Vec<Block> = Vec::new();
    loop {
        let next = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(Check {
            mut candidate,
            reply,
        }) = next
        else {
            return;
        };
        if work.is_empty() {
            work = vec![Block::new(); reference.argon.params().block_count()];
        }
        let mut out = vec![0u8; reference.expected.len()];
        let ok = reference
            .argon
            .hash_password_into_with_memory(candidate.as_bytes(), &reference.salt, &mut out, &mut work)
            .is_ok()
            // Output compares in constant time.
            && Output::try_from(&out[..]).is_ok_and(|o| o == reference.expected);
        candidate.zeroize();
        out.zeroize();
        // What Argon2 left in its work area derives from the candidate.
        work.fill(Block::new());
        let _ = reply.send(ok);
    }
}

/// Puts the calling hashing thread behind chat traffic. On Linux the
/// policy is per thread: `SCHED_IDLE`, so a runtime or hub thread that
/// wakes takes the CPU at once instead of waiting out the hash's time
/// slice. Nice 10 (the fallback) still let a login storm add about 6 ms to
/// the chat's p99 when both shared a core (B5 in BENCHMARKS.md). An idle
/// core still hashes at full speed; under full chat load logins slow
/// down, which is the order wanted. Elsewhere priority is per process, so
/// nothing is changed there.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param that outlives the call;
        // pid 0 is the calling thread.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
            return;
        }
        let e = std::io::Error::last_os_error();
        tracing::debug!("cannot run the password-check thread as SCHED_IDLE ({e}); trying nice 10");
        if let Err(e) = rustix::process::setpriority_process(None, 10) {
            tracing::debug!("cannot lower the password-check thread's priority: {e}");
        }
    }
}

/// Slows password guessing: each address gets `free` wrong passwords, then
/// every further one locks it out for twice as long as the last (5 s, 10 s,
/// 20 s, ... up to 15 min). A right password clears the record. Other
/// addresses are not affected; IPv6 addresses count per /64, the block one
/// machine usually has.
///
/// A std mutex around a small map: every use is a lookup or an update with
/// no await inside, far cheaper than a task and a channel.
pub struct LoginThrottle {
    records: Mutex<HashMap<IpAddr, Failures>>,
    free: u32,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// First lockout; each next one doubles.
const LOCK_BASE: Duration = Duration::from_secs(5);
const LOCK_MAX: Duration = Duration::from_secs(15 * 60);
/// A record with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// More records than this and the forgettable ones are swept first.
const SWEEP_AT: usize = 10_000;

impl LoginThrottle {
    pub fn new(free: u32) -> Self {
        LoginThrottle {
            records: Mutex::new(HashMap::new()),
            free,
        }
    }

    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut seg = v6.segments();
                    seg[4..].fill(0);
                    IpAddr::V6(seg.into())
                }
            },
        }
    }

    /// `Err(remaining)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(records) = self.records.lock() else {
            return Ok(());
        };
        match records.get(&Self::key(ip)).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong password; returns the lockout it started, if any.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let Ok(mut records) = self.records.lock() else {
            return None;
        };
        if records.len() >= SWEEP_AT {
            records.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        let f = records.entry(Self::key(ip)).or_insert(Failures {
            count: 0,
            locked_until: None,
            last: now,
        });
        if now.duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        if f.count < self.free {
            return None;
        }
        let doublings = (f.count - self.free).min(16);
        let lock = LOCK_BASE.saturating_mul(1 << doublings).min(LOCK_MAX);
        f.locked_until = Some(now + lock);
        Some(lock)
    }

    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut records) = self.records.lock() {
            records.remove(&Self::key(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_locks_one_address_for_growing_times() {
        let t = LoginThrottle::new(5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(t.failed(a, now), None);
            assert_eq!(t.check(a, now), Ok(()));
        }
        assert_eq!(t.failed(a, now), Some(Duration::from_secs(5)));
        assert_eq!(t.check(a, now), Err(Duration::from_secs(5)));
        assert_eq!(t.check(b, now), Ok(()), "other addresses unaffected");
        let later = now + Duration::from_secs(5);
        assert_eq!(t.check(a, later), Ok(()));
        assert_eq!(t.failed(a, later), Some(Duration::from_secs(10)));
        assert_eq!(t.failed(a, later), Some(Duration::from_secs(20)));
        for _ in 0..20 {
            t.failed(a, later);
        }
        assert_eq!(t.check(a, later), Err(LOCK_MAX));
        // Forgotten after an hour without failures; cleared by a success.
        let much_later = later + LOCK_MAX + FORGET_AFTER;
        assert_eq!(t.failed(a, much_later), None);
        t.succeeded(a);
        assert_eq!(t.check(a, much_later), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = LoginThrottle::new(1);
        let now = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_net: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.failed(one, now).is_some());
        assert!(t.check(same_net, now).is_err());
        assert!(t.check(other_net, now).is_ok());
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

    /// The checking threads run as SCHED_IDLE; the thread that made the
    /// gate (standing for the runtime's threads) keeps the normal policy.
    #[cfg(target_os = "linux")]
    #[test]
    fn check_threads_run_behind_chat_traffic() {
        let _gate = PasswordGate::new("pw".to_string()).unwrap();
        // None when the thread is gone (other tests' gates end theirs).
        let policy_of = |task: &std::path::Path| -> Option<i64> {
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            // Field 41 (policy), counted after the ")" that ends the name.
            let after = &stat[stat.rfind(')')? + 2..];
            after.split(' ').nth(38)?.parse().ok()
        };
        let idle = i64::from(libc::SCHED_IDLE);
        // Each thread names itself and sets its policy as it starts.
        let checker_policies = || -> Vec<i64> {
            let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
                return Vec::new();
            };
            tasks
                .filter_map(|t| {
                    let task = t.ok()?.path();
                    let comm = std::fs::read_to_string(task.join("comm")).ok()?;
                    comm.starts_with("password check")
                        .then(|| policy_of(&task))
                        .flatten()
                })
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut policies = checker_policies();
        while (policies.is_empty() || policies.iter().any(|&p| p != idle))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
            policies = checker_policies();
        }
        assert!(
            !policies.is_empty() && policies.iter().all(|&p| p == idle),
            "{policies:?}"
        );
        let me = std::path::PathBuf::from(format!(
            "/proc/self/task/{}",
            rustix::thread::gettid().as_raw_nonzero()
        ));
        assert_eq!(policy_of(&me), Some(i64::from(libc::SCHED_OTHER)));
    }
}
