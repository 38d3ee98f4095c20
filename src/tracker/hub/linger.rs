//! How long the hub waits after a busy batch before taking the next.
//!
//! Waiting lets more arrive for each connection, so each `send()` carries
//! more: at high rates that is most of what the tracker's CPU goes to
//! (B9 at 1 ms: 3.7 us a delivery; never waiting: 4.3, the hub's core 85
//! to 88% busy instead of 75). But the wait is latency every delivery
//! pays, and where the CPU is to spare it buys nothing: B1 at 0.6M
//! deliveries a second (the tracker at 30% of its core) had a p99 of
//! about 2.1 ms with 1 ms waits, 1.45 ms with 0.5 ms, 1.3 ms with 0.25 ms.
//! So the wait follows the hub's own CPU use, looked at every
//! [`LOOK_EVERY`]: halved (down to [`SHORTEST`]) while the hub's thread
//! uses under [`SHORTER_UNDER`] of a core, doubled (up to [`LONGEST`])
//! from [`LONGER_FROM`]. The gap between the two keeps it from switching
//! on every look. Time is an argument: tests give the CPU and wall time.

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

/// The hub's wait after a busy batch, from its CPU use.
#[derive(Debug)]
pub struct Linger {
    wait: Duration,
}

impl Default for Linger {
    fn default() -> Linger {
        Linger { wait: LONGEST }
    }
}

impl Linger {
    /// The wait after a busy batch now.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The hub's thread used `cpu` over `wall` of time: the wait follows.
    pub fn observe(&mut self, cpu: Duration, wall: Duration) {
        if wall.is_zero() {
            return;
        }
        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        if share < SHORTER_UNDER {
            self.wait = (self.wait / 2).max(SHORTEST);
        } else if share >= LONGER_FROM {
            self.wait = (self.wait * 2).min(LONGEST);
        }
    }
}

/// The CPU time the calling thread has used (Linux; elsewhere `None`, and
/// the hub keeps the longest wait).
pub fn own_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    return crate::tracker::yielding::ThreadCpuClock::current().used();
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(p: f64) -> Duration {
        LOOK_EVERY.mul_f64(p)
    }

    #[test]
    fn the_wait_shortens_while_the_hub_has_cpu_to_spare_and_lengthens_when_it_has_not() {
        let mut l = Linger::default();
        assert_eq!(l.wait(), LONGEST, "as busy as it may be, at first");
        l.observe(share(0.20), LOOK_EVERY);
        assert_eq!(l.wait(), Duration::from_micros(500));
        l.observe(share(0.29), LOOK_EVERY);
        assert_eq!(l.wait(), SHORTEST);
        l.observe(share(0.0), LOOK_EVERY);
        assert_eq!(l.wait(), SHORTEST, "never shorter");
        // Between the two thresholds it stays where it is.
        l.observe(share(0.30), LOOK_EVERY);
        l.observe(share(0.44), LOOK_EVERY);
        assert_eq!(l.wait(), SHORTEST);
        l.observe(share(0.45), LOOK_EVERY);
        assert_eq!(l.wait(), Duration::from_micros(500));
        l.observe(share(0.9), LOOK_EVERY);
        assert_eq!(l.wait(), LONGEST);
        l.observe(share(1.0), LOOK_EVERY);
        assert_eq!(l.wait(), LONGEST, "never longer");
        l.observe(Duration::ZERO, Duration::ZERO);
        assert_eq!(l.wait(), LONGEST, "no time passed: nothing learnt");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_reads_the_cpu_time_it_used() {
        let before = own_cpu_time().unwrap();
        // Any work at all moves a nanosecond clock.
        let moved = (0..1_000_000).any(|_| own_cpu_time().unwrap() > before);
        assert!(moved);
    }
}
