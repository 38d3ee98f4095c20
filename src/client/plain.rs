//! Line mode: each event becomes one or more lines of text. Formatting only.
//!
//! Format (documented in the README):
//! `HH:MM:SS #room <nick> text`, `HH:MM:SS [DM nick] <sender> text`,
//! `HH:MM:SS #room --> nick joined`, `HH:MM:SS <-- nick left (reason)`,
//! `HH:MM:SS --- nick is now BUSY: detail`, `HH:MM:SS *** info`,
//! `HH:MM:SS !!! error`.

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

fn describe(u: &UserEntry) -> String {
    match &u.detail {
        Some(d) => format!("{} {}: {d}", u.nick, u.status),
        None => format!("{} {}", u.nick, u.status),
    }
}

impl PlainRenderer {
    pub fn new(tz: TimeZone) -> Self {
        PlainRenderer { tz }
    }

    fn clock(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%H:%M:%S").to_string()
    }

    pub fn render(&self, event: &Event) -> Vec<String> {
        // Everything shown passed through for_display in the state already;
        // names are sanitized again here because they are cheap to check.
        let n = |s: &str| for_display(s);
        match event {
            Event::Chat {
                time,
                window,
                from,
                text,
                kind,
                ..
            } => {
                let place = match window {
                    Window::Room(r) => n(r),
                    Window::Dm(who) => format!("[DM {}]", n(who)),
                };
                let body = match kind {
                    ChatKind::Message => format!("<{}> {text}", n(from)),
                    ChatKind::Notice => format!("-{}- {text}", n(from)),
                    ChatKind::Action => format!("* {} {text}", n(from)),
                };
                vec![format!("{} {place} {body}", self.clock(*time))]
            }
            Event::Joined {
                time,
                room,
                nick,
                me,
            } => {
                let who = if *me { "you".to_string() } else { n(nick) };
                vec![format!(
                    "{} {} --> {who} joined",
                    self.clock(*time),
                    n(room)
                )]
            }
            Event::Parted {
                time,
                room,
                nick,
                reason,
                me,
            } => {
                let who = if *me { "you".to_string() } else { n(nick) };
                let why = if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                };
                vec![format!(
                    "{} {} <-- {who} left{why}",
                    self.clock(*time),
                    n(room)
                )]
            }
            Event::Quit { time, nick, reason } => vec![format!(
                "{} <-- {} left ({reason})",
                self.clock(*time),
                n(nick)
            )],
            Event::NickChanged { time, old, new } => {
                vec![format!(
                    "{} --- {} is now known as {}",
                    self.clock(*time),
                    n(old),
                    n(new)
                )]
            }
            Event::Status {
                time,
                nick,
                me,
                status,
                detail,
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
                vec![format!(
                    "{} --- {who} now {status}{detail}",
                    self.clock(*time)
                )]
            }
            Event::Topic {
                time,
                room,
                topic,
                by,
            } => match by {
                Some(by) => vec![format!(
                    "{} {} *** {} set the topic: {topic}",
                    self.clock(*time),
                    n(room),
                    n(by)
                )],
                None => vec![format!(
                    "{} {} *** topic: {topic}",
                    self.clock(*time),
                    n(room)
                )],
            },
            Event::Users { time, room, users } => {
                let c = self.clock(*time);
                let mut out = vec![format!("{c} --- users in {} ({}):", n(room), users.len())];
                out.extend(users.iter().map(|u| format!("{c} ---   {}", describe(u))));
                out
            }
            Event::Whois { time, info } => {
                let c = self.clock(*time);
                let mut out = vec![format!(
                    "{c} --- info {}: {}@{} ({})",
                    n(&info.nick),
                    n(&info.user),
                    n(&info.ip),
                    n(&info.realname)
                )];
                out.push(format!("{c} ---   address {}", n(&info.ip)));
                let entry = super::state::entry(&info.nick, info.away.as_deref());
                out.push(format!(
                    "{c} ---   status {}",
                    describe(&entry)
                        .trim_start_matches(entry.nick.as_str())
                        .trim()
                ));
                if let Some(idle) = info.idle_secs {
                    out.push(format!("{c} ---   idle {idle}s"));
                }
                if let Some(signon) = info.signon.and_then(|s| Timestamp::from_second(s).ok()) {
                    let joined = signon
                        .to_zoned(self.tz.clone())
                        .strftime("%Y-%m-%d %H:%M:%S");
                    out.push(format!("{c} ---   joined at {joined}"));
                }
                if !info.rooms.is_empty() {
                    out.push(format!("{c} ---   rooms {}", info.rooms.join(" ")));
                }
                out
            }
            Event::Rooms { time, rooms } => {
                let c = self.clock(*time);
                let mut out = vec![format!("{c} --- rooms ({}):", rooms.len())];
                out.extend(
                    rooms
                        .iter()
                        .map(|(name, count, topic)| format!("{c} ---   {name} ({count}) {topic}")),
                );
                out
            }
            Event::Info { time, text } => vec![format!("{} *** {text}", self.clock(*time))],
            Event::Error { time, text } => vec![format!("{} !!! {text}", self.clock(*time))],
            Event::Help { time, lines } => {
                let c = self.clock(*time);
                lines.iter().map(|l| format!("{c} *** {l}")).collect()
            }
            Event::Closed { time, reason } => vec![format!(
                "{} *** disconnected by the tracker: {reason}",
                self.clock(*time)
            )],
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
        };
        assert_eq!(r.render(&chat), vec!["10:11:12 #general <alice> hi"]);
        let dm = Event::Chat {
            time,
            window: Window::Dm("bob".into()),
            from: "alice".into(),
            text: "psst".into(),
            kind: ChatKind::Message,
            own: true,
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
