//! Accounts and what belongs to them: the rooms they are in (and since
//! when), what they have read, and the rooms they founded.
//!
//! Names are stored casefolded (`name`) beside the form shown (`shown`);
//! the caller folds (`proto::nick::casefold`), the store compares bytes.
//! Password hashes arrive already hashed: hashing is slow and runs on the
//! tracker's password threads, never on the store's.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub shown: String,
    pub password_hash: String,
    pub created_ms: i64,
    pub last_seen_ms: Option<i64>,
}

/// A room whose founder has an account: it outlives a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisteredRoom {
    pub name: String,
    pub shown: String,
    pub founder: String,
    pub created_ms: i64,
    pub topic: String,
    pub topic_by: String,
    pub topic_ms: i64,
    /// Flag letters only (`nt`, `imnst`); the key and limit are apart.
    pub modes: String,
    pub key: Option<String>,
    pub limit: Option<u32>,
    pub bans: Vec<RoomBan>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomBan {
    pub mask: String,
    pub set_by: String,
    pub set_ms: i64,
}

impl Store {
    /// Creates an account; refuses a name taken already.
    pub fn create_account(
        &self,
        name: &str,
        shown: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "INSERT INTO accounts (name, shown, password_hash, created_ms)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT(name) DO NOTHING",
            params![name, shown, password_hash, now_ms],
        )?;
        match n {
            0 => Err(StoreError::AccountExists(shown.to_string())),
            _ => Ok(()),
        }
    }

    pub fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT name, shown, password_hash, created_ms, last_seen_ms
                 FROM accounts WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok(Account {
                    name: r.get(0)?,
                    shown: r.get(1)?,
                    password_hash: r.get(2)?,
                    created_ms: r.get(3)?,
                    last_seen_ms: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// Every account name, casefolded: the names that only their owner may
    /// use, loaded by the hub at start.
    pub fn account_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM accounts ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_password_hash(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        match self.conn.execute(
            "UPDATE accounts SET password_hash = ?2 WHERE name = ?1",
            [name, hash],
        )? {
            0 => Err(StoreError::NoSuchAccount(name.to_string())),
            _ => Ok(()),
        }
    }

    /// Marks when the account was last connected: the point its "while you
    /// were away" summary counts from.
    pub fn seen(&self, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE accounts SET last_seen_ms = ?2 WHERE name = ?1",
            params![name, now_ms],
        )?;
        Ok(())
    }

    /// The account's last connection left at `now_ms`, when each of its
    /// rooms had reached the given place: what came after is what it
    /// missed there.
    pub fn left(
        &mut self,
        name: &str,
        now_ms: i64,
        rooms: &[(String, i64)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE accounts SET last_seen_ms = ?2 WHERE name = ?1",
            params![name, now_ms],
        )?;
        {
            let mut at = tx.prepare_cached(
                "UPDATE memberships SET seen_seq = ?3 WHERE account = ?1 AND room = ?2",
            )?;
            for (room, seq) in rooms {
                at.execute(params![name, room, seq])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Where `account` had reached in `room` when it last left, if known.
    pub fn seen_seq(&self, account: &str, room: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT seen_seq FROM memberships WHERE account = ?1 AND room = ?2")?
            .query_row([account, room], |r| r.get::<_, Option<i64>>(0))
            .optional()?
            .flatten())
    }

    /// Deletes an account with everything that is its own: memberships,
    /// read markers, held messages, the registered rooms it founded (their
    /// bans with them), the messages it sent anywhere, and its direct
    /// conversations whole, both sides: they are keyed by the account's
    /// name, which someone else may register next and must not inherit.
    pub fn delete_account(&mut self, name: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        // Every direct conversation it had is in `correspondents` (kept
        // with each DM, and purged only with the whole conversation).
        // A direct conversation holds messages only: their index finds them.
        tx.execute(
            &format!(
                "DELETE FROM history WHERE target IN
                     (SELECT target FROM correspondents WHERE owner = ?1) AND {}",
                super::history::MESSAGES
            ),
            [name],
        )?;
        tx.execute("DELETE FROM history WHERE sender_account = ?1", [name])?;
        tx.execute(
            "DELETE FROM correspondents WHERE owner = ?1 OR other = ?1",
            [name],
        )?;
        let n = tx.execute("DELETE FROM accounts WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StoreError::NoSuchAccount(name.to_string()));
        }
        tx.commit()?;
        Ok(())
    }

    /// Records that `account` is in `room`, which had reached `room_seq`
    /// when it joined. The first join is kept: it is where the account's
    /// view of the room's history begins, for good.
    pub fn joined(&self, account: &str, room: &str, room_seq: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO memberships (account, room, joined_after, member)
                 VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(account, room) DO UPDATE SET member = 1",
            )?
            .execute(params![account, room, room_seq])?;
        Ok(())
    }

    /// Records that `account` left `room` by choice (not by disconnecting):
    /// it is not put back at its next login, but keeps its first join.
    pub fn parted(&self, account: &str, room: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE memberships SET member = 0 WHERE account = ?1 AND room = ?2")?
            .execute([account, room])?;
        Ok(())
    }

    /// The room's `seq` when `account` first joined it (it may read what
    /// came after), if it ever did.
    pub fn joined_after(&self, account: &str, room: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT joined_after FROM memberships WHERE account = ?1 AND room = ?2",
            )?
            .query_row([account, room], |r| r.get(0))
            .optional()?)
    }

    /// The rooms to put `account` back in at login.
    pub fn rooms_of(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT room FROM memberships WHERE account = ?1 AND member = 1 ORDER BY room",
        )?;
        let rows = stmt.query_map([account], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves `account`'s read marker on `target` forward (never back, as
    /// `draft/read-marker` asks). Returns the marker now kept.
    pub fn mark_read(&self, account: &str, target: &str, at_ms: i64) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO read_markers (account, target, read_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(account, target) DO UPDATE SET read_ms = max(read_ms, excluded.read_ms)
                 RETURNING read_ms",
            )?
            .query_row(params![account, target, at_ms], |r| r.get(0))?)
    }

    pub fn read_marker(&self, account: &str, target: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT read_ms FROM read_markers WHERE account = ?1 AND target = ?2")?
            .query_row([account, target], |r| r.get(0))
            .optional()?)
    }

    /// Saves a registered room with its bans, replacing what was kept.
    /// A founder account deleted meanwhile (the hub had not heard yet) is
    /// `NoSuchAccount`: the room went with it.
    pub fn save_room(&mut self, room: &RegisteredRoom) -> Result<(), StoreError> {
        if self.account(&room.founder)?.is_none() {
            return Err(StoreError::NoSuchAccount(room.founder.clone()));
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO rooms (name, shown, founder, created_ms, topic, topic_by, topic_ms,
                                modes, room_key, user_limit)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(name) DO UPDATE SET
                 shown = excluded.shown, founder = excluded.founder,
                 topic = excluded.topic, topic_by = excluded.topic_by,
                 topic_ms = excluded.topic_ms, modes = excluded.modes,
                 room_key = excluded.room_key, user_limit = excluded.user_limit",
            params![
                room.name,
                room.shown,
                room.founder,
                room.created_ms,
                room.topic,
                room.topic_by,
                room.topic_ms,
                room.modes,
                room.key,
                room.limit,
            ],
        )?;
        tx.execute("DELETE FROM room_bans WHERE room = ?1", [&room.name])?;
        for b in &room.bans {
            tx.execute(
                "INSERT INTO room_bans (room, mask, set_by, set_ms) VALUES (?1, ?2, ?3, ?4)",
                params![room.name, b.mask, b.set_by, b.set_ms],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A registered room closed by its founder or an operator: forgotten.
    pub fn drop_room(&self, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM rooms WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Every registered room, with its bans: recreated by the hub at start.
    pub fn registered_rooms(&self) -> Result<Vec<RegisteredRoom>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, shown, founder, created_ms, topic, topic_by, topic_ms, modes,
                    room_key, user_limit FROM rooms ORDER BY name",
        )?;
        let mut rooms: Vec<RegisteredRoom> = stmt
            .query_map([], |r| {
                Ok(RegisteredRoom {
                    name: r.get(0)?,
                    shown: r.get(1)?,
                    founder: r.get(2)?,
                    created_ms: r.get(3)?,
                    topic: r.get(4)?,
                    topic_by: r.get(5)?,
                    topic_ms: r.get(6)?,
                    modes: r.get(7)?,
                    key: r.get(8)?,
                    limit: r.get(9)?,
                    bans: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut bans = self.conn.prepare_cached(
            "SELECT mask, set_by, set_ms FROM room_bans WHERE room = ?1 ORDER BY set_ms, mask",
        )?;
        for room in &mut rooms {
            room.bans = bans
                .query_map([&room.name], |r| {
                    Ok(RoomBan {
                        mask: r.get(0)?,
                        set_by: r.get(1)?,
                        set_ms: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        Ok(rooms)
    }
}
