//! History in the chat: every room message and DM handed to the store at
//! its place (`seq`) in its target, and every room event (JOIN, PART,
//! QUIT and NICK in each room of the user, KICK, TOPIC, MODE) between
//! them; `CHATHISTORY` (IRCv3, draft) answered from it, each reader seeing
//! a room only from when they first joined it, the events only with
//! `draft/event-playback`; `CHATHISTORY TARGETS` listing the rooms and
//! conversations that moved in a window.
//!
//! The hub never waits for the store: what to keep goes out in
//! `Chat.out.history` after the batch's `chat.log` commit (the commit point;
//! a batch `chat.log` refused is never kept either), and a page asked for
//! is a [`HistoryJob`] whose answer comes back as `HubRequest::HistoryPage`.

use std::collections::HashMap;

use super::super::shared::{ConnId, HistoryJob, HistoryPageDone, PageFailure, TargetsDone};
use super::chat::{Chat, Outgoing};
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::store::{
    DirectParties, HistoryQuery, Lines, NewMessage, ReadableRoom, Selector, dm_key,
};

/// The most messages one `CHATHISTORY` answers (`CHATHISTORY=` in
/// ISUPPORT).
pub const PAGE_MAX: usize = 100;

/// The room events kept in history, between the messages.
const EVENTS: &[&str] = &["JOIN", "PART", "QUIT", "KICK", "NICK", "TOPIC", "MODE"];

/// Whether history is kept, and each target's last place.
#[derive(Default)]
pub struct History {
    pub on: bool,
    /// Each target's last `seq` (rooms by casefolded name, DMs by
    /// [`dm_key`]), loaded from the store at start so numbering resumes.
    seqs: HashMap<String, i64>,
    /// Numbers the `BATCH` references of this run.
    pub(super) next_batch: u64,
    /// The connected accounts' read markers (`comeback.rs`).
    pub(super) markers: super::comeback::Markers,
    /// Unread lines sent per target at login, at most.
    pub replay_max: usize,
}

impl Chat {
    /// Turns history on, numbering each target from where the store is.
    pub fn enable_history(&mut self, seqs: impl IntoIterator<Item = (String, i64)>) {
        self.history.on = true;
        self.history.seqs = seqs.into_iter().collect();
        if self.history.replay_max == 0 {
            self.history.replay_max = super::comeback::REPLAY_MAX;
        }
    }

    /// A target's last place (0 before its first message).
    pub(super) fn history_seq(&self, key: &str) -> i64 {
        self.history.seqs.get(key).copied().unwrap_or(0)
    }

    /// Whose side of a DM `id` is: their account, or `~` and their nick.
    pub(super) fn identity(&self, id: ConnId) -> String {
        match self.state.users.get(&id) {
            Some(u) => match &u.account {
                Some(a) => casefold(a),
                None => format!("~{}", casefold(&u.nick)),
            },
            None => String::new(),
        }
    }

    /// Keeps a room message or a DM (`to` set) just delivered by `out`.
    pub(super) fn keep(
        &mut self,
        from: ConnId,
        to: Option<ConnId>,
        room: Option<&str>,
        out: &Outgoing,
    ) {
        if !self.history.on {
            return;
        }
        let Some(u) = self.state.users.get(&from) else {
            return;
        };
        let (key, direct) = match (room, to) {
            (Some(room), _) => (casefold(room), None),
            (None, Some(to)) => {
                let (a, b) = (self.identity(from), self.identity(to));
                let to_shown = self
                    .state
                    .users
                    .get(&to)
                    .map(|t| t.nick.clone())
                    .unwrap_or_default();
                let parties = DirectParties {
                    from: a.clone(),
                    from_shown: u.nick.clone(),
                    to: b.clone(),
                    to_shown,
                };
                (dm_key(&a, &b), Some(parties))
            }
            (None, None) => return,
        };
        self.keep_message(from, key, direct, None, out);
    }

    /// Keeps `out` in the history `key` at its next place; `hold_for`: an
    /// account to deliver it to at its next login.
    pub(super) fn keep_message(
        &mut self,
        from: ConnId,
        key: String,
        direct: Option<DirectParties>,
        hold_for: Option<String>,
        out: &Outgoing,
    ) {
        let (Some(u), Some(n)) = (self.state.users.get(&from), out.msgid) else {
            return;
        };
        let account = u.account.as_deref().map(casefold);
        let seq = self.history.seqs.entry(key.clone()).or_insert(0);
        *seq += 1;
        let message = NewMessage {
            seq: *seq,
            msgid: self.msgids.format(n),
            at_ms: self.clock.wall.as_millisecond(),
            target: key,
            command: out.msg.command.clone(),
            source: out.msg.source.clone().unwrap_or_default(),
            sender_account: account,
            to_param: out.msg.param_at(0).unwrap_or("").to_string(),
            text: out.msg.param_at(1).unwrap_or("").to_string(),
            client_tags: String::new(),
            direct,
            hold_for,
        };
        self.out.history.push(message);
    }

    /// Keeps a room event as it gets its msgid (from `Chat::outgoing`,
    /// before it changes anything): in its room, or, for a QUIT or a NICK,
    /// in each room of the user, as each room saw it, with the one msgid.
    /// A MODE on a user, an AWAY, an INVITE are no room's events.
    pub(super) fn keep_event(&mut self, out: &Outgoing) {
        if !self.history.on || !EVENTS.contains(&out.msg.command.as_str()) {
            return;
        }
        let Some(n) = out.msgid else {
            return;
        };
        let msg = &out.msg;
        let source = msg.source.clone().unwrap_or_default();
        // A person's event (`nick!user@host`), not the server's.
        let user = match source.split_once('!') {
            Some((nick, _)) => self
                .state
                .find(nick)
                .and_then(|id| self.state.users.get(&id)),
            None => None,
        };
        let account = user.and_then(|u| u.account.as_deref()).map(casefold);
        let rooms: Vec<String> = match msg.command.as_str() {
            "QUIT" | "NICK" => user
                .map(|u| u.rooms.iter().cloned().collect())
                .unwrap_or_default(),
            _ => match msg.param_at(0) {
                Some(room) if room.starts_with('#') => vec![casefold(room)],
                _ => Vec::new(),
            },
        };
        // The parameters as they go on the wire; `history_page` parses
        // them back with the command.
        let line = Message {
            tags: Vec::new(),
            source: None,
            command: msg.command.clone(),
            params: msg.params.clone(),
        }
        .to_line();
        let params = line
            .trim_end_matches("\r\n")
            .strip_prefix(msg.command.as_str())
            .unwrap_or("")
            .trim_start()
            .to_string();
        let (msgid, at_ms) = (self.msgids.format(n), self.clock.wall.as_millisecond());
        for key in rooms {
            let Some(shown) = self.state.rooms.get(&key).map(|r| r.name.clone()) else {
                continue;
            };
            let seq = self.history.seqs.entry(key.clone()).or_insert(0);
            *seq += 1;
            self.out.history.push(NewMessage {
                seq: *seq,
                msgid: msgid.clone(),
                at_ms,
                target: key,
                command: msg.command.clone(),
                source: source.clone(),
                sender_account: account.clone(),
                to_param: shown,
                text: params.clone(),
                client_tags: String::new(),
                direct: None,
                hold_for: None,
            });
        }
    }

    /// `id` joined `room` (casefolded): from here on they may read it. The
    /// first join of a connection counts; an account's first join ever is
    /// kept by the store and counts over it.
    pub(super) fn history_joined(&mut self, id: ConnId, room: &str) {
        if !self.history.on {
            return;
        }
        let seq = self.history_seq(room);
        let Some(u) = self.state.users.get_mut(&id) else {
            return;
        };
        u.reads_from.entry(room.to_string()).or_insert(seq);
        if let Some(account) = &u.account {
            self.out.history_jobs.push(HistoryJob::Joined {
                account: casefold(account),
                room: room.to_string(),
                seq,
            });
        }
    }

    /// `id` left `room` by choice: an account is not put back there.
    pub(super) fn history_left(&mut self, id: ConnId, room: &str) {
        if !self.history.on {
            return;
        }
        if let Some(account) = self.state.users.get(&id).and_then(|u| u.account.as_deref()) {
            self.out.history_jobs.push(HistoryJob::Parted {
                account: casefold(account),
                room: room.to_string(),
            });
        }
    }

    fn fail_history(&mut self, id: ConnId, code: &str, context: &[&str], why: &str) {
        let m = super::super::replies::fail(
            &self.config.server_name,
            "CHATHISTORY",
            code,
            context,
            why,
        );
        self.send_msg(id, m);
    }

    /// `CHATHISTORY <subcommand> <target> <selectors...> <limit>`.
    pub(super) fn chathistory(&mut self, id: ConnId, msg: &Message) {
        let sub = msg.params[0].to_ascii_uppercase();
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        if !self.history.on {
            return self.fail_history(
                id,
                "INVALID_PARAMS",
                &[&sub],
                "This tracker keeps no history",
            );
        }
        if sub == "TARGETS" {
            return self.chathistory_targets(id, msg);
        }
        let target = p(1).to_string();
        let (query, limit_at) = match sub.as_str() {
            "LATEST" => match p(2) {
                "*" => (Ok(HistoryQuery::Latest(None)), 3),
                s => (selector(s).map(|s| HistoryQuery::Latest(Some(s))), 3),
            },
            "BEFORE" => (selector(p(2)).map(HistoryQuery::Before), 3),
            "AFTER" => (selector(p(2)).map(HistoryQuery::After), 3),
            "AROUND" => (selector(p(2)).map(HistoryQuery::Around), 3),
            "BETWEEN" => (
                selector(p(2)).and_then(|a| selector(p(3)).map(|b| HistoryQuery::Between(a, b))),
                4,
            ),
            _ => {
                return self.fail_history(
                    id,
                    "INVALID_PARAMS",
                    &[&sub],
                    "LATEST, BEFORE, AFTER, AROUND, BETWEEN or TARGETS",
                );
            }
        };
        let Ok(query) = query else {
            return self.fail_history(
                id,
                "INVALID_PARAMS",
                &[&sub, &target],
                "A reference is timestamp=<RFC 3339 time> or msgid=<id> (or * for LATEST)",
            );
        };
        let Some(limit) = p(limit_at).parse::<usize>().ok().filter(|l| *l > 0) else {
            return self.fail_history(
                id,
                "INVALID_PARAMS",
                &[&sub, &target],
                "The limit must be a number above 0",
            );
        };
        let limit = limit.min(PAGE_MAX);
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        let account = u.account.as_deref().map(casefold);
        let lines = lines_for(self.caps_of(id));
        let (key, floor, member_of) = if target.starts_with('#') {
            let room = casefold(&target);
            // Only a member reads a room, and only from their first join.
            let Some(floor) = u
                .rooms
                .contains(&room)
                .then(|| u.reads_from.get(&room))
                .flatten()
            else {
                return self.fail_history(
                    id,
                    "INVALID_TARGET",
                    &[&sub, &target],
                    "You are not in that room",
                );
            };
            (room.clone(), *floor, account.map(|a| (a, room)))
        } else {
            (self.history_key(id, &target), 0, None)
        };
        self.out.history_jobs.push(HistoryJob::Page {
            conn: self.here(id),
            target,
            key,
            query,
            limit,
            floor,
            member_of,
            lines,
        });
    }

    /// `CHATHISTORY TARGETS timestamp=<a> timestamp=<b> <limit>`: the rooms
    /// the asker is in and the people they have a direct conversation
    /// with, where something they may read was said strictly between the
    /// two times (in a room, only after their first join; its events only
    /// with `draft/event-playback`), answered by the store.
    fn chathistory_targets(&mut self, id: ConnId, msg: &Message) {
        let p = |i: usize| msg.param_at(i).unwrap_or("");
        let time = |s: &str| match selector(s) {
            Ok(Selector::Timestamp(ms)) => Some(ms),
            _ => None,
        };
        let (Some(from_ms), Some(to_ms)) = (time(p(1)), time(p(2))) else {
            return self.fail_history(
                id,
                "INVALID_PARAMS",
                &["TARGETS"],
                "TARGETS takes two references timestamp=<RFC 3339 time>",
            );
        };
        let Some(limit) = p(3).parse::<usize>().ok().filter(|l| *l > 0) else {
            return self.fail_history(
                id,
                "INVALID_PARAMS",
                &["TARGETS"],
                "The limit must be a number above 0",
            );
        };
        let Some(u) = self.state.users.get(&id) else {
            return;
        };
        // Only the rooms they are in now, each from where they may read it.
        let rooms = u
            .rooms
            .iter()
            .filter_map(|key| {
                let visible_after = *u.reads_from.get(key)?;
                let shown = self.state.rooms.get(key)?.name.clone();
                Some(ReadableRoom {
                    key: key.clone(),
                    shown,
                    visible_after,
                })
            })
            .collect();
        let job = HistoryJob::Targets {
            conn: self.here(id),
            account: u.account.as_deref().map(casefold),
            rooms,
            identity: self.identity(id),
            window: (from_ms, to_ms),
            limit: limit.min(PAGE_MAX),
            lines: lines_for(self.caps_of(id)),
        };
        self.out.history_jobs.push(job);
    }

    /// A `CHATHISTORY TARGETS` listing came back: a
    /// `draft/chathistory-targets` batch (plain lines without `batch`) of
    /// `CHATHISTORY TARGETS <target> <time of its latest line>`.
    pub fn history_targets(&mut self, done: TargetsDone) {
        let TargetsDone { conn, result } = done;
        let conn = self.act_for(conn);
        if !self.state.users.contains_key(&conn) {
            return;
        }
        let caps = self.caps_of(conn);
        let found = match result {
            Ok(found) => found,
            Err(why) => {
                return self.fail_history(
                    conn,
                    "MESSAGE_ERROR",
                    &["TARGETS"],
                    &format!("The history cannot be read now: {why}"),
                );
            }
        };
        self.history.next_batch += 1;
        let reference = format!("h{}", self.history.next_batch);
        let server = self.config.server_name.clone();
        if caps.batch {
            self.send_msg(
                conn,
                Message::new("BATCH")
                    .with_source(server.clone())
                    .param(format!("+{reference}"))
                    .param("draft/chathistory-targets"),
            );
        }
        for target in found {
            let at = jiff::Timestamp::from_millisecond(target.last_ms).unwrap_or_default();
            let mut line = Message::new("CHATHISTORY")
                .with_source(server.clone())
                .param("TARGETS")
                .param(target.shown)
                .param(super::super::transcript::timestamp(at));
            if caps.batch {
                line = line.tag("batch", Some(reference.clone()));
            }
            self.send_msg(conn, line);
        }
        if caps.batch {
            self.send_msg(
                conn,
                Message::new("BATCH")
                    .with_source(server)
                    .param(format!("-{reference}")),
            );
        }
    }

    /// A page came back from the store: sent as a `chathistory` batch
    /// (plain lines to a client without `batch`).
    pub fn history_page(&mut self, done: HistoryPageDone) {
        let HistoryPageDone {
            conn,
            target,
            result,
        } = done;
        let conn = self.act_for(conn);
        if !self.state.users.contains_key(&conn) {
            return;
        }
        let page = match result {
            Ok(page) => page,
            Err(PageFailure::UnknownMsgid(m)) => {
                return self.fail_history(
                    conn,
                    "INVALID_MSGREFS",
                    &[&target, &m],
                    "No message with that msgid in this history",
                );
            }
            Err(PageFailure::Store(why)) => {
                return self.fail_history(
                    conn,
                    "MESSAGE_ERROR",
                    &[&target],
                    &format!("The history cannot be read now: {why}"),
                );
            }
        };
        self.send_history_batch(conn, &target, page);
    }

    /// Messages the store could not keep: their senders are told, once.
    pub fn history_not_kept(&mut self, sources: Vec<String>, why: &str) {
        let mut told = std::collections::HashSet::new();
        for source in sources {
            let nick = source.split('!').next().unwrap_or(&source).to_string();
            let Some(id) = self.state.find(&nick) else {
                continue;
            };
            if !told.insert(id) {
                continue;
            }
            let m = Message::new("NOTICE")
                .with_source(self.config.server_name.clone())
                .param(nick)
                .param(format!(
                    "Your message was delivered, but the tracker could not keep it in history: {why}"
                ));
            self.send_msg(id, m);
        }
    }
}

/// What a page holds for a reader with `caps`.
fn lines_for(caps: crate::proto::caps::Caps) -> Lines {
    if caps.event_playback {
        Lines::MessagesAndEvents
    } else {
        Lines::Messages
    }
}

/// `timestamp=<RFC 3339>` or `msgid=<id>`.
fn selector(s: &str) -> Result<Selector, ()> {
    if let Some(t) = s.strip_prefix("timestamp=") {
        let at: jiff::Timestamp = t.parse().map_err(|_| ())?;
        return Ok(Selector::Timestamp(at.as_millisecond()));
    }
    match s.strip_prefix("msgid=") {
        Some(m) if !m.is_empty() => Ok(Selector::MsgId(m.to_string())),
        _ => Err(()),
    }
}
