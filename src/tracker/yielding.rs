//! The runtime's workers yield to the hub while the hub is busy.
//!
//! Every line a member sends is read by a runtime worker and handed to the
//! hub's thread, which delivers it. On a core shared by both (a small
//! host, or the benchmarks' pinned server), a worker woken by incoming
//! bytes preempts the hub in the middle of its deliveries, and each such
//! wake is two context switches that carry little work. Perf on B9 (200
//! rooms of 25): 14% of the tracker's samples in `finish_task_switch`,
//! more than half of it the hub preempted on its way out of `send()`.
//!
//! Run as `SCHED_BATCH`, a woken thread never preempts the one running;
//! it waits for the hub to finish its batch and then reads all that came
//! meanwhile. Measured (bench/PAST_RESULTS.md, "After the run, second
//! sitting"): B9's p99 and CPU a delivery drop, B1's p99 at 2.0M too, B2
//! is unchanged. But with another program busy on the same core, a quiet
//! tracker's p50 grew from 0.41 to 0.70 ms, since the workers then wait
//! for that program's time slice as well. So the workers are `SCHED_BATCH`
//! only while the hub is busy: [`Governor`] watches the share of a core
//! the hub's thread uses, on a wall clock, and switches with hysteresis.
//!
//! Linux only (elsewhere priority is per process and nothing is changed).

use std::sync::Mutex;
use std::time::Duration;

/// How often the hub's CPU use is looked at.
pub const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The hub's share of a core from which the workers yield to it: at 25%
/// it delivers about 0.5M lines a second in B1 (at 2.0M it uses 35 to 40%;
/// a quiet classroom, under 1%).
pub const YIELD_FROM: f64 = 0.25;

/// Below this share the workers go back to preempting as usual; the gap
/// keeps a hub near the threshold from switching on every look.
pub const YIELD_UNTIL: f64 = 0.10;

/// Decides from the hub's CPU use when the workers yield to it.
#[derive(Debug, Default)]
pub struct Governor {
    yielding: bool,
}

impl Governor {
    /// The hub used `cpu` of its thread's time over `wall`: `Some(true)`
    /// when the workers should start yielding, `Some(false)` when they
    /// should stop, `None` to leave them as they are.
    pub fn observe(&mut self, cpu: Duration, wall: Duration) -> Option<bool> {
        if wall.is_zero() {
            return None;
        }
        let share = cpu.as_secs_f64() / wall.as_secs_f64();
        let want = if self.yielding {
            share >= YIELD_UNTIL
        } else {
            share >= YIELD_FROM
        };
        if want == self.yielding {
            return None;
        }
        self.yielding = want;
        Some(want)
    }
}

/// The runtime's threads, by kernel thread id. A registry, not a channel:
/// tokio's thread start and stop hooks run on those threads, outside any
/// task, and the binary builds its runtime before `run` exists; a mutex
/// held for a push or a copy is all they need.
static RUNTIME_THREADS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// The calling thread's id, as the scheduler knows it.
#[cfg(target_os = "linux")]
pub(crate) fn current_tid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// Elsewhere nothing is scheduled by thread.
#[cfg(not(target_os = "linux"))]
pub(crate) fn current_tid() -> i32 {
    0
}

/// For the runtime's `on_thread_start`: this thread may be asked to yield.
pub fn register_current_thread() {
    #[cfg(target_os = "linux")]
    if let Ok(mut tids) = RUNTIME_THREADS.lock() {
        tids.push(current_tid());
    }
}

/// For the runtime's `on_thread_stop`: its id may soon name another thread.
pub fn deregister_current_thread() {
    #[cfg(target_os = "linux")]
    if let Ok(mut tids) = RUNTIME_THREADS.lock() {
        let me = current_tid();
        tids.retain(|&t| t != me);
    }
}

/// Switches every registered runtime thread to `SCHED_BATCH` (`yielding`)
/// or back to `SCHED_OTHER`, holding the registry so that none stops and
/// lends its id to another thread meanwhile.
pub fn set_runtime_threads_yielding(yielding: bool) {
    if let Ok(tids) = RUNTIME_THREADS.lock() {
        for &tid in tids.iter() {
            set_yielding(tid, yielding);
        }
    }
}

/// Switches thread `tid` of this process.
pub fn set_yielding(tid: i32, yielding: bool) {
    #[cfg(target_os = "linux")]
    {
        let policy = if yielding {
            libc::SCHED_BATCH
        } else {
            libc::SCHED_OTHER
        };
        // A stale id fails with ESRCH.
        if let Err(e) = set_policy(tid, policy) {
            tracing::debug!(tid, "cannot change a runtime thread's policy: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (tid, yielding);
}

/// Sets the scheduling policy of thread `tid` of this process (0: the
/// calling thread) at priority 0, which `SCHED_OTHER`, `SCHED_BATCH` and
/// `SCHED_IDLE` all require.
///
/// The system call itself, not libc's wrapper: Linux sets a policy per
/// thread, and musl (the released Linux binaries) refuses the wrapper
/// with ENOSYS because POSIX means it per process, so there the password
/// checks ran at the chat's policy and the runtime never yielded.
#[cfg(target_os = "linux")]
pub fn set_policy(tid: i32, policy: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `sched_param` is plain integers, so all zeros is a valid one
    // (priority 0). Zeroed, not built field by field: musl's has fields
    // that glibc's lacks.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    // SAFETY: `param` outlives the call; the kernel checks `tid` and
    // `policy`.
    let done = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            libc::c_long::from(tid),
            libc::c_long::from(policy),
            &param as *const libc::sched_param,
        )
    };
    if done != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The scheduling policy of thread `tid` (0: the calling thread), by the
/// system call for the reason [`set_policy`] gives. For tests.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn policy_of(tid: i32) -> std::io::Result<libc::c_int> {
    // SAFETY: reads a policy; the kernel checks `tid`.
    let policy = unsafe { libc::syscall(libc::SYS_sched_getscheduler, libc::c_long::from(tid)) };
    libc::c_int::try_from(policy)
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(std::io::Error::last_os_error)
}

/// Watches the hub's thread (`hub`) from a task on `tasks` until `stop`
/// or the hub ends, switching the runtime's threads as [`Governor`]
/// decides, and back to normal at the end.
pub fn watch_hub<T>(
    hub: &std::thread::JoinHandle<T>,
    tasks: &tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
) {
    #[cfg(target_os = "linux")]
    {
        let Some(clock) = CpuClock::of(hub) else {
            return;
        };
        tasks.spawn(async move {
            let mut governor = Governor::default();
            let mut interval = tokio::time::interval(LOOK_EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // From now: the hub's start (opening the store, the first
            // lines) is no sign of a busy hub.
            let mut last = (std::time::Instant::now(), clock.used().unwrap_or_default());
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = interval.tick() => {
                        // None once the hub has ended.
                        let Some(used) = clock.used() else { break };
                        let now = std::time::Instant::now();
                        let change = governor.observe(
                            used.saturating_sub(last.1),
                            now.duration_since(last.0),
                        );
                        last = (now, used);
                        if let Some(yielding) = change {
                            tracing::debug!(yielding, "the runtime's workers yield to a busy hub");
                            set_runtime_threads_yielding(yielding);
                        }
                    }
                }
            }
            set_runtime_threads_yielding(false);
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (hub, tasks, stop);
}

/// The CPU time a thread (or the whole process) has used so far.
#[cfg(target_os = "linux")]
pub struct CpuClock(libc::clockid_t);

#[cfg(target_os = "linux")]
impl CpuClock {
    /// The clock of `thread`, which must still be running.
    pub fn of<T>(thread: &std::thread::JoinHandle<T>) -> Option<CpuClock> {
        use std::os::unix::thread::JoinHandleExt;
        // std's raw handle is an integer; the libc crate's `pthread_t` is
        // one on glibc and a pointer on musl (the released Linux binaries).
        #[allow(clippy::unnecessary_cast)]
        let thread = thread.as_pthread_t() as libc::pthread_t;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `thread` comes from a live JoinHandle; `clock` is written.
        (unsafe { libc::pthread_getcpuclockid(thread, &mut clock) } == 0).then_some(CpuClock(clock))
    }

    /// The clock of whichever thread reads it.
    pub fn current() -> CpuClock {
        CpuClock(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    /// The clock of the whole process: every thread's time together.
    pub fn process() -> CpuClock {
        CpuClock(libc::CLOCK_PROCESS_CPUTIME_ID)
    }

    /// None once the thread has ended.
    pub fn used(&self) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec written by the call.
        if unsafe { libc::clock_gettime(self.0, &mut ts) } != 0 {
            return None;
        }
        Some(Duration::new(
            u64::try_from(ts.tv_sec).ok()?,
            u32::try_from(ts.tv_nsec).ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOK: Duration = LOOK_EVERY;

    fn share(p: f64) -> Duration {
        LOOK.mul_f64(p)
    }

    #[test]
    fn workers_yield_from_a_quarter_of_a_core_until_a_tenth() {
        let mut g = Governor::default();
        assert_eq!(g.observe(share(0.0), LOOK), None);
        assert_eq!(g.observe(share(0.24), LOOK), None);
        assert_eq!(g.observe(share(0.25), LOOK), Some(true));
        assert_eq!(g.observe(share(0.9), LOOK), None);
        // Between the two: stays as it is, either way.
        assert_eq!(g.observe(share(0.15), LOOK), None);
        assert_eq!(g.observe(share(0.10), LOOK), None);
        assert_eq!(g.observe(share(0.09), LOOK), Some(false));
        assert_eq!(g.observe(share(0.15), LOOK), None);
        assert_eq!(g.observe(share(0.5), LOOK), Some(true));
        // A look with no time passed decides nothing.
        assert_eq!(g.observe(share(0.0), Duration::ZERO), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_is_switched_to_batch_and_back_and_its_cpu_time_read() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = tid_tx.send(current_tid());
            // Busy for a moment, so its clock moves.
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(20) {
                std::hint::black_box(0u64);
            }
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().expect("tid");
        let policy = || policy_of(tid).expect("policy");
        assert_eq!(policy(), libc::SCHED_OTHER);
        set_yielding(tid, true);
        assert_eq!(policy(), libc::SCHED_BATCH);
        set_yielding(tid, false);
        assert_eq!(policy(), libc::SCHED_OTHER);
        let clock = CpuClock::of(&thread).expect("clock");
        let mut used = clock.used().expect("used");
        while used < Duration::from_millis(5) {
            std::thread::sleep(Duration::from_millis(1));
            used = clock.used().expect("used");
        }
        assert!(used < Duration::from_secs(5), "{used:?}");
        drop(done_tx);
        thread.join().expect("join");
    }
}
