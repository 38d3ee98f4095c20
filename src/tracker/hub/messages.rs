//! PRIVMSG, NOTICE and TAGMSG: to rooms and as direct messages.

use super::super::policy;
use super::super::replies;
use super::super::shared::ConnId;
use super::chat::{Chat, MessageMark};
use super::p2p::DccRoute;
use crate::proto::Message;
use crate::proto::sanitize;

impl Chat {
    pub(super) fn message(&mut self, id: ConnId, msg: &Message) {
        let cmd = msg.command.as_str();
        let is_notice = cmd == "NOTICE";
        let is_tagmsg = cmd == "TAGMSG";
        let Some(targets) = msg.param_at(0).filter(|t| !t.is_empty()) else {
            if !is_notice {
                self.reply(id, replies::no_recipient(cmd));
            }
            return;
        };
        let text = if is_tagmsg {
            String::new()
        } else {
            sanitize::for_relay(msg.param_at(1).unwrap_or(""))
        };
        if !is_tagmsg && text.is_empty() {
            if !is_notice {
                self.reply(id, replies::no_text_to_send());
            }
            return;
        }
        // Client-only tags (`+name`) travel to peers with message-tags.
        let client_tags: Vec<(String, Option<String>)> = msg
            .tags
            .iter()
            .filter(|(k, _)| k.starts_with('+'))
            .cloned()
            .collect();
        if is_tagmsg && client_tags.is_empty() {
            return;
        }
        for target in self.targets(id, targets) {
            let staged = self.transcript.staged_len();
            let pending = self.out.pending.len();
            self.message_one(id, cmd, target, &text, &client_tags);
            if self.transcript.staged_len() > staged {
                self.out.marks.push(MessageMark {
                    sender: id,
                    command: cmd.to_string(),
                    target: target.to_string(),
                    text: text.clone(),
                    staged: staged..self.transcript.staged_len(),
                    pending: pending..self.out.pending.len(),
                });
            }
        }
    }

    fn message_one(
        &mut self,
        id: ConnId,
        cmd: &str,
        target: &str,
        text: &str,
        client_tags: &[(String, Option<String>)],
    ) {
        let is_notice = cmd == "NOTICE";
        let is_tagmsg = cmd == "TAGMSG";
        let Some(sender) = self.state.users.get(&id) else {
            return;
        };
        let (sender_nick, sender_mask) = (sender.nick.clone(), sender.mask());
        let echo = self.caps_of(id).echo_message;
        let shown = sanitize::for_display(text);
        let (action, body) = match shown.strip_prefix("ACTION ") {
            Some(rest) if text.starts_with("\x01ACTION") => (true, rest.to_string()),
            _ => (false, shown.clone()),
        };
        if target.starts_with('#') {
            let Some(room) = self.state.room(target) else {
                if !is_notice {
                    self.reply(id, replies::no_such_room(target));
                }
                return;
            };
            if let Err(n) = policy::can_send(room, self.actor(id, room), &sender_mask) {
                if !is_notice {
                    self.reply(id, n);
                }
                return;
            }
            let name = room.name.clone();
            let recipients: Vec<ConnId> = room
                .members
                .iter()
                .copied()
                .filter(|m| *m != id || echo)
                .collect();
            let mut m = Message::new(cmd)
                .with_source(sender_mask)
                .param(name.clone());
            if !is_tagmsg {
                m = m.param(text.to_string());
            }
            let mut out = self.outgoing(m);
            if !is_tagmsg {
                let tags = self.log_tags(id, None, &out);
                let (event, line) = match (is_notice, action) {
                    (true, _) => ("notice", format!("{tags}{name} -{sender_nick}- {body}")),
                    (false, true) => ("action", format!("{tags}{name} * {sender_nick} {body}")),
                    (false, false) => ("msg", format!("{tags}{name} <{sender_nick}> {body}")),
                };
                self.record(event, &line);
            }
            out.client_tags = client_tags.to_vec();
            let need_tags = is_tagmsg;
            self.broadcast(&recipients, &mut out, |c| !need_tags || c.message_tags);
            if !is_tagmsg {
                self.keep(id, None, Some(&name), &out);
            }
        } else {
            let Some(to) = self.state.find(target) else {
                // A registered account not connected gets it at its next
                // login (with history kept, so there is somewhere to hold
                // it); anyone else does not exist.
                if self.history.on
                    && !is_tagmsg
                    && self
                        .accounts
                        .names
                        .contains(&crate::proto::nick::casefold(target))
                {
                    return self.hold_dm(id, cmd, target, text);
                }
                if !is_notice {
                    self.reply(id, replies::no_such_nick(target));
                }
                return;
            };
            let to_user = &self.state.users[&to];
            let (to_nick, to_away) = (to_user.nick.clone(), to_user.away.clone());
            let mut m = Message::new(cmd)
                .with_source(sender_mask)
                .param(to_nick.clone());
            if !is_tagmsg {
                m = m.param(text.to_string());
            }
            let mut out = self.outgoing(m);
            // A DM (not a tag-only line, nor a direct session's CTCP) is
            // kept in history.
            let mut ordinary = false;
            if !is_tagmsg {
                // A direct session's offer or answer is recorded (or
                // refused) as such, never as a DM.
                let route = self.direct_session_line(id, to, cmd, text);
                ordinary = route == DccRoute::Ordinary;
                if route == DccRoute::Stop {
                    return;
                }
                if route == DccRoute::Ordinary {
                    let tags = self.log_tags(id, Some(to), &out);
                    let (event, line) = dm_event(is_notice, text, &sender_nick, &to_nick, &tags);
                    self.record(event, &line);
                    let at = self.clock.wall;
                    self.console_records.dm(&sender_nick, &to_nick, at);
                }
            }
            out.client_tags = client_tags.to_vec();
            let mut recipients = vec![to];
            if echo && to != id {
                recipients.push(id);
            }
            let need_tags = is_tagmsg;
            self.broadcast(&recipients, &mut out, |c| !need_tags || c.message_tags);
            if ordinary {
                self.keep(id, Some(to), None, &out);
            }
            if let (Some(reason), false, false) = (to_away, is_notice, is_tagmsg) {
                self.reply(id, replies::away(&to_nick, &reason));
            }
        }
    }
}

/// The `chat.log` event and details of a direct message (`dm`,
/// `dm-action` for a `/me`, `dm-notice`), its text made safe to show,
/// after the line's tags (`durable.rs`).
pub(super) fn dm_event(
    is_notice: bool,
    text: &str,
    from: &str,
    to: &str,
    tags: &str,
) -> (&'static str, String) {
    let shown = sanitize::for_display(text);
    match (is_notice, shown.strip_prefix("ACTION ")) {
        (true, _) => ("dm-notice", format!("{tags}{from} -> {to}: {shown}")),
        (false, Some(rest)) if text.starts_with("\x01ACTION") => (
            "dm-action",
            format!("{tags}{from} -> {to}: * {from} {rest}"),
        ),
        (false, _) => ("dm", format!("{tags}{from} -> {to}: {shown}")),
    }
}
