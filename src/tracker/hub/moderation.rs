//! Moderation: KICK, MODE, CLOSE, KILL, and becoming a tracker operator.

use super::super::policy::{self, Refusal};
use super::super::replies;
use super::super::shared::ConnId;
use super::chat::{Chat, KICK_LEN, MAX_BANS, MAX_MODES};
use super::state::{Ban, normalize_ban};
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::proto::sanitize;

/// Longest room key (`+k`), as most servers allow.
const KEY_LEN: usize = 23;

/// One applied mode change, for the MODE line everyone sees.
struct Applied {
    plus: bool,
    letter: char,
    param: Option<String>,
}

impl Chat {
    pub(super) fn kick_command(
        &mut self,
        id: ConnId,
        room: &str,
        nicks: &str,
        reason: Option<&str>,
    ) {
        for nick in self.targets(id, nicks) {
            self.kick(id, room, nick, reason);
        }
    }

    fn kick(&mut self, id: ConnId, name: &str, target: &str, reason: Option<&str>) {
        let Some(room) = self.state.room(name) else {
            return self.reply(id, replies::no_such_room(name));
        };
        let chname = room.name.clone();
        let Some(t) = self.state.find(target) else {
            return self.reply(id, replies::no_such_nick(target));
        };
        let Some(target_roles) = room.roles_of(t) else {
            let tnick = self.nick_of(t);
            return self.reply(id, replies::user_not_in_room(&tnick, &chname));
        };
        if let Err(n) = policy::can_kick(room, self.actor(id, room), target_roles) {
            return self.reply(id, n);
        }
        let (nick, mask, tnick) = (self.nick_of(id), self.mask_of(id), self.nick_of(t));
        let reason = reason
            .map(|r| sanitize::clip(&sanitize::for_relay(r), KICK_LEN).to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| nick.clone());
        self.remove_from_room(&chname, t, id, &mask, &reason);
        let shown = sanitize::for_display(&reason);
        self.record("kick", &format!("{chname} {nick} -> {tnick} ({shown})"));
    }

    /// Sends `KICK room target :reason` from `source` (the user `by`) to
    /// the room's members (the target included, and `by` from outside) and
    /// takes the target out.
    fn remove_from_room(
        &mut self,
        chname: &str,
        target: ConnId,
        by: ConnId,
        source: &str,
        reason: &str,
    ) {
        if self.state.room(chname).is_none() {
            return;
        }
        let members = self.members_and(chname, by);
        let tnick = self.nick_of(target);
        let mut out = self.outgoing(
            Message::new("KICK")
                .with_source(source.to_string())
                .param(chname.to_string())
                .param(tnick)
                .param(reason.to_string()),
        );
        self.broadcast(&members, &mut out, |_| true);
        self.history_left(target, &casefold(chname));
        self.state.leave_room(target, &casefold(chname));
    }

    /// `CLOSE #room [:reason]`: every member is told why (a KICK of
    /// themself whose reason starts `Room closed`, which any IRC client
    /// shows) and removed; the room is gone.
    pub(super) fn close(&mut self, id: ConnId, name: &str, reason: Option<&str>) {
        let Some(room) = self.state.room(name) else {
            return self.reply(id, replies::no_such_room(name));
        };
        let chname = room.name.clone();
        match policy::can_close(room, self.actor(id, room)) {
            Ok(()) => {}
            Err(Refusal::Numeric(n)) => return self.reply(id, n),
            Err(Refusal::CloseGeneral) => {
                let fail = replies::fail_cannot_close_general(&self.config.server_name, &chname);
                return self.send_msg(id, fail);
            }
        }
        let (nick, mask) = (self.nick_of(id), self.mask_of(id));
        let room = self
            .state
            .room(&chname)
            .map(|r| (r.members.len(), !r.has(id)));
        let Some((count, closer_outside)) = room else {
            return;
        };
        self.close_room(&chname, &nick, &mask, reason);
        if closer_outside {
            let notice =
                replies::closed_for_outsider(&self.config.server_name, &nick, &chname, count);
            self.send_msg(id, notice);
        }
    }

    /// Closes `chname` (its policy already checked) in the name of `nick`
    /// (`source` is what members see it come from: a person's mask, or the
    /// server for the console): records it, tells every member why with a
    /// KICK of themself, and removes the room.
    pub(super) fn close_room(
        &mut self,
        chname: &str,
        nick: &str,
        source: &str,
        reason: Option<&str>,
    ) {
        let Some(room) = self.state.room(chname) else {
            return;
        };
        let chname = room.name.clone();
        let members = room.members.clone();
        let reason = reason
            .map(|r| sanitize::clip(&sanitize::for_relay(r), KICK_LEN).to_string())
            .filter(|r| !r.is_empty());
        let said = match &reason {
            Some(r) => format!("Room closed by {nick}: {r}"),
            None => format!("Room closed by {nick}"),
        };
        let shown = reason
            .as_deref()
            .map(sanitize::for_display)
            .unwrap_or_default();
        self.record("close", &format!("{chname} {nick} ({shown})"));
        for m in members {
            let mnick = self.nick_of(m);
            let mut out = self.outgoing(
                Message::new("KICK")
                    .with_source(source.to_string())
                    .param(chname.clone())
                    .param(mnick)
                    .param(said.clone()),
            );
            self.broadcast(&[m], &mut out, |_| true);
            if let Some(u) = self.state.users.get_mut(&m) {
                u.rooms.remove(&casefold(&chname));
            }
            self.history_left(m, &casefold(&chname));
        }
        self.room_closed(&chname);
        self.state.rooms.remove(&casefold(&chname));
    }

    /// `KILL nick :reason` (tracker operators): the user is disconnected,
    /// everyone who shared a room sees why.
    pub(super) fn kill(&mut self, id: ConnId, target: &str, reason: &str) {
        let is_oper = self.state.users.get(&id).is_some_and(|u| u.oper.is_some());
        if let Err(n) = policy::can_kill(is_oper) {
            return self.reply(id, n);
        }
        if casefold(target) == casefold(&self.config.server_name) {
            return self.reply(id, replies::cant_kill_server());
        }
        let Some(t) = self.state.find(target) else {
            return self.reply(id, replies::no_such_nick(target));
        };
        let nick = self.nick_of(id);
        self.disconnect(&nick, t, reason);
    }

    /// Disconnects `target` in the name of `by` (an operator's nick, or the
    /// server for the console): recorded as a kill, and everyone who shared
    /// a room sees the reason as the user's QUIT.
    pub(super) fn disconnect(&mut self, by: &str, target: ConnId, reason: &str) {
        let tnick = self.nick_of(target);
        let reason = sanitize::clip(&sanitize::for_display(reason), KICK_LEN).to_string();
        self.record("kill", &format!("{by} -> {tnick} ({reason})"));
        self.remove_user(target, &format!("Killed by {by} ({reason})"));
    }

    /// The connection task checked an `OPER` attempt (the password hash is
    /// checked off this thread): `Some(name)` grants the operator block.
    pub fn oper_result(&mut self, id: ConnId, granted: Option<String>) {
        let Some(u) = self.state.users.get_mut(&id) else {
            return;
        };
        let Some(name) = granted else {
            return self.reply(id, replies::no_oper_host());
        };
        let first = u.oper.is_none();
        u.oper = Some(name.clone());
        let nick = u.nick.clone();
        self.reply(id, replies::you_are_oper());
        if first {
            self.record("oper", &format!("{nick} as {name}"));
            self.tell_user_mode(id, &nick, "+o");
        }
    }

    pub(super) fn mode(&mut self, id: ConnId, msg: &Message) {
        let target = msg.param_at(0).unwrap_or("");
        if !target.starts_with('#') {
            return self.user_mode(id, target, msg.param_at(1));
        }
        let Some(room) = self.state.room(target) else {
            return self.reply(id, replies::no_such_room(target));
        };
        let chname = room.name.clone();
        let Some(changes) = msg.param_at(1) else {
            let show_key = room.has(id) || self.actor(id, room).tracker_oper;
            let modes = room.modes.describe(show_key);
            let created = room.created.as_second();
            self.reply(id, replies::room_mode_is(&chname, &modes));
            return self.reply(id, replies::creation_time(&chname, created));
        };
        let mut args = msg.params.iter().skip(2).map(String::as_str);
        let mut plus = true;
        let mut applied: Vec<Applied> = Vec::new();
        let mut with_param = 0;
        let mut unknown_said = String::new();
        for letter in changes.chars() {
            match letter {
                '+' => {
                    plus = true;
                    continue;
                }
                '-' => {
                    plus = false;
                    continue;
                }
                _ => {}
            }
            let takes_param = match letter {
                'o' | 'v' | 'k' | 'b' => true,
                'l' => plus,
                _ => false,
            };
            if takes_param {
                if with_param == MAX_MODES {
                    continue;
                }
                with_param += 1;
            }
            let param = if takes_param { args.next() } else { None };
            if letter == 'b' && param.is_none() {
                self.ban_list(id, &chname);
                continue;
            }
            if !"bklimnstovq".contains(letter) {
                if !unknown_said.contains(letter) {
                    unknown_said.push(letter);
                    self.reply(id, replies::unknown_mode(&letter.to_string()));
                }
                continue;
            }
            if let Some(change) = self.mode_change(id, &chname, plus, letter, param) {
                applied.push(change);
            }
        }
        if applied.is_empty() {
            return;
        }
        let mut flags = String::new();
        let mut sign = None;
        let mut params = Vec::new();
        for a in &applied {
            if sign != Some(a.plus) {
                flags.push(if a.plus { '+' } else { '-' });
                sign = Some(a.plus);
            }
            flags.push(a.letter);
            params.extend(a.param.clone());
        }
        let (nick, mask) = (self.nick_of(id), self.mask_of(id));
        let mut line = flags.clone();
        for p in &params {
            line.push(' ');
            line.push_str(p);
        }
        self.record("mode", &format!("{chname} {nick} {line}"));
        self.room_changed(&chname);
        let mut m = Message::new("MODE")
            .with_source(mask)
            .param(chname.clone())
            .param(flags);
        for p in params {
            m = m.param(p);
        }
        let members = self.members_and(&chname, id);
        let mut out = self.outgoing(m);
        self.broadcast(&members, &mut out, |_| true);
    }

    /// Applies one mode letter if `id` may; answers a refusal itself.
    fn mode_change(
        &mut self,
        id: ConnId,
        chname: &str,
        plus: bool,
        letter: char,
        param: Option<&str>,
    ) -> Option<Applied> {
        let room = self.state.room(chname)?;
        let actor = self.actor(id, room);
        // The member a +o/+v names, and their roles.
        let target = match letter {
            'o' | 'v' | 'q' => {
                let Some(p) = param else {
                    self.reply(id, replies::need_more_params("MODE"));
                    return None;
                };
                let Some(t) = self.state.find(p) else {
                    self.reply(id, replies::no_such_nick(p));
                    return None;
                };
                let Some(r) = room.roles_of(t) else {
                    let tnick = self.nick_of(t);
                    self.reply(id, replies::user_not_in_room(&tnick, chname));
                    return None;
                };
                Some((t, r))
            }
            _ => None,
        };
        if let Err(n) = policy::can_set_mode(room, actor, plus, letter, target.map(|t| t.1)) {
            self.reply(id, n);
            return None;
        }
        if letter == 'q' {
            self.reply(
                id,
                replies::chanop_needed(
                    chname,
                    "The founder is the room's creator; that cannot be given or taken",
                ),
            );
            return None;
        }
        let setter = self.nick_of(id);
        let at = self.clock.wall;
        let room = self.state.room_mut(chname)?;
        let plain = |on: bool, applied_param: Option<String>| Applied {
            plus: on,
            letter,
            param: applied_param,
        };
        match letter {
            'o' | 'v' => {
                let (t, _) = target?;
                let roles = room.roles.get_mut(&t)?;
                let flag = if letter == 'o' {
                    &mut roles.op
                } else {
                    &mut roles.voice
                };
                if *flag == plus {
                    return None;
                }
                *flag = plus;
                let tnick = self.state.users.get(&t).map(|u| u.nick.clone())?;
                Some(plain(plus, Some(tnick)))
            }
            'k' => {
                if plus {
                    let key = param.unwrap_or("");
                    if key.is_empty()
                        || key.len() > KEY_LEN
                        || key.contains([',', ' '])
                        || key.chars().any(char::is_control)
                    {
                        self.reply(id, replies::invalid_key(chname));
                        return None;
                    }
                    room.modes.key = Some(key.to_string());
                    Some(plain(true, Some(key.to_string())))
                } else {
                    room.modes.key.take()?;
                    Some(plain(false, Some("*".into())))
                }
            }
            'l' => {
                if plus {
                    let Some(n) = param
                        .and_then(|p| p.parse::<usize>().ok())
                        .filter(|n| *n > 0)
                    else {
                        let p = param.unwrap_or("").to_string();
                        self.reply(
                            id,
                            replies::invalid_mode_param(
                                chname,
                                'l',
                                &p,
                                "The limit must be a positive number",
                            ),
                        );
                        return None;
                    };
                    room.modes.limit = Some(n);
                    Some(plain(true, Some(n.to_string())))
                } else {
                    room.modes.limit.take()?;
                    Some(plain(false, None))
                }
            }
            'b' => {
                let mask = normalize_ban(param?);
                if plus {
                    if room
                        .bans
                        .iter()
                        .any(|b| casefold(&b.mask) == casefold(&mask))
                    {
                        return None;
                    }
                    if room.bans.len() >= MAX_BANS {
                        self.reply(id, replies::ban_list_full(chname, &mask));
                        return None;
                    }
                    room.bans.push(Ban {
                        mask: mask.clone(),
                        setter,
                        at,
                    });
                } else {
                    let before = room.bans.len();
                    room.bans.retain(|b| casefold(&b.mask) != casefold(&mask));
                    if room.bans.len() == before {
                        return None;
                    }
                }
                Some(plain(plus, Some(mask)))
            }
            _ => {
                let flag = match letter {
                    'i' => &mut room.modes.invite_only,
                    'm' => &mut room.modes.moderated,
                    'n' => &mut room.modes.no_outside,
                    's' => &mut room.modes.secret,
                    't' => &mut room.modes.topic_ops_only,
                    _ => return None,
                };
                if *flag == plus {
                    return None;
                }
                *flag = plus;
                Some(plain(plus, None))
            }
        }
    }

    /// `:nick MODE nick <change>`: how IRC tells a user their own modes.
    fn tell_user_mode(&mut self, id: ConnId, nick: &str, change: &str) {
        let mut out = self.outgoing(
            Message::new("MODE")
                .with_source(nick.to_string())
                .param(nick.to_string())
                .param(change.to_string()),
        );
        self.broadcast(&[id], &mut out, |_| true);
    }

    fn ban_list(&mut self, id: ConnId, chname: &str) {
        let bans = self
            .state
            .room(chname)
            .map(|r| r.bans.clone())
            .unwrap_or_default();
        for b in bans {
            self.reply(
                id,
                replies::ban_list(chname, &b.mask, &b.setter, b.at.as_second()),
            );
        }
        self.reply(id, replies::end_of_ban_list(chname));
    }

    fn user_mode(&mut self, id: ConnId, target: &str, changes: Option<&str>) {
        let is_self = self.state.find(target) == Some(id);
        if let Err(n) = policy::can_set_user_mode(is_self) {
            return self.reply(id, n);
        }
        if let Some(changes) = changes {
            // Only `-o` (give up operator rights) changes anything; other
            // letters are refused.
            if changes == "-o" {
                let Some(u) = self.state.users.get_mut(&id) else {
                    return;
                };
                if u.oper.take().is_some() {
                    let nick = u.nick.clone();
                    self.record("oper", &format!("{nick} gave up operator rights"));
                    self.tell_user_mode(id, &nick, "-o");
                }
                return;
            }
            if changes.trim_start_matches(['+', '-']) != "i" {
                return self.reply(id, replies::umode_unknown_flag());
            }
        }
        let oper = self.state.users.get(&id).is_some_and(|u| u.oper.is_some());
        self.reply(id, replies::umode_is(if oper { "+o" } else { "+" }));
    }
}
