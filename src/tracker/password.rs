//! The server password gate: an Argon2id hash, verified off the async threads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use thiserror::Error;
use tokio::sync::Semaphore;
use zeroize::Zeroize;

#[derive(Debug, Error)]
pub enum PasswordError {
    #[error("the server password must not be empty")]
    Empty,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Holds only the PHC string of the password's Argon2id hash.
pub struct PasswordGate {
    phc: String,
    /// Each check costs tens of milliseconds of CPU and ~19 MiB of memory, so
    /// checks run on the blocking pool, at most one per core at a time: a
    /// login storm queues here instead of starving the chat or the memory.
    permits: Arc<Semaphore>,
}

impl PasswordGate {
    /// Hashes `plaintext` and wipes it.
    pub fn new(mut plaintext: String) -> Result<Self, PasswordError> {
        if plaintext.is_empty() {
            return Err(PasswordError::Empty);
        }
        let phc = Argon2::default()
            .hash_password(plaintext.as_bytes())
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .to_string();
        plaintext.zeroize();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(PasswordGate {
            phc,
            permits: Arc::new(Semaphore::new(cores)),
        })
    }

    pub async fn verify(&self, mut candidate: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let phc = self.phc.clone();
        tokio::task::spawn_blocking(move || {
            let ok = PasswordHash::new(&phc)
                .map(|hash| {
                    Argon2::default()
                        .verify_password(candidate.as_bytes(), &hash)
                        .is_ok()
                })
                .unwrap_or(false);
            candidate.zeroize();
            ok
        })
        .await
        .unwrap_or(false)
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
        assert!(gate.phc.starts_with("$argon2id$"));
        assert!(gate.verify("s3cret pass".into()).await);
        assert!(!gate.verify("s3cret".into()).await);
        assert!(!gate.verify(String::new()).await);
        assert!(matches!(
            PasswordGate::new(String::new()),
            Err(PasswordError::Empty)
        ));
    }
}
