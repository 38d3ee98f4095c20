//! Where a time falls in a history: by a binary search over its places
//! while its times follow them, by reading all of it once a clock stepped
//! back (`history_unordered`, schema migration 4).

use rusqlite::{OptionalExtension, params};

use super::tests_playback::{file_at_version, line};
use super::*;

/// The first place at (or after) `at_ms` as the store found it before
/// migration 4: every line of the history sorted by time, then place.
fn by_sorting(s: &Store, target: &str, at_ms: i64, inclusive: bool) -> i64 {
    let op = if inclusive { ">=" } else { ">" };
    s.conn
        .query_row(
            &format!(
                "SELECT seq FROM history WHERE target = ?1 AND at_ms {op} ?2
                 ORDER BY at_ms, seq LIMIT 1"
            ),
            params![target, at_ms],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
        .unwrap_or(i64::MAX)
}

/// The latest time in `(lo, hi)` at a place after `visible_after`, by
/// reading every line.
fn latest_by_reading(
    s: &Store,
    target: &str,
    (lo, hi): (i64, i64),
    visible_after: i64,
    lines: Lines,
) -> Option<i64> {
    let only = match lines {
        Lines::Messages => "AND command IN ('PRIVMSG', 'NOTICE')",
        Lines::MessagesAndEvents => "",
    };
    s.conn
        .query_row(
            &format!(
                "SELECT max(at_ms) FROM history
                 WHERE target = ?1 AND at_ms > ?2 AND at_ms < ?3 AND seq > ?4 {only}"
            ),
            params![target, lo, hi, visible_after],
            |r| r.get(0),
        )
        .unwrap()
}

fn unordered(s: &Store) -> Vec<String> {
    let mut stmt = s
        .conn
        .prepare("SELECT target FROM history_unordered ORDER BY target")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every answer about `target` that a time gives, against reading all of
/// it, for every time from before its first line to after its last.
fn assert_times_found_as_by_reading(s: &Store, target: &str, what: &str) {
    let (first, last): (i64, i64) = s
        .conn
        .query_row(
            "SELECT min(at_ms), max(at_ms) FROM history WHERE target = ?1",
            [target],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    for t in first - 15..=last + 15 {
        for inclusive in [false, true] {
            assert_eq!(
                s.place_of_time(target, t, inclusive).unwrap(),
                by_sorting(s, target, t, inclusive),
                "{what}: {target} at {t}, inclusive {inclusive}"
            );
        }
        for (lo, visible_after, lines) in [
            (first - 20, 0, Lines::MessagesAndEvents),
            (t - 25, 0, Lines::Messages),
            (first - 20, 7, Lines::Messages),
            (t - 5, 3, Lines::MessagesAndEvents),
        ] {
            assert_eq!(
                s.latest_visible(target, (lo, t), visible_after, lines)
                    .unwrap(),
                latest_by_reading(s, target, (lo, t), visible_after, lines),
                "{what}: {target} in ({lo}, {t}) after {visible_after}, {lines:?}"
            );
        }
    }
}

/// A small fixed generator: the same histories on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn a_time_found_by_search_falls_where_reading_every_line_puts_it() {
    for round in 0..30 {
        let mut rng = Lcg(round);
        let mut s = Store::in_memory().unwrap();
        let len = 1 + rng.below(70) as i64;
        let mut at = 1000;
        let mut other_at = 1003;
        let mut batch = Vec::new();
        for seq in 1..=len {
            // Times repeat (several lines a millisecond) and jump.
            at += [0, 0, 1, 2, 10][rng.below(5) as usize];
            let command = ["PRIVMSG", "NOTICE", "JOIN", "PRIVMSG"][rng.below(4) as usize];
            batch.push(line(seq, at, "#r", command, "x"));
            // Another history in between, its times its own.
            other_at += rng.below(3) as i64;
            batch.push(line(seq, other_at, "#o", "PRIVMSG", "x"));
            if rng.below(8) == 0 {
                s.append(&batch).unwrap();
                batch.clear();
            }
        }
        s.append(&batch).unwrap();
        // Gaps in the places, as a deleted account's lines leave.
        for seq in 1..=len {
            if rng.below(4) == 0 {
                s.conn
                    .execute(
                        "DELETE FROM history WHERE target = '#r' AND seq = ?1",
                        [seq],
                    )
                    .unwrap();
            }
        }
        assert!(unordered(&s).is_empty(), "round {round}");
        if s.last_seqs().unwrap().iter().any(|(t, _)| t == "#r") {
            assert_times_found_as_by_reading(&s, "#r", &format!("round {round}"));
        }
    }
    let empty = Store::in_memory().unwrap();
    assert_eq!(empty.place_of_time("#none", 5, true).unwrap(), i64::MAX);
    assert_eq!(
        empty
            .latest_visible("#none", (0, 10), 0, Lines::Messages)
            .unwrap(),
        None
    );
}

#[test]
fn a_history_whose_clock_stepped_back_is_listed_and_read_whole() {
    let mut s = Store::in_memory().unwrap();
    // Back within one append.
    s.append(&[
        line(1, 100, "#a", "PRIVMSG", "x"),
        line(2, 90, "#a", "PRIVMSG", "x"),
        line(1, 100, "#b", "PRIVMSG", "x"),
    ])
    .unwrap();
    // Back from one append to the next; #c keeps a repeated time (not back).
    s.append(&[
        line(2, 95, "#b", "JOIN", "x"),
        line(1, 50, "#c", "PRIVMSG", "x"),
    ])
    .unwrap();
    s.append(&[line(2, 50, "#c", "PRIVMSG", "x")]).unwrap();
    assert_eq!(unordered(&s), ["#a", "#b"]);
    // A store opened again knows no last place: it reads the neighbours.
    s.last_place.clear();
    s.append(&[
        line(3, 49, "#c", "PRIVMSG", "x"),
        line(1, 7, "#d", "PRIVMSG", "x"),
    ])
    .unwrap();
    assert_eq!(unordered(&s), ["#a", "#b", "#c"]);
    // A line put before the end (a repair): later than the one after it.
    s.append(&[line(3, 30, "#e", "PRIVMSG", "x")]).unwrap();
    s.append(&[line(1, 10, "#e", "PRIVMSG", "x")]).unwrap();
    s.append(&[line(2, 40, "#e", "PRIVMSG", "x")]).unwrap();
    assert_eq!(unordered(&s), ["#a", "#b", "#c", "#e"]);
    for target in ["#a", "#b", "#c", "#d", "#e"] {
        assert_times_found_as_by_reading(&s, target, "stepped back");
    }
    // CHATHISTORY by time in the listed history: the first line by time.
    let page = s
        .history("#a", &HistoryQuery::After(Selector::Timestamp(95)), 10, 0)
        .unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2],
        "from the line at 100 (the first by time after 95) on, in place order"
    );
}

#[test]
fn a_version_3_file_loses_two_indexes_and_lists_the_histories_that_went_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let conn = file_at_version(&path, 3);
        for (target, seq, at_ms) in [
            ("#fine", 1, 10),
            ("#fine", 2, 10),
            ("#fine", 4, 30),
            ("#back", 1, 10),
            ("#back", 2, 40),
            ("#back", 5, 20),
            ("dm:a b", 1, 5),
        ] {
            conn.execute(
                "INSERT INTO history (seq, msgid, at_ms, target, command, source, sender,
                     to_param, text)
                 VALUES (?1, ?2, ?3, ?4, 'PRIVMSG', 'a!a@h', 'a', ?4, 'x')",
                params![seq, format!("{target}{seq}"), at_ms, target],
            )
            .unwrap();
        }
    }
    let (s, was) = Store::open(&path).unwrap();
    assert_eq!((was, s.schema_version().unwrap()), (3, schema::VERSION));
    assert_eq!(unordered(&s), ["#back"]);
    let time_index: i64 = s
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'history_target_time'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(time_index, 0);
    // Migration 5: an index of places per class of line, none of both.
    let mut indexes: Vec<String> = s
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'history'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "history_msgid_target",
            "history_target_events",
            "history_target_messages"
        ]
    );
    for target in ["#fine", "#back", "dm:a b"] {
        assert_times_found_as_by_reading(&s, target, "migrated");
    }
}
