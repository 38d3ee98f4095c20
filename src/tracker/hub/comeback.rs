//! Coming back: what a connection logged in to an account gets from the
//! store once it is in (its rooms again, read markers, a "while you were
//! away" summary and the unread lines per room and direct conversation),
//! read markers (`draft/read-marker`, shared by an account's
//! connections), and direct messages held for an account that is not
//! connected (delivered at its next login).
//!
//! The summary is a NOTICE from the tracker, so any IRC client shows it;
//! the unread lines come in a `chathistory` batch, which is how a client
//! tells replayed lines from new ones (confab's client never counts them
//! as unread or as mentions).

use std::collections::HashMap;

use super::super::replies;
use super::super::shared::{ConnId, HistoryJob};
use super::super::transcript;
use super::chat::{Chat, Outgoing};
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::store::{LoginView, StoredMessage, Unread, dm_key};

/// Unread lines sent per room or conversation at login, at most (held
/// direct messages are all sent). Older ones are a page back
/// (`CHATHISTORY BEFORE`).
pub const REPLAY_MAX: usize = 200;

/// Read markers of the accounts connected now: account (casefolded) to
/// history key to Unix ms. Loaded from the store at login, moved by
/// `MARKREAD`, let go when the account's last connection leaves; the store
/// keeps them for good.
#[derive(Default)]
pub struct Markers {
    by_account: HashMap<String, HashMap<String, i64>>,
}

impl Chat {
    /// A connection logged in to an account is in: ask the store what it
    /// needs (its rooms, markers and unread lines).
    pub(super) fn history_welcome(&mut self, id: ConnId) {
        if !self.history.on {
            return;
        }
        let conn = self.here(id);
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let Some(account) = u.account.as_deref().map(casefold) else {
            return;
        };
        self.out.history_jobs.push(HistoryJob::Login {
            conn,
            account,
            nick: u.nick.clone(),
            rooms_now: u.rooms.iter().cloned().collect(),
            attached: u.links.len() > 1,
            cap: self.history.replay_max,
            now_ms: self.clock.wall.as_millisecond(),
        });
    }

    /// The store's answer to a login: back into the account's rooms (as a
    /// JOIN would: a room's rules still apply, a room gone since is opened
    /// again), the read marker of every room it is in, then per target the
    /// summary and the unread lines.
    pub fn login_view(&mut self, conn: ConnId, view: LoginView) {
        let id = self.act_for(conn);
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        if !u.links.iter().any(|l| l.conn == conn) {
            return;
        }
        let Some(account) = u.account.as_deref().map(casefold) else {
            return;
        };
        let attached = u.links.len() > 1;
        let before: Vec<String> = u.rooms.iter().cloned().collect();
        self.history
            .markers
            .by_account
            .insert(account.clone(), view.markers.into_iter().collect());
        let general = casefold(super::state::GENERAL);
        for room in view.rooms.iter().filter(|r| **r != general) {
            if !self.state.users.contains_key(&id) {
                return;
            }
            // A JOIN sends the room's marker itself, now that they are known.
            self.join(id, room, None);
        }
        for key in before {
            if let Some(name) = self.state.rooms.get(&key).map(|r| r.name.clone()) {
                self.send_marker(id, &name);
            }
        }
        for unread in view.unread {
            self.replay(id, &account, attached, unread);
        }
    }

    /// One room's or conversation's unread lines: the summary, the
    /// marker of a conversation, then the lines in a `chathistory` batch.
    fn replay(&mut self, id: ConnId, account: &str, attached: bool, unread: Unread) {
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let nick = u.nick.clone();
        let (shown, notice_to) = match &unread.with {
            Some(with) => (with.clone(), nick.clone()),
            None => {
                let room = self
                    .state
                    .rooms
                    .get(&unread.target)
                    .map(|r| r.name.clone())
                    .unwrap_or_else(|| unread.target.clone());
                (room.clone(), room)
            }
        };
        let text = replies::unread_summary(
            attached,
            unread.with.is_some(),
            &shown,
            unread.count,
            unread.mentions,
            unread.lines.len(),
        );
        let mut notice = Message::new("NOTICE")
            .with_source(self.config.server_name.clone())
            .param(notice_to)
            .param(text);
        if self.caps_of(id).message_tags {
            notice = notice.tag("confab/away-summary", Some(shown.clone()));
        }
        self.send_msg(id, notice);
        if unread.with.is_some() {
            self.send_marker(id, &shown);
        }
        self.send_history_batch(id, &shown, unread.lines);
        if let Some(through) = unread.held_through {
            self.out.history_jobs.push(HistoryJob::Delivered {
                account: account.to_string(),
                through,
            });
        }
    }

    /// `lines` to the asking connection of `id` as a `chathistory` batch
    /// for `target` (bare lines to a client without `batch`), each with
    /// its original time and msgid as the client's capabilities allow.
    pub(super) fn send_history_batch(
        &mut self,
        id: ConnId,
        target: &str,
        lines: Vec<StoredMessage>,
    ) {
        let caps = self.caps_of(id);
        self.history.next_batch += 1;
        let reference = format!("h{}", self.history.next_batch);
        let server = self.config.server_name.clone();
        if caps.batch {
            self.send_msg(
                id,
                Message::new("BATCH")
                    .with_source(server.clone())
                    .param(format!("+{reference}"))
                    .param("chathistory")
                    .param(target.to_string()),
            );
        }
        for m in lines {
            let mut line = if crate::store::is_message(&m.command) {
                Message::new(&m.command)
                    .with_source(m.source)
                    .param(m.to_param)
                    .param(m.text)
            } else {
                // A room event: its parameters were kept as on the wire.
                match Message::parse(&format!("{} {}", m.command, m.text)) {
                    Ok(event) => event.with_source(m.source),
                    Err(e) => {
                        tracing::warn!("history: event {} unreadable: {e}", m.msgid);
                        continue;
                    }
                }
            };
            if caps.batch {
                line = line.tag("batch", Some(reference.clone()));
            }
            if caps.server_time {
                let at = jiff::Timestamp::from_millisecond(m.at_ms).unwrap_or_default();
                line = line.tag("time", Some(transcript::timestamp(at)));
            }
            if caps.message_tags {
                line = line.tag("msgid", Some(m.msgid));
            }
            self.send_msg(id, line);
        }
        if caps.batch {
            self.send_msg(
                id,
                Message::new("BATCH")
                    .with_source(server)
                    .param(format!("-{reference}")),
            );
        }
    }

    /// Where `id`'s account has read `target` up to, as `MARKREAD` says it
    /// (`timestamp=...`, or `*` when nothing is marked).
    fn marker_param(&self, id: ConnId, target: &str) -> Option<String> {
        let account = self.state.users.get(&id)?.account.as_deref()?;
        let markers = self.history.markers.by_account.get(&casefold(account))?;
        let key = self.history_key(id, target);
        Some(match markers.get(&key) {
            Some(ms) => format!(
                "timestamp={}",
                transcript::timestamp(jiff::Timestamp::from_millisecond(*ms).unwrap_or_default())
            ),
            None => "*".into(),
        })
    }

    /// `MARKREAD <target> <marker>` to the asking connection of `id`, when
    /// it asked for read markers and the account's are loaded.
    pub(super) fn send_marker(&mut self, id: ConnId, target: &str) {
        if !self.caps_of(id).read_marker {
            return;
        }
        if let Some(param) = self.marker_param(id, target) {
            let m = Message::new("MARKREAD")
                .with_source(self.config.server_name.clone())
                .param(target.to_string())
                .param(param);
            self.send_msg(id, m);
        }
    }

    /// The history key of `target` as `id` names it: a room's casefolded
    /// name, or the direct conversation between the two.
    pub(super) fn history_key(&self, id: ConnId, target: &str) -> String {
        if target.starts_with('#') {
            return casefold(target);
        }
        let me = self.identity(id);
        let other = match self.state.find(target) {
            Some(o) => self.identity(o),
            None if self.accounts.names.contains(&casefold(target)) => casefold(target),
            None => format!("~{}", casefold(target)),
        };
        dm_key(&me, &other)
    }

    fn fail_markread(&mut self, id: ConnId, code: &str, context: &[&str], why: &str) {
        let m = replies::fail(&self.config.server_name, "MARKREAD", code, context, why);
        self.send_msg(id, m);
    }

    /// `MARKREAD <target> [timestamp=<time>]`: asks for, or moves forward,
    /// the account's read marker on a room or conversation. The asking
    /// connection gets the marker as kept; the account's other connections
    /// hear when it moved, so what was read on one is read on all.
    pub(super) fn markread(&mut self, id: ConnId, msg: &Message) {
        let target = msg.params[0].clone();
        if !self.history.on {
            return self.fail_markread(
                id,
                "INVALID_PARAMS",
                &[&target],
                "This tracker keeps no history",
            );
        }
        let Some(account) = self
            .state
            .users
            .get(&id)
            .and_then(|u| u.account.as_deref())
            .map(casefold)
        else {
            return self.fail_markread(
                id,
                "ACCOUNT_REQUIRED",
                &[&target],
                "Read markers are kept for accounts: log in first",
            );
        };
        if target.is_empty() || target.contains(',') {
            return self.fail_markread(id, "INVALID_PARAMS", &[&target], "Invalid target");
        }
        let Some(given) = msg.param_at(1) else {
            let param = self.marker_param(id, &target).unwrap_or_else(|| "*".into());
            let m = Message::new("MARKREAD")
                .with_source(self.config.server_name.clone())
                .param(target)
                .param(param);
            return self.send_msg(id, m);
        };
        let at = given
            .strip_prefix("timestamp=")
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let Some(at) = at else {
            return self.fail_markread(
                id,
                "INVALID_PARAMS",
                &[&target, given],
                "The marker is timestamp=<RFC 3339 time>",
            );
        };
        let key = self.history_key(id, &target);
        let markers = self
            .history
            .markers
            .by_account
            .entry(account.clone())
            .or_default();
        let old = markers.get(&key).copied();
        let ms = at.as_millisecond().max(old.unwrap_or(i64::MIN));
        let moved = old != Some(ms);
        if moved {
            markers.insert(key.clone(), ms);
            self.out.history_jobs.push(HistoryJob::MarkRead {
                account,
                target: key,
                at_ms: ms,
            });
        }
        let stamp =
            transcript::timestamp(jiff::Timestamp::from_millisecond(ms).unwrap_or_default());
        let line = Message::new("MARKREAD")
            .with_source(self.config.server_name.clone())
            .param(target)
            .param(format!("timestamp={stamp}"));
        self.send_msg(id, line.clone());
        if !moved {
            return;
        }
        let bytes = bytes::Bytes::from(line.to_line());
        for l in self.other_connections(id) {
            if l.caps.read_marker {
                self.out.pending.push((l.conn, bytes.clone()));
            }
        }
    }

    /// `id` just registered an account: the rooms it is in count as joined
    /// by the account (from this connection's first join), so it reads
    /// them and is put back in them as if it had joined logged in.
    pub(super) fn history_account_began(&mut self, id: ConnId) {
        if !self.history.on {
            return;
        }
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let Some(account) = u.account.as_deref().map(casefold) else {
            return;
        };
        let joins: Vec<HistoryJob> = u
            .rooms
            .iter()
            .map(|room| HistoryJob::Joined {
                account: account.clone(),
                room: room.clone(),
                seq: u.reads_from.get(room).copied().unwrap_or(0),
            })
            .collect();
        self.out.history_jobs.extend(joins);
        self.history.markers.by_account.entry(account).or_default();
    }

    /// The account's last connection left: its markers are let go from
    /// memory, and the time is kept (a later login counts what it missed
    /// from here when a target has no marker).
    pub(super) fn history_account_went(
        &mut self,
        account: &str,
        rooms: &std::collections::BTreeSet<String>,
    ) {
        if !self.history.on {
            return;
        }
        self.history.markers.by_account.remove(account);
        // Each room's place as it left, exact where a time is not: a line
        // of the same millisecond, after it, is still unread.
        let rooms = rooms
            .iter()
            .map(|r| (r.clone(), self.history_seq(r)))
            .collect();
        self.out.history_jobs.push(HistoryJob::Seen {
            account: account.to_string(),
            at_ms: self.clock.wall.as_millisecond(),
            rooms,
        });
    }

    /// A direct message to a registered account that is not connected:
    /// recorded and kept like any DM, held for the account's next login,
    /// and the sender told (not for a NOTICE, which is never answered).
    pub(super) fn hold_dm(&mut self, id: ConnId, cmd: &str, target: &str, text: &str) {
        let Some(sender) = self.state.users.get(&id) else {
            return;
        };
        let (nick, mask) = (sender.nick.clone(), sender.mask());
        let account = casefold(target);
        let m = Message::new(cmd)
            .with_source(mask)
            .param(target.to_string())
            .param(text.to_string());
        let mut out = self.outgoing(m);
        let key = dm_key(&self.identity(id), &account);
        let tags = self.log_tags_to(id, Some(account.clone()), Some(&key), &out);
        let (event, line) = super::messages::dm_event(cmd == "NOTICE", text, &nick, target, &tags);
        self.record(event, &line);
        let at = self.clock.wall;
        self.console_records.dm(&nick, target, at);
        let echo = self.caps_of(id).echo_message;
        let recipients = if echo { vec![id] } else { Vec::new() };
        self.broadcast(&recipients, &mut out, |_| true);
        self.keep_held(id, &account, target, &out);
        if cmd != "NOTICE" {
            let m = Message::new("NOTICE")
                .with_source(self.config.server_name.clone())
                .param(nick)
                .param(replies::held_for_later(target));
            self.send_msg(id, m);
        }
    }

    /// Keeps a DM to `account`, who is not connected, and holds it for
    /// their next login.
    fn keep_held(&mut self, from: ConnId, account: &str, to_shown: &str, out: &Outgoing) {
        let me = self.identity(from);
        let Some(u) = self.state.users.get(&from) else {
            return;
        };
        let parties = crate::store::DirectParties {
            from: me.clone(),
            from_shown: u.nick.clone(),
            to: account.to_string(),
            to_shown: to_shown.to_string(),
        };
        let key = dm_key(&me, account);
        self.keep_message(from, key, Some(parties), Some(account.to_string()), out);
    }
}
