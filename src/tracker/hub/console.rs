//! What the operator's console asks of the hub: snapshots of who is here
//! and where, as plain data the console formats, and the console's actions
//! (kick, announce, close) done through the same chat logic as KILL and
//! CLOSE, with the server as the one acting.
//!
//! The hub also keeps, for the console only, what the chat state forgets:
//! everyone seen this run (when they came and left) and the direct-message
//! conversations so far. Both are bounded ([`SEEN_KEEP`], [`DMS_KEEP`]): a
//! tracker that runs for months with people coming and going keeps the
//! most recent, never an ever-growing list.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::super::shared::{ConnId, IdMap};
use super::chat::Chat;
use super::packed::PackedRows;
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::proto::sanitize;
use crate::proto::status::Status;

/// Connections remembered by `users` once they have left; the oldest
/// departures are forgotten first. Those online are always listed.
pub const SEEN_KEEP: usize = 10_000;
/// Direct-message conversations remembered by `sessions`; the one quiet
/// the longest is forgotten first.
pub const DMS_KEEP: usize = 10_000;
/// Longest announcement, in bytes: it must fit in one NOTICE line.
pub const ANNOUNCE_LEN: usize = 400;

/// A request from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleQuery {
    /// Everyone seen this run.
    Users,
    /// Members connected now.
    Online,
    /// Direct-message conversations so far.
    Sessions,
    Rooms,
    Room(String),
    /// Names for Tab completion: users online and rooms.
    Names,
    Kick {
        user: String,
        reason: Option<String>,
    },
    Announce(String),
    Close {
        room: String,
        reason: Option<String>,
    },
}

/// One connection seen this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRow {
    /// The name they had last.
    pub nick: String,
    pub address: IpAddr,
    pub came: jiff::Timestamp,
    /// When and why they left; `None` while online.
    pub left: Option<(jiff::Timestamp, String)>,
}

/// One member connected now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineRow {
    pub nick: String,
    pub address: IpAddr,
    pub status: Status,
    /// Their away text, if any.
    pub away: Option<String>,
    pub idle: Duration,
    pub came: jiff::Timestamp,
    /// Rooms, by name as shown, sorted.
    pub rooms: Vec<String>,
    /// The operator block's name once they used OPER.
    pub oper: Option<String>,
}

/// One direct-message conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmRow {
    /// The two people, in the order their names sort.
    pub between: (String, String),
    pub messages: u64,
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub name: String,
    /// Who created it (`None` for `#general`, the tracker's own); for a
    /// registered room, `account <name>`.
    pub founder: Option<String>,
    pub members: usize,
    pub modes: String,
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub nick: String,
    /// `founder`, `op`, `voice`, comma-separated; empty for none.
    pub roles: String,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDetail {
    pub room: RoomRow,
    /// In the order they joined.
    pub members: Vec<MemberRow>,
}

/// The hub's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAnswer {
    Users(Vec<SeenRow>),
    Online(Vec<OnlineRow>),
    /// The DM conversations, and the direct sessions (`/session`, DCC)
    /// live and recently ended.
    Sessions {
        dms: Vec<DmRow>,
        direct: Vec<super::p2p::SessionSnapshot>,
    },
    Rooms(Vec<RoomRow>),
    Room(RoomDetail),
    Names {
        users: Vec<String>,
        rooms: Vec<String>,
    },
    /// An action done, in words.
    Done(String),
    /// Not done, and why.
    Refused(String),
}

/// What the console needs that the chat state does not keep.
#[derive(Default)]
pub struct ConsoleRecords {
    /// Connections online, by id.
    pub(super) online: IdMap<SeenRow>,
    /// Connections that left, oldest first; at most `SEEN_KEEP`: their
    /// address, when they came and left, nick and reason.
    departed: PackedRows<(IpAddr, jiff::Timestamp, jiff::Timestamp), 2, SEEN_KEEP>,
    /// Conversations by their pair of case-folded names.
    dms: HashMap<(String, String), DmRow>,
}

impl ConsoleRecords {
    pub(super) fn came(&mut self, id: ConnId, nick: &str, address: IpAddr, at: jiff::Timestamp) {
        self.online.insert(
            id,
            SeenRow {
                nick: nick.to_string(),
                address,
                came: at,
                left: None,
            },
        );
    }

    /// After a crowd left: the online map, sized for it, gives its memory
    /// back (10,000 members kept 1.8 MiB in it after they all went).
    pub(super) fn shrink_after_leaves(&mut self) {
        super::state::shrink_map(&mut self.online);
    }

    pub(super) fn left(&mut self, id: ConnId, nick: &str, reason: &str, at: jiff::Timestamp) {
        let Some(row) = self.online.remove(&id) else {
            return;
        };
        self.departed
            .push((row.address, row.came, at), [nick, reason]);
    }

    /// Those who left, as the console lists them.
    fn departed_rows(&self) -> impl Iterator<Item = SeenRow> + '_ {
        self.departed
            .iter()
            .map(|((address, came, left), [nick, reason])| SeenRow {
                nick: nick.to_string(),
                address,
                came,
                left: Some((left, reason.to_string())),
            })
    }

    /// One direct message (or notice, or action) from `from` to `to`.
    pub(super) fn dm(&mut self, from: &str, to: &str, at: jiff::Timestamp) {
        let (a, b) = if casefold(from) <= casefold(to) {
            (from, to)
        } else {
            (to, from)
        };
        let key = (casefold(a), casefold(b));
        if !self.dms.contains_key(&key) && self.dms.len() >= DMS_KEEP {
            let quietest = self
                .dms
                .iter()
                .min_by_key(|(_, row)| row.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = quietest {
                self.dms.remove(&k);
            }
        }
        let row = self.dms.entry(key).or_insert_with(|| DmRow {
            between: (a.to_string(), b.to_string()),
            messages: 0,
            first: at,
            last: at,
        });
        // Names as they were last used (someone may have renamed).
        row.between = (a.to_string(), b.to_string());
        row.messages += 1;
        row.last = at;
    }
}

/// A room's roles in words.
fn roles_text(r: super::state::Roles) -> String {
    let mut out = Vec::new();
    if r.founder {
        out.push("founder");
    }
    if r.op {
        out.push("op");
    }
    if r.voice {
        out.push("voice");
    }
    out.join(",")
}

impl Chat {
    /// Answers the console. Everything is read from the state as it is
    /// now, at the batch's time (`clock`).
    pub fn console(&mut self, query: ConsoleQuery) -> ConsoleAnswer {
        match query {
            ConsoleQuery::Users => ConsoleAnswer::Users(self.console_users()),
            ConsoleQuery::Online => ConsoleAnswer::Online(self.console_online()),
            ConsoleQuery::Sessions => {
                let mut rows: Vec<DmRow> = self.console_records.dms.values().cloned().collect();
                rows.sort_by(|a, b| b.last.cmp(&a.last).then(a.between.cmp(&b.between)));
                ConsoleAnswer::Sessions {
                    dms: rows,
                    direct: self.p2p_sessions(),
                }
            }
            ConsoleQuery::Rooms => {
                let mut rows: Vec<RoomRow> = self
                    .state
                    .rooms
                    .values()
                    .map(|r| self.room_row(r))
                    .collect();
                rows.sort_by_key(|r| casefold(&r.name));
                ConsoleAnswer::Rooms(rows)
            }
            ConsoleQuery::Room(name) => self.console_room(&name),
            ConsoleQuery::Names => {
                let mut users: Vec<String> =
                    self.state.users.values().map(|u| u.nick.clone()).collect();
                users.sort_by_key(|n| casefold(n));
                let mut rooms: Vec<String> =
                    self.state.rooms.values().map(|r| r.name.clone()).collect();
                rooms.sort_by_key(|n| casefold(n));
                ConsoleAnswer::Names { users, rooms }
            }
            ConsoleQuery::Kick { user, reason } => self.console_kick(&user, reason.as_deref()),
            ConsoleQuery::Announce(text) => self.console_announce(&text),
            ConsoleQuery::Close { room, reason } => self.console_close(&room, reason.as_deref()),
        }
    }

    fn console_users(&self) -> Vec<SeenRow> {
        let mut rows: Vec<SeenRow> = self.console_records.departed_rows().collect();
        for (id, row) in &self.console_records.online {
            let mut row = row.clone();
            if let Some(u) = self.state.users.get(id) {
                row.nick = u.nick.clone();
            }
            rows.push(row);
        }
        rows.sort_by(|a, b| a.came.cmp(&b.came).then(a.nick.cmp(&b.nick)));
        rows
    }

    fn console_online(&self) -> Vec<OnlineRow> {
        let now = self.clock.mono;
        let mut rows: Vec<OnlineRow> = self
            .state
            .users
            .values()
            .map(|u| {
                let mut rooms: Vec<String> = u
                    .rooms
                    .iter()
                    .filter_map(|k| self.state.rooms.get(k))
                    .map(|r| r.name.clone())
                    .collect();
                rooms.sort_by_key(|n| casefold(n));
                OnlineRow {
                    nick: u.nick.clone(),
                    address: u.ip,
                    status: u.status(),
                    away: u.away.clone(),
                    idle: now.saturating_duration_since(u.last_active),
                    came: u.signon,
                    rooms,
                    oper: u.oper.clone(),
                }
            })
            .collect();
        rows.sort_by_key(|r| casefold(&r.nick));
        rows
    }

    fn room_row(&self, r: &super::state::Room) -> RoomRow {
        RoomRow {
            name: r.name.clone(),
            // A registered room's founder is an account, whoever is on it.
            founder: match &r.founder_account {
                Some(account) => Some(format!("account {account}")),
                None => r.founder_nick.clone(),
            },
            members: r.members.len(),
            modes: r.modes.describe(true).join(" "),
            topic: r.topic.as_ref().map(|t| t.text.clone()),
        }
    }

    fn console_room(&self, name: &str) -> ConsoleAnswer {
        let Some(room) = self.state.room(name) else {
            return ConsoleAnswer::Refused(format!("no room named {name}"));
        };
        let members = room
            .members
            .iter()
            .filter_map(|id| {
                let u = self.state.users.get(id)?;
                Some(MemberRow {
                    nick: u.nick.clone(),
                    roles: room.roles_of(*id).map(roles_text).unwrap_or_default(),
                    status: u.status(),
                })
            })
            .collect();
        ConsoleAnswer::Room(RoomDetail {
            room: self.room_row(room),
            members,
        })
    }

    /// Disconnects a user as a KILL does, in the server's name.
    fn console_kick(&mut self, user: &str, reason: Option<&str>) -> ConsoleAnswer {
        let Some(target) = self.state.find(user) else {
            return ConsoleAnswer::Refused(format!("nobody named {user} is online"));
        };
        let nick = self.nick_of(target);
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("Removed by the tracker's operator");
        let server = self.config.server_name.clone();
        self.disconnect(&server, target, reason);
        ConsoleAnswer::Done(format!("{nick} was disconnected"))
    }

    /// A notice from the server to every member, recorded first.
    fn console_announce(&mut self, text: &str) -> ConsoleAnswer {
        let text = sanitize::clip(&sanitize::for_relay(text), ANNOUNCE_LEN).to_string();
        if text.trim().is_empty() {
            return ConsoleAnswer::Refused("nothing to announce".into());
        }
        let server = self.config.server_name.clone();
        self.record(
            "announce",
            &format!("{server}: {}", sanitize::for_display(&text)),
        );
        let mut ids: Vec<ConnId> = self.state.users.keys().copied().collect();
        ids.sort();
        for id in &ids {
            let nick = self.nick_of(*id);
            let mut out = self.outgoing(
                Message::new("NOTICE")
                    .with_source(server.clone())
                    .param(nick)
                    .param(text.clone()),
            );
            self.broadcast(&[*id], &mut out, |_| true);
        }
        ConsoleAnswer::Done(format!("announced to {} member(s)", ids.len()))
    }

    /// Closes a room as a tracker operator's CLOSE does, in the server's
    /// name; `#general` is refused with the same rule.
    fn console_close(&mut self, name: &str, reason: Option<&str>) -> ConsoleAnswer {
        let Some(room) = self.state.room(name) else {
            return ConsoleAnswer::Refused(format!("no room named {name}"));
        };
        if room.is_general() {
            return ConsoleAnswer::Refused(
                "#general is the group room everyone is in; it cannot be closed".into(),
            );
        }
        let (chname, count) = (room.name.clone(), room.members.len());
        let server = self.config.server_name.clone();
        self.close_room(&chname, &server, &server, reason);
        ConsoleAnswer::Done(format!(
            "{chname} is closed; its {count} member(s) were told and removed"
        ))
    }

    /// For `users`: a member registered.
    pub(super) fn console_came(&mut self, id: ConnId) {
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let (nick, ip, at) = (u.nick.clone(), u.ip, self.clock.wall);
        self.console_records.came(id, &nick, ip, at);
    }

    /// For `users`: a member is leaving (called before they are removed).
    pub(super) fn console_left(&mut self, id: ConnId, reason: &str) {
        let nick = self.nick_of(id);
        let at = self.clock.wall;
        self.console_records.left(id, &nick, reason, at);
    }
}

/// An address as the console shows it (an IPv4 peer seen as IPv6 as IPv4).
pub fn address_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}
