//! `memcpy` and `memmove` for the static x86_64 Linux build.
//!
//! Why: the released Linux binaries link musl, whose x86_64 `memcpy` is a
//! `rep movsq` after a byte loop that aligns the destination, and a byte
//! loop for the tail. For the lines a chat server copies (a message of
//! 100 to 600 bytes into each recipient's buffer, a line into the store)
//! that start-up dominates: in B1 at 2.0M deliveries/s `memcpy` was 22.7%
//! of the musl tracker's CPU, against 3.5% for glibc's `memmove` in the
//! glibc build (BENCHMARKS.md, "The released Linux binaries"). Every copy
//! in the program goes through these two symbols (Rust's, and the C of
//! SQLite, ring and mimalloc), so defining them here replaces musl's for
//! all of it; glibc's and macOS's own are fast and stay. The aarch64
//! build keeps musl's, which there is an optimized copy of Arm's.
//!
//! How: sizes up to 128 bytes are copied with at most eight 16-byte
//! moves (or two of 8, 4 or 1 bytes), every load before any store, so an
//! overlap needs no care; longer ones in 64-byte steps with aligned
//! stores, forwards or backwards as an overlap requires, the unaligned
//! ends loaded first and stored last. SSE2 only, which every x86_64 CPU
//! has. The same functions are compiled (under their Rust names) and
//! tested on every x86_64 build; only the optimized musl one exports them.
//!
//! Only optimized: compiled so, `memcpy` uses no stack, no thread-local
//! and calls nothing, as musl's own; unoptimized it has a stack frame and
//! calls the SSE2 intrinsics. That matters where musl copies on a stack
//! of its own: `posix_spawn` (which `std::process::Command` uses) runs the
//! child on a 5 KiB stack in the parent's memory, and its `execvp` fills
//! most of it with a path buffer before a `memcpy`. The debug test build
//! overflowed it there (a test spawning a process crashed the parent).
//!
//! LLVM turns a copying loop into a call to `memcpy` except inside a
//! function of that name, so the loops live in these two functions'
//! bodies (the helpers are always inlined), and their stores, 16 bytes
//! with a 64-byte stride, do not look like such a loop anyway.

use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_store_si128, _mm_storeu_si128};

/// Copies `len` bytes from `src` to `dest`; the two may overlap.
///
/// # Safety
/// As C's `memmove`: both ranges valid for `len` bytes.
#[cfg_attr(all(target_env = "musl", not(debug_assertions)), unsafe(no_mangle))]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, len: usize) -> *mut u8 {
    // SAFETY: `memcpy` below handles overlapping ranges.
    unsafe { memcpy(dest, src, len) }
}

/// Copies `len` bytes from `src` to `dest`. Overlapping ranges are copied
/// correctly too (C only promises that of `memmove`).
///
/// # Safety
/// As C's `memcpy`: both ranges valid for `len` bytes.
#[cfg_attr(all(target_env = "musl", not(debug_assertions)), unsafe(no_mangle))]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, len: usize) -> *mut u8 {
    // SAFETY (every block below): the caller made `src..src + len` readable
    // and `dest..dest + len` writable; each load and store stays inside
    // them, and stores marked aligned are at a `dest + i` made a multiple
    // of 16 first.
    unsafe {
        match len {
            0 => {}
            1..=3 => {
                let (a, b, c) = (*src, *src.add(len / 2), *src.add(len - 1));
                *dest = a;
                *dest.add(len / 2) = b;
                *dest.add(len - 1) = c;
            }
            4..=7 => {
                let (a, b) = (load::<u32>(src, 0), load::<u32>(src, len - 4));
                store(dest, 0, a);
                store(dest, len - 4, b);
            }
            8..=16 => {
                let (a, b) = (load::<u64>(src, 0), load::<u64>(src, len - 8));
                store(dest, 0, a);
                store(dest, len - 8, b);
            }
            17..=32 => {
                let (a, b) = (load16(src, 0), load16(src, len - 16));
                store16(dest, 0, a);
                store16(dest, len - 16, b);
            }
            33..=64 => {
                let head = [load16(src, 0), load16(src, 16)];
                let tail = [load16(src, len - 32), load16(src, len - 16)];
                store16(dest, 0, head[0]);
                store16(dest, 16, head[1]);
                store16(dest, len - 32, tail[0]);
                store16(dest, len - 16, tail[1]);
            }
            65..=128 => {
                let head = load64(src, 0);
                let tail = load64(src, len - 64);
                store64(dest, 0, head);
                store64(dest, len - 64, tail);
            }
            // Forwards is safe unless `dest` lies inside the source after
            // its start: then each step would overwrite source bytes a
            // later step still reads.
            _ if dest.addr() <= src.addr() || dest.addr() - src.addr() >= len => {
                let head = load16(src, 0);
                let tail = load64(src, len - 64);
                // The first offset at which `dest` is 16-aligned (1 to 16;
                // `head` covers what comes before it).
                let mut i = 16 - (dest.addr() % 16);
                // Each step stores only below `dest + i + 64 <= dest + len`
                // and, when the ranges overlap with `dest` first, reads
                // `src + i..` after storing only below `dest + i <= src + i`.
                while i < len - 64 {
                    let chunk = load64(src, i);
                    store64_aligned(dest, i, chunk);
                    i += 64;
                }
                store64(dest, len - 64, tail);
                store16(dest, 0, head);
            }
            _ => {
                let head = load64(src, 0);
                let tail = load16(src, len - 16);
                // The last offset at which `dest` is 16-aligned, at most 15
                // before the end (`tail` covers what comes after it).
                let mut end = len - (dest.addr() + len) % 16;
                // Mirror image of the forward case: each step reads
                // `src + end - 64..src + end` after storing only at or
                // above `dest + end > src + end`.
                while end > 64 {
                    let chunk = load64(src, end - 64);
                    store64_aligned(dest, end - 64, chunk);
                    end -= 64;
                }
                store64(dest, 0, head);
                store16(dest, len - 16, tail);
            }
        }
    }
    dest
}

#[inline(always)]
unsafe fn load<T: Copy>(src: *const u8, at: usize) -> T {
    // SAFETY: the caller's.
    unsafe { src.add(at).cast::<T>().read_unaligned() }
}

#[inline(always)]
unsafe fn store<T: Copy>(dest: *mut u8, at: usize, value: T) {
    // SAFETY: the caller's.
    unsafe { dest.add(at).cast::<T>().write_unaligned(value) }
}

#[inline(always)]
unsafe fn load16(src: *const u8, at: usize) -> __m128i {
    // SAFETY: the caller's; an unaligned load.
    unsafe { _mm_loadu_si128(src.add(at).cast()) }
}

#[inline(always)]
unsafe fn store16(dest: *mut u8, at: usize, value: __m128i) {
    // SAFETY: the caller's; an unaligned store.
    unsafe { _mm_storeu_si128(dest.add(at).cast(), value) }
}

#[inline(always)]
unsafe fn load64(src: *const u8, at: usize) -> [__m128i; 4] {
    // SAFETY: the caller's.
    unsafe {
        [
            load16(src, at),
            load16(src, at + 16),
            load16(src, at + 32),
            load16(src, at + 48),
        ]
    }
}

#[inline(always)]
unsafe fn store64(dest: *mut u8, at: usize, value: [__m128i; 4]) {
    // SAFETY: the caller's.
    unsafe {
        store16(dest, at, value[0]);
        store16(dest, at + 16, value[1]);
        store16(dest, at + 32, value[2]);
        store16(dest, at + 48, value[3]);
    }
}

#[inline(always)]
unsafe fn store64_aligned(dest: *mut u8, at: usize, value: [__m128i; 4]) {
    // SAFETY: the caller's, and `dest + at` is 16-aligned.
    unsafe {
        let at = dest.add(at);
        _mm_store_si128(at.cast(), value[0]);
        _mm_store_si128(at.add(16).cast(), value[1]);
        _mm_store_si128(at.add(32).cast(), value[2]);
        _mm_store_si128(at.add(48).cast(), value[3]);
    }
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;

    /// Bytes that differ from their neighbours, so a shifted or skipped
    /// byte shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn copies_every_length_at_every_alignment_and_nothing_around_it() {
        let source = pattern(2048 + 64);
        let lengths = (0..=600).chain([1023, 1024, 1025, 2047, 2048]);
        for len in lengths {
            for src_at in 0..16 {
                for dest_at in [0, 1, 7, 8, 15] {
                    let mut dest = vec![0xA5u8; len + 64];
                    let src = &source[src_at..src_at + len];
                    // SAFETY: both ranges are inside their vectors.
                    let returned = unsafe {
                        super::memcpy(
                            black_box(dest.as_mut_ptr().add(dest_at)),
                            black_box(src.as_ptr()),
                            black_box(len),
                        )
                    };
                    assert_eq!(returned, dest[dest_at..].as_mut_ptr());
                    assert_eq!(
                        &dest[dest_at..dest_at + len],
                        src,
                        "len {len} at {src_at}/{dest_at}"
                    );
                    assert!(
                        dest[..dest_at]
                            .iter()
                            .chain(&dest[dest_at + len..])
                            .all(|&b| b == 0xA5),
                        "len {len}: wrote outside"
                    );
                }
            }
        }
    }

    #[test]
    fn overlapping_copies_match_copy_within_both_ways() {
        let data = pattern(16384);
        let lengths = [
            0, 1, 2, 3, 5, 8, 13, 16, 17, 31, 33, 64, 65, 100, 128, 129, 191, 200, 255, 256, 500,
            1000, 4000,
        ];
        for len in lengths {
            for shift in -300isize..=300 {
                let from = 4000;
                let to = (from as isize + shift) as usize;
                let mut expected = data.clone();
                expected.copy_within(from..from + len, to);
                let mut got = data.clone();
                let base = got.as_mut_ptr();
                // SAFETY: both ranges are inside `got`.
                unsafe {
                    super::memmove(
                        black_box(base.add(to)),
                        black_box(base.add(from)),
                        black_box(len),
                    );
                }
                assert!(got == expected, "len {len}, shift {shift}");
            }
        }
    }

    /// On the optimized x86_64 musl build these are the program's `memcpy`
    /// and `memmove`: what Rust's copies, the C libraries and libc reach
    /// (`cargo test --release --target x86_64-unknown-linux-musl --lib
    /// memcopy`, which `.ci/run` runs).
    #[cfg(all(target_env = "musl", not(debug_assertions)))]
    #[test]
    fn the_static_build_links_these_and_not_musls() {
        assert_eq!(libc::memcpy as *const (), super::memcpy as *const ());
        assert_eq!(libc::memmove as *const (), super::memmove as *const ());
    }

    /// A process started by `PATH` search: musl's `posix_spawn` child runs
    /// `execvp`, which copies each candidate path with `memcpy`, on a small
    /// stack (see the module's notes).
    #[test]
    fn a_process_started_by_path_search_runs() {
        let status = std::process::Command::new("true").status();
        assert!(status.as_ref().is_ok_and(|s| s.success()), "{status:?}");
    }
}
