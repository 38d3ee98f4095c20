//! Who handles a member's line: the runtime worker that read it, or the
//! hub's thread.
//!
//! Handing every line to the hub's thread costs a channel push and, while
//! the hub sleeps, a wake-up and two context switches; on a busy core the
//! hub then waits (`linger.rs`) so that each wake-up carries more, and
//! every delivery pays that wait. Where waiting buys fewer writes (a big
//! room whose members each get thousands of lines a second: B1), that is
//! the right trade. Where it does not (many small rooms, B9: each member
//! gets about 120 lines a second, so a write carries 1.01 lines whether the
//! hub waited or not), the wait and the wake-ups are all cost: B9's p50
//! was 3 ms, InspIRCd's 0.14 ms, at the same CPU.
//!
//! So the hub's state sits behind a lock ([`SharedHub`]) that either side
//! may take for one turn. While the hub's deliveries are sparse per member
//! ([`Handover`]), the worker that read a line takes the lock and handles
//! it at once, as a one-line batch: the same code path (`handle_batch`),
//! with its `chat.log` commit and its direct writes. When the lock is held
//! (the hub's thread or another worker is in a turn), the line is left in
//! a waiting list that the holder handles once its turn is done; a worker
//! never waits for the lock, and never wakes the hub's thread. Where lines
//! are dense, they go to the inbox, and the hub's thread batches them.
//!
//! Order: a connection's lines must be handled in the order it sent them.
//! A line may be handled inline (or left waiting) only while none of the
//! connection's earlier requests waits anywhere (`ConnControl::in_inbox`,
//! counted by the connection's task as it sends and by the hub as it
//! handles), and the waiting list is handled before the inbox. Lines of
//! different members carry no order between them until one is delivered,
//! and a delivery is made inside the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::linger::{self, Linger};
use super::{BATCH, Hub};
use crate::proto::Message;
use crate::tracker::shared::{ConnControl, ConnId, HubRequest};

/// How often the delivery rate is looked at.
pub const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Deliveries a second per member from which lines go to the hub's
/// thread, which then waits after busy batches: at 1,000 a second a 1 ms
/// wait puts about two lines into each write (B1 at 0.6M: 6,000 a
/// member; B3's 2,000-member room at 0.4M: 200; B9: 120).
pub const BATCH_FROM: f64 = 1000.0;

/// Below this rate workers handle lines themselves again; the gap keeps a
/// rate near the threshold from switching on every look.
pub const INLINE_UNDER: f64 = 500.0;

/// A worker's turn that took this long (a disk that stalls a `write()`, a
/// host starved of CPU) sends lines to the hub's thread until a look finds
/// no such turn: a stall must hold up the hub, not the runtime's workers,
/// which read everyone's sockets. B3's turns (a line to 2,000 sockets) take
/// about 5 ms.
pub const SLOW_TURN: Duration = Duration::from_millis(50);

/// Decides from the rate of deliveries per member, and from how long the
/// workers' turns took, whether lines are handled by the worker that read
/// them. Time is an argument: tests give the counts and the durations.
#[derive(Debug)]
pub struct Handover {
    inline: bool,
    /// A slow turn was seen since the last look.
    slow: bool,
}

impl Default for Handover {
    fn default() -> Handover {
        Handover {
            inline: true,
            slow: false,
        }
    }
}

impl Handover {
    /// Whether workers handle lines themselves now.
    pub fn inline(&self) -> bool {
        self.inline
    }

    /// A worker's turn took `took`: a slow one ends inline handling now.
    pub fn turn_took(&mut self, took: Duration) -> bool {
        if took >= SLOW_TURN {
            self.slow = true;
            self.inline = false;
        }
        self.inline
    }

    /// `deliveries` were made to `members` over `wall`: returns whether
    /// workers should handle lines themselves from now on.
    pub fn observe(&mut self, deliveries: u64, members: usize, wall: Duration) -> bool {
        if wall.is_zero() {
            return self.inline;
        }
        let rate = deliveries as f64 / members.max(1) as f64 / wall.as_secs_f64();
        let slow = std::mem::take(&mut self.slow);
        if slow || (self.inline && rate >= BATCH_FROM) {
            self.inline = false;
        } else if !self.inline && rate < INLINE_UNDER {
            self.inline = true;
        }
        self.inline
    }
}

/// The hub's state, shared by the hub's thread and the runtime's workers
/// (see the module's comment). A mutex, not a channel: the point is that
/// the thread which already has the line, and is running, does the work;
/// every turn on either side is one `try_lock` or `lock` and no wake-up.
/// `None` once the hub has finished: its handles (the connections' outboxes)
/// and its store handle must be dropped then, not when the last task ends.
pub struct SharedHub {
    hub: Mutex<Option<Hub>>,
    /// Lines whose worker found the hub taken: whoever holds it handles
    /// them after letting go (`after_turn`), so the worker neither waits nor
    /// wakes the hub's thread. A mutex held for a push or a swap.
    waiting: Mutex<Vec<HubRequest>>,
    /// Set by the hub from [`Handover`] at the end of a turn; read by the
    /// workers before they try the lock.
    inline: AtomicBool,
}

/// A turn's hold on the hub.
pub type HubTurn<'a> = MutexGuard<'a, Option<Hub>>;

impl SharedHub {
    pub fn new(hub: Hub) -> SharedHub {
        SharedHub {
            hub: Mutex::new(Some(hub)),
            waiting: Mutex::new(Vec::new()),
            inline: AtomicBool::new(true),
        }
    }

    /// The hub's thread, waiting as long as a worker's turn lasts. `None`
    /// when a turn panicked (a bug): the hub's state may be half changed,
    /// so the hub ends as if its own thread had panicked.
    pub(super) fn lock(&self) -> Option<HubTurn<'_>> {
        self.hub.lock().ok()
    }

    /// Ends the hub: what it holds is dropped now.
    pub(super) fn end(&self) {
        let hub = match self.hub.lock() {
            Ok(mut turn) => turn.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(hub);
    }

    /// Publishes the hub's choice (see [`Handover`]).
    pub(super) fn set_inline(&self, inline: bool) {
        self.inline.store(inline, Ordering::Relaxed);
    }

    fn waiting(&self) -> MutexGuard<'_, Vec<HubRequest>> {
        // A push or a swap cannot leave the list half changed.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hub's thread: takes the inbox's requests in batches until
    /// shutdown, each batch one turn under the lock. After a busy batch it
    /// waits (`linger.rs`) without the lock.
    pub fn run(&self, mut inbox: mpsc::Receiver<HubRequest>, start_line: String) {
        match self.lock() {
            Some(mut turn) => match turn.as_mut() {
                Some(hub) => hub.begin(&start_line),
                None => return,
            },
            None => return self.end(),
        }
        let mut batch = Vec::with_capacity(BATCH);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut linger = Linger::new(cpus);
        let mut looked = (Instant::now(), linger::cpu_used_now());
        let mut stopped = false;
        while let Some(first) = inbox.blocking_recv() {
            let Some(mut turn) = self.lock() else {
                tracing::error!("a turn of the hub panicked; the hub stops");
                return self.end();
            };
            let Some(hub) = turn.as_mut() else {
                return;
            };
            // Waiting lines first: one was put there only while nothing of
            // its connection's was in the inbox, so it is older than any of
            // that connection's requests here.
            batch.append(&mut self.waiting());
            batch.push(first);
            while batch.len() < BATCH {
                match inbox.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            let busy = hub.handle_batch(&mut batch);
            if hub.chat.stopping {
                stopped = true;
                break;
            }
            self.set_inline(hub.review_handover());
            drop(turn);
            self.after_turn();
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
        // No worker handles a line from here on: `stopping` is set, or the
        // inbox closed, which happens only after every connection ended.
        if let Some(mut turn) = self.lock()
            && let Some(hub) = turn.as_mut()
        {
            hub.finish((!stopped).then_some("hub inbox closed"));
        }
        self.end();
    }

    /// A worker with a registered member's line: handles it now if the
    /// hub's deliveries are sparse and none of this connection's requests
    /// is in the inbox; if another turn holds the hub, leaves it to that
    /// turn. Otherwise hands the line back, for the inbox.
    pub fn try_line(
        &self,
        control: &ConnControl,
        conn: ConnId,
        msg: Message,
    ) -> Result<(), Message> {
        if !self.inline.load(Ordering::Relaxed) || !control.nothing_in_inbox() {
            return Err(msg);
        }
        let mut turn = match self.hub.try_lock() {
            Ok(turn) if turn.is_some() => Some(turn),
            Ok(_) | Err(TryLockError::Poisoned(_)) => return Err(msg),
            Err(TryLockError::WouldBlock) => None,
        };
        // Counted as if sent, since the hub counts it handled: one rule
        // for every way in.
        control.sent_to_hub();
        let line = HubRequest::Line { conn, msg };
        match turn.as_mut().and_then(|t| t.as_mut()) {
            Some(hub) => self.worker_turn(hub, Some(line)),
            None => self.waiting().push(line),
        }
        drop(turn);
        self.after_turn();
        Ok(())
    }

    /// A worker's turn: the waiting lines, then its own, as one batch.
    fn worker_turn(&self, hub: &mut Hub, own: Option<HubRequest>) {
        let mut batch = std::mem::take(&mut hub.inline_batch);
        batch.append(&mut self.waiting());
        batch.extend(own);
        if !batch.is_empty() {
            let began = Instant::now();
            hub.handle_batch(&mut batch);
            hub.handover.turn_took(began.elapsed());
            self.set_inline(hub.review_handover());
        }
        hub.inline_batch = batch;
    }

    /// After a turn lets go of the hub: lines left waiting meanwhile are
    /// handled now, unless another turn has the hub (then that turn's
    /// `after_turn` finds them). A line pushed just after this looked is
    /// taken by its own worker, whose `try_lock` follows the push.
    pub(super) fn after_turn(&self) {
        while !self.waiting().is_empty() {
            let Ok(mut turn) = self.hub.try_lock() else {
                return;
            };
            let Some(hub) = turn.as_mut() else {
                return;
            };
            self.worker_turn(hub, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: Duration = Duration::from_millis(250);

    /// Deliveries over `WALL` at `rate` a second for each of `members`.
    fn at(rate: f64, members: usize) -> u64 {
        (rate * members as f64 * WALL.as_secs_f64()) as u64
    }

    #[test]
    fn lines_go_to_the_hub_from_the_batch_rate_and_come_back_below_the_lower_one() {
        let mut h = Handover::default();
        assert!(h.inline());
        // B9 (1,667 members, 200,000 deliveries a second) and B3 stay inline.
        assert!(h.observe(50_000, 1667, WALL));
        assert!(h.observe(at(200.0, 2000), 2000, WALL));
        assert!(h.observe(at(BATCH_FROM - 1.0, 100), 100, WALL));
        // B1 at 0.6M: 6,000 a member.
        assert!(!h.observe(at(6000.0, 100), 100, WALL));
        // Between the two rates it stays where it is.
        assert!(!h.observe(at(INLINE_UNDER + 10.0, 100), 100, WALL));
        assert!(h.observe(at(INLINE_UNDER - 10.0, 100), 100, WALL));
        assert!(h.observe(at(INLINE_UNDER + 10.0, 100), 100, WALL));
    }

    #[test]
    fn a_slow_turn_sends_lines_to_the_hub_until_a_look_finds_none() {
        let mut h = Handover::default();
        assert!(h.turn_took(SLOW_TURN - Duration::from_millis(1)));
        assert!(!h.turn_took(SLOW_TURN));
        assert!(!h.observe(0, 10, WALL), "the look that saw it");
        assert!(h.observe(0, 10, WALL), "a quiet look after");
    }

    #[test]
    fn no_members_or_no_time_decide_nothing_wrong() {
        let mut h = Handover::default();
        // Nobody there: deliveries to those just gone count against one.
        assert!(!h.observe(at(2000.0, 1), 0, WALL));
        assert!(!h.observe(1_000_000, 10, Duration::ZERO));
        assert!(h.observe(0, 0, WALL));
    }
}
