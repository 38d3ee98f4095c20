//! Direct sessions in the application state (no I/O): offers made and
//! received, their answers, the links' news, and what each means for the
//! person, the tracker and the links (`client/direct.rs` makes them).
//!
//! On the wire (all CTCPs through the tracker, see `tracker/hub/p2p.rs`):
//! our offer is `DCC SCHAT chat <ip> <port> <sha256 hex>` (TLS, the
//! fingerprint of this run's certificate) or, with `/session plain`,
//! IRC's `DCC CHAT chat <ip> <port>`, which irssi, WeeChat and HexChat
//! accept; accepting a TLS offer answers `DCC SACCEPT chat <sha256 hex>`
//! (our certificate, which the offerer checks), declining `DCC REJECT
//! CHAT chat` as those clients do; `DCC RELAY chat` says the session goes
//! through the tracker; `DCC CLOSE chat [reason]` that it ended, which is
//! how the tracker learns of a close.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use jiff::Timestamp;

use super::direct::{DirectCmd, DirectEvent};
use super::state::{ChatKind, Event, Update, Window};
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::proto::sanitize::for_display;
use crate::tls::Fingerprint;

/// What the person asked of sessions (`/session ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// `/session`: the sessions there are.
    List,
    /// `/session <user>` (TLS) or `/session plain <user>`.
    Offer {
        nick: String,
        plain: bool,
    },
    Accept(Option<String>),
    Decline(Option<String>),
    /// `/session close [user]`.
    Close(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// We offered; listening, waiting for them.
    Offering,
    /// They offered; waiting for our answer.
    Offered {
        addr: SocketAddr,
        fingerprint: Option<Fingerprint>,
    },
    /// Accepted; connecting.
    Connecting,
    /// Open, straight between the two clients.
    Direct,
    /// Through the tracker, as ordinary DMs.
    Relayed,
}

#[derive(Debug, Clone)]
struct Session {
    nick: String,
    tls: bool,
    state: State,
}

/// The sessions of this client, by the other person's folded nick.
#[derive(Debug, Default)]
pub struct DirectSessions {
    /// This run's certificate fingerprint (`None`: only plain sessions).
    pub fingerprint: Option<Fingerprint>,
    /// By link id (the folded nick it began with and a number), so a
    /// rename or a new person taking an old name never mixes two
    /// sessions' links.
    sessions: BTreeMap<String, Session>,
    next_link: u64,
}

/// The hex form of a fingerprint on the wire: one word, no colons.
fn hex(fp: &Fingerprint) -> String {
    fp.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// A DCC address: IPv4 as one decimal integer (as every IRC client
/// sends it), IPv6 as text.
fn dcc_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).to_string(),
        IpAddr::V6(v6) => v6.to_string(),
    }
}

fn parse_dcc_address(word: &str) -> Option<IpAddr> {
    match word.parse::<u32>() {
        Ok(n) => Some(IpAddr::V4(Ipv4Addr::from(n))),
        Err(_) => word.parse().ok(),
    }
}

fn ctcp(text: String) -> String {
    format!("\x01{text}\x01")
}

fn note(up: &mut Update, time: Timestamp, peer: &str, text: String, warn: bool) {
    up.events.push(Event::SessionNote {
        time,
        peer: peer.to_string(),
        text,
        warn,
    });
}

const UNENCRYPTED: &str = "WARNING: this session is NOT encrypted (plain DCC CHAT): anyone on the network between you can read it";

impl DirectSessions {
    /// The link id of the session with `nick`, if there is one.
    fn find_key(&self, nick: &str) -> Option<String> {
        let want = casefold(nick);
        self.sessions
            .iter()
            .find(|(_, s)| casefold(&s.nick) == want)
            .map(|(k, _)| k.clone())
    }

    /// A link id no session has.
    fn fresh_key(&mut self, nick: &str) -> String {
        self.next_link += 1;
        format!("{}#{}", casefold(nick), self.next_link)
    }

    /// The session with `nick`'s link id, or a fresh one.
    fn key_for(&mut self, nick: &str) -> String {
        match self.find_key(nick) {
            Some(k) => k,
            None => self.fresh_key(nick),
        }
    }

    /// `old` is now called `new`.
    pub fn renamed(&mut self, old: &str, new: &str) {
        if let Some(k) = self.find_key(old)
            && let Some(s) = self.sessions.get_mut(&k)
        {
            s.nick = for_display(new);
        }
    }

    /// `nick` left the tracker: a session that goes through it, or one
    /// still being offered, ends; a direct link ends by itself.
    pub fn peer_left(&mut self, nick: &str, time: Timestamp, up: &mut Update) {
        let Some(key) = self.find_key(nick) else {
            return;
        };
        if self
            .sessions
            .get(&key)
            .is_some_and(|s| s.state == State::Direct)
        {
            return;
        }
        if let Some(s) = self.sessions.remove(&key) {
            up.direct.push(DirectCmd::Close { peer: key });
            note(
                up,
                time,
                &s.nick,
                format!("{} left the tracker; the session is closed", s.nick),
                false,
            );
        }
    }

    /// The tracker has nobody called `nick` (our offer's `401`).
    pub fn no_such_user(&mut self, nick: &str) -> Vec<DirectCmd> {
        match self.find_key(nick) {
            Some(key)
                if self
                    .sessions
                    .get(&key)
                    .is_some_and(|s| s.state == State::Offering) =>
            {
                self.sessions.remove(&key);
                vec![DirectCmd::Close { peer: key }]
            }
            _ => Vec::new(),
        }
    }

    /// Whether there is an open or relayed session with `nick`, and so
    /// where `=nick` lines go: `Some(true)` direct, `Some(false)` relayed.
    pub fn route(&self, nick: &str) -> Option<bool> {
        match self.sessions.get(&self.find_key(nick)?)?.state {
            State::Direct => Some(true),
            State::Relayed => Some(false),
            _ => None,
        }
    }

    /// The person's nick as the session knows it.
    fn name(&self, nick: &str) -> String {
        self.sessions
            .get(&self.find_key(nick).unwrap_or_default())
            .map_or_else(|| for_display(nick), |s| s.nick.clone())
    }

    /// The one session a command without a name is about.
    fn only(&self, want: impl Fn(&State) -> bool) -> Option<String> {
        let mut matching = self.sessions.values().filter(|s| want(&s.state));
        match (matching.next(), matching.next()) {
            (Some(s), None) => Some(s.nick.clone()),
            _ => None,
        }
    }

    pub fn command(&mut self, cmd: SessionCommand, me: &str, time: Timestamp, up: &mut Update) {
        match cmd {
            SessionCommand::List => self.list(time, up),
            SessionCommand::Offer { nick, plain } => self.offer(&nick, plain, me, time, up),
            SessionCommand::Accept(nick) => {
                let Some(nick) = nick.or_else(|| self.only(|s| matches!(s, State::Offered { .. })))
                else {
                    return up.events.push(Event::Error {
                        time,
                        text: "whose session? /session accept <user>".into(),
                    });
                };
                self.accept(&nick, time, up);
            }
            SessionCommand::Decline(nick) => {
                let Some(nick) = nick.or_else(|| self.only(|s| matches!(s, State::Offered { .. })))
                else {
                    return up.events.push(Event::Error {
                        time,
                        text: "whose session? /session decline <user>".into(),
                    });
                };
                self.decline(&nick, time, up);
            }
            SessionCommand::Close(nick) => {
                let Some(nick) = nick.or_else(|| self.only(|_| true)) else {
                    return up.events.push(Event::Error {
                        time,
                        text: "which session? /session close <user>".into(),
                    });
                };
                self.close(&nick, time, up);
            }
        }
    }

    fn list(&self, time: Timestamp, up: &mut Update) {
        if self.sessions.is_empty() {
            return up.events.push(Event::Info {
                time,
                text: "no direct sessions (/session <user> offers one)".into(),
            });
        }
        let mut lines = vec![format!("direct sessions ({}):", self.sessions.len())];
        for s in self.sessions.values() {
            let how = if s.tls { "encrypted" } else { "NOT encrypted" };
            let what = match &s.state {
                State::Offering => format!("offered by you, waiting for them ({how})"),
                State::Offered { .. } => {
                    format!("offered to you ({how}): /session accept {}", s.nick)
                }
                State::Connecting => "connecting".into(),
                State::Direct => format!("open, direct ({how}): ={} <text>", s.nick),
                State::Relayed => "open, through the tracker (recorded)".into(),
            };
            lines.push(format!("  {}: {what}", s.nick));
        }
        up.events.push(Event::Help { time, lines });
    }

    fn offer(&mut self, nick: &str, plain: bool, me: &str, time: Timestamp, up: &mut Update) {
        if casefold(nick) == casefold(me) {
            return up.events.push(Event::Error {
                time,
                text: "a session is with someone else".into(),
            });
        }
        if nick.starts_with('#') || crate::proto::nick::validate_nick(nick).is_err() {
            return up.events.push(Event::Error {
                time,
                text: format!("{:?} is not a username: /session <user>", for_display(nick)),
            });
        }
        let key = self.key_for(nick);
        match self.sessions.get(&key).map(|s| &s.state) {
            // Both asked at once: theirs is answered.
            Some(State::Offered { .. }) => return self.accept(nick, time, up),
            Some(_) => {
                return up.events.push(Event::Error {
                    time,
                    text: format!(
                        "you already have a session with {}; /session close {} ends it",
                        self.name(nick),
                        self.name(nick)
                    ),
                });
            }
            None => {}
        }
        let tls = !plain;
        if tls && self.fingerprint.is_none() {
            return up.events.push(Event::Error {
                time,
                text: "no certificate could be made for an encrypted session; /session plain <user> offers an unencrypted one".into(),
            });
        }
        self.sessions.insert(
            key.clone(),
            Session {
                nick: for_display(nick),
                tls,
                state: State::Offering,
            },
        );
        if plain {
            note(up, time, nick, UNENCRYPTED.into(), true);
        }
        up.direct.push(DirectCmd::Listen { peer: key, tls });
    }

    fn accept(&mut self, nick: &str, time: Timestamp, up: &mut Update) {
        let key = self.key_for(nick);
        let Some(s) = self.sessions.get_mut(&key) else {
            return up.events.push(Event::Error {
                time,
                text: format!("{} has not offered you a session", for_display(nick)),
            });
        };
        let State::Offered { addr, fingerprint } = s.state.clone() else {
            return up.events.push(Event::Error {
                time,
                text: format!("no offer from {} is waiting for an answer", s.nick),
            });
        };
        s.state = State::Connecting;
        let name = s.nick.clone();
        match (fingerprint, self.fingerprint) {
            (Some(_), Some(mine)) => up.send.push(
                Message::new("NOTICE")
                    .param(name.clone())
                    .param(ctcp(format!("DCC SACCEPT chat {}", hex(&mine)))),
            ),
            (Some(_), None) => {
                self.sessions.remove(&key);
                up.send.push(reject(&name, true));
                return up.events.push(Event::Error {
                    time,
                    text: "no certificate could be made for an encrypted session; declined".into(),
                });
            }
            (None, _) => note(up, time, &name, UNENCRYPTED.into(), true),
        }
        note(
            up,
            time,
            &name,
            format!("connecting to {name} at {addr}…"),
            false,
        );
        up.direct.push(DirectCmd::Connect {
            peer: key,
            addr,
            tls: fingerprint,
        });
    }

    fn decline(&mut self, nick: &str, time: Timestamp, up: &mut Update) {
        let key = self.key_for(nick);
        match self.sessions.get(&key) {
            Some(s) if matches!(s.state, State::Offered { .. }) => {
                let s = self.sessions.remove(&key).expect("just seen");
                up.send.push(reject(&s.nick, s.tls));
                note(
                    up,
                    time,
                    &s.nick,
                    format!("you declined {}'s session", s.nick),
                    false,
                );
            }
            _ => up.events.push(Event::Error {
                time,
                text: format!(
                    "no offer from {} is waiting for an answer",
                    for_display(nick)
                ),
            }),
        }
    }

    fn close(&mut self, nick: &str, time: Timestamp, up: &mut Update) {
        let key = self.key_for(nick);
        let Some(s) = self.sessions.get(&key) else {
            return up.events.push(Event::Error {
                time,
                text: format!("no session with {}", for_display(nick)),
            });
        };
        if matches!(s.state, State::Offered { .. }) {
            return self.decline(nick, time, up);
        }
        let s = self.sessions.remove(&key).expect("just seen");
        up.send.push(close_notice(&s.nick, None));
        up.direct.push(DirectCmd::Close { peer: key });
        note(
            up,
            time,
            &s.nick,
            format!("you closed the session with {}", s.nick),
            false,
        );
    }

    /// A line typed for the session with `nick` (`=nick text`, or in its
    /// window), sent over the direct link. `false` when there is no
    /// direct session (the caller sends it as a DM when relayed).
    pub fn say(
        &mut self,
        nick: &str,
        text: &str,
        action: bool,
        me: &str,
        time: Timestamp,
        up: &mut Update,
    ) {
        let key = self.key_for(nick);
        let Some(s) = self.sessions.get(&key).filter(|s| s.state == State::Direct) else {
            return up.events.push(Event::Error {
                time,
                text: format!(
                    "no open direct session with {}; /session {} offers one",
                    for_display(nick),
                    for_display(nick)
                ),
            });
        };
        for line in text.split(['\n', '\r']).filter(|l| !l.is_empty()) {
            let wire = if action {
                format!("\x01ACTION {line}\x01")
            } else {
                line.to_string()
            };
            up.direct.push(DirectCmd::Send {
                peer: key.clone(),
                line: wire,
            });
            up.events.push(Event::Chat {
                time,
                window: Window::Session(s.nick.clone()),
                from: me.to_string(),
                text: for_display(line),
                kind: if action {
                    ChatKind::Action
                } else {
                    ChatKind::Message
                },
                own: true,
                confirms: None,
                msgid: None,
            });
        }
    }

    /// A DCC CTCP from `from` through the tracker (PRIVMSG or NOTICE).
    pub fn on_ctcp(&mut self, from: &str, text: &str, time: Timestamp, up: &mut Update) {
        let inner = text.trim_start_matches('\x01').trim_end_matches('\x01');
        let words: Vec<&str> = inner.split(' ').filter(|w| !w.is_empty()).collect();
        let verb = words
            .get(1)
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let arg = |i: usize| words.get(i).copied().unwrap_or("");
        let is_chat = arg(2).eq_ignore_ascii_case("chat");
        // Empty when there is no session with them (no session has it).
        let key = self.find_key(from).unwrap_or_default();
        let name = for_display(from);
        match verb.as_str() {
            "CHAT" | "SCHAT" if is_chat => {
                let tls = verb == "SCHAT";
                let ip = parse_dcc_address(arg(3));
                let port: Option<u16> = arg(4).parse().ok().filter(|p| *p != 0);
                let fingerprint = Fingerprint::parse(arg(5)).ok();
                let (Some(ip), Some(port)) = (ip, port) else {
                    up.send.push(reject(&name, tls));
                    return note(
                        up,
                        time,
                        &name,
                        format!(
                            "{name} offered a direct session confab cannot use (no address and port to connect to: a passive or reverse offer); declined"
                        ),
                        true,
                    );
                };
                if tls && fingerprint.is_none() {
                    up.send.push(reject(&name, tls));
                    return note(
                        up,
                        time,
                        &name,
                        format!(
                            "{name} offered an encrypted session without a certificate fingerprint to check it by; declined"
                        ),
                        true,
                    );
                }
                if let Some(old) = self.sessions.remove(&key)
                    && matches!(
                        old.state,
                        State::Offering | State::Direct | State::Connecting
                    )
                {
                    up.direct.push(DirectCmd::Close { peer: key.clone() });
                }
                // A new link id: news from the old link is never taken
                // for the new session's.
                let key = self.fresh_key(from);
                self.sessions.insert(
                    key,
                    Session {
                        nick: name.clone(),
                        tls,
                        state: State::Offered {
                            addr: SocketAddr::new(ip, port),
                            fingerprint,
                        },
                    },
                );
                if tls {
                    note(
                        up,
                        time,
                        &name,
                        format!(
                            "{name} offers you an encrypted direct session: /session accept {name} opens it, /session decline {name} declines"
                        ),
                        false,
                    );
                } else {
                    note(
                        up,
                        time,
                        &name,
                        format!(
                            "{name} offers you a direct session WITHOUT encryption (plain DCC CHAT, as other IRC clients offer): anyone on the network between you could read it. /session accept {name} opens it anyway, /session decline {name} declines"
                        ),
                        true,
                    );
                }
            }
            "SACCEPT" if is_chat => {
                let Some(s) = self
                    .sessions
                    .get(&key)
                    .filter(|s| s.state == State::Offering)
                else {
                    return;
                };
                match Fingerprint::parse(arg(3)) {
                    Ok(fingerprint) => {
                        note(
                            up,
                            time,
                            &s.nick,
                            format!("{} accepted; connecting…", s.nick),
                            false,
                        );
                        up.direct.push(DirectCmd::Expect {
                            peer: key,
                            fingerprint,
                        });
                    }
                    Err(_) => {
                        let s = self.sessions.remove(&key).expect("just seen");
                        up.direct.push(DirectCmd::Close { peer: key });
                        up.send
                            .push(close_notice(&s.nick, Some("no fingerprint in the answer")));
                        note(
                            up,
                            time,
                            &s.nick,
                            format!(
                                "{} answered without a certificate fingerprint; session closed",
                                s.nick
                            ),
                            true,
                        );
                    }
                }
            }
            "REJECT" if matches!(arg(2).to_ascii_uppercase().as_str(), "CHAT" | "SCHAT") => {
                if let Some(s) = self.sessions.remove(&key) {
                    up.direct.push(DirectCmd::Close { peer: key });
                    note(
                        up,
                        time,
                        &s.nick,
                        format!("{} declined the session", s.nick),
                        false,
                    );
                }
            }
            "RELAY" if is_chat => {
                let key = match key.is_empty() {
                    true => self.fresh_key(from),
                    false => key,
                };
                let nick = self.name(from);
                let had = self.sessions.insert(
                    key.clone(),
                    Session {
                        nick: nick.clone(),
                        tls: false,
                        state: State::Relayed,
                    },
                );
                up.direct.push(DirectCmd::Close { peer: key });
                let why = match had {
                    Some(_) => format!("{nick} could not connect to you directly"),
                    None => format!("{nick} opened a session through the tracker"),
                };
                note(
                    up,
                    time,
                    &nick,
                    format!(
                        "{why}: the session goes on through the tracker as direct messages, recorded in its log (/msg {nick} ...)"
                    ),
                    true,
                );
            }
            "CLOSE" if is_chat => {
                if let Some(s) = self.sessions.remove(&key) {
                    up.direct.push(DirectCmd::Close { peer: key });
                    let reason = for_display(&words[3..].join(" "));
                    let reason = if reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    };
                    note(
                        up,
                        time,
                        &s.nick,
                        format!("{} closed the session{reason}", s.nick),
                        false,
                    );
                }
            }
            _ => {}
        }
    }

    /// The tracker refused our offer (`FAIL ... DIRECT_SESSIONS_*`).
    pub fn on_refused(
        &mut self,
        code: &str,
        target: &str,
        text: &str,
        time: Timestamp,
        up: &mut Update,
    ) {
        let key = self.key_for(target);
        let Some(s) = self.sessions.remove(&key) else {
            return up.events.push(Event::Error {
                time,
                text: for_display(text),
            });
        };
        up.direct.push(DirectCmd::Close { peer: key.clone() });
        if code == "DIRECT_SESSIONS_RELAY_ONLY" && s.state == State::Offering {
            // The tracker allows sessions through itself: go on that way.
            up.send.push(
                Message::new("NOTICE")
                    .param(s.nick.clone())
                    .param(ctcp("DCC RELAY chat".into())),
            );
            note(
                up,
                time,
                &s.nick,
                format!(
                    "this tracker allows only relayed sessions: the session with {} goes through the tracker as direct messages, recorded in its log (/msg {} ...)",
                    s.nick, s.nick
                ),
                true,
            );
            self.sessions.insert(
                key,
                Session {
                    state: State::Relayed,
                    tls: false,
                    ..s
                },
            );
        } else {
            note(up, time, &s.nick, for_display(text), true);
        }
    }

    /// News from a link.
    pub fn on_direct(&mut self, event: DirectEvent, time: Timestamp, up: &mut Update) {
        let key = event.peer().to_string();
        let Some(s) = self.sessions.get_mut(&key) else {
            // A session already closed here: its link is let go.
            if !matches!(
                event,
                DirectEvent::Ended { .. }
                    | DirectEvent::Failed { .. }
                    | DirectEvent::Mismatch { .. }
            ) {
                up.direct.push(DirectCmd::Close { peer: key });
            }
            return;
        };
        let name = s.nick.clone();
        match event {
            DirectEvent::Listening { addr, .. } => {
                let text = match self.fingerprint.filter(|_| s.tls) {
                    Some(fp) => format!(
                        "DCC SCHAT chat {} {} {}",
                        dcc_address(addr.ip()),
                        addr.port(),
                        hex(&fp)
                    ),
                    None => format!("DCC CHAT chat {} {}", dcc_address(addr.ip()), addr.port()),
                };
                up.send.push(
                    Message::new("PRIVMSG")
                        .param(name.clone())
                        .param(ctcp(text)),
                );
                let how = if s.tls {
                    "an encrypted"
                } else {
                    "an unencrypted"
                };
                note(
                    up,
                    time,
                    &name,
                    format!(
                        "offered {name} {how} direct session (the offer shows them your address, {}); waiting for them to accept",
                        addr.ip()
                    ),
                    false,
                );
            }
            DirectEvent::Open { .. } => {
                s.state = State::Direct;
                let how = if s.tls {
                    "encrypted (TLS; both certificates checked against the fingerprints sent through the tracker)"
                } else {
                    "NOT encrypted"
                };
                note(
                    up,
                    time,
                    &name,
                    format!(
                        "direct session with {name} open, {how}: what you say here goes straight to {name}, not through the tracker, and is not recorded"
                    ),
                    !s.tls,
                );
            }
            DirectEvent::Line { text, .. } => {
                let (kind, text) = match text.strip_prefix("\x01ACTION ") {
                    Some(rest) => (ChatKind::Action, rest.trim_end_matches('\x01')),
                    None => (ChatKind::Message, text.as_str()),
                };
                up.events.push(Event::Chat {
                    time,
                    window: Window::Session(name.clone()),
                    from: name,
                    text: for_display(text),
                    kind,
                    own: false,
                    confirms: None,
                    msgid: None,
                });
            }
            DirectEvent::Skipped { why, .. } => note(
                up,
                time,
                &name,
                format!("a line from {name} was skipped: {why}"),
                true,
            ),
            DirectEvent::Failed { why, .. } => {
                if s.state == State::Connecting {
                    // We accepted and cannot reach them: both go on
                    // through the tracker.
                    s.state = State::Relayed;
                    s.tls = false;
                    up.send.push(
                        Message::new("NOTICE")
                            .param(name.clone())
                            .param(ctcp("DCC RELAY chat".into())),
                    );
                    up.direct.push(DirectCmd::Close { peer: key });
                    note(
                        up,
                        time,
                        &name,
                        format!(
                            "no direct connection to {name} ({why}): the session goes on through the tracker as direct messages, recorded in its log (/msg {name} ...); {name} is told"
                        ),
                        true,
                    );
                } else {
                    self.sessions.remove(&key);
                    up.send.push(close_notice(&name, Some(&why)));
                    up.direct.push(DirectCmd::Close { peer: key });
                    note(
                        up,
                        time,
                        &name,
                        format!("the session with {name} could not be opened: {why}"),
                        true,
                    );
                }
            }
            DirectEvent::Mismatch {
                expected, received, ..
            } => {
                self.sessions.remove(&key);
                up.send.push(close_notice(
                    &name,
                    Some("certificate fingerprint mismatch"),
                ));
                up.direct.push(DirectCmd::Close { peer: key });
                note(
                    up,
                    time,
                    &name,
                    format!(
                        "REFUSED: the direct connection to {name} showed a certificate whose fingerprint is not the one that came through the tracker (expected {expected}, got {received}). Someone may be intercepting the session; nothing was sent over it, and it is closed."
                    ),
                    true,
                );
            }
            DirectEvent::Ended { why, .. } => {
                let s = self.sessions.remove(&key).expect("just seen");
                match why {
                    // A confab peer (TLS) tells the tracker itself; any
                    // IRC client may be at the other end of a plain one.
                    None => {
                        if !s.tls {
                            up.send.push(close_notice(&name, None));
                        }
                        note(up, time, &name, format!("{name} closed the session"), false);
                    }
                    Some(why) => {
                        up.send.push(close_notice(&name, Some(&why)));
                        note(
                            up,
                            time,
                            &name,
                            format!("the session with {name} ended: {why}"),
                            true,
                        );
                    }
                }
            }
        }
    }
}

fn reject(nick: &str, tls: bool) -> Message {
    let kind = if tls { "SCHAT" } else { "CHAT" };
    Message::new("NOTICE")
        .param(nick.to_string())
        .param(ctcp(format!("DCC REJECT {kind} chat")))
}

fn close_notice(nick: &str, reason: Option<&str>) -> Message {
    let text = match reason {
        Some(r) => format!("DCC CLOSE chat {r}"),
        None => "DCC CLOSE chat".into(),
    };
    Message::new("NOTICE")
        .param(nick.to_string())
        .param(ctcp(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_travel_as_irc_clients_send_them() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(dcc_address(ip), "2130706433");
        assert_eq!(parse_dcc_address("2130706433"), Some(ip));
        assert_eq!(parse_dcc_address("::1"), Some("::1".parse().expect("ip")));
        assert_eq!(parse_dcc_address("nonsense"), None);
    }

    #[test]
    fn an_offer_is_answered_and_a_failed_connect_falls_back_to_the_tracker() {
        let t = Timestamp::UNIX_EPOCH;
        let mut s = DirectSessions {
            fingerprint: Some(Fingerprint([7; 32])),
            ..Default::default()
        };
        let mut up = Update::default();
        let fp = hex(&Fingerprint([9; 32]));
        s.on_ctcp(
            "Bob",
            &format!("\x01DCC SCHAT chat 2130706433 4000 {fp}\x01"),
            t,
            &mut up,
        );
        let mut up = Update::default();
        s.command(SessionCommand::Accept(None), "alice", t, &mut up);
        assert_eq!(
            up.send,
            [Message::new("NOTICE").param("Bob").param(format!(
                "\x01DCC SACCEPT chat {}\x01",
                hex(&Fingerprint([7; 32]))
            ))]
        );
        assert_eq!(
            up.direct,
            [DirectCmd::Connect {
                peer: "bob#1".into(),
                addr: "127.0.0.1:4000".parse().expect("addr"),
                tls: Some(Fingerprint([9; 32]))
            }]
        );
        let mut up = Update::default();
        s.on_direct(
            DirectEvent::Failed {
                peer: "bob#1".into(),
                why: "refused".into(),
            },
            t,
            &mut up,
        );
        assert_eq!(
            up.send,
            [Message::new("NOTICE")
                .param("Bob")
                .param("\x01DCC RELAY chat\x01")]
        );
        assert_eq!(s.route("bob"), Some(false));
    }

    #[test]
    fn a_renamed_peer_keeps_its_session_and_a_departed_one_ends_it() {
        let t = Timestamp::UNIX_EPOCH;
        let mut s = DirectSessions {
            fingerprint: Some(Fingerprint([7; 32])),
            ..Default::default()
        };
        let mut up = Update::default();
        s.command(
            SessionCommand::Offer {
                nick: "bob".into(),
                plain: false,
            },
            "alice",
            t,
            &mut up,
        );
        assert_eq!(
            up.direct,
            [DirectCmd::Listen {
                peer: "bob#1".into(),
                tls: true
            }]
        );
        s.on_direct(
            DirectEvent::Open {
                peer: "bob#1".into(),
            },
            t,
            &mut up,
        );
        s.renamed("bob", "Robert");
        assert_eq!(s.route("robert"), Some(true));
        assert_eq!(s.route("bob"), None);
        let mut up = Update::default();
        s.say("robert", "hi", false, "alice", t, &mut up);
        assert_eq!(
            up.direct,
            [DirectCmd::Send {
                peer: "bob#1".into(),
                line: "hi".into()
            }]
        );
        // A new "bob" offering is a new session on a new link.
        let mut up = Update::default();
        s.on_ctcp("bob", "\x01DCC CHAT chat 2130706433 4000\x01", t, &mut up);
        assert_eq!(s.find_key("bob").as_deref(), Some("bob#2"));
        // A direct session outlives its peer's leaving the tracker; an
        // offer does not.
        let mut up = Update::default();
        s.peer_left("robert", t, &mut up);
        assert_eq!(s.route("robert"), Some(true));
        s.peer_left("bob", t, &mut up);
        assert_eq!(s.find_key("bob"), None);
        assert_eq!(
            up.direct,
            [DirectCmd::Close {
                peer: "bob#2".into()
            }]
        );
    }

    #[test]
    fn an_offer_to_nobody_stops_listening() {
        let t = Timestamp::UNIX_EPOCH;
        let mut s = DirectSessions::default();
        let mut up = Update::default();
        s.command(
            SessionCommand::Offer {
                nick: "ghost".into(),
                plain: true,
            },
            "alice",
            t,
            &mut up,
        );
        assert_eq!(
            s.no_such_user("GHOST"),
            [DirectCmd::Close {
                peer: "ghost#1".into()
            }]
        );
        assert!(s.no_such_user("ghost").is_empty());
    }
}
