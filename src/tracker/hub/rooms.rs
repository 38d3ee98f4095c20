//! Rooms: JOIN, PART, TOPIC, NAMES, LIST, INVITE, and the long replies
//! (LIST, NAMES, WHO) that go out in parts as the reader drains.

use super::super::policy;
use super::super::replies;
use super::super::shared::ConnId;
use super::chat::{Chat, LongReply, MAX_LONG_REPLIES, MAX_ROOMS_PER_USER, TOPIC_LEN};
use super::state::{Roles, Room, Topic};
use crate::proto::Message;
use crate::proto::nick::{self, casefold};
use crate::proto::sanitize;

/// How much of a long reply goes out at once; the next part follows when
/// the connection has written this one out.
pub const PART_BYTES: usize = 16 * 1024;
/// Names per `353` line at most (the line is also cut by bytes).
const NAMES_LINE_BYTES: usize = 400;

impl Chat {
    pub(super) fn join_command(&mut self, id: ConnId, names: &str, keys: &str) {
        if names == "0" {
            let keys: Vec<String> = self.state.users[&id].rooms.iter().cloned().collect();
            for key in keys {
                let Some(room) = self.state.rooms.get(&key) else {
                    continue;
                };
                if room.is_general() {
                    continue;
                }
                let name = room.name.clone();
                self.part(id, &name, "Left all rooms");
            }
            return;
        }
        let mut keys = keys.split(',');
        for name in self.targets(id, names) {
            let key = keys.next().filter(|k| !k.is_empty());
            self.join(id, name, key);
        }
    }

    /// Joins `id` to `name`, creating the room (with `id` as its founder and
    /// operator) if it does not exist.
    pub(super) fn join(&mut self, id: ConnId, name: &str, key: Option<&str>) {
        if !nick::valid_channel(name) {
            return self.reply(id, replies::invalid_room_name(name));
        }
        let room_key = casefold(name);
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        if u.rooms.contains(&room_key) {
            return;
        }
        if u.rooms.len() >= MAX_ROOMS_PER_USER {
            return self.reply(id, replies::too_many_rooms(name));
        }
        let (nick, mask, ip, away) = (u.nick.clone(), u.mask(), u.ip, u.away.clone());
        let account = u.account.clone();
        // Founder by account: the login of a registered room's founder.
        let mut by_account = false;
        let created = match self.state.rooms.get(&room_key) {
            Some(room) => {
                let invited = room.invited.contains(&casefold(&nick));
                if let Err(n) = policy::can_join(room, self.actor(id, room), &mask, invited, key) {
                    return self.reply(id, n);
                }
                by_account = policy::is_founder_account(room, account.as_deref());
                false
            }
            None => {
                let mut room = Room::new(name, self.clock.wall);
                room.founder_nick = Some(nick.clone());
                self.state.rooms.insert(room_key.clone(), room);
                true
            }
        };
        let Some(room) = self.state.rooms.get_mut(&room_key) else {
            return;
        };
        room.invited.remove(&casefold(&nick));
        let roles = if created || by_account {
            Roles {
                founder: true,
                op: true,
                voice: false,
            }
        } else {
            Roles::default()
        };
        room.add(id, roles);
        let (chname, members) = (room.name.clone(), room.members.clone());
        if let Some(u) = self.state.users.get_mut(&id) {
            u.rooms.insert(room_key.clone());
        }
        self.history_joined(id, &room_key);
        if created {
            self.record("create", &format!("{chname} {nick}"));
            self.register_created_room(id, &room_key);
        }
        self.record("join", &format!("{chname} {nick} ({ip})"));
        let mut out = self.outgoing(
            Message::new("JOIN")
                .with_source(mask.clone())
                .param(chname.clone()),
        );
        self.broadcast(&members, &mut out, |_| true);
        if by_account {
            self.tell_founder_joined(id, &chname, &members);
        }
        if let Some(reason) = away {
            // away-notify: tell the room the newcomer is away.
            let others: Vec<ConnId> = members.iter().copied().filter(|m| *m != id).collect();
            let mut out = self.outgoing(Message::new("AWAY").with_source(mask).param(reason));
            self.broadcast(&others, &mut out, |c| c.away_notify);
        }
        if created {
            // The founder sees their roles as any client expects them.
            let server = self.config.server_name.clone();
            let mut out = self.outgoing(
                Message::new("MODE")
                    .with_source(server)
                    .param(chname.clone())
                    .param("+o")
                    .param(nick.clone()),
            );
            self.broadcast(&[id], &mut out, |_| true);
        }
        self.send_marker(id, &chname);
        self.send_topic(id, &chname);
        self.names(id, &chname);
        // The user's other connections saw the JOIN; they get the rest of
        // what a join shows too.
        let siblings = self.other_connections(id);
        if siblings.is_empty() {
            return;
        }
        let acting = self.acting;
        for link in siblings {
            self.acting = Some(link.conn);
            self.send_marker(id, &chname);
            self.send_topic(id, &chname);
            self.names(id, &chname);
        }
        self.acting = acting;
    }

    pub(super) fn part_command(&mut self, id: ConnId, names: &str, reason: &str) {
        for name in self.targets(id, names) {
            self.part(id, name, reason);
        }
    }

    pub(super) fn part(&mut self, id: ConnId, name: &str, reason: &str) {
        let Some(room) = self.state.room(name) else {
            return self.reply(id, replies::no_such_room(name));
        };
        if !room.has(id) {
            let chname = room.name.clone();
            return self.reply(id, replies::not_on_room(&chname));
        }
        if room.is_general() {
            // Everyone stays in #general: it is where members see each
            // other arrive, leave and change status.
            let fail =
                replies::fail_cannot_leave_general(&self.config.server_name, "PART", &room.name);
            return self.send_msg(id, fail);
        }
        let (chname, members) = (room.name.clone(), room.members.clone());
        let (nick, mask) = (self.nick_of(id), self.mask_of(id));
        let reason =
            sanitize::clip(&sanitize::for_relay(reason), super::chat::KICK_LEN).to_string();
        let shown = sanitize::for_display(&reason);
        self.record(
            "part",
            &if shown.is_empty() {
                format!("{chname} {nick}")
            } else {
                format!("{chname} {nick} ({shown})")
            },
        );
        let mut m = Message::new("PART").with_source(mask).param(chname.clone());
        if !reason.is_empty() {
            m = m.param(reason);
        }
        let mut out = self.outgoing(m);
        self.broadcast(&members, &mut out, |_| true);
        self.history_left(id, &casefold(&chname));
        self.state.leave_room(id, &casefold(&chname));
    }

    pub(super) fn send_topic(&mut self, id: ConnId, chname: &str) {
        let Some(room) = self.state.room(chname) else {
            return;
        };
        let name = room.name.clone();
        match room.topic.clone() {
            Some(t) => {
                self.reply(id, replies::topic(&name, &t.text));
                self.reply(
                    id,
                    replies::topic_who_time(&name, &t.setter, t.at.as_second()),
                );
            }
            None => self.reply(id, replies::no_topic(&name)),
        }
    }

    pub(super) fn topic(&mut self, id: ConnId, msg: &Message) {
        let name = msg.param_at(0).unwrap_or("");
        let Some(room) = self.state.room(name) else {
            return self.reply(id, replies::no_such_room(name));
        };
        let chname = room.name.clone();
        let member = room.has(id);
        let Some(new_topic) = msg.param_at(1) else {
            if room.modes.secret && !member && !self.actor(id, room).tracker_oper {
                return self.reply(id, replies::not_on_room(&chname));
            }
            return self.send_topic(id, &chname);
        };
        if let Err(n) = policy::can_set_topic(room, self.actor(id, room)) {
            return self.reply(id, n);
        }
        // TOPICLEN counts bytes: a topic of TOPICLEN bytes keeps the
        // TOPIC line, and RPL_TOPIC and RPL_LIST, within 512 bytes.
        let topic = sanitize::clip(&sanitize::for_relay(new_topic), TOPIC_LEN).to_string();
        let (nick, mask) = (self.nick_of(id), self.mask_of(id));
        self.record("topic", &format!("{chname} {nick}: {topic}"));
        let at = self.clock.wall;
        if let Some(room) = self.state.room_mut(&chname) {
            room.topic = (!topic.is_empty()).then(|| Topic {
                text: topic.clone(),
                setter: nick.clone(),
                at,
            });
        }
        self.room_changed(&chname);
        let members = self.members_and(&chname, id);
        let mut out = self.outgoing(
            Message::new("TOPIC")
                .with_source(mask)
                .param(chname)
                .param(topic),
        );
        self.broadcast(&members, &mut out, |_| true);
    }

    pub(super) fn invite(&mut self, id: ConnId, target: &str, name: &str) {
        let Some(to) = self.state.find(target) else {
            return self.reply(id, replies::no_such_nick(target));
        };
        let Some(room) = self.state.room(name) else {
            return self.reply(id, replies::no_such_room(name));
        };
        if let Err(n) = policy::can_invite(room, self.actor(id, room)) {
            return self.reply(id, n);
        }
        let to_nick = self.nick_of(to);
        let chname = room.name.clone();
        if room.has(to) {
            return self.reply(id, replies::user_on_room(&to_nick, &chname));
        }
        if let Some(room) = self.state.room_mut(&chname) {
            room.invited.insert(casefold(&to_nick));
        }
        let (nick, mask) = (self.nick_of(id), self.mask_of(id));
        self.record("invite", &format!("{chname} {nick} -> {to_nick}"));
        self.reply(id, replies::inviting(&to_nick, &chname));
        let mut out = self.outgoing(
            Message::new("INVITE")
                .with_source(mask)
                .param(to_nick)
                .param(chname),
        );
        self.broadcast(&[to], &mut out, |_| true);
    }

    pub(super) fn names_command(&mut self, id: ConnId, names: Option<&str>) {
        match names {
            None => {
                let keys: Vec<String> = self.state.users[&id].rooms.iter().cloned().collect();
                for key in keys {
                    let name = self.state.rooms[&key].name.clone();
                    self.names(id, &name);
                }
            }
            Some(list) => {
                for name in self.targets(id, list) {
                    self.names(id, name);
                }
            }
        }
    }

    /// NAMES of one room, in parts if it is big.
    pub(super) fn names(&mut self, id: ConnId, name: &str) {
        let visible = self
            .state
            .room(name)
            .filter(|r| !r.modes.secret || r.has(id) || self.actor(id, r).tracker_oper);
        let Some(room) = visible else {
            return self.reply(id, replies::end_of_names(name));
        };
        let reply = LongReply::Names {
            room: casefold(&room.name),
            members: None,
        };
        self.start_long(id, "NAMES", reply);
    }

    pub(super) fn list(&mut self, id: ConnId, names: Option<&str>) {
        let only = names.map(|list| {
            self.targets(id, list)
                .into_iter()
                .map(casefold)
                .collect::<Vec<String>>()
        });
        self.reply(id, replies::list_start());
        self.start_long(id, "LIST", LongReply::List { only, rooms: None });
    }

    // ---- long replies ------------------------------------------------------

    /// Queues a long reply; it starts at once unless another is going out.
    /// A connection with `MAX_LONG_REPLIES` waiting is told to try again.
    /// Long replies are per connection: each of a user's clients reads its
    /// own.
    pub(super) fn start_long(&mut self, id: ConnId, command: &str, reply: LongReply) {
        let conn = self.here(id);
        let queue = self.long_replies.entry(conn).or_default();
        if queue.len() >= MAX_LONG_REPLIES {
            return self.reply(id, replies::try_again(command));
        }
        queue.push_back(reply);
        if queue.len() == 1 {
            self.continue_long(conn);
        }
    }

    /// Sends the next part of connection `conn`'s long replies (about
    /// `PART_BYTES`); asks to hear when it was written out if more is left.
    pub fn continue_long(&mut self, conn: ConnId) {
        let mut budget = PART_BYTES;
        let id = self.user_of(conn);
        loop {
            let Some(mut queue) = self.long_replies.remove(&conn) else {
                return;
            };
            let Some(mut reply) = queue.pop_front() else {
                return;
            };
            let done = self.long_part(id, &mut reply, &mut budget);
            if !done {
                queue.push_front(reply);
            }
            let more = !queue.is_empty();
            if more {
                self.long_replies.insert(conn, queue);
            }
            if !more {
                return;
            }
            if budget == 0 {
                self.out.want_drain.push(conn);
                return;
            }
        }
    }

    /// Writes lines of `reply` while `budget` lasts; true when it is done
    /// (its end line sent).
    fn long_part(&mut self, id: ConnId, reply: &mut LongReply, budget: &mut usize) -> bool {
        let server = self.config.server_name.clone();
        let nick = self.nick_of(id);
        let spend = |chat: &mut Chat, n: replies::Numeric, budget: &mut usize| {
            let line = n.to_message(&server, &nick).to_line();
            *budget = budget.saturating_sub(line.len());
            chat.send(id, bytes::Bytes::from(line));
        };
        let oper = self.state.users.get(&id).is_some_and(|u| u.oper.is_some());
        match reply {
            LongReply::List { only, rooms } => {
                let rooms = rooms.get_or_insert_with(|| {
                    let mut keys: Vec<String> = match only {
                        Some(keys) => keys.clone(),
                        None => self.state.rooms.keys().cloned().collect(),
                    };
                    keys.sort();
                    keys.into()
                });
                while *budget > 0 {
                    let Some(key) = rooms.pop_front() else {
                        spend(self, replies::list_end(), budget);
                        return true;
                    };
                    let Some(room) = self.state.rooms.get(&key) else {
                        continue;
                    };
                    // Secret rooms are listed to their members only.
                    if room.modes.secret && !room.has(id) && !oper {
                        continue;
                    }
                    let n = replies::list_item(
                        &room.name,
                        room.members.len(),
                        room.topic.as_ref().map_or("", |t| t.text.as_str()),
                    );
                    spend(self, n, budget);
                }
                false
            }
            LongReply::Names { room, members } => {
                let prefixes_all = self.caps_of(id).multi_prefix;
                let Some(r) = self.state.rooms.get(room.as_str()) else {
                    spend(self, replies::end_of_names(room), budget);
                    return true;
                };
                let members = members.get_or_insert_with(|| r.members.iter().copied().collect());
                let kind = if r.modes.secret { "@" } else { "=" };
                while *budget > 0 {
                    let mut line = String::new();
                    while let Some(m) = members.front().copied() {
                        let (Some(u), Some(roles)) = (self.state.users.get(&m), r.roles_of(m))
                        else {
                            members.pop_front();
                            continue;
                        };
                        let prefix = if prefixes_all {
                            roles.prefixes()
                        } else {
                            roles.highest().to_string()
                        };
                        if !line.is_empty()
                            && line.len() + 1 + prefix.len() + u.nick.len() > NAMES_LINE_BYTES
                        {
                            break;
                        }
                        if !line.is_empty() {
                            line.push(' ');
                        }
                        line.push_str(&prefix);
                        line.push_str(&u.nick);
                        members.pop_front();
                    }
                    let name = r.name.clone();
                    if !line.is_empty() {
                        let n = replies::names_reply(kind, &name, &line);
                        let text = n.to_message(&server, &nick).to_line();
                        *budget = budget.saturating_sub(text.len());
                        self.out.pending.push((id, bytes::Bytes::from(text)));
                    }
                    if members.is_empty() {
                        spend(self, replies::end_of_names(&name), budget);
                        return true;
                    }
                }
                false
            }
            LongReply::Who { mask, fields, rows } => {
                let (room, rows) = rows.get_or_insert_with(|| self.who_rows(id, mask));
                while *budget > 0 {
                    let Some(target) = rows.pop_front() else {
                        let end = if mask.is_empty() { "*" } else { mask.as_str() };
                        spend(self, replies::end_of_who(end), budget);
                        return true;
                    };
                    if let Some(n) = self.who_row(target, room, fields.as_ref()) {
                        spend(self, n, budget);
                    }
                }
                false
            }
        }
    }
}
