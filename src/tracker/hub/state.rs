//! The chat state: users, rooms, memberships and roles, as plain data with
//! lookups. No delivery, no transcript, no clock of its own: handlers read
//! and change it, and the hub decides what is said about it.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Instant;

use super::super::shared::{ConnId, IdMap};
use crate::proto::caps::Caps;
use crate::proto::nick::casefold;
use crate::proto::status::{self, Status};

/// The room every member joins on registration.
pub const GENERAL: &str = "#general";
/// Departed users remembered for WHOWAS.
const WHOWAS_KEEP: usize = 1000;

pub struct User {
    pub nick: String,
    pub user: String,
    pub realname: String,
    pub ip: IpAddr,
    /// The user's connections, first to connect first: usually one; more
    /// when an account logs in again while connected (multiclient). The
    /// user's id is its first connection's, kept after that connection
    /// closes while others remain.
    pub links: Vec<Link>,
    /// The away text exactly as set (or the tracker's INACTIVE text).
    pub away: Option<String>,
    /// The away status was set by the tracker (INACTIVE), not the user.
    pub away_auto: bool,
    pub signon: jiff::Timestamp,
    /// Last time the user did something a person does (message, join, status).
    pub last_active: Instant,
    /// Rooms, by case-folded name.
    pub rooms: BTreeSet<String>,
    /// The operator block's name, once `OPER` succeeded.
    pub oper: Option<String>,
    /// The account logged in to, as registered.
    pub account: Option<String>,
    /// Per room joined (casefolded): the room's history `seq` at the first
    /// join of this connection; its history is read from there.
    pub reads_from: std::collections::HashMap<String, i64>,
}

pub use super::super::shared::irc_host;

/// One connection of a user, with what it negotiated: each connection
/// gets lines as its own client asked for them.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub conn: ConnId,
    pub caps: Caps,
}

impl User {
    pub fn mask(&self) -> String {
        format!("{}!{}@{}", self.nick, self.user, irc_host(self.ip))
    }

    pub fn status(&self) -> Status {
        status::from_away(self.away.as_deref())
    }

    /// The capabilities of connection `conn` (the first connection's when
    /// it is not one of this user's).
    pub fn caps_of(&self, conn: ConnId) -> Caps {
        self.links
            .iter()
            .find(|l| l.conn == conn)
            .or(self.links.first())
            .map(|l| l.caps)
            .unwrap_or_default()
    }
}

/// A member's roles in one room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    /// Created the room (`~`); ends when they leave it or disconnect. In
    /// a registered room: logged in to its founder account, on every join.
    pub founder: bool,
    /// Room operator (`@`).
    pub op: bool,
    /// May speak in a moderated room (`+`).
    pub voice: bool,
}

impl Roles {
    /// The prefixes, highest first (`~@+`), for `multi-prefix` clients.
    pub fn prefixes(self) -> String {
        let mut s = String::new();
        if self.founder {
            s.push('~');
        }
        if self.op {
            s.push('@');
        }
        if self.voice {
            s.push('+');
        }
        s
    }

    /// The highest prefix alone, for clients without `multi-prefix`.
    pub fn highest(self) -> &'static str {
        if self.founder {
            "~"
        } else if self.op {
            "@"
        } else if self.voice {
            "+"
        } else {
            ""
        }
    }

    /// Operator or founder: may moderate the room.
    pub fn moderates(self) -> bool {
        self.founder || self.op
    }
}

/// A room's settable modes (`CHANMODES=b,k,l,imnst`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomModes {
    pub invite_only: bool,
    pub key: Option<String>,
    pub limit: Option<usize>,
    pub moderated: bool,
    pub no_outside: bool,
    pub topic_ops_only: bool,
    pub secret: bool,
}

impl RoomModes {
    /// A new room's modes: `+nt`, as IRC servers start rooms.
    pub fn new_room() -> Self {
        RoomModes {
            no_outside: true,
            topic_ops_only: true,
            ..Default::default()
        }
    }

    /// `+<flags>` and their parameters; the key is shown only to members.
    pub fn describe(&self, show_key: bool) -> Vec<String> {
        let mut flags = String::from("+");
        let mut params = Vec::new();
        for (on, c) in [
            (self.invite_only, 'i'),
            (self.moderated, 'm'),
            (self.no_outside, 'n'),
            (self.secret, 's'),
            (self.topic_ops_only, 't'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if let Some(k) = &self.key {
            flags.push('k');
            params.push(if show_key { k.clone() } else { "*".into() });
        }
        if let Some(l) = self.limit {
            flags.push('l');
            params.push(l.to_string());
        }
        let mut out = vec![flags];
        out.extend(params);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub mask: String,
    pub setter: String,
    pub at: jiff::Timestamp,
}

#[derive(Debug, Clone)]
pub struct Topic {
    pub text: String,
    pub setter: String,
    pub at: jiff::Timestamp,
}

pub struct Room {
    pub name: String,
    /// In join order, so NAMES lists people in the order they arrived.
    pub members: Vec<ConnId>,
    pub roles: IdMap<Roles>,
    pub topic: Option<Topic>,
    pub created: jiff::Timestamp,
    pub modes: RoomModes,
    pub bans: Vec<Ban>,
    /// Case-folded nicks invited and not yet joined.
    pub invited: BTreeSet<String>,
    /// Who created the room (shown by the console and LIST's founder
    /// column); the founder *role* is the connection's, not the name's.
    pub founder_nick: Option<String>,
    /// For a registered room (`rooms_keep.rs`), the founder's account:
    /// whoever is logged in to it is its founder, and the room outlives its
    /// members and a restart. `None`: the room is gone when it empties.
    pub founder_account: Option<String>,
}

impl Room {
    pub fn new(name: &str, created: jiff::Timestamp) -> Room {
        Room {
            name: name.to_string(),
            members: Vec::new(),
            roles: IdMap::default(),
            topic: None,
            created,
            modes: RoomModes::new_room(),
            bans: Vec::new(),
            invited: BTreeSet::new(),
            founder_nick: None,
            founder_account: None,
        }
    }

    /// `#general`, and registered rooms, stay when their last member
    /// leaves.
    pub fn outlives_members(&self) -> bool {
        self.is_general() || self.founder_account.is_some()
    }

    pub fn is_general(&self) -> bool {
        casefold(&self.name) == casefold(GENERAL)
    }

    pub fn has(&self, id: ConnId) -> bool {
        self.roles.contains_key(&id)
    }

    pub fn roles_of(&self, id: ConnId) -> Option<Roles> {
        self.roles.get(&id).copied()
    }

    pub fn add(&mut self, id: ConnId, roles: Roles) {
        if self.roles.insert(id, roles).is_none() {
            self.members.push(id);
        }
    }

    pub fn remove(&mut self, id: ConnId) {
        if self.roles.remove(&id).is_some() {
            self.members.retain(|m| *m != id);
        }
    }

    /// Whether `mask` (`nick!user@host`) matches one of the bans.
    pub fn banned(&self, mask: &str) -> bool {
        self.bans.iter().any(|b| mask_matches(&b.mask, mask))
    }
}

/// IRC wildcard match (`*` any run, `?` one character), case-folded as
/// nicks are, over whole characters.
pub fn mask_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = casefold(pattern).chars().collect();
    let t: Vec<char> = casefold(text).chars().collect();
    // Iterative matching with one backtrack point: linear in practice and
    // never exponential, whatever a hostile pattern holds.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Turns what a user typed after `+b` into a full `nick!user@host` mask
/// (`bob` bans `bob!*@*`, `*@10.0.0.5` bans `*!*@10.0.0.5`).
pub fn normalize_ban(mask: &str) -> String {
    let (nick_user, host) = match mask.split_once('@') {
        Some((nu, h)) => (nu, if h.is_empty() { "*" } else { h }),
        None => (mask, "*"),
    };
    let (nick, user) = match nick_user.split_once('!') {
        Some((n, u)) => (n, if u.is_empty() { "*" } else { u }),
        None if mask.contains('@') => ("*", nick_user),
        None => (nick_user, "*"),
    };
    let nick = if nick.is_empty() { "*" } else { nick };
    let user = if user.is_empty() { "*" } else { user };
    format!("{nick}!{user}@{host}")
}

/// Those who left, for WHOWAS: when each left, and its nick, user, host
/// and real name.
pub type Departed = super::packed::PackedRows<jiff::Timestamp, 4, WHOWAS_KEEP>;

/// Everything the hub knows about who is here and where.
#[derive(Default)]
pub struct ChatState {
    pub users: IdMap<User>,
    pub nicks: HashMap<String, ConnId>,
    pub rooms: HashMap<String, Room>,
    /// Newest last; bounded.
    pub departed: Departed,
    /// Most users online at once this run.
    pub max_users: usize,
}

impl ChatState {
    pub fn find(&self, nick: &str) -> Option<ConnId> {
        self.nicks.get(&casefold(nick)).copied()
    }

    pub fn room(&self, name: &str) -> Option<&Room> {
        self.rooms.get(&casefold(name))
    }

    pub fn room_mut(&mut self, name: &str) -> Option<&mut Room> {
        self.rooms.get_mut(&casefold(name))
    }

    /// Everyone who shares a room with `id` (plus `id` when `include_self`),
    /// each once.
    pub fn audience(&self, id: ConnId, include_self: bool) -> Vec<ConnId> {
        let Some(u) = self.users.get(&id) else {
            return if include_self { vec![id] } else { Vec::new() };
        };
        let rooms: Vec<&Room> = u.rooms.iter().filter_map(|k| self.rooms.get(k)).collect();
        let most: usize = rooms.iter().map(|r| r.members.len()).sum::<usize>() + 1;
        let mut out = Vec::with_capacity(most);
        if include_self {
            out.push(id);
        }
        // One room (`#general` only, most members): its members are each
        // there once already. A crowd of 1,000 dropping out of a room of
        // 1,100 built a set of 1,100 per QUIT: with its growth, a fifth
        // of the hub's samples at the drop (the reconnect storm).
        if let [room] = rooms[..] {
            out.extend(room.members.iter().filter(|m| **m != id));
            return out;
        }
        let mut seen = super::super::shared::IdSet::default();
        seen.reserve(most);
        seen.insert(id);
        for room in rooms {
            for m in &room.members {
                if seen.insert(*m) {
                    out.push(*m);
                }
            }
        }
        out
    }

    /// Takes `id` out of a room; an emptied room is gone unless it
    /// outlives its members (`#general`, a registered room).
    pub fn leave_room(&mut self, id: ConnId, key: &str) {
        if let Some(room) = self.rooms.get_mut(key) {
            room.remove(id);
            if room.members.is_empty() && !room.outlives_members() {
                self.rooms.remove(key);
            }
        }
        if let Some(u) = self.users.get_mut(&id) {
            u.rooms.remove(key);
        }
    }

    pub fn remember_departed(&mut self, u: &User, left: jiff::Timestamp) {
        let host = irc_host(u.ip);
        self.departed
            .push(left, [&u.nick, &u.user, &host, &u.realname]);
    }

    /// After many have left, the maps sized for the crowd that was here
    /// give their memory back: a HashMap or Vec never shrinks by itself,
    /// and 10,000 members' maps kept megabytes after they all went.
    pub fn shrink_after_leaves(&mut self) {
        shrink_map(&mut self.users);
        shrink_map(&mut self.nicks);
        for room in self.rooms.values_mut() {
            shrink_map(&mut room.roles);
            if oversized(room.members.len(), room.members.capacity()) {
                room.members.shrink_to_fit();
            }
        }
    }

    pub fn opers_online(&self) -> usize {
        self.users.values().filter(|u| u.oper.is_some()).count()
    }
}

/// Whether a collection holding `len` of room for `capacity` is worth
/// shrinking: big, and mostly empty (a quarter or less, so a crowd that
/// comes and goes does not make it grow and shrink on every change).
pub fn oversized(len: usize, capacity: usize) -> bool {
    capacity > 256 && len.saturating_mul(4) <= capacity
}

/// Shrinks `map` when [`oversized`].
pub fn shrink_map<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
) {
    if oversized(map.len(), map.capacity()) {
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_by_wildcards_and_case() {
        assert!(mask_matches("bob!*@*", "Bob!bob@127.0.0.1"));
        assert!(mask_matches("*!*@127.0.0.*", "eve!e@127.0.0.9"));
        assert!(!mask_matches("*!*@127.0.0.*", "eve!e@127.0.1.9"));
        assert!(mask_matches("b?b!*@*", "bib!x@h"));
        assert!(!mask_matches("bob!*@*", "bobby!x@h"));
        assert!(mask_matches("*", "anything!at@all"));
        // A hostile pattern stays linear.
        let p = "*a".repeat(50) + "b";
        assert!(!mask_matches(&p, &"a".repeat(400)));
    }

    #[test]
    fn bans_are_completed_to_full_masks() {
        assert_eq!(normalize_ban("bob"), "bob!*@*");
        assert_eq!(normalize_ban("*@10.0.0.5"), "*!*@10.0.0.5");
        assert_eq!(normalize_ban("bob!b"), "bob!b@*");
        assert_eq!(normalize_ban("a!b@c"), "a!b@c");
    }

    #[test]
    fn modes_describe_with_parameters() {
        let mut m = RoomModes::new_room();
        assert_eq!(m.describe(true), vec!["+nt"]);
        m.key = Some("s3cret".into());
        m.limit = Some(5);
        m.invite_only = true;
        assert_eq!(m.describe(true), vec!["+intkl", "s3cret", "5"]);
        assert_eq!(m.describe(false), vec!["+intkl", "*", "5"]);
    }
}
