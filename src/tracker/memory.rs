//! Giving memory back to the system when the tracker goes quiet.
//!
//! Five things kept a tracker that had been busy large long after
//! (bench/PAST_RESULTS.md, "B4: where an idle tracker's memory went"):
//! - the password checks' Argon2 work areas (19 MiB per checking thread),
//!   kept for the next check. They now live in their own mappings
//!   ([`WorkArea`]), unmapped once the checks stop: a 19 MiB `Vec` freed
//!   through glibc's malloc also raised its mmap threshold to 19 MiB, so
//!   every later allocation below that (the next work area, connection
//!   buffers) came from the heap and stayed there;
//! - what thousands of connections freed: glibc keeps freed memory in its
//!   arenas and returns only the top of each heap, so the holes left by
//!   the members who went stay resident. [`give_back`] asks it to return
//!   every free page (`malloc_trim`), which the tracker does when the
//!   password checks go idle and when many members have left;
//! - the store's SQLite page cache (8 MiB when full), which the store's
//!   thread drops when everyone has gone (`Store::release_memory`, called
//!   from the tracker's leave watch);
//! - the free top of a thread's arena, which `malloc_trim` leaves alone:
//!   [`fix_trim_thresholds`] has glibc give it back as it is freed;
//! - each thread's cache of free chunks (glibc's tcache), which pins the
//!   pages those chunks lie in: the runtime's workers, the hub and the
//!   store's thread empty theirs when asked ([`empty_cache_if_asked`]),
//!   just before the trim, which then also has glibc give back the free
//!   top of each of their arenas.
//!
//! The static Linux build (musl) allocates with mimalloc instead (`lib.rs`):
//! there [`set_up_allocator`] has freed pages purged at once, and the same
//! asks make each thread collect its own heap.

use argon2::Block;

/// An Argon2 work area mapped on its own, so dropping it returns its pages
/// to the system at once, whatever the allocator keeps.
pub struct WorkArea {
    #[cfg(target_os = "linux")]
    blocks: std::ptr::NonNull<Block>,
    #[cfg(target_os = "linux")]
    len: usize,
    #[cfg(not(target_os = "linux"))]
    blocks: Vec<Block>,
}

// SAFETY: the mapping is owned by this value alone (no other pointer to
// it exists), like a Vec's buffer.
#[cfg(target_os = "linux")]
unsafe impl Send for WorkArea {}

impl WorkArea {
    /// `count` zeroed blocks.
    #[cfg(target_os = "linux")]
    pub fn new(count: usize) -> std::io::Result<WorkArea> {
        let bytes = count
            .checked_mul(std::mem::size_of::<Block>())
            .filter(|&b| b > 0)
            .ok_or_else(|| std::io::Error::other("no or too many Argon2 blocks"))?;
        // SAFETY: an anonymous private mapping of `bytes` bytes at an
        // address the kernel picks; no file, no fixed address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // Pages are aligned far beyond a Block's 64 bytes, and anonymous
        // pages start zeroed, which is a valid Block (plain u64s).
        let blocks = std::ptr::NonNull::new(ptr.cast::<Block>())
            .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(WorkArea { blocks, len: count })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new(count: usize) -> std::io::Result<WorkArea> {
        Ok(WorkArea {
            blocks: vec![Block::new(); count],
        })
    }
}

impl AsMut<[Block]> for WorkArea {
    fn as_mut(&mut self) -> &mut [Block] {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `blocks` points to `len` initialised Blocks mapped
            // for as long as `self` lives, and `&mut self` makes this the
            // only reference.
            unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.len) }
        }
        #[cfg(not(target_os = "linux"))]
        {
            &mut self.blocks
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for WorkArea {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of this length, unmapped once.
        unsafe {
            libc::munmap(
                self.blocks.as_ptr().cast(),
                self.len * std::mem::size_of::<Block>(),
            );
        }
    }
}

/// Largest allocation glibc serves from its arenas, and the free space
/// at the top of an arena that it gives back at once.
pub const ALLOCATOR_THRESHOLD: usize = 1 << 20;

/// Sets the allocator up for a server whose crowds come and go; the
/// tracker calls it once at start, before its threads. glibc:
/// [`fix_trim_thresholds`]. mimalloc (the static Linux build, `lib.rs`):
/// freed pages go back to the system at once (`purge_delay` 0, not 1 s).
/// It is also built asking for no transparent huge pages (Cargo.toml's
/// `no_thp`): it commits its arena ahead and asked for huge pages there,
/// so each first touch made 2 MiB resident. With mimalloc's defaults an
/// idle tracker held 33 MiB and, after 10,000 members left, 141 MiB; set
/// up so, about 8 and 11 MiB, against the glibc build's 10 and 12
/// (BENCHMARKS.md, "The released Linux binaries"); glibc never asks for
/// huge pages, and the hosts measured give them only when asked.
pub fn set_up_allocator() {
    fix_trim_thresholds();
    #[cfg(target_env = "musl")]
    {
        // mimalloc's `mi_option_t` value (mimalloc.h, the same in its v2
        // and v3; libmimalloc-sys does not name it).
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        // SAFETY: sets one of the allocator's options.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    }
}

/// Fixes glibc's mmap and trim thresholds at [`ALLOCATOR_THRESHOLD`].
///
/// Why: glibc raises both thresholds as the program frees large blocks
/// (the trim threshold to twice the largest freed, up to 64 MiB), and
/// `malloc_trim` never trims the top of a thread's arena, only free
/// chunks inside it. After a crowd left, what its connections had used
/// sat at the top of a worker's arena: 33 of its 64 MiB stayed resident
/// with 1.6 MiB allocated in the whole process (measured with heaptrack
/// and `/proc/PID/smaps`, 10,000 members gone: RSS 48.4 MiB; with the
/// thresholds fixed, 17.7 MiB). Fixed, an arena gives its top back as it
/// frees, once more than this is free there.
pub fn fix_trim_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; called before
    // the tracker starts its threads.
    unsafe {
        let threshold = ALLOCATOR_THRESHOLD as libc::c_int;
        libc::mallopt(libc::M_MMAP_THRESHOLD, threshold);
        libc::mallopt(libc::M_TRIM_THRESHOLD, threshold);
    }
}

/// Returns the allocator's free memory to the system (glibc: every free
/// page of every arena, `malloc_trim(0)`), after freeing what the threads'
/// caches gave up ([`empty_cache_if_asked`]): returns how many chunks
/// those were. It walks the arenas, each under its lock, so it runs when
/// things are quiet, never per message.
pub fn give_back() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    let freed = {
        let freed = thread_cache::free_taken();
        // SAFETY: malloc_trim only reorganises the allocator's own free lists.
        unsafe {
            libc::malloc_trim(0);
        }
        freed
    };
    #[cfg(target_env = "musl")]
    mimalloc_heaps::collect();
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let freed = 0;
    freed
}

/// Asks every long-lived thread to empty its allocator cache the next time
/// it calls [`empty_cache_if_asked`]; the next [`give_back`] then returns
/// what those caches held.
pub fn ask_threads_to_empty_caches() {
    CACHE_ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Bumped for each request to empty the threads' caches.
static CACHE_ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// The request this thread last answered.
    static ANSWERED_ROUND: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether [`ask_threads_to_empty_caches`] asked since this thread last
/// answered; counts it answered.
fn asked_since_last_answer() -> bool {
    let round = CACHE_ROUND.load(std::sync::atomic::Ordering::Relaxed);
    ANSWERED_ROUND.replace(round) != round
}

/// Empties this thread's allocator cache if [`ask_threads_to_empty_caches`]
/// asked since it last did. Cheap (an atomic load) when not asked, so the
/// runtime's workers call it each time they park; the hub, the store's
/// thread and the accept loop's thread when the leave watch asks them to,
/// and it waits for all three. The
/// password checks' threads do not: they free little (the candidates),
/// and the runtime's blocking threads end when idle, which empties their
/// caches.
///
/// Why: glibc keeps, per thread, up to 7 freed chunks of each small size
/// (tcache). They count as in use, so `malloc_trim` cannot return the
/// pages they lie in, and after a crowd has left they lie all over the
/// memory its connections used: 2.7 MiB stayed resident that way
/// (bench/PAST_RESULTS.md, "What stays after all leave, located").
/// No API empties a thread's cache; taking each chunk out by allocating
/// it does, and [`give_back`] frees them on a thread that ends at once,
/// whose own cache glibc empties as it ends. Where the cache held fewer
/// than 7 of a size, the rest come from the top of the thread's arena
/// and go back there; so each thread also takes a block whose free, last
/// and with the trim threshold at zero, has glibc give that top back.
/// (Emptying without that left 14.1 to 14.5 MiB after 10,000 left, and
/// with it 13.0 to 13.4, against 15.1 to 16.2 before; BENCHMARKS.md.)
pub fn empty_cache_if_asked() {
    if asked_since_last_answer() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        thread_cache::empty();
        #[cfg(target_env = "musl")]
        mimalloc_heaps::collect();
    }
}

/// The static Linux build allocates with mimalloc (`lib.rs`), which keeps
/// freed memory in the heap of the thread that allocated it: a block freed
/// by another thread (a connection's buffers, freed by the hub) rejoins
/// that heap only when its thread next allocates or collects, so an idle
/// runtime worker kept what a crowd had used. Each long-lived thread
/// collects its own heap when asked, as glibc's threads empty their caches.
#[cfg(target_env = "musl")]
mod mimalloc_heaps {
    /// Frees what this thread's heap holds unused and returns its free
    /// pages to the system.
    pub(super) fn collect() {
        // SAFETY: acts on the calling thread's own heap; no pointers given.
        unsafe { libmimalloc_sys::mi_collect(true) }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod thread_cache {
    use std::sync::Mutex;

    /// glibc's defaults: 64 sizes of chunk (32 to 1,040 bytes, 16 apart),
    /// up to 7 of each (`glibc.malloc.tcache_bins`, `tcache_count`).
    pub(super) const SIZES: usize = 64;
    pub(super) const PER_SIZE: usize = 7;
    /// An allocation of this many bytes gets a chunk of the first size
    /// (8 bytes of header, rounded up to 16).
    const SMALLEST_REQUEST: usize = 24;
    /// glibc trims a thread's arena only as a chunk this large or larger
    /// is freed there (`FASTBIN_CONSOLIDATION_THRESHOLD`); `malloc_trim`
    /// never does. Each thread takes one such block with its cache: freed
    /// last, it has glibc trim that arena's free top, where the chunks the
    /// thread took (those not in its cache came from there) went back.
    const TRIM_TRIGGER: usize = 64 * 1024;

    /// What threads took, for [`free_taken`]. A mutex: each thread adds
    /// to it at most once per request, and one trim at a time empties it.
    pub(super) static TAKEN: Mutex<Taken> = Mutex::new(Taken {
        chunks: Vec::new(),
        triggers: Vec::new(),
    });

    /// Addresses, since raw pointers are not `Send`; each from `malloc`.
    pub(super) struct Taken {
        /// What the threads' caches held, and more of each size where
        /// they held fewer than [`PER_SIZE`].
        pub(super) chunks: Vec<usize>,
        /// A [`TRIM_TRIGGER`] block from each thread's arena.
        pub(super) triggers: Vec<usize>,
    }

    /// Takes every chunk this thread's cache holds (see
    /// [`super::empty_cache_if_asked`]).
    pub(super) fn empty() {
        // Allocating a size takes its cached chunks first; once there are
        // none, the rest come from the arena and are freed with them.
        let mut taken = Vec::with_capacity(SIZES * PER_SIZE);
        for size in 0..SIZES {
            for _ in 0..PER_SIZE {
                // SAFETY: a plain allocation, freed in `free_taken`.
                let chunk = unsafe { libc::malloc(SMALLEST_REQUEST + 16 * size) };
                if !chunk.is_null() {
                    taken.push(chunk as usize);
                }
            }
        }
        // SAFETY: as above.
        let trigger = unsafe { libc::malloc(TRIM_TRIGGER) };
        let mut triggers = Vec::from_iter((!trigger.is_null()).then_some(trigger as usize));
        match TAKEN.lock() {
            Ok(mut all) => {
                all.chunks.append(&mut taken);
                all.triggers.append(&mut triggers);
            }
            Err(_) => {
                free(&taken);
                free(&triggers);
            }
        }
    }

    /// Frees what the threads gave up: the chunks on a thread of their
    /// own, since a thread's frees fill its own cache first and glibc
    /// empties a thread's cache into the arenas as the thread ends; then,
    /// with the trim threshold at zero for that moment, the triggers, so
    /// each arena gives back its free top, glibc keeping its top pad
    /// there. Returns how many chunks there were.
    pub(super) fn free_taken() -> usize {
        let Taken { chunks, triggers } = match TAKEN.lock() {
            Ok(mut all) => Taken {
                chunks: std::mem::take(&mut all.chunks),
                triggers: std::mem::take(&mut all.triggers),
            },
            Err(_) => return 0,
        };
        if chunks.is_empty() && triggers.is_empty() {
            return 0;
        }
        std::thread::scope(|scope| {
            let freed = std::thread::Builder::new()
                .name("confab-free".into())
                .spawn_scoped(scope, || free(&chunks));
            if freed.is_err() {
                // No thread: freed here, some into this thread's cache.
                free(&chunks);
            }
        });
        // SAFETY: mallopt only sets the allocator's parameters. While the
        // threshold is zero any thread's large free trims its arena: a
        // few more system calls for a moment, and this runs when quiet.
        unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 0) };
        free(&triggers);
        // SAFETY: as above; back to what `fix_trim_thresholds` set.
        unsafe {
            libc::mallopt(
                libc::M_TRIM_THRESHOLD,
                super::ALLOCATOR_THRESHOLD as libc::c_int,
            )
        };
        chunks.len()
    }

    fn free(chunks: &[usize]) {
        for &chunk in chunks {
            // SAFETY: each address came from `malloc` in `empty_if_asked`
            // and is freed once: `free_taken` took it out of `TAKEN`.
            unsafe { libc::free(chunk as *mut libc::c_void) };
        }
    }
}

/// How often the tracker looks whether members left.
pub const LEAVE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Connections closed since the last trim that are worth one at once.
pub const TRIM_AFTER_LEFT: usize = 256;

/// Decides from the count of open connections, looked at every
/// [`LEAVE_CHECK_EVERY`], when members have left enough to give memory
/// back: at once after [`TRIM_AFTER_LEFT`] closed, and once the count holds
/// still after any fewer closed (so the last to leave are not kept).
/// Never while connections only come, and at most once per look. A trim
/// taken while many were still leaving is taken again once the count
/// holds still: what the hub and the ending tasks free after the count
/// drops (their last deliveries, the maps sized for the crowd) came too
/// late for it. Measured once by hand (2,000 members gone, a trim called
/// with gdb 10 s later) it gave back 13 MiB more; from run to run what
/// stays after all leave varies from 15 to 34 MiB, so the effect of this
/// second trim alone is not established.
#[derive(Debug, Default)]
pub struct LeaveWatch {
    /// Most connections open since the last trim.
    peak: usize,
    /// Connections open at the last look.
    last: usize,
    /// The last trim came while members were leaving.
    again_when_settled: bool,
}

impl LeaveWatch {
    /// `open` connections now: true when it is time to [`give_back`].
    pub fn observe(&mut self, open: usize) -> bool {
        let settled = open == self.last;
        self.last = open;
        self.peak = self.peak.max(open);
        let gone = self.peak - open;
        if gone >= TRIM_AFTER_LEFT {
            self.peak = open;
            self.again_when_settled = true;
            return true;
        }
        if settled && (gone > 0 || self.again_when_settled) {
            self.peak = open;
            self.again_when_settled = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_after_many_leave_and_once_leaving_settles() {
        let mut watch = LeaveWatch::default();
        // Arrivals never trim.
        assert!(!watch.observe(100));
        assert!(!watch.observe(3000));
        assert!(!watch.observe(3000));
        // 2,000 gone at once: trim now, and again once the count holds.
        assert!(watch.observe(1000));
        assert!(watch.observe(1000));
        assert!(!watch.observe(1000));
        // 10 more leave, then the count holds: trim once it holds.
        assert!(!watch.observe(990));
        assert!(watch.observe(990));
        assert!(!watch.observe(990));
        // Leaving steadily, 100 per look: trim each 256 gone, and the rest
        // once it stops.
        let trims: Vec<bool> = [890, 790, 690, 590, 490, 490, 490]
            .iter()
            .map(|&n| watch.observe(n))
            .collect();
        assert_eq!(trims, [false, false, true, false, false, true, false]);
        // All gone at once, the count still falling at the next look: the
        // second trim waits until it holds.
        assert!(!watch.observe(600));
        let trims: Vec<bool> = [0, 0, 0].iter().map(|&n| watch.observe(n)).collect();
        assert_eq!(trims, [true, true, false]);
        assert!(!watch.observe(0) && !watch.observe(10));
        assert!(!watch.observe(5));
        assert!(watch.observe(5));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_thread_empties_its_cache_once_per_request_and_give_back_frees_it() {
        use std::sync::atomic::Ordering;
        let taken = || {
            thread_cache::TAKEN
                .lock()
                .map(|t| (t.chunks.len(), t.triggers.len()))
                .unwrap_or_default()
        };
        // On a thread of its own: no other test's thread shares its cache.
        std::thread::spawn(move || {
            // Catches up with any request made before this thread began.
            empty_cache_if_asked();
            let before = taken();
            empty_cache_if_asked();
            assert_eq!(taken(), before, "not asked: nothing taken");
            let round = CACHE_ROUND.load(Ordering::Relaxed);
            ask_threads_to_empty_caches();
            assert_eq!(CACHE_ROUND.load(Ordering::Relaxed), round + 1);
            empty_cache_if_asked();
            let emptied = (
                before.0 + thread_cache::SIZES * thread_cache::PER_SIZE,
                before.1 + 1,
            );
            assert_eq!(taken(), emptied, "every size, 7 of each, and a trigger");
            empty_cache_if_asked();
            assert_eq!(taken(), emptied, "once per request");
        })
        .join()
        .expect("thread");
        give_back();
        assert_eq!(taken(), (0, 0));
    }

    #[test]
    fn a_work_area_is_zeroed_writable_and_sized() {
        let mut area = WorkArea::new(1024).expect("map");
        let blocks = area.as_mut();
        assert_eq!(blocks.len(), 1024);
        assert!(blocks.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
        blocks[1023] = Block::new();
        blocks[0].as_mut()[0] = 7;
        assert_eq!(area.as_mut()[0].as_ref()[0], 7);
        assert!(WorkArea::new(0).is_err());
    }
}
