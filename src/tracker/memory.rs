//! Giving memory back to the system when the tracker goes quiet.
//!
//! Four things kept a tracker that had been busy large long after
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
//!   [`fix_trim_thresholds`] has glibc give it back as it is freed.

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

/// Fixes glibc's mmap and trim thresholds at [`ALLOCATOR_THRESHOLD`]; the
/// tracker calls it once at start, before its threads.
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
/// page of every arena, `malloc_trim(0)`). It walks the arenas, each under
/// its lock, so it runs when things are quiet, never per message.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reorganises the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
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
