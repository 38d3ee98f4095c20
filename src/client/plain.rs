//! Line mode: each event becomes one or more lines of text. Formatting only.
//!
//! Format (documented in the README):
//! `HH:MM:SS #room <nick> text`, `HH:MM:SS [DM nick] <sender> text`,
//! `HH:MM:SS #room --> nick joined`, `HH:MM:SS <-- nick left (reason)`,
//! `HH:MM:SS --- nick is now BUSY: detail`, `HH:MM:SS *** info`,
//! `HH:MM:SS !!! error`, `HH:MM:SS #room <-- fay removed otto from #room
//! (reason)`, `HH:MM:SS #room --- fay made otto an operator`. One's own line, when the tracker is slow to
//! confirm it, also as `#room <me> text (sending…)`; one never confirmed
//! as `!!! not sent: #room text`. Lines replayed from the tracker's
//! history (missed while away) as `[replay] 2026-12-01 09:58:03 #room
//! <nick> text`: marked, with the day they were said, and without the
//! clock of their arrival; the tracker's summary before them as
//! `HH:MM:SS #room *** While you were away: ...`.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::state::{ChatKind, Event, UserEntry, Window};
use crate::proto::sanitize::for_display;

pub struct PlainRenderer {
    tz: TimeZone,
}

impl Default for PlainRenderer {
    fn default() -> Self {
        Self::new(TimeZone::system())
    }
}

/// Where a chat line is: `#room` or `[DM nick]`.
pub fn place(window: &Window) -> String {
    match window {
        Window::Room(r) => for_display(r),
        Window::Dm(who) => format!("[DM {}]", for_display(who)),
        Window::Session(who) => format!("[session {}]", for_display(who)),
    }
}

/// The mark before a line replayed from the tracker's history.
pub const REPLAY_MARK: &str = "[replay]";

/// The mark after one's own line until the tracker confirms it.
pub const SENDING_MARK: &str = "(sending…)";

fn body(from: &str, text: &str, kind: ChatKind) -> String {
    let from = for_display(from);
    match kind {
        ChatKind::Message => format!("<{from}> {text}"),
        ChatKind::Notice => format!("-{from}- {text}"),
        ChatKind::Action => format!("* {from} {text}"),
    }
}

fn describe(u: &UserEntry) -> String {
    match &u.detail {
        Some(d) => format!("{}{} {}: {d}", u.roles, u.nick, u.status),
        None => format!("{}{} {}", u.roles, u.nick, u.status),
    }
}

/// `You were removed from #lab by fay (reason)`, `fay removed otto from
/// #lab (reason)`.
pub fn kick_words(room: &str, nick: &str, by: &str, reason: &str, me: bool) -> String {
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    };
    if me {
        format!("You were removed from {room} by {by}{why}")
    } else {
        format!("{by} removed {nick} from {room}{why}")
    }
}

/// `fay closed #lab: lesson over`.
pub fn closed_words(room: &str, by: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("{by} closed {room}: {r}"),
        None => format!("{by} closed {room}"),
    }
}

impl PlainRenderer {
    pub fn new(tz: TimeZone) -> Self {
        PlainRenderer { tz }
    }

    fn clock(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%H:%M:%S").to_string()
    }

    /// `2026-12-01 09:58:03`: a replayed line may be days old.
    pub fn day_and_time(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    pub fn render(&self, event: &Event) -> Vec<String> {
        if let Event::History { .. } = event {
            // Each replayed line carries its own day and time.
            return self.describe(event);
        }
        let c = self.clock(event.time());
        self.describe(event)
            .into_iter()
            .map(|line| format!("{c} {line}"))
            .collect()
    }

    /// The lines for `event` without the clock: what [`Self::render`]
    /// prints after it, and what the full-screen UI shows for events other
    /// than chat.
    pub fn describe(&self, event: &Event) -> Vec<String> {
        // Everything shown passed through for_display in the state already;
        // names are sanitized again here because they are cheap to check.
        let n = |s: &str| for_display(s);
        match event {
            Event::Chat {
                window,
                from,
                text,
                kind,
                ..
            } => vec![format!("{} {}", place(window), body(from, text, *kind))],
            Event::Sending {
                window,
                from,
                text,
                kind,
                ..
            } => vec![format!(
                "{} {} {SENDING_MARK}",
                place(window),
                body(from, text, *kind)
            )],
            Event::Unsent {
                explained: true, ..
            } => Vec::new(),
            Event::Unsent { lines, .. } => lines
                .iter()
                .map(|(window, text)| format!("!!! not sent: {} {text}", place(window)))
                .collect(),
            Event::Joined { room, nick, me, .. } => {
                let who = if *me { "you".to_string() } else { n(nick) };
                vec![format!("{} --> {who} joined", n(room))]
            }
            Event::Parted {
                room,
                nick,
                reason,
                me,
                ..
            } => {
                let who = if *me { "you".to_string() } else { n(nick) };
                let why = if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                };
                vec![format!("{} <-- {who} left{why}", n(room))]
            }
            Event::Quit { nick, reason, .. } => vec![format!("<-- {} left ({reason})", n(nick))],
            Event::NickChanged { new, me: true, .. } => {
                vec![format!("--- you are now known as {}", n(new))]
            }
            Event::NickChanged { old, new, .. } => {
                vec![format!("--- {} is now known as {}", n(old), n(new))]
            }
            Event::Status {
                nick,
                me,
                status,
                detail,
                ..
            } => {
                let who = if *me {
                    "you are".to_string()
                } else {
                    format!("{} is", n(nick))
                };
                let detail = detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                vec![format!("--- {who} now {status}{detail}")]
            }
            Event::Topic {
                room, topic, by, ..
            } => match by {
                Some(by) => vec![format!("{} *** {} set the topic: {topic}", n(room), n(by))],
                None => vec![format!("{} *** topic: {topic}", n(room))],
            },
            Event::Kicked {
                room,
                nick,
                by,
                reason,
                me,
                ..
            } => vec![format!(
                "{} <-- {}",
                n(room),
                kick_words(&n(room), &n(nick), &n(by), reason, *me)
            )],
            Event::RoomClosed {
                room, by, reason, ..
            } => vec![format!(
                "{} <-- {}",
                n(room),
                closed_words(&n(room), &n(by), reason.as_deref())
            )],
            Event::RoomNote { room, text, .. } => vec![format!("{} --- {text}", n(room))],
            Event::AskSecret { prompt, .. } => vec![format!("*** {prompt}")],
            Event::Users { room, users, .. } => {
                let legend = if users.iter().any(|u| !u.roles.is_empty()) {
                    "; ~ founder, @ operator, + voice"
                } else {
                    ""
                };
                let mut out = vec![format!(
                    "--- users in {} ({}{legend}):",
                    n(room),
                    users.len()
                )];
                out.extend(users.iter().map(|u| format!("---   {}", describe(u))));
                out
            }
            Event::Whois { info, .. } => {
                let mut out = vec![format!(
                    "--- info {}: {}@{} ({})",
                    n(&info.nick),
                    n(&info.user),
                    n(&info.ip),
                    n(&info.realname)
                )];
                out.push(format!("---   address {}", n(&info.ip)));
                let entry = super::state::entry(&info.nick, info.away.as_deref());
                out.push(format!(
                    "---   status {}",
                    describe(&entry)
                        .trim_start_matches(entry.nick.as_str())
                        .trim()
                ));
                if let Some(idle) = info.idle_secs {
                    out.push(format!("---   idle {idle}s"));
                }
                if let Some(signon) = info.signon.and_then(|s| Timestamp::from_second(s).ok()) {
                    let joined = signon
                        .to_zoned(self.tz.clone())
                        .strftime("%Y-%m-%d %H:%M:%S");
                    out.push(format!("---   joined at {joined}"));
                }
                if !info.rooms.is_empty() {
                    out.push(format!("---   rooms {}", info.rooms.join(" ")));
                }
                if let Some(account) = &info.account {
                    out.push(format!("---   account {}", n(account)));
                }
                out
            }
            Event::Rooms { rooms, .. } => {
                let mut out = vec![format!("--- rooms ({}):", rooms.len())];
                out.extend(
                    rooms
                        .iter()
                        .map(|(name, count, topic)| format!("---   {name} ({count}) {topic}")),
                );
                out
            }
            Event::Info { text, .. } => vec![format!("*** {text}")],
            Event::Error { text, .. } => vec![format!("!!! {text}")],
            Event::Help { lines, .. } => lines.iter().map(|l| format!("*** {l}")).collect(),
            Event::Closed { reason, .. } => {
                vec![format!("*** disconnected by the tracker: {reason}")]
            }
            Event::SessionNote {
                peer, text, warn, ..
            } => {
                let mark = if *warn { "!!!" } else { "***" };
                vec![format!("{mark} [session {}] {text}", n(peer))]
            }
            Event::History {
                window,
                lines,
                page,
                ..
            } => {
                if *page && lines.is_empty() {
                    return vec![format!("{} --- no older history", place(window))];
                }
                lines
                    .iter()
                    .map(|l| {
                        format!(
                            "{REPLAY_MARK} {} {} {}",
                            self.day_and_time(l.time),
                            place(window),
                            body(&l.from, &l.text, l.kind)
                        )
                    })
                    .collect()
            }
            Event::Summary { window, text, .. } => {
                vec![format!("{} *** {text}", place(window))]
            }
            // Where the separator goes: the full-screen view's business.
            Event::ReadMarker { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::status::Status;

    #[test]
    fn renders_lines() {
        let r = PlainRenderer::new(TimeZone::UTC);
        let time: Timestamp = "2026-11-21T10:11:12Z".parse().unwrap();
        let chat = Event::Chat {
            time,
            window: Window::Room("#general".into()),
            from: "alice".into(),
            text: "hi".into(),
            kind: ChatKind::Message,
            own: false,
            confirms: None,
            msgid: None,
        };
        assert_eq!(r.render(&chat), vec!["10:11:12 #general <alice> hi"]);
        let dm = Event::Chat {
            time,
            window: Window::Dm("bob".into()),
            from: "alice".into(),
            text: "psst".into(),
            kind: ChatKind::Message,
            own: true,
            confirms: None,
            msgid: None,
        };
        assert_eq!(r.render(&dm), vec!["10:11:12 [DM bob] <alice> psst"]);
        let st = Event::Status {
            time,
            nick: "bob".into(),
            me: false,
            status: Status::Busy,
            detail: Some("lunch".into()),
        };
        assert_eq!(r.render(&st), vec!["10:11:12 --- bob is now BUSY: lunch"]);
        let q = Event::Quit {
            time,
            nick: "bob".into(),
            reason: "Quit: bye".into(),
            rooms: vec!["#general".into()],
        };
        assert_eq!(r.render(&q), vec!["10:11:12 <-- bob left (Quit: bye)"]);
        let j = Event::Joined {
            time,
            room: "#general".into(),
            nick: "bob".into(),
            me: false,
        };
        assert_eq!(r.render(&j), vec!["10:11:12 #general --> bob joined"]);
    }
}
