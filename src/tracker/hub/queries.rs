//! Questions about users: WHO (with WHOX fields), WHOIS, WHOWAS,
//! USERHOST, ISON, LUSERS.

use std::collections::VecDeque;

use super::super::replies::{self, Numeric};
use super::super::shared::ConnId;
use super::chat::{Chat, LongReply};
use super::state::{irc_host, mask_matches};
use crate::proto::Message;
use crate::proto::nick::casefold;

/// Bytes of room names per `319` line.
const WHOIS_ROOMS_BYTES: usize = 350;
/// WHOWAS entries shown at most.
const WHOWAS_MAX: usize = 10;

/// The WHOX fields asked for (`WHO <mask> %<fields>[,<token>]`), in the
/// spec's fixed output order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhoxFields {
    letters: String,
    token: Option<String>,
}

impl WhoxFields {
    /// Parses `%cuhnf,42`; `None` when the argument is not WHOX.
    pub fn parse(arg: &str) -> Option<WhoxFields> {
        let spec = arg.strip_prefix('%')?;
        let (letters, token) = match spec.split_once(',') {
            Some((l, t)) => (l, Some(t)),
            None => (spec, None),
        };
        // The token is at most three digits (WHOX); anything else is ignored.
        let token = token
            .filter(|t| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string);
        let order = "tcuihsnfdlaor";
        let letters: String = order.chars().filter(|c| letters.contains(*c)).collect();
        Some(WhoxFields { letters, token })
    }
}

impl Chat {
    pub(super) fn who(&mut self, id: ConnId, mask: &str, fields: Option<&str>) {
        let fields = fields.and_then(WhoxFields::parse);
        let reply = LongReply::Who {
            mask: mask.to_string(),
            fields,
            rows: None,
        };
        self.start_long(id, "WHO", reply);
    }

    /// Whom a WHO of `mask` lists, and the room they are seen in (`*` for
    /// none): a room's members, one user, or everyone matching a pattern.
    pub(super) fn who_rows(&self, id: ConnId, mask: &str) -> (String, VecDeque<ConnId>) {
        let oper = self.state.users.get(&id).is_some_and(|u| u.oper.is_some());
        if mask.starts_with('#') {
            return match self.state.room(mask) {
                Some(room) if !room.modes.secret || room.has(id) || oper => {
                    (room.name.clone(), room.members.iter().copied().collect())
                }
                _ => ("*".into(), VecDeque::new()),
            };
        }
        if let Some(t) = self.state.find(mask) {
            return ("*".into(), VecDeque::from([t]));
        }
        let everyone = matches!(mask, "" | "*" | "0");
        if !everyone && !mask.contains(['*', '?']) {
            return ("*".into(), VecDeque::new());
        }
        let mut ids: Vec<ConnId> = self
            .state
            .users
            .iter()
            .filter(|(_, u)| {
                everyone || mask_matches(mask, &u.nick) || mask_matches(mask, &u.mask())
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ("*".into(), ids.into())
    }

    /// One WHO (`352`) or WHOX (`354`) line about `target`, as seen in
    /// `room` (`*` for none).
    pub(super) fn who_row(
        &self,
        target: ConnId,
        room: &str,
        fields: Option<&WhoxFields>,
    ) -> Option<Numeric> {
        let u = self.state.users.get(&target)?;
        let roles = self.state.room(room).and_then(|r| r.roles_of(target));
        let mut flags = String::from(if u.away.is_some() { "G" } else { "H" });
        if u.oper.is_some() {
            flags.push('*');
        }
        if let Some(r) = roles {
            flags.push_str(&r.prefixes());
        }
        let server = &self.config.server_name;
        let Some(f) = fields else {
            return Some(replies::who_reply(
                room,
                &u.user,
                &irc_host(u.ip),
                server,
                &u.nick,
                &flags,
                &u.realname,
            ));
        };
        let idle = self
            .clock
            .mono
            .saturating_duration_since(u.last_active)
            .as_secs();
        let values: Vec<String> = f
            .letters
            .chars()
            .filter_map(|c| {
                Some(match c {
                    't' => f.token.clone().unwrap_or_else(|| "0".into()),
                    'c' => room.to_string(),
                    'u' => u.user.clone(),
                    'i' => irc_host(u.ip),
                    'h' => irc_host(u.ip),
                    's' => server.clone(),
                    'n' => u.nick.clone(),
                    'f' => flags.clone(),
                    'd' => "0".into(),
                    'l' => idle.to_string(),
                    'a' => "0".into(),
                    'o' => "n/a".into(),
                    'r' => u.realname.clone(),
                    _ => return None,
                })
            })
            .collect();
        Some(replies::whox_reply(values))
    }

    pub(super) fn whois_command(&mut self, id: ConnId, msg: &Message) {
        // WHOIS [server] nick
        let target = msg.params.last().map(String::as_str).unwrap_or("");
        if target.is_empty() {
            return self.reply(id, replies::no_nickname_given());
        }
        // One nick per WHOIS (a list gets the first, as Modern IRC allows).
        let target = target.split(',').next().unwrap_or(target);
        self.whois(id, target);
    }

    fn whois(&mut self, id: ConnId, target: &str) {
        let Some(t) = self.state.find(target) else {
            self.reply(id, replies::no_such_nick(target));
            return self.reply(id, replies::end_of_whois(target));
        };
        let viewer_oper = self.state.users.get(&id).is_some_and(|u| u.oper.is_some());
        let u = &self.state.users[&t];
        let (nick, user, ip, realname, away, oper, account) = (
            u.nick.clone(),
            u.user.clone(),
            u.ip,
            u.realname.clone(),
            u.away.clone(),
            u.oper.is_some(),
            u.account.clone(),
        );
        let status = u.status();
        let idle = self
            .clock
            .mono
            .saturating_duration_since(u.last_active)
            .as_secs();
        let signon = u.signon.as_second();
        let rooms: Vec<String> = u
            .rooms
            .iter()
            .filter_map(|k| self.state.rooms.get(k))
            .filter(|r| !r.modes.secret || r.has(id) || viewer_oper)
            .map(|r| {
                let prefix = r.roles_of(t).map(|x| x.highest()).unwrap_or("");
                format!("{prefix}{}", r.name)
            })
            .collect();
        let server = self.config.server_name.clone();
        let host = irc_host(ip);
        self.reply(id, replies::whois_user(&nick, &user, &host, &realname));
        self.reply(id, replies::whois_host(&nick, &ip.to_string()));
        self.reply(id, replies::whois_actually(&nick, &host));
        // Rooms in lines that fit: 20 rooms of 50 bytes would not.
        let mut line = String::new();
        for r in rooms {
            if !line.is_empty() && line.len() + 1 + r.len() > WHOIS_ROOMS_BYTES {
                self.reply(id, replies::whois_rooms(&nick, &line));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&r);
        }
        if !line.is_empty() {
            self.reply(id, replies::whois_rooms(&nick, &line));
        }
        self.reply(id, replies::whois_server(&nick, &server, "confab tracker"));
        if oper {
            self.reply(id, replies::whois_operator(&nick));
        }
        if let Some(account) = account {
            self.reply(id, replies::whois_account(&nick, &account));
        }
        if let Some(reason) = away {
            self.reply(id, replies::away(&nick, &reason));
        }
        self.reply(id, replies::whois_status(&nick, &status.to_string()));
        self.reply(id, replies::whois_idle(&nick, idle, signon));
        self.reply(id, replies::end_of_whois(&nick));
    }

    pub(super) fn whowas(&mut self, id: ConnId, nick: &str, count: Option<&str>) {
        if nick.is_empty() {
            return self.reply(id, replies::no_nickname_given());
        }
        let nick = nick.split(',').next().unwrap_or(nick);
        let want = count
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|c| *c > 0)
            .unwrap_or(WHOWAS_MAX)
            .min(WHOWAS_MAX);
        let key = casefold(nick);
        let found: Vec<(String, String, String, String, jiff::Timestamp)> = self
            .state
            .departed
            .iter()
            .rev()
            .filter(|(_, [nick, ..])| casefold(nick) == key)
            .take(want)
            .map(|(left, [nick, user, host, realname])| {
                (
                    nick.to_string(),
                    user.to_string(),
                    host.to_string(),
                    realname.to_string(),
                    left,
                )
            })
            .collect();
        if found.is_empty() {
            self.reply(id, replies::was_no_such_nick(nick));
        }
        let server = self.config.server_name.clone();
        for (n, user, host, realname, left) in found {
            self.reply(id, replies::whowas_user(&n, &user, &host, &realname));
            let when = left.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
            self.reply(id, replies::whois_server(&n, &server, &when));
        }
        self.reply(id, replies::end_of_whowas(nick));
    }

    pub(super) fn userhost(&mut self, id: ConnId, nicks: &[String]) {
        let found: Vec<String> = nicks
            .iter()
            .take(5)
            .filter_map(|n| self.state.find(n).and_then(|t| self.state.users.get(&t)))
            .map(|u| {
                let oper = if u.oper.is_some() { "*" } else { "" };
                let away = if u.away.is_some() { '-' } else { '+' };
                format!("{}{oper}={away}{}@{}", u.nick, u.user, irc_host(u.ip))
            })
            .collect();
        self.reply(id, replies::user_host(&found));
    }

    pub(super) fn ison(&mut self, id: ConnId, params: &[String]) {
        let online: Vec<String> = params
            .iter()
            .flat_map(|p| p.split(' '))
            .take(64)
            .filter_map(|n| {
                self.state
                    .find(n)
                    .map(|t| self.state.users[&t].nick.clone())
            })
            .collect();
        self.reply(id, replies::is_on(&online));
    }

    pub(super) fn lusers(&mut self, id: ConnId) {
        let users = self.state.users.len();
        let max = self.state.max_users;
        self.reply(id, replies::luser_client(users));
        self.reply(id, replies::luser_op(self.state.opers_online()));
        self.reply(id, replies::luser_rooms(self.state.rooms.len()));
        self.reply(id, replies::luser_me(users));
        self.reply(id, replies::local_users(users, max));
        self.reply(id, replies::global_users(users, max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whox_fields_in_spec_order_with_token() {
        let f = WhoxFields::parse("%nuhtcf,42").expect("whox");
        assert_eq!(f.letters, "tcuhnf");
        assert_eq!(f.token.as_deref(), Some("42"));
        assert_eq!(WhoxFields::parse("o"), None);
        assert_eq!(WhoxFields::parse("%n,abcd").map(|f| f.token), Some(None));
    }
}
