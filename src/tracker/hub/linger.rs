//! How long the hub waits after a busy batch before taking the next.
//!
//! Waiting lets more arrive for each connection, so each `send()` carries
//! more: at high rates that is most of what the tracker's CPU goes to
//! (B9 at 1 ms: 3.7 us a delivery; never waiting: 4.3, the hub's core 85
//! to 88% busy instead of 75). But the wait is latency every delivery
//! pays, and where the CPU is to spare it buys nothing: B1 at 0.6M
//! deliveries a second (the tracker at 30% of its core) had a p99 of
//! about 2.1 ms with 1 ms waits, 1.45 ms with 0.5 ms, 1.3 ms with 0.25 ms.
//! So the wait follows the CPU use, looked at every [`LOOK_EVERY`]:
//! halved (down to [`SHORTEST`]) while the hub's thread uses under
//! [`SHORTER_UNDER`] of a core and the whole process under
//! [`PROCESS_SHORTER_UNDER`] of the CPUs it may run on; doubled (up to
//! [`LONGEST`]) from [`LONGER_FROM`] of the hub's, or from
//! [`PROCESS_LONGER_FROM`] of the process's. The gaps keep it from
//! switching on every look. The process counts because the hub is not
//! always the one that writes: over TLS each connection's task encrypts
//! and writes its own deliveries, and with the hub's thread alone looked
//! at, B1 over TLS at 1.2M went to the shortest wait, 6 messages a write
//! instead of 15, and 98% of its core instead of 61% (the suite at
//! `0c0d39b`). Time is an argument: tests give the CPU and wall time.

use std::time::Duration;

/// The longest wait, and the first: a busy room's deliveries in fewer,
/// larger writes (see `LINGER_FROM` in `hub/mod.rs`).
pub const LONGEST: Duration = Duration::from_millis(1);

/// The shortest: below it the hub's wake-ups cost more than the writes
/// saved (B9 never waiting spent 4.5% of the hub's samples switching).
pub const SHORTEST: Duration = Duration::from_micros(250);

/// How often the hub's CPU use is looked at.
pub const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The hub's share of a core under which its wait is halved.
pub const SHORTER_UNDER: f64 = 0.30;

/// The share from which its wait is doubled.
pub const LONGER_FROM: f64 = 0.45;

/// The whole process's share of the CPUs it may use under which the wait
/// may be halved (B1 at 0.6M, plain TCP: 40% at 0.5 ms, the hub's own
/// thread most of it).
pub const PROCESS_SHORTER_UNDER: f64 = 0.45;

/// The process's share from which the wait is doubled, whatever the hub's
/// own (B1 over TLS at 1.2M: 61% at 1 ms, 98% at 0.25 ms).
pub const PROCESS_LONGER_FROM: f64 = 0.60;

/// The CPU time the hub's thread and the whole process used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuUsed {
    pub hub: Duration,
    pub process: Duration,
}

impl CpuUsed {
    /// What was used between `before` and this reading.
    pub fn since(self, before: CpuUsed) -> CpuUsed {
        CpuUsed {
            hub: self.hub.saturating_sub(before.hub),
            process: self.process.saturating_sub(before.process),
        }
    }
}

/// The hub's wait after a busy batch, from the CPU use.
#[derive(Debug)]
pub struct Linger {
    wait: Duration,
    /// The CPUs the process may run on (its affinity): the process's
    /// share is of all of them.
    cpus: f64,
}

impl Linger {
    /// A linger for a process that may run on `cpus` CPUs.
    pub fn new(cpus: usize) -> Linger {
        Linger {
            wait: LONGEST,
            cpus: cpus.max(1) as f64,
        }
    }

    /// The wait after a busy batch now.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// `used` over `wall` of time: the wait follows.
    pub fn observe(&mut self, used: CpuUsed, wall: Duration) {
        if wall.is_zero() {
            return;
        }
        let wall = wall.as_secs_f64();
        let hub = used.hub.as_secs_f64() / wall;
        let process = used.process.as_secs_f64() / wall / self.cpus;
        if hub >= LONGER_FROM || process >= PROCESS_LONGER_FROM {
            self.wait = (self.wait * 2).min(LONGEST);
        } else if hub < SHORTER_UNDER && process < PROCESS_SHORTER_UNDER {
            self.wait = (self.wait / 2).max(SHORTEST);
        }
    }
}

/// The CPU time the calling thread (the hub's) and the whole process have
/// used (Linux; elsewhere `None`, and the hub keeps the longest wait).
pub fn cpu_used_now() -> Option<CpuUsed> {
    #[cfg(target_os = "linux")]
    {
        use crate::tracker::yielding::CpuClock;
        Some(CpuUsed {
            hub: CpuClock::current().used()?,
            process: CpuClock::process().used()?,
        })
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub's thread at `hub` of a core, the process at `process` of
    /// its CPUs (two here), over one look.
    fn used(hub: f64, process: f64) -> CpuUsed {
        CpuUsed {
            hub: LOOK_EVERY.mul_f64(hub),
            process: LOOK_EVERY.mul_f64(process * 2.0),
        }
    }

    #[test]
    fn the_wait_shortens_while_the_hub_has_cpu_to_spare_and_lengthens_when_it_has_not() {
        let mut l = Linger::new(2);
        assert_eq!(l.wait(), LONGEST, "as busy as it may be, at first");
        l.observe(used(0.20, 0.20), LOOK_EVERY);
        assert_eq!(l.wait(), Duration::from_micros(500));
        l.observe(used(0.29, 0.29), LOOK_EVERY);
        assert_eq!(l.wait(), SHORTEST);
        l.observe(used(0.0, 0.0), LOOK_EVERY);
        assert_eq!(l.wait(), SHORTEST, "never shorter");
        // Between the two thresholds it stays where it is.
        l.observe(used(0.30, 0.30), LOOK_EVERY);
        l.observe(used(0.44, 0.44), LOOK_EVERY);
        assert_eq!(l.wait(), SHORTEST);
        l.observe(used(0.45, 0.45), LOOK_EVERY);
        assert_eq!(l.wait(), Duration::from_micros(500));
        l.observe(used(0.9, 0.9), LOOK_EVERY);
        assert_eq!(l.wait(), LONGEST);
        l.observe(used(1.0, 1.0), LOOK_EVERY);
        assert_eq!(l.wait(), LONGEST, "never longer");
        l.observe(
            CpuUsed {
                hub: Duration::ZERO,
                process: Duration::ZERO,
            },
            Duration::ZERO,
        );
        assert_eq!(l.wait(), LONGEST, "no time passed: nothing learnt");
    }

    /// Over TLS the connections' tasks write: a quiet hub in a busy
    /// process keeps the long wait, and a busy process lengthens it.
    #[test]
    fn the_process_busy_with_writes_the_hub_did_not_make_keeps_the_wait_long() {
        let mut l = Linger::new(2);
        l.observe(used(0.20, PROCESS_SHORTER_UNDER), LOOK_EVERY);
        assert_eq!(l.wait(), LONGEST, "the process is not idle enough");
        l.observe(used(0.20, 0.30), LOOK_EVERY);
        l.observe(used(0.20, 0.30), LOOK_EVERY);
        assert_eq!(l.wait(), SHORTEST);
        l.observe(used(0.20, PROCESS_LONGER_FROM), LOOK_EVERY);
        assert_eq!(l.wait(), Duration::from_micros(500));
        // One CPU to run on: the same time is twice the share.
        let mut one = Linger::new(1);
        one.observe(used(0.20, 0.25), LOOK_EVERY);
        assert_eq!(one.wait(), LONGEST, "50% of its one CPU, in the gap");
        one.observe(used(0.20, 0.10), LOOK_EVERY);
        assert_eq!(one.wait(), Duration::from_micros(500));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_reads_the_cpu_time_it_and_its_process_used() {
        let before = cpu_used_now().unwrap();
        // Any work at all moves a nanosecond clock.
        let moved = (0..1_000_000).any(|_| cpu_used_now().unwrap().hub > before.hub);
        assert!(moved);
        let after = cpu_used_now().unwrap();
        assert!(
            after.process >= after.hub,
            "the process includes the thread"
        );
    }
}
