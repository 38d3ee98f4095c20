//! When to try a tracker again after it went away: exponential backoff,
//! capped, with jitter, so a room full of monitors does not knock on a
//! restarted tracker all in the same second. Time and the random draw are
//! arguments, so the schedule is tested without waiting.

use std::time::Duration;

use tokio::time::Instant;

/// The first wait.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two tries.
pub const CAP: Duration = Duration::from_secs(60);
/// A connection that lasted this long was a good one: the next loss
/// starts the schedule again from [`FIRST`].
pub const STABLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Backoff {
    /// Tries since the last good connection.
    failures: u32,
    /// When the current connection came up.
    up_since: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Backoff {
            failures: 0,
            up_since: None,
        }
    }

    /// The tracker answered and logged us in at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// The link went down (or a try failed) at `now`: how long to wait
    /// before the next try. `random` is a draw in `[0, 1)`: the wait is
    /// between half and all of the exponential step (never less than
    /// half, so the cap still spaces tries out).
    pub fn next_delay(&mut self, now: Instant, random: f64) -> Duration {
        if let Some(since) = self.up_since.take()
            && now.saturating_duration_since(since) >= STABLE
        {
            self.failures = 0;
        }
        let step = FIRST
            .checked_mul(1u32 << self.failures.min(16))
            .unwrap_or(CAP)
            .min(CAP);
        self.failures = self.failures.saturating_add(1);
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        step / 2 + step.mul_f64(random / 2.0)
    }
}

/// A draw in `[0, 1)` for the jitter, from the standard library's
/// randomly keyed hasher (no random-number crate needed for this).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_within_the_jitter() {
        let now = Instant::now();
        let mut b = Backoff::new();
        let lows: Vec<u64> = (0..10)
            .map(|_| b.next_delay(now, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(
            lows,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        let mut b = Backoff::new();
        let highs: Vec<u64> = (0..9)
            .map(|_| b.next_delay(now, 0.999_999).as_millis() as u64)
            .collect();
        assert_eq!(
            highs,
            [499, 999, 1999, 3999, 7999, 15999, 31999, 59999, 59999]
        );
        for _ in 0..1000 {
            let d = Backoff::new().next_delay(now, jitter());
            assert!((FIRST / 2..=FIRST).contains(&d), "{d:?}");
        }
        assert!(Backoff::new().next_delay(now, f64::NAN) == FIRST / 2);
    }

    #[test]
    fn a_stable_connection_starts_the_schedule_again() {
        let start = Instant::now();
        let mut b = Backoff::new();
        for _ in 0..5 {
            b.next_delay(start, 0.0);
        }
        // Up, then lost again quickly: the tracker is flapping, keep backing off.
        b.connected(start);
        assert_eq!(
            b.next_delay(start + Duration::from_secs(5), 0.0),
            Duration::from_secs(8)
        );
        // Up for a minute: a fresh start.
        b.connected(start);
        assert_eq!(b.next_delay(start + STABLE, 0.0), FIRST / 2);
        assert_eq!(b.next_delay(start + STABLE, 0.0), FIRST);
    }
}
