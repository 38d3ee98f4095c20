//! Retention (`--history-days N`): history older than N days is deleted
//! from the store at start and then every [`PURGE_EVERY`], on the store's
//! thread. The hub only decides when (on its clock, so tests set it) and
//! records what was removed in `chat.log` (`history-purge`) when the
//! store's answer comes back; it never waits for the purge.
//!
//! `chat.log` itself is not touched: it is the record of what happened
//! (`--log-rotate` and the operator's own housekeeping govern it).

use super::chat::Chat;
use super::rooms_keep::StoreJob;

/// How often history is purged after the first purge at start.
pub const PURGE_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);
/// The longest retention accepted (`--history-days`), a century.
pub const MAX_DAYS: u32 = 36_500;

/// Whether history is purged, and when next.
#[derive(Default)]
pub struct Retention {
    /// Days history is kept; `None`: all of it.
    days: Option<u32>,
    /// When the next purge is due; `None`: at the next chance (start).
    next: Option<jiff::Timestamp>,
}

impl Chat {
    /// Keeps history for `days` days (0: all of it).
    pub fn enable_retention(&mut self, days: u32) {
        self.retention.days = (days > 0).then_some(days.min(MAX_DAYS));
        self.retention.next = None;
    }

    /// Asks the store for a purge if one is due (cheap otherwise): called
    /// at start and after every batch.
    pub fn purge_if_due(&mut self) {
        let Some(days) = self.retention.days else {
            return;
        };
        if !self.history.on {
            return;
        }
        let now = self.clock.wall;
        if self.retention.next.is_some_and(|due| now < due) {
            return;
        }
        self.retention.next = now.checked_add(PURGE_EVERY).ok();
        let keep = jiff::SignedDuration::from_hours(24 * i64::from(days));
        let before = now
            .checked_sub(keep)
            .unwrap_or(jiff::Timestamp::MIN)
            .as_millisecond();
        self.keep.jobs.push(StoreJob::Purge {
            before_ms: before,
            days,
        });
    }

    /// The store purged history older than `before_ms`: recorded in
    /// `chat.log` when it removed something, and said in the diagnostics.
    pub fn history_purged(&mut self, before_ms: i64, days: u32, removed: Result<usize, String>) {
        let before = jiff::Timestamp::from_millisecond(before_ms).unwrap_or(jiff::Timestamp::MIN);
        let before = super::super::transcript::timestamp(before);
        match removed {
            Ok(0) => tracing::info!(
                "history: nothing older than {before} to purge (--history-days {days})"
            ),
            Ok(n) => {
                tracing::info!(
                    "history: purged {n} message(s) older than {before} (--history-days {days})"
                );
                self.record(
                    "history-purge",
                    &format!("{n} message(s) older than {before} (history-days {days})"),
                );
            }
            Err(e) => tracing::error!(
                "history: cannot purge messages older than {before}: {e}; trying again in an hour"
            ),
        }
    }
}
