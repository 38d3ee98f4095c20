//! What an account gets when it logs in: the rooms it was in, its read
//! markers, and per room and direct conversation what it has not read
//! (counted, and the lines themselves up to a cap), in one read so the
//! login costs the store's thread one visit.
//!
//! Where "not read" starts, per target: the account's read marker there
//! (`draft/read-marker`, shared by its connections), or, without one, the
//! time it was last connected. A connection that joins an account already
//! connected (multiclient) counts only from read markers: everything
//! before was in front of the other connection.

use rusqlite::{OptionalExtension, params};

use super::history::{Lines, StoredMessage};
use super::{Store, StoreError};

/// One room or direct conversation with lines the account has not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unread {
    /// The history key: a casefolded room, or a `dm:` key.
    pub target: String,
    /// For a direct conversation, the other person as last shown.
    pub with: Option<String>,
    /// Messages from others after the read point, and how many of them
    /// mention the account's nick.
    pub count: u64,
    pub mentions: u64,
    /// The newest of those messages (all that were held for the account
    /// while it was away, even past the cap), oldest first.
    pub lines: Vec<StoredMessage>,
    /// The highest store id among `lines` that was held for the account
    /// (offline delivery): forgotten once sent.
    pub held_through: Option<i64>,
}

/// What a login needs from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginView {
    /// The rooms to put the account back in (casefolded).
    pub rooms: Vec<String>,
    /// Read markers, by history key, in Unix ms.
    pub markers: Vec<(String, i64)>,
    pub unread: Vec<Unread>,
}

/// Direct conversations looked at per login, newest first.
const CONVERSATIONS_MAX: i64 = 200;

impl Store {
    /// The login view of `account` (casefolded), known as `nick`, now in
    /// the rooms `rooms_now` (casefolded). `cap`: the most lines per
    /// target (held direct messages are always all sent). `attached`: the
    /// account is connected already (see the module's notes). Unless
    /// attached, the account is marked as seen now.
    pub fn login_view(
        &mut self,
        account: &str,
        nick: &str,
        rooms_now: &[String],
        attached: bool,
        cap: usize,
        now_ms: i64,
    ) -> Result<LoginView, StoreError> {
        let last_seen: Option<i64> = self
            .conn
            .query_row(
                "SELECT last_seen_ms FROM accounts WHERE name = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let rooms = self.rooms_of(account)?;
        let markers: Vec<(String, i64)> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT target, read_ms FROM read_markers WHERE account = ?1")?;
            let rows = stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let marker = |key: &str| markers.iter().find(|(k, _)| k == key).map(|m| m.1);
        // A marker is the time of the last line read: what shares its
        // millisecond was read with it. The time the account left is not:
        // a line of that same millisecond may have come after it (the hub
        // gives one time to a whole batch), so that millisecond counts as
        // unread: one line shown twice rather than one lost.
        let read_from = |key: &str| match marker(key) {
            Some(m) => Some(m),
            None if attached => None,
            None => last_seen.map(|t| t - 1),
        };
        // A room without a marker: from where it was when the account left
        // (exact), else from the time.
        let room_after = |s: &Self, key: &str| -> Result<Option<i64>, StoreError> {
            if let Some(m) = marker(key) {
                return Ok(Some(s.seq_at(key, m)?));
            }
            if attached {
                return Ok(None);
            }
            if let Some(seq) = s.seen_seq(account, key)? {
                return Ok(Some(seq));
            }
            match last_seen {
                Some(t) => Ok(Some(s.seq_at(key, t - 1)?)),
                None => Ok(None),
            }
        };
        let mut unread = Vec::new();
        let mut room_keys: Vec<&String> = rooms.iter().chain(rooms_now).collect();
        room_keys.sort();
        room_keys.dedup();
        for key in room_keys {
            // Never before the account's first join: a newcomer does not
            // read what was said before she came.
            let (Some(from), Some(floor)) =
                (room_after(self, key)?, self.joined_after(account, key)?)
            else {
                continue;
            };
            let after = from.max(floor);
            let (count, mentions) = self.missed(key, after, nick)?;
            if count == 0 {
                continue;
            }
            unread.push(Unread {
                target: key.clone(),
                with: None,
                count,
                mentions,
                lines: self.page(key, after, i64::MAX, cap, false, Lines::Messages)?,
                held_through: None,
            });
        }
        let conversations: Vec<(String, String, i64)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT other_shown, target, last_ms FROM correspondents
                 WHERE owner = ?1 ORDER BY last_ms DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![account, CONVERSATIONS_MAX], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (with, key, last_ms) in conversations.into_iter().rev() {
            let held: (i64, Option<i64>) = self.conn.query_row(
                "SELECT count(*), max(pending.history_id) FROM pending
                 JOIN history ON history.id = pending.history_id
                 WHERE pending.account = ?1 AND history.target = ?2",
                params![account, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let Some(from) = read_from(&key) else {
                if held.0 == 0 {
                    continue;
                }
                // Held while away and never read: all of it.
                let lines =
                    self.page(&key, 0, i64::MAX, held.0 as usize, false, Lines::Messages)?;
                unread.push(Unread {
                    target: key,
                    with: Some(with),
                    count: held.0.unsigned_abs(),
                    mentions: 0,
                    lines,
                    held_through: held.1,
                });
                continue;
            };
            if last_ms <= from && held.0 == 0 {
                continue;
            }
            let after = self.seq_at(&key, from)?;
            let (count, _) = self.missed(&key, after, nick)?;
            let limit = cap.max(held.0 as usize);
            let lines = self.page(&key, after, i64::MAX, limit, false, Lines::Messages)?;
            if count == 0 && lines.is_empty() {
                continue;
            }
            unread.push(Unread {
                target: key,
                with: Some(with),
                count: count.max(held.0.unsigned_abs()),
                mentions: 0,
                lines,
                held_through: held.1,
            });
        }
        if !attached {
            self.seen(account, now_ms)?;
        }
        Ok(LoginView {
            rooms,
            markers,
            unread,
        })
    }
}
