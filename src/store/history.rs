//! Message history: appending in the hub's order, and the pages that IRCv3
//! `CHATHISTORY` asks for.
//!
//! A message's place is its `seq` in its target's history, given by the
//! hub: the order everyone in the room saw. Time never orders (two messages
//! share a millisecond; a clock stepped back would reorder them); a
//! `timestamp=` reference is turned into a place, the first message of that
//! target sent at or after it, and what a reader may see is given as a
//! place too (the room's `seq` when they joined). Every page is returned in
//! order, whichever way it was read.
//!
//! A room's history holds its events too (JOIN, PART, QUIT, KICK, NICK,
//! TOPIC, MODE: `draft/event-playback`), each at its place between the
//! messages. A page is read with or without them ([`Lines`]); without, its
//! limit counts messages, and the "while you were away" counts never count
//! an event.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Store, StoreError};
use crate::proto::nick::mentions;

/// The history key of the direct conversation between two identities (an
/// account name, or `~` and a casefolded nick for someone without one):
/// the same whichever of the two asks. Neither may contain a space, which
/// nicks and account names never do.
pub fn dm_key(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("dm:{lo} {hi}")
}

/// The `meta` key holding `<at_ms> <msgid>` of the newest message ever
/// appended (see [`Store::last_kept`]).
const LAST_KEPT: &str = "history_last_kept";

/// The `meta` key holding the time before which history was purged
/// (Unix ms).
pub const PURGED_BEFORE: &str = "history_purged_before_ms";

/// Most messages one purge transaction deletes.
pub const PURGE_CHUNK: usize = 5000;

/// The condition that picks messages (not events), written once: the
/// partial index `history_target_messages` is used only by a query whose
/// condition matches its own text.
pub(super) const MESSAGES: &str = "command IN ('PRIVMSG', 'NOTICE')";

/// The condition that picks events, for `history_target_events` likewise.
const EVENTS: &str = "command NOT IN ('PRIVMSG', 'NOTICE')";

/// The rows of `arm` (a query with `{lines}` where a condition on the
/// class of line goes) over the lines `lines` names, as a subquery: for
/// all lines, `arm` for the messages and for the events, each read from
/// its own index, one after the other (no index holds both: each would
/// cost every append; see schema migration 5).
fn from_lines(lines: Lines, arm: &str) -> String {
    let of = |class| arm.replace("{lines}", class);
    match lines {
        Lines::Messages => format!("({})", of(MESSAGES)),
        Lines::MessagesAndEvents => format!(
            "(SELECT * FROM ({}) UNION ALL SELECT * FROM ({}))",
            of(MESSAGES),
            of(EVENTS)
        ),
    }
}

/// Whether `command` is kept as a message (the rest of a history is events).
pub fn is_message(command: &str) -> bool {
    matches!(command, "PRIVMSG" | "NOTICE")
}

/// What a page holds: the messages, or the room's events between them too
/// (for a reader with `draft/event-playback`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    Messages,
    MessagesAndEvents,
}

/// A message or a room event as the hub committed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Its place in `target`'s history: one more than the message before.
    pub seq: i64,
    pub msgid: String,
    pub at_ms: i64,
    /// Whose history it is part of: a casefolded room name, or [`dm_key`].
    pub target: String,
    /// `PRIVMSG` or `NOTICE` (a `/me` is a PRIVMSG with CTCP ACTION), or
    /// the room event's command.
    pub command: String,
    /// The full source, `nick!user@host`, as it was sent.
    pub source: String,
    /// The sender's account, when logged in to one.
    pub sender_account: Option<String>,
    /// The target parameter as sent (`#Room`, or the recipient's nick); for
    /// an event, the room it is kept in, as shown.
    pub to_param: String,
    /// The message's text; for an event, its parameters as they go on the
    /// wire (`#lab bob :too loud`).
    pub text: String,
    /// Client-only tags (`+draft/reply=...`), in IRC tag syntax, or empty.
    pub client_tags: String,
    /// For a direct message: the two people, for `CHATHISTORY TARGETS`.
    pub direct: Option<DirectParties>,
    /// For a direct message to an account that was not connected: deliver
    /// it at that account's next login.
    pub hold_for: Option<String>,
}

/// The two sides of a direct message, as identities (see [`dm_key`]) and as
/// shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectParties {
    pub from: String,
    pub from_shown: String,
    pub to: String,
    pub to_shown: String,
}

/// A message read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub seq: i64,
    pub msgid: String,
    pub at_ms: i64,
    pub target: String,
    pub command: String,
    pub source: String,
    pub sender_account: Option<String>,
    pub to_param: String,
    pub text: String,
    pub client_tags: String,
}

impl StoredMessage {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
        Ok(StoredMessage {
            id: r.get(0)?,
            seq: r.get(1)?,
            msgid: r.get(2)?,
            at_ms: r.get(3)?,
            target: r.get(4)?,
            command: r.get(5)?,
            source: r.get(6)?,
            sender_account: r.get(7)?,
            to_param: r.get(8)?,
            text: r.get(9)?,
            client_tags: r.get(10)?,
        })
    }
}

const COLUMNS: &str =
    "id, seq, msgid, at_ms, target, command, source, sender_account, to_param, text, client_tags";

/// A `CHATHISTORY` reference point: `timestamp=...` or `msgid=...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Unix milliseconds.
    Timestamp(i64),
    MsgId(String),
}

/// The `CHATHISTORY` subcommands that read one target's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The newest messages; with a selector, only those after it.
    Latest(Option<Selector>),
    Before(Selector),
    After(Selector),
    /// Up to half the limit before the reference and the rest from it on
    /// (a msgid reference is itself included).
    Around(Selector),
    /// Between two references, both excluded, read from the first towards
    /// the second.
    Between(Selector, Selector),
}

/// A target with activity in a `CHATHISTORY TARGETS` window: a room or the
/// other side of a direct conversation, as shown, and the time of its
/// latest line there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetActivity {
    pub shown: String,
    pub last_ms: i64,
}

/// A room the asker of `CHATHISTORY TARGETS` is in: its history key, its
/// name as shown, and the place they may read it after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadableRoom {
    pub key: String,
    pub shown: String,
    pub visible_after: i64,
}

/// Someone an identity has a direct conversation with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correspondent {
    pub shown: String,
    pub target: String,
    pub last_ms: i64,
}

impl Store {
    /// Has each append give the CPU to other runnable threads every `rows`
    /// rows (0: never). For the store's own thread, which shares a core
    /// with the chat: one transaction every 100 ms (`APPEND_LINGER`) holds
    /// thousands of rows at high rates and ran for milliseconds at a
    /// stretch, and the chat's tail waited behind it. A yield with nobody
    /// waiting returns at once; the store still gets its fair share, so it
    /// keeps up as before. Measured on B1 at 2.0M deliveries a second, the
    /// tracker alone (`compare.py --no-build --servers tracker --repeat 3
    /// b1 --offered 2000000 --duration 5`, builds interleaved), p99 per
    /// round: 4.86/4.97/4.99 ms without, 3.40/3.56/4.00 and 3.50/3.56/3.57
    /// with 64 rows; with the store's work held back entirely (the upper
    /// bound) 2.75/2.85/3.01. History rows were complete at the end of
    /// every round, in B1 and in B9.
    pub fn yield_every(&mut self, rows: usize) {
        self.yield_rows = rows;
    }

    /// Appends a batch of messages and events in one transaction. A msgid
    /// already stored in its target is skipped (the repair from `chat.log`
    /// may offer a message twice), so appending is idempotent; a `seq`
    /// already taken in its target is an error (two lines claiming one
    /// place). One msgid may be in several targets: a QUIT is kept in each
    /// room that saw it.
    pub fn append<'a>(
        &mut self,
        batch: impl IntoIterator<Item = &'a NewMessage>,
    ) -> Result<usize, StoreError> {
        let appended = self.append_in_one(batch);
        if appended.is_err() {
            // Rolled back: the places noted may not have been kept.
            self.last_place.clear();
        }
        appended
    }

    fn append_in_one<'a>(
        &mut self,
        batch: impl IntoIterator<Item = &'a NewMessage>,
    ) -> Result<usize, StoreError> {
        let yield_rows = self.yield_rows;
        let last_place = &mut self.last_place;
        let tx = self.conn.transaction()?;
        let mut added = 0;
        let mut newest: Option<(&str, i64)> = None;
        {
            // `ON CONFLICT(msgid)`, not `INSERT ... SELECT ... WHERE NOT
            // EXISTS`: a SELECT from the table being inserted into makes
            // SQLite stage each row in a temporary table first, which took
            // half of an append's time (`cargo bench --bench store`).
            let mut insert = tx.prepare_cached(
                "INSERT INTO history (seq, msgid, at_ms, target, command, source, sender,
                     sender_account, to_param, text, client_tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(msgid, target) DO NOTHING",
            )?;
            let mut correspondent = tx.prepare_cached(
                "INSERT INTO correspondents (owner, other, other_shown, target, last_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(owner, other) DO UPDATE SET
                     other_shown = excluded.other_shown,
                     last_ms = max(last_ms, excluded.last_ms)",
            )?;
            let mut hold = tx.prepare_cached(
                "INSERT OR IGNORE INTO pending (account, history_id)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM accounts WHERE name = ?1)",
            )?;
            for m in batch {
                let sender = m.source.split('!').next().unwrap_or(&m.source);
                let n = insert.execute(params![
                    m.seq,
                    m.msgid,
                    m.at_ms,
                    m.target,
                    m.command,
                    m.source,
                    sender,
                    m.sender_account,
                    m.to_param,
                    m.text,
                    m.client_tags,
                ])?;
                if n == 0 {
                    continue;
                }
                added += 1;
                if yield_rows != 0 && added % yield_rows == 0 {
                    std::thread::yield_now();
                }
                let id = tx.last_insert_rowid();
                note_order(&tx, last_place, &m.target, m.seq, m.at_ms)?;
                if let Some(d) = &m.direct {
                    correspondent.execute(params![d.from, d.to, d.to_shown, m.target, m.at_ms])?;
                    correspondent.execute(params![
                        d.to,
                        d.from,
                        d.from_shown,
                        m.target,
                        m.at_ms
                    ])?;
                }
                if let Some(account) = &m.hold_for {
                    hold.execute(params![account, id])?;
                }
                if m.command == "PRIVMSG" || m.command == "NOTICE" {
                    newest = Some((&m.msgid, m.at_ms));
                }
            }
        }
        if let Some((msgid, at_ms)) = newest {
            tx.prepare_cached(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![LAST_KEPT, format!("{at_ms} {msgid}")])?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// The msgid and time of the newest message ever appended, even if it
    /// was deleted since (a purge, an account deleted): where a repair from
    /// `chat.log` starts, so it never brings back what was deleted on
    /// purpose. Falls back to the newest message held (a store written
    /// before this mark was kept).
    pub fn last_kept(&self) -> Result<Option<(String, i64)>, StoreError> {
        if let Some(v) = self.meta(LAST_KEPT)?
            && let Some((at, msgid)) = v.split_once(' ')
            && let Ok(at_ms) = at.parse::<i64>()
        {
            return Ok(Some((msgid.to_string(), at_ms)));
        }
        Ok(self.last_message()?.map(|m| (m.msgid, m.at_ms)))
    }

    /// The newest message stored, if any: where a repair from `chat.log`
    /// starts looking.
    pub fn last_message(&self) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM history WHERE {MESSAGES} ORDER BY id DESC LIMIT 1"),
                [],
                StoredMessage::from_row,
            )
            .optional()?)
    }

    /// Whether a message with this msgid is stored (in any history).
    pub fn has_msgid(&self, msgid: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM history WHERE msgid = ?1")?
            .query_row([msgid], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Each target's last `seq`: where the hub's numbering resumes after a
    /// restart.
    pub fn last_seqs(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT target, max(seq) FROM {} GROUP BY target ORDER BY target",
            from_lines(
                Lines::MessagesAndEvents,
                "SELECT target, max(seq) AS seq FROM history WHERE {lines} GROUP BY target"
            )
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn message_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM history WHERE {MESSAGES}"),
                [],
                |r| r.get::<_, i64>(0),
            )?
            .unsigned_abs())
    }

    fn resolve(&self, target: &str, msgid: &str) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached("SELECT seq FROM history WHERE msgid = ?1 AND target = ?2")?
            .query_row([msgid, target], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::UnknownMsgid(msgid.to_string()))
    }

    /// The last place `target` has, if it has a line.
    fn end_of(&self, target: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT max(seq) FROM {}",
                from_lines(
                    Lines::MessagesAndEvents,
                    "SELECT max(seq) AS seq FROM history WHERE target = ?1 AND {lines}"
                )
            ))?
            .query_row([target], |r| r.get(0))?)
    }

    /// Whether `target`'s times follow its places: true unless the clock
    /// stepped back while it was written (`history_unordered`).
    fn times_in_order(&self, target: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM history_unordered WHERE target = ?1")?
            .query_row([target], |_| Ok(()))
            .optional()?
            .is_none())
    }

    /// The place of the first line of `target` sent at `at_ms` or later
    /// (when `inclusive`) or after it; past the end when there is none.
    pub(super) fn place_of_time(
        &self,
        target: &str,
        at_ms: i64,
        inclusive: bool,
    ) -> Result<i64, StoreError> {
        if self.times_in_order(target)? {
            return self.place_of_time_in_order(target, at_ms, inclusive);
        }
        // A clock stepped back in this history: the first by time, read
        // from all of it.
        let op = if inclusive { ">=" } else { ">" };
        let arm = format!(
            "SELECT seq, at_ms FROM history WHERE target = ?1 AND at_ms {op} ?2 AND {{lines}}"
        );
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT seq FROM {} ORDER BY at_ms, seq LIMIT 1",
                from_lines(Lines::MessagesAndEvents, &arm)
            ))?
            .query_row(params![target, at_ms], |r| r.get(0))
            .optional()?
            .unwrap_or(i64::MAX))
    }

    /// [`Store::place_of_time`] for a history whose times never go back:
    /// a binary search over its places, each step one look-up in
    /// `history_target_seq` (about 40 for a million lines). Places may have
    /// gaps (a deleted account's lines), so each step reads the first line
    /// at or after the middle place.
    fn place_of_time_in_order(
        &self,
        target: &str,
        at_ms: i64,
        inclusive: bool,
    ) -> Result<i64, StoreError> {
        let reached = |t: i64| if inclusive { t >= at_ms } else { t > at_ms };
        let mut first_from = self.conn.prepare_cached(&format!(
            "SELECT seq, at_ms FROM {} ORDER BY seq LIMIT 1",
            from_lines(
                Lines::MessagesAndEvents,
                "SELECT seq, at_ms FROM history WHERE target = ?1 AND seq >= ?2 AND {lines}
                 ORDER BY seq LIMIT 1"
            )
        ))?;
        let mut line_from = |place: i64| -> Result<Option<(i64, i64)>, StoreError> {
            Ok(first_from
                .query_row(params![target, place], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        };
        let Some((first, first_at)) = line_from(i64::MIN)? else {
            return Ok(i64::MAX);
        };
        if reached(first_at) {
            return Ok(first);
        }
        let last = self.end_of(target)?.unwrap_or(first);
        // The first place reached is in `lo..hi`, or is `found`.
        let (mut lo, mut hi, mut found) = (first + 1, last.saturating_add(1), i64::MAX);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match line_from(mid)? {
                Some((seq, at)) if seq < hi => {
                    if reached(at) {
                        (found, hi) = (seq, mid);
                    } else {
                        lo = seq + 1;
                    }
                }
                _ => hi = mid,
            }
        }
        Ok(found)
    }

    /// "After `s`": the place messages must be beyond (exclusive). A
    /// timestamp excludes every message of that millisecond; a msgid
    /// excludes that message.
    fn after(&self, target: &str, s: &Selector) -> Result<i64, StoreError> {
        match s {
            Selector::Timestamp(t) => Ok(self.place_of_time(target, *t, false)?.saturating_sub(1)),
            Selector::MsgId(m) => self.resolve(target, m),
        }
    }

    /// "Before `s`": the place messages must be below (exclusive).
    fn before(&self, target: &str, s: &Selector) -> Result<i64, StoreError> {
        match s {
            Selector::Timestamp(t) => self.place_of_time(target, *t, true),
            Selector::MsgId(m) => self.resolve(target, m),
        }
    }

    /// One page of `target`'s messages, in order, at most `limit`, only
    /// those after the place `visible_after` (what this reader may see: the
    /// room's `seq` when they first joined; 0 for everything).
    pub fn history(
        &self,
        target: &str,
        query: &HistoryQuery,
        limit: usize,
        visible_after: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.history_of(target, query, limit, visible_after, Lines::Messages)
    }

    /// [`Store::history`] of the chosen `lines`: with events, `limit`
    /// counts them too. A reference (msgid or time) may fall on an event
    /// either way; it is a place.
    pub fn history_of(
        &self,
        target: &str,
        query: &HistoryQuery,
        limit: usize,
        visible_after: i64,
        lines: Lines,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let floor = visible_after;
        let up = |lo: i64, hi: i64, limit| self.page(target, lo.max(floor), hi, limit, true, lines);
        let down =
            |lo: i64, hi: i64, limit| self.page(target, lo.max(floor), hi, limit, false, lines);
        match query {
            HistoryQuery::Latest(None) => down(0, i64::MAX, limit),
            HistoryQuery::Latest(Some(s)) => down(self.after(target, s)?, i64::MAX, limit),
            HistoryQuery::Before(s) => down(0, self.before(target, s)?, limit),
            HistoryQuery::After(s) => up(self.after(target, s)?, i64::MAX, limit),
            HistoryQuery::Around(s) => {
                // A msgid reference is itself part of the later half.
                let at = self.before(target, s)?;
                let mut page = down(0, at, limit / 2)?;
                let rest = limit - page.len();
                page.extend(up(at.saturating_sub(1), i64::MAX, rest)?);
                Ok(page)
            }
            HistoryQuery::Between(a, b) => {
                // Read from the first reference towards the second, which
                // may be either older or newer.
                let (a_lo, b_hi) = (self.after(target, a)?, self.before(target, b)?);
                if a_lo < b_hi {
                    up(a_lo, b_hi, limit)
                } else {
                    let (a_hi, b_lo) = (self.before(target, a)?, self.after(target, b)?);
                    down(b_lo, a_hi, limit)
                }
            }
        }
    }

    /// Up to `limit` lines of `target` strictly between the places `lo`
    /// and `hi`: the first ones (`upward`) or the last ones; in order.
    pub(super) fn page(
        &self,
        target: &str,
        lo: i64,
        hi: i64,
        limit: usize,
        upward: bool,
        lines: Lines,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if limit == 0 || lo >= hi {
            return Ok(Vec::new());
        }
        let dir = if upward { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM {} ORDER BY seq {dir} LIMIT ?4",
            from_lines(
                lines,
                &format!(
                    "SELECT {COLUMNS} FROM history
                     WHERE target = ?1 AND seq > ?2 AND seq < ?3 AND {{lines}}
                     ORDER BY seq {dir} LIMIT ?4"
                )
            )
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![target, lo, hi, limit as i64],
            StoredMessage::from_row,
        )?;
        let mut page: Vec<StoredMessage> = rows.collect::<Result<_, _>>()?;
        if !upward {
            page.reverse();
        }
        Ok(page)
    }

    /// How many messages `target` has after the place `after_seq`, and how
    /// many of them mention `nick` as a word: the "while you were away"
    /// line. Messages sent by `nick` itself are not counted, nor events.
    pub fn missed(
        &self,
        target: &str,
        after_seq: i64,
        nick: &str,
    ) -> Result<(u64, u64), StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT text FROM history
             WHERE target = ?1 AND seq > ?2 AND {MESSAGES} AND sender <> ?3 COLLATE NOCASE"
        ))?;
        let mut rows = stmt.query(params![target, after_seq, nick])?;
        let (mut count, mut mentioned) = (0, 0);
        while let Some(r) = rows.next()? {
            count += 1;
            let text: String = r.get(0)?;
            if mentions(&text, nick) {
                mentioned += 1;
            }
        }
        Ok((count, mentioned))
    }

    /// The direct conversations of `owner`, with the time each last moved,
    /// within `(from_ms, to_ms)`, oldest first, at most `limit`.
    pub fn correspondents(
        &self,
        owner: &str,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<Correspondent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT other_shown, target, last_ms FROM correspondents
             WHERE owner = ?1 AND last_ms > ?2 AND last_ms < ?3
             ORDER BY last_ms LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![owner, from_ms, to_ms, limit as i64], |r| {
            Ok(Correspondent {
                shown: r.get(0)?,
                target: r.get(1)?,
                last_ms: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `CHATHISTORY TARGETS`: the rooms in `rooms` and the direct
    /// conversations of `identity` with a line this reader may read sent
    /// strictly between `from_ms` and `to_ms`, each with the time of its
    /// latest such line, oldest first. At most `limit`: the earliest ones
    /// when `from_ms < to_ms`, else the latest ones (the window read
    /// backwards), still oldest first. Rooms count their events only when
    /// `lines` has them; a direct conversation has none.
    pub fn targets(
        &self,
        rooms: &[ReadableRoom],
        identity: &str,
        (from_ms, to_ms): (i64, i64),
        limit: usize,
        lines: Lines,
    ) -> Result<Vec<TargetActivity>, StoreError> {
        let window = (from_ms.min(to_ms), from_ms.max(to_ms));
        let mut found = Vec::new();
        for room in rooms {
            if let Some(last_ms) =
                self.latest_visible(&room.key, window, room.visible_after, lines)?
            {
                found.push(TargetActivity {
                    shown: room.shown.clone(),
                    last_ms,
                });
            }
        }
        // A conversation whose last line came before the window has none
        // in it; the others are asked where their latest one in it falls
        // (their last line may be past the window's end).
        let mut stmt = self.conn.prepare_cached(
            "SELECT other_shown, target FROM correspondents WHERE owner = ?1 AND last_ms > ?2",
        )?;
        let candidates = stmt
            .query_map(params![identity, window.0], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (shown, target) in candidates {
            if let Some(last_ms) = self.latest_visible(&target, window, 0, Lines::Messages)? {
                found.push(TargetActivity { shown, last_ms });
            }
        }
        found.sort_by(|a, b| {
            a.last_ms
                .cmp(&b.last_ms)
                .then_with(|| a.shown.cmp(&b.shown))
        });
        if from_ms > to_ms && found.len() > limit {
            found.drain(..found.len() - limit);
        }
        found.truncate(limit);
        Ok(found)
    }

    /// The time of the latest line of `target` within `(lo, hi)` at a place
    /// after `visible_after`.
    pub(super) fn latest_visible(
        &self,
        target: &str,
        (lo, hi): (i64, i64),
        visible_after: i64,
        lines: Lines,
    ) -> Result<Option<i64>, StoreError> {
        if !self.times_in_order(target)? {
            return Ok(self
                .conn
                .prepare_cached(&format!(
                    "SELECT max(at_ms) FROM {}",
                    from_lines(
                        lines,
                        "SELECT at_ms FROM history
                         WHERE target = ?1 AND seq > ?4 AND at_ms > ?2 AND at_ms < ?3 AND {lines}"
                    )
                ))?
                .query_row(params![target, lo, hi, visible_after], |r| r.get(0))?);
        }
        // The line just before the first one at `hi` or later; then it is
        // in the window if it came after `lo`.
        let end = self.place_of_time_in_order(target, hi, true)?;
        let at: Option<i64> = self
            .conn
            .prepare_cached(&format!(
                "SELECT at_ms FROM {} ORDER BY seq DESC LIMIT 1",
                from_lines(
                    lines,
                    "SELECT seq, at_ms FROM history
                     WHERE target = ?1 AND seq > ?2 AND seq < ?3 AND {lines}
                     ORDER BY seq DESC LIMIT 1"
                )
            ))?
            .query_row(params![target, visible_after, end], |r| r.get(0))
            .optional()?;
        Ok(at.filter(|&at| at > lo))
    }

    /// Where the time `at_ms` falls in `target`'s history: every message
    /// at a later place was sent after it (a read marker is a time; this
    /// turns it into a place).
    pub fn seq_at(&self, target: &str, at_ms: i64) -> Result<i64, StoreError> {
        Ok(self
            .place_of_time(target, at_ms, false)?
            .saturating_sub(1)
            .min(self.end_of(target)?.unwrap_or(0)))
    }

    /// Direct messages held for `account` while it was away, oldest first.
    pub fn pending(&self, account: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {} FROM history JOIN pending ON pending.history_id = history.id
             WHERE pending.account = ?1 ORDER BY history.id",
            COLUMNS
                .split(", ")
                .map(|c| format!("history.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        let rows = stmt.query_map([account], StoredMessage::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets the held messages up to and including `through_id`, once
    /// they were delivered (a later message held meanwhile stays).
    pub fn delivered(&self, account: &str, through_id: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM pending WHERE account = ?1 AND history_id <= ?2",
            params![account, through_id],
        )?)
    }

    /// Deletes history older than `before_ms`, a chunk at a time so the
    /// writer is never held for long. Returns how many messages went.
    pub fn purge_before(&mut self, before_ms: i64) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.purge_chunk(before_ms)?;
            total += n;
            if n < PURGE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Deletes, of the [`PURGE_CHUNK`] oldest messages (by the order they
    /// were stored), those older than `before_ms`, in one transaction;
    /// fewer than a chunk means the rest is newer. Messages are stored in
    /// the hub's time order, so this reads a chunk, not the table (an
    /// hourly purge with nothing to delete costs one chunk's read); one
    /// stamped older than messages stored before it (a clock stepped
    /// back) goes once those have gone too. The tracker
    /// queues one chunk after another, so pages and appends asked for
    /// meanwhile are not held up by a long purge. The point is kept in
    /// `meta` ([`PURGED_BEFORE`]): what is older was deleted on purpose,
    /// and a repair from `chat.log` must not bring it back.
    pub fn purge_chunk(&mut self, before_ms: i64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value
             WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
            params![PURGED_BEFORE, before_ms.to_string()],
        )?;
        let n = tx.execute(
            // No index on time alone (every append would pay for it): the
            // oldest chunk by id, and of it what is old.
            "DELETE FROM history WHERE id IN
                 (SELECT id FROM (SELECT id, at_ms FROM history ORDER BY id LIMIT ?2)
                  WHERE at_ms < ?1)",
            params![before_ms, PURGE_CHUNK as i64],
        )?;
        tx.execute("DELETE FROM correspondents WHERE last_ms < ?1", [before_ms])?;
        tx.commit()?;
        Ok(n)
    }
}

/// Notes the line just stored at `seq` in `target`, sent at `at_ms`. A
/// place already taken is an error (two lines claiming one place); a time
/// earlier than the line's before it or later than the line's after it
/// puts the history on the list of those whose times do not follow their
/// places (`history_unordered`).
fn note_order(
    conn: &Connection,
    last_place: &mut HashMap<String, (i64, i64)>,
    target: &str,
    seq: i64,
    at_ms: i64,
) -> Result<(), StoreError> {
    let went_back = match last_place.get_mut(target) {
        // As nearly always: after the last line this history had, so the
        // place is free.
        Some(last) if seq > last.0 => {
            let went_back = at_ms < last.1;
            *last = (seq, at_ms);
            went_back
        }
        // The first line this history gets since the store was opened, or
        // one put before its end (a repair): its place and neighbours, read.
        _ => {
            let read = |arm: &str, order: &str| -> Result<Option<(i64, i64)>, StoreError> {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT seq, at_ms FROM {} ORDER BY seq {order} LIMIT 1",
                        from_lines(Lines::MessagesAndEvents, arm)
                    ))?
                    .query_row(params![target, seq], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?)
            };
            let taken: i64 = conn
                .prepare_cached(&format!(
                    "SELECT count(*) FROM {}",
                    from_lines(
                        Lines::MessagesAndEvents,
                        "SELECT 1 FROM history WHERE target = ?1 AND seq = ?2 AND {lines}"
                    )
                ))?
                .query_row(params![target, seq], |r| r.get(0))?;
            if taken > 1 {
                return Err(StoreError::PlaceTaken {
                    target: target.to_string(),
                    seq,
                });
            }
            let before = read(
                "SELECT seq, at_ms FROM history WHERE target = ?1 AND seq < ?2 AND {lines}
                 ORDER BY seq DESC LIMIT 1",
                "DESC",
            )?;
            let after = read(
                "SELECT seq, at_ms FROM history WHERE target = ?1 AND seq > ?2 AND {lines}
                 ORDER BY seq LIMIT 1",
                "ASC",
            )?;
            // The end: the line after this one's, or this one.
            let end = read(
                "SELECT seq, at_ms FROM history WHERE target = ?1 AND seq >= ?2 AND {lines}
                 ORDER BY seq DESC LIMIT 1",
                "DESC",
            )?
            .unwrap_or((seq, at_ms));
            last_place.insert(target.to_string(), end);
            before.is_some_and(|(_, b)| at_ms < b) || after.is_some_and(|(_, a)| a < at_ms)
        }
    };
    if went_back {
        conn.prepare_cached("INSERT OR IGNORE INTO history_unordered (target) VALUES (?1)")?
            .execute([target])?;
    }
    Ok(())
}
