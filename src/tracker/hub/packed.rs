//! Records of who left (WHOWAS, the console's list of who came and went),
//! kept bounded and packed a chunk of rows to an allocation.
//!
//! Why packed: a record is made as its member leaves, when the memory
//! of everyone leaving with it is being freed. Kept as a few small
//! `String`s each, the records of 2,000 members who left together lie
//! scattered over everything the crowd had used, and a page holding one
//! cannot go back to the system (with the records switched off, 2,000
//! leaving left 14.6 MiB after a trim, against 20.8 with them;
//! bench/PAST_RESULTS.md, "B4 after all leave"). Here a chunk of [`CHUNK`] rows keeps its
//! texts in one `String` and its other fields in one `Vec`, both sized for
//! the whole chunk when it starts: every allocation is a page or more, so
//! the records of 10,000 who left take about 80 allocations, not the 1,400
//! that 64-row chunks with growing texts made, and they pin no pages of the
//! crowd's freed memory beyond their own (B4, 10,000 left: 2.5 MiB of RSS
//! for the console's records with 64-row chunks; bench/PAST_RESULTS.md, "After
//! the run, second sitting").

use std::collections::VecDeque;

/// Rows per chunk: one allocation each for texts and fields, and at most
/// this many rows dropped at the front still held.
pub const CHUNK: usize = 256;

/// Bytes of text reserved per text of a row when a chunk starts (a nick
/// and a quit reason, a realname: most are shorter); a chunk whose texts
/// run longer grows its `String` as usual.
const TEXT_GUESS: usize = 16;

/// At most `KEEP` rows, oldest first, each a `Copy` part and `N` texts.
pub struct PackedRows<R: Copy, const N: usize, const KEEP: usize> {
    chunks: VecDeque<Chunk<R, N>>,
    /// Rows at the front of the first chunk already dropped.
    dropped: usize,
    len: usize,
}

struct Chunk<R, const N: usize> {
    text: String,
    /// Each row's part and where each of its texts ends in `text` (`u32`:
    /// a chunk starts anew before its text would pass 4 GiB).
    rows: Vec<(R, [u32; N])>,
}

impl<R: Copy, const N: usize> Chunk<R, N> {
    fn row(&self, i: usize) -> (R, [&str; N]) {
        let mut from = match i.checked_sub(1) {
            Some(prev) => self.rows[prev].1[N - 1] as usize,
            None => 0,
        };
        let (part, ends) = &self.rows[i];
        let mut texts = [""; N];
        for (text, &to) in texts.iter_mut().zip(ends) {
            let to = to as usize;
            *text = &self.text[from..to];
            from = to;
        }
        (*part, texts)
    }
}

impl<R: Copy, const N: usize, const KEEP: usize> Default for PackedRows<R, N, KEEP> {
    fn default() -> Self {
        PackedRows {
            chunks: VecDeque::new(),
            dropped: 0,
            len: 0,
        }
    }
}

impl<R: Copy, const N: usize, const KEEP: usize> PackedRows<R, N, KEEP> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a row at the end, dropping the oldest when `KEEP` are held.
    pub fn push(&mut self, part: R, texts: [&str; N]) {
        if KEEP == 0 {
            return;
        }
        if self.len == KEEP {
            self.drop_oldest();
        }
        let adding: usize = texts.iter().map(|t| t.len()).sum();
        let full =
            |c: &Chunk<R, N>| c.rows.len() == CHUNK || c.text.len() + adding > u32::MAX as usize;
        if self.chunks.back().is_none_or(full) {
            self.chunks.push_back(Chunk {
                text: String::with_capacity((CHUNK * N * TEXT_GUESS).max(adding)),
                rows: Vec::with_capacity(CHUNK),
            });
        }
        let Some(chunk) = self.chunks.back_mut() else {
            return;
        };
        let mut ends = [0; N];
        for (end, text) in ends.iter_mut().zip(texts) {
            chunk.text.push_str(text);
            // Fits: checked against u32::MAX above.
            *end = chunk.text.len() as u32;
        }
        chunk.rows.push((part, ends));
        self.len += 1;
    }

    fn drop_oldest(&mut self) {
        let Some(front) = self.chunks.front() else {
            return;
        };
        self.dropped += 1;
        self.len -= 1;
        if self.dropped == front.rows.len() {
            self.chunks.pop_front();
            self.dropped = 0;
        }
    }

    /// Every row, oldest first (`.rev()` for newest first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (R, [&str; N])> + '_ {
        self.chunks.iter().enumerate().flat_map(move |(n, chunk)| {
            let first = if n == 0 { self.dropped } else { 0 };
            (first..chunk.rows.len()).map(move |i| chunk.row(i))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_texts_order_and_bound() {
        let mut rows: PackedRows<u32, 2, 600> = PackedRows::default();
        assert!(rows.is_empty());
        for i in 0..900u32 {
            rows.push(
                i,
                [
                    &format!("nick{i}"),
                    if i % 2 == 0 { "" } else { "Quit: é ✓" },
                ],
            );
        }
        assert_eq!(rows.len(), 600);
        let all: Vec<(u32, [&str; 2])> = rows.iter().collect();
        assert_eq!(all.len(), 600);
        assert_eq!(all[0], (300, ["nick300", ""]));
        assert_eq!(all[1], (301, ["nick301", "Quit: é ✓"]));
        assert_eq!(all[599], (899, ["nick899", "Quit: é ✓"]));
        assert!(all.windows(2).all(|w| w[0].0 + 1 == w[1].0));
        let newest: Vec<u32> = rows.iter().rev().take(3).map(|r| r.0).collect();
        assert_eq!(newest, [899, 898, 897]);
        // Whole chunks go once all their rows are dropped: never more than
        // one chunk's worth beyond the bound is held.
        assert!(rows.chunks.len() <= 600 / CHUNK + 2);
    }

    #[test]
    fn nothing_is_kept_when_the_bound_is_zero() {
        let mut rows: PackedRows<(), 1, 0> = PackedRows::default();
        rows.push((), ["x"]);
        assert!(rows.is_empty());
        assert_eq!(rows.iter().count(), 0);
    }

    #[test]
    fn a_bound_of_one_keeps_the_newest() {
        let mut rows: PackedRows<u8, 3, 1> = PackedRows::default();
        rows.push(1, ["a", "b", "c"]);
        rows.push(2, ["", "de", ""]);
        assert_eq!(rows.iter().collect::<Vec<_>>(), [(2, ["", "de", ""])]);
    }
}
