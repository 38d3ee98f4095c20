//! History in the chat: every room message and DM handed to the store at
//! its place (`seq`) in its target, and `CHATHISTORY` (IRCv3, draft)
//! answered from it, each reader seeing a room only from when they first
//! joined it.
//!
//! The hub never waits for the store: what to keep goes out in
//! `Chat.out.history` after the batch's `chat.log` commit (the commit point;
//! a batch `chat.log` refused is never kept either), and a page asked for
//! is a [`HistoryJob`] whose answer comes back as `HubRequest::HistoryPage`.

use std::collections::HashMap;

use super::super::shared::{ConnId, HistoryJob, HistoryPageDone, PageFailure};
use super::chat::{Chat, Outgoing};
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::store::{DirectParties, HistoryQuery, NewMessage, Selector, dm_key};

/// The most messages one `CHATHISTORY` answers (`CHATHISTORY=` in
/// ISUPPORT).
pub const PAGE_MAX: usize = 100;

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
            return self.fail_history(
                id,
                "INVALID_PARAMS",
                &[&sub],
                "CHATHISTORY TARGETS is not offered yet; ask per room or person",
            );
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
                    "LATEST, BEFORE, AFTER, AROUND or BETWEEN",
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
        });
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
