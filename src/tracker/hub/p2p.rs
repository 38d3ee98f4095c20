//! Direct sessions between two clients (IRC's DCC CHAT): the tracker sees
//! only what passes through it, the offer and its answers, all CTCPs inside
//! PRIVMSG or NOTICE to the other person. It applies the operator's
//! `--p2p` policy to offers, relays them, records each session's opening
//! and closing in `chat.log` (never what is said over the direct
//! connection) and keeps the sessions in [`P2pSessions`], which
//! [`P2pSessions::snapshot`] lists for the operator's console.
//!
//! What the tracker recognises (the first word after `DCC`, any case):
//!
//! | CTCP | from | meaning |
//! | --- | --- | --- |
//! | `DCC CHAT chat <ip> <port>` | offerer | a plain session (any IRC client) |
//! | `DCC SCHAT chat <ip> <port> <sha256>` | offerer | a TLS session; the hex fingerprint of the offerer's certificate (confab) |
//! | `DCC SACCEPT chat <sha256>` | accepter | accepted; the accepter's certificate fingerprint, which the offerer checks (confab) |
//! | `DCC REJECT CHAT chat` | either | declined (as irssi, mIRC and HexChat send it) |
//! | `DCC RELAY chat` | either | no direct connection: the session goes on as ordinary DMs (confab) |
//! | `DCC CLOSE chat [reason]` | either | the session ended (confab; how the tracker learns of a close) |
//!
//! Any other DCC (`SEND`, `RESUME`, ...) also reveals an address and is
//! subject to the policy, but is relayed (and recorded) as an ordinary
//! message when allowed. A `CLOSE` of a plain session is recorded and not
//! passed on: the other side may be any IRC client, which learns of the
//! close from its connection; confab peers of a TLS or relayed session get
//! it, since theirs may go through the tracker.

use std::collections::VecDeque;

use super::super::policy::{self, DirectRefusal, P2pPolicy};
use super::super::replies;
use super::super::shared::ConnId;
use super::chat::Chat;
use crate::proto::sanitize;

/// How many ended sessions the snapshot keeps, newest last.
pub const ENDED_KEPT: usize = 100;
/// Longest close reason recorded, in bytes.
const REASON_MAX: usize = 100;
/// Most live sessions one user has offered: a new offer past it ends
/// their oldest, so offers sprayed at everyone cannot grow the record
/// without bound.
pub const MAX_OFFERED_PER_USER: usize = 16;

/// How a session was offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// `DCC SCHAT` with fingerprints: TLS between two confab clients.
    Tls,
    /// `DCC CHAT`: unencrypted, with any IRC client.
    Plain,
    /// Through the tracker from the start (`DCC RELAY` with no offer, as
    /// on a `relay-only` tracker).
    Relayed,
}

impl std::fmt::Display for SessionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionKind::Tls => "direct, TLS",
            SessionKind::Plain => "direct, plain",
            SessionKind::Relayed => "relayed",
        })
    }
}

/// Where a session stands, as far as the tracker can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Offered, no answer seen (a plain session accepted by an IRC client
    /// stays here: accepting it is a connection the tracker never sees).
    Offered,
    /// The other side accepted (confab's `SACCEPT`).
    Accepted,
    /// Going through the tracker as ordinary, recorded DMs.
    Relayed,
    /// Declined (ended).
    Declined,
    /// Closed by one side, or one of them left the tracker (ended).
    Closed,
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionState::Offered => "offered",
            SessionState::Accepted => "accepted",
            SessionState::Relayed => "relayed",
            SessionState::Declined => "declined",
            SessionState::Closed => "closed",
        })
    }
}

/// One session: who offered it to whom, and its course.
#[derive(Clone, Debug)]
struct Session {
    from: ConnId,
    to: ConnId,
    from_nick: String,
    to_nick: String,
    kind: SessionKind,
    state: SessionState,
    opened_at: jiff::Timestamp,
    closed_at: Option<jiff::Timestamp>,
}

impl Session {
    fn pair(&self) -> String {
        format!("{} -> {}", self.from_nick, self.to_nick)
    }

    fn involves(&self, a: ConnId, b: ConnId) -> bool {
        (self.from == a && self.to == b) || (self.from == b && self.to == a)
    }

    fn snapshot(&self) -> SessionSnapshot {
        SessionSnapshot {
            from: self.from_nick.clone(),
            to: self.to_nick.clone(),
            kind: self.kind,
            state: self.state,
            opened_at: self.opened_at,
            closed_at: self.closed_at,
        }
    }
}

/// A session as the operator's console lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// Who offered it (nicks as they are now, or were when it ended).
    pub from: String,
    pub to: String,
    pub kind: SessionKind,
    pub state: SessionState,
    pub opened_at: jiff::Timestamp,
    /// When it ended (declined, closed, or one side left).
    pub closed_at: Option<jiff::Timestamp>,
}

/// The tracker's record of direct sessions: the live ones, and the last
/// [`ENDED_KEPT`] ended ones.
#[derive(Debug, Default)]
pub struct P2pSessions {
    pub policy: P2pPolicy,
    live: Vec<Session>,
    ended: VecDeque<Session>,
}

impl P2pSessions {
    pub fn new(policy: P2pPolicy) -> Self {
        P2pSessions {
            policy,
            ..Default::default()
        }
    }

    /// Every session the tracker knows, the ended ones first (oldest
    /// first), then the live ones in the order they were opened.
    pub fn snapshot(&self) -> Vec<SessionSnapshot> {
        self.ended
            .iter()
            .chain(self.live.iter())
            .map(Session::snapshot)
            .collect()
    }

    fn find(&self, a: ConnId, b: ConnId) -> Option<usize> {
        self.live.iter().position(|s| s.involves(a, b))
    }

    /// Ends the live session at `index`.
    fn end(&mut self, index: usize, state: SessionState, at: jiff::Timestamp) -> Session {
        let mut s = self.live.remove(index);
        s.state = state;
        s.closed_at = Some(at);
        if self.ended.len() == ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(s.clone());
        s
    }

    fn renamed(&mut self, id: ConnId, nick: &str) {
        for s in &mut self.live {
            if s.from == id {
                s.from_nick = nick.to_string();
            }
            if s.to == id {
                s.to_nick = nick.to_string();
            }
        }
    }
}

/// A DCC request or answer, from a CTCP's text.
#[derive(Debug, PartialEq, Eq)]
pub enum Dcc {
    /// `DCC CHAT chat ...` (plain) or `DCC SCHAT chat ...` (TLS).
    Offer { tls: bool },
    /// `DCC SACCEPT chat <fingerprint>`.
    Accept,
    /// `DCC REJECT CHAT chat` (or `SCHAT`).
    Reject,
    /// `DCC RELAY chat`.
    Relay,
    /// `DCC CLOSE chat [reason]`.
    Close(Option<String>),
    /// Any other DCC request (`SEND`, `RESUME`, a `REJECT` of a file...):
    /// it carries an address or answers one that did.
    Other,
}

impl Dcc {
    /// The DCC in `text` (a PRIVMSG or NOTICE's text), if it is one.
    pub fn parse(text: &str) -> Option<Dcc> {
        let inner = text.strip_prefix('\x01')?;
        let inner = inner.strip_suffix('\x01').unwrap_or(inner);
        let mut words = inner.split(' ').filter(|w| !w.is_empty());
        if !words.next()?.eq_ignore_ascii_case("DCC") {
            return None;
        }
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let arg = words.next().unwrap_or("");
        let is_chat = arg.eq_ignore_ascii_case("chat");
        Some(match verb.as_str() {
            "CHAT" if is_chat => Dcc::Offer { tls: false },
            "SCHAT" if is_chat => Dcc::Offer { tls: true },
            "SACCEPT" if is_chat => Dcc::Accept,
            "REJECT"
                if (arg.eq_ignore_ascii_case("CHAT") || arg.eq_ignore_ascii_case("SCHAT"))
                    && words.next().is_some_and(|w| w.eq_ignore_ascii_case("chat")) =>
            {
                Dcc::Reject
            }
            "RELAY" if is_chat => Dcc::Relay,
            "CLOSE" if is_chat => {
                let rest: Vec<&str> = words.collect();
                let reason = sanitize::for_display(&rest.join(" "));
                let reason = sanitize::clip(reason.trim(), REASON_MAX).to_string();
                Dcc::Close((!reason.is_empty()).then_some(reason))
            }
            _ => Dcc::Other,
        })
    }

    /// Whether it reveals an address to the other side (an offer of a
    /// connection).
    fn offers_connection(&self, verb_is_answer: bool) -> bool {
        matches!(self, Dcc::Offer { .. }) || (matches!(self, Dcc::Other) && !verb_is_answer)
    }
}

/// What `messages.rs` does with a line after [`Chat::direct_session_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum DccRoute {
    /// Not a session's line: recorded and delivered as a DM.
    Ordinary,
    /// Recorded here; delivered as usual.
    Forward,
    /// Refused or recorded here, and not delivered.
    Stop,
}

/// Whether a DCC's text answers an earlier request (`REJECT`, `ACCEPT`
/// of a resume) rather than offering an address.
fn is_answer(text: &str) -> bool {
    let verb = text
        .trim_start_matches('\x01')
        .split(' ')
        .filter(|w| !w.is_empty())
        .nth(1)
        .unwrap_or("");
    verb.eq_ignore_ascii_case("REJECT") || verb.eq_ignore_ascii_case("ACCEPT")
}

impl Chat {
    /// A DM's text from `id` to `to`: a direct session's offer or answer is
    /// checked against the policy, recorded and routed here.
    pub(super) fn direct_session_line(
        &mut self,
        id: ConnId,
        to: ConnId,
        cmd: &str,
        text: &str,
    ) -> DccRoute {
        let Some(dcc) = Dcc::parse(text) else {
            return DccRoute::Ordinary;
        };
        if id == to {
            return DccRoute::Ordinary;
        }
        let to_nick = self.nick_of(to);
        if dcc.offers_connection(is_answer(text))
            && let Err(why) = policy::can_offer_direct_session(self.p2p.policy)
        {
            self.refuse_session(id, cmd, &to_nick, why);
            return DccRoute::Stop;
        }
        let now = self.clock.wall;
        let from_nick = self.nick_of(id);
        match dcc {
            Dcc::Other => DccRoute::Ordinary,
            Dcc::Offer { tls } => {
                if let Some(i) = self.p2p.find(id, to) {
                    let old = self.p2p.end(i, SessionState::Closed, now);
                    self.record(
                        "session-close",
                        &format!("{} (replaced by a new offer from {from_nick})", old.pair()),
                    );
                }
                let offered: Vec<usize> = (0..self.p2p.live.len())
                    .filter(|&i| self.p2p.live[i].from == id)
                    .collect();
                if offered.len() >= MAX_OFFERED_PER_USER {
                    let old = self.p2p.end(offered[0], SessionState::Closed, now);
                    self.record(
                        "session-close",
                        &format!(
                            "{} ({from_nick} opened more than {MAX_OFFERED_PER_USER} sessions)",
                            old.pair()
                        ),
                    );
                }
                let session = Session {
                    from: id,
                    to,
                    from_nick,
                    to_nick,
                    kind: if tls {
                        SessionKind::Tls
                    } else {
                        SessionKind::Plain
                    },
                    state: SessionState::Offered,
                    opened_at: now,
                    closed_at: None,
                };
                self.record(
                    "session-offer",
                    &format!("{} ({})", session.pair(), session.kind),
                );
                self.p2p.live.push(session);
                DccRoute::Forward
            }
            Dcc::Accept => {
                let Some(i) = self.p2p.find(id, to).filter(|&i| self.p2p.live[i].to == id) else {
                    return DccRoute::Ordinary;
                };
                let s = &mut self.p2p.live[i];
                s.state = SessionState::Accepted;
                let pair = s.pair();
                self.record("session-accept", &pair);
                DccRoute::Forward
            }
            Dcc::Reject => {
                let Some(i) = self.p2p.find(id, to) else {
                    return DccRoute::Ordinary;
                };
                let s = self.p2p.end(i, SessionState::Declined, now);
                self.record("session-decline", &format!("{} (by {from_nick})", s.pair()));
                DccRoute::Forward
            }
            Dcc::Relay => {
                if let Err(why) = policy::can_relay_session(self.p2p.policy) {
                    self.refuse_session(id, cmd, &to_nick, why);
                    return DccRoute::Stop;
                }
                let pair = match self.p2p.find(id, to) {
                    Some(i) => {
                        let s = &mut self.p2p.live[i];
                        s.state = SessionState::Relayed;
                        s.pair()
                    }
                    None => {
                        let s = Session {
                            from: id,
                            to,
                            from_nick: from_nick.clone(),
                            to_nick,
                            kind: SessionKind::Relayed,
                            state: SessionState::Relayed,
                            opened_at: now,
                            closed_at: None,
                        };
                        let pair = s.pair();
                        self.p2p.live.push(s);
                        pair
                    }
                };
                self.record(
                    "session-relay",
                    &format!("{pair} (by {from_nick}: through the tracker, recorded)"),
                );
                DccRoute::Forward
            }
            Dcc::Close(reason) => {
                let Some(i) = self.p2p.find(id, to) else {
                    // Already ended here (the other side left, or a newer
                    // offer replaced it): nothing to record or pass on.
                    return DccRoute::Stop;
                };
                let was = (self.p2p.live[i].kind, self.p2p.live[i].state);
                let s = self.p2p.end(i, SessionState::Closed, now);
                let why = match reason {
                    Some(r) => format!("by {from_nick}: {r}"),
                    None => format!("by {from_nick}"),
                };
                self.record("session-close", &format!("{} ({why})", s.pair()));
                if was.0 == SessionKind::Plain && was.1 != SessionState::Relayed {
                    DccRoute::Stop
                } else {
                    DccRoute::Forward
                }
            }
        }
    }

    fn refuse_session(&mut self, id: ConnId, cmd: &str, target: &str, why: DirectRefusal) {
        let m = replies::fail_direct_session(&self.config.server_name, cmd, target, why);
        self.send_msg(id, m);
    }

    /// `id` is leaving the tracker: its sessions end (their other side may
    /// be told by the QUIT; the direct connections are the clients').
    pub(super) fn sessions_user_left(&mut self, id: ConnId) {
        let nick = self.nick_of(id);
        let now = self.clock.wall;
        while let Some(i) = self
            .p2p
            .live
            .iter()
            .position(|s| s.from == id || s.to == id)
        {
            let s = self.p2p.end(i, SessionState::Closed, now);
            self.record(
                "session-close",
                &format!("{} ({nick} left the tracker)", s.pair()),
            );
        }
    }

    /// `id` is now called `nick`: its live sessions say so.
    pub(super) fn sessions_renamed(&mut self, id: ConnId, nick: &str) {
        self.p2p.renamed(id, nick);
    }

    /// The sessions for the operator's console.
    pub fn p2p_sessions(&self) -> Vec<SessionSnapshot> {
        self.p2p.snapshot()
    }

    /// The policy in the welcome's words.
    pub(super) fn p2p_welcome_line(&self) -> String {
        match self.p2p.policy {
            P2pPolicy::Allow => "Direct sessions (/session, DCC CHAT) are allowed: the tracker records when one opens and closes, not what is said in it, and an offer shows the other person your IP address.".into(),
            P2pPolicy::RelayOnly => "Direct sessions go through the tracker only (relay-only): no direct connections (DCC); sessions are direct messages, recorded like all others.".into(),
            P2pPolicy::Off => "Direct sessions (DCC) are turned off on this tracker.".into(),
        }
    }
}
