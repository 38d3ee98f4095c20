//! The monitor's state, without I/O: one [`App`] per tracker (the same
//! application state the one-tracker client uses), each tracker's link
//! state, and the rooms to join again after a reconnection. Updated by
//! (tracker, message or link news, now); what comes out is a list of
//! [`Report`]s (for the screen and the JSON lines) and the messages to
//! send to each tracker. The connection tasks feed it through channels;
//! the tests drive it directly.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::servers::TrackerSpec;
use crate::client::plain::PlainRenderer;
use crate::client::state::{App, ChatKind, Event, GENERAL, Window};
use crate::client::tui::view::Outgoing;
use crate::proto::Message;
use crate::proto::sanitize::for_display;

/// A tracker's place in the servers list.
pub type TrackerId = usize;

/// What happened to the link to a tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkNews {
    /// Logged in; `again` after a loss.
    Connected { nick: String, again: bool },
    /// The link ended; the next try comes after `retry_in`.
    Lost { reason: String, retry_in: Duration },
    /// A try failed; the next one comes after `retry_in`.
    RetryFailed { reason: String, retry_in: Duration },
    /// Not tried again: the tracker's certificate was not trusted, or the
    /// password or name was refused. Trying again would change nothing.
    GaveUp { reason: String },
}

impl LinkNews {
    /// The JSON `kind` of this news.
    pub fn kind(&self) -> &'static str {
        match self {
            LinkNews::Connected { .. } => "connected",
            LinkNews::Lost { .. } => "disconnected",
            LinkNews::RetryFailed { .. } => "retrying",
            LinkNews::GaveUp { .. } => "given_up",
        }
    }

    /// In words, after the tracker's label.
    pub fn words(&self, address: &str) -> String {
        match self {
            LinkNews::Connected { nick, again: false } => {
                format!("connected to {address} as {nick}")
            }
            LinkNews::Connected { nick, again: true } => {
                format!("connected again to {address} as {nick}")
            }
            LinkNews::Lost { reason, retry_in } => format!(
                "disconnected from {address}: {reason}; trying again in {}",
                seconds(*retry_in)
            ),
            LinkNews::RetryFailed { reason, retry_in } => format!(
                "still no connection to {address}: {reason}; trying again in {}",
                seconds(*retry_in)
            ),
            LinkNews::GaveUp { reason } => {
                format!("not connecting to {address} (not tried again): {reason}")
            }
        }
    }
}

/// `0.4 s`, `12 s`.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} s", d.as_secs())
    }
}

/// Something to show or print, from one tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum News {
    /// From the tracker's chat, as the one-tracker client shows it.
    Chat(Event),
    Link(LinkNews),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub tracker: TrackerId,
    pub time: Timestamp,
    pub news: News,
}

/// What one input produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub reports: Vec<Report>,
    /// Messages for each tracker's connection.
    pub send: Vec<(TrackerId, Message)>,
    /// The person asked to leave (`/exit`), with this reason.
    pub quit: Option<String>,
}

/// A tracker's link as the screen shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Up,
    /// Down; the next try at `retry_at`.
    Down {
        reason: String,
        retry_at: Timestamp,
    },
    GaveUp {
        reason: String,
    },
}

struct Tracker {
    spec: TrackerSpec,
    /// While logged in.
    app: Option<App>,
    link: LinkState,
    /// The rooms we were in when the link went down (other than
    /// #general, which the tracker joins us to): joined again.
    rejoin: Vec<String>,
    /// Logged in at least once.
    ever_up: bool,
}

pub struct Monitor {
    trackers: Vec<Tracker>,
}

/// One JSON line of `--json`: every event of every tracker. The field
/// names are part of the interface (the README lists them and the kinds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The tracker's label (see [`TrackerSpec::label`]).
    pub tracker: String,
    /// The room, or `null` (a direct message, the link, the tracker's own
    /// answers).
    pub room: Option<String>,
    /// Who wrote or did it, or `null`.
    pub sender: Option<String>,
    /// The message; for other kinds the line as the client words it.
    pub text: String,
    /// When, RFC 3339 in UTC (the tracker's time where it gave one).
    pub time: String,
    pub kind: String,
}

/// `2026-12-02T10:00:05.120Z`: UTC, always milliseconds, so the field
/// has one shape for every line.
pub fn json_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A line a bot gives on standard input in `--json` mode: posts `text`
/// to `room` on `tracker` (a label or host:port).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PostRequest {
    pub tracker: String,
    pub room: String,
    pub text: String,
}

impl Monitor {
    pub fn new(specs: Vec<TrackerSpec>) -> Self {
        Monitor {
            trackers: specs
                .into_iter()
                .map(|spec| Tracker {
                    spec,
                    app: None,
                    link: LinkState::Connecting,
                    rejoin: Vec::new(),
                    ever_up: false,
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.trackers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    pub fn spec(&self, id: TrackerId) -> &TrackerSpec {
        &self.trackers[id].spec
    }

    pub fn label(&self, id: TrackerId) -> &str {
        &self.trackers[id].spec.label
    }

    /// The tracker's chat state while logged in.
    pub fn app(&self, id: TrackerId) -> Option<&App> {
        self.trackers.get(id)?.app.as_ref()
    }

    pub fn app_mut(&mut self, id: TrackerId) -> Option<&mut App> {
        self.trackers.get_mut(id)?.app.as_mut()
    }

    pub fn link(&self, id: TrackerId) -> &LinkState {
        &self.trackers[id].link
    }

    /// Which tracker `name` (a label or host:port) is.
    pub fn find(&self, name: &str) -> Option<TrackerId> {
        self.trackers.iter().position(|t| t.spec.is_named(name))
    }

    /// Whether every tracker was given up (nothing left to watch).
    pub fn all_given_up(&self) -> bool {
        self.trackers
            .iter()
            .all(|t| matches!(t.link, LinkState::GaveUp { .. }))
    }

    fn chat(tracker: TrackerId, events: Vec<Event>) -> impl Iterator<Item = Report> {
        events
            .into_iter()
            // The link's own news says how it ended, with the reason.
            .filter(|e| !matches!(e, Event::Closed { .. }))
            .map(move |e| Report {
                tracker,
                time: e.time(),
                news: News::Chat(e),
            })
    }

    /// A login (first or again) finished: `app` is its chat state and
    /// `pending` what the login exchange produced (the welcome).
    pub fn on_connected(
        &mut self,
        id: TrackerId,
        app: App,
        pending: Vec<Event>,
        now: Timestamp,
    ) -> Output {
        let mut out = Output::default();
        let t = &mut self.trackers[id];
        let again = t.ever_up;
        t.ever_up = true;
        t.link = LinkState::Up;
        out.reports.push(Report {
            tracker: id,
            time: now,
            news: News::Link(LinkNews::Connected {
                nick: app.me.clone(),
                again,
            }),
        });
        let rooms = std::mem::take(&mut t.rejoin);
        if !rooms.is_empty() {
            out.send
                .push((id, Message::new("JOIN").param(rooms.join(","))));
        }
        t.app = Some(app);
        out.reports.extend(Self::chat(id, pending));
        out
    }

    /// A message from tracker `id`.
    pub fn on_message(&mut self, id: TrackerId, msg: &Message, now: Timestamp) -> Output {
        let mut out = Output::default();
        let Some(app) = self.trackers.get_mut(id).and_then(|t| t.app.as_mut()) else {
            return out;
        };
        let up = app.on_message(msg, now);
        out.send.extend(up.send.into_iter().map(|m| (id, m)));
        out.reports.extend(Self::chat(id, up.events));
        out
    }

    /// The link to tracker `id` changed (lost, a try failed, given up).
    pub fn on_link(&mut self, id: TrackerId, news: LinkNews, now: Timestamp) -> Output {
        let mut out = Output::default();
        let t = &mut self.trackers[id];
        if let Some(mut app) = t.app.take() {
            t.rejoin = app
                .rooms
                .iter()
                .filter(|r| !crate::proto::nick::casefold(r).eq(GENERAL))
                .cloned()
                .collect();
            // What the tracker never confirmed may not have reached anyone.
            if let Some(unsent) = app.take_unsent(now) {
                out.reports.extend(Self::chat(id, vec![unsent]));
            }
        }
        t.link = match &news {
            LinkNews::Connected { .. } => LinkState::Up,
            LinkNews::Lost { reason, retry_in } | LinkNews::RetryFailed { reason, retry_in } => {
                LinkState::Down {
                    reason: reason.clone(),
                    retry_at: now
                        .checked_add(jiff::SignedDuration::try_from(*retry_in).unwrap_or_default())
                        .unwrap_or(now),
                }
            }
            LinkNews::GaveUp { reason } => LinkState::GaveUp {
                reason: reason.clone(),
            },
        };
        out.reports.push(Report {
            tracker: id,
            time: now,
            news: News::Link(news),
        });
        out
    }

    /// What the person typed (or a bot asked) for `window` on tracker `id`.
    pub fn post(
        &mut self,
        id: TrackerId,
        window: &Window,
        line: Outgoing,
        now: Timestamp,
    ) -> Output {
        let mut out = Output::default();
        let Some(t) = self.trackers.get_mut(id) else {
            return out;
        };
        let Some(app) = t.app.as_mut() else {
            let why = match &t.link {
                LinkState::Down { reason, .. } | LinkState::GaveUp { reason } => {
                    format!(": {reason}")
                }
                _ => String::new(),
            };
            let text = match &line {
                Outgoing::Typed(l) | Outgoing::Text(l) => format!(" ({l})"),
                Outgoing::Secret(_) => String::new(),
            };
            out.reports.extend(Self::chat(
                id,
                vec![Event::Error {
                    time: now,
                    text: format!("not sent{text}: not connected to {}{why}", t.spec.label),
                }],
            ));
            return out;
        };
        app.focus(window);
        let up = match line {
            Outgoing::Typed(l) => app.on_input(&l, now),
            Outgoing::Text(l) => app.on_text(&l, now),
            Outgoing::Secret(s) => app.on_secret(&s, now),
        };
        out.send.extend(up.send.into_iter().map(|m| (id, m)));
        out.reports.extend(Self::chat(id, up.events));
        out.quit = up.quit;
        out
    }

    /// A bot's line from standard input (`--json`); `None` when no
    /// tracker has that name.
    pub fn post_request(&mut self, req: &PostRequest, now: Timestamp) -> Option<Output> {
        let id = self.find(&req.tracker)?;
        Some(self.post(
            id,
            &Window::Room(req.room.clone()),
            Outgoing::Text(req.text.clone()),
            now,
        ))
    }

    /// The JSON line for `report`, or `None` for what only the screen
    /// shows (one's own line before the tracker confirms it, the password
    /// question).
    pub fn record(&self, report: &Report, words: &PlainRenderer) -> Option<Record> {
        let label = self.label(report.tracker).to_string();
        let time = json_time(report.time);
        let line = |room: Option<&str>, sender: Option<&str>, text: String, kind: &str| {
            Some(Record {
                tracker: label.clone(),
                room: room.map(for_display),
                sender: sender.map(for_display),
                text,
                time: time.clone(),
                kind: kind.to_string(),
            })
        };
        let event = match &report.news {
            News::Link(news) => {
                let words = news.words(&self.spec(report.tracker).address());
                return line(None, None, words, news.kind());
            }
            News::Chat(e) => e,
        };
        // The client's words, without the room in front (it has a field)
        // and without the mark that starts a line on screen (`-->`, `***`).
        let described = |room: Option<&str>| {
            let room = room.map(|r| format!("{} ", for_display(r)));
            words
                .describe(event)
                .iter()
                .map(|line| {
                    let line = room
                        .as_deref()
                        .and_then(|r| line.strip_prefix(r))
                        .unwrap_or(line);
                    ["--> ", "<-- ", "*** ", "!!! ", "--- "]
                        .iter()
                        .find_map(|mark| line.strip_prefix(mark))
                        .unwrap_or(line)
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        match event {
            Event::Chat {
                window,
                from,
                text,
                kind,
                ..
            } => {
                let room = match window {
                    Window::Room(r) => Some(r.as_str()),
                    Window::Dm(_) | Window::Session(_) => None,
                };
                let kind = match kind {
                    ChatKind::Message => "message",
                    ChatKind::Action => "action",
                    ChatKind::Notice => "notice",
                };
                line(room, Some(from), for_display(text), kind)
            }
            Event::Sending { .. } | Event::AskSecret { .. } | Event::Closed { .. } => None,
            Event::Unsent { .. } => line(None, None, described(None), "error"),
            Event::Joined { room, nick, .. } => {
                line(Some(room), Some(nick), described(Some(room)), "join")
            }
            Event::Parted { room, nick, .. } => {
                line(Some(room), Some(nick), described(Some(room)), "part")
            }
            Event::Kicked { room, by, .. } => {
                line(Some(room), Some(by), described(Some(room)), "kick")
            }
            Event::RoomClosed { room, by, .. } => {
                line(Some(room), Some(by), described(Some(room)), "room")
            }
            Event::RoomNote { room, .. } => line(Some(room), None, described(Some(room)), "room"),
            Event::Topic { room, by, .. } => {
                line(Some(room), by.as_deref(), described(Some(room)), "topic")
            }
            Event::Quit { nick, .. } => line(None, Some(nick), described(None), "quit"),
            Event::NickChanged { old, .. } => line(None, Some(old), described(None), "nick"),
            Event::Status { nick, .. } => line(None, Some(nick), described(None), "presence"),
            Event::Users { room, .. } => line(Some(room), None, described(None), "info"),
            Event::Whois { .. } | Event::Rooms { .. } | Event::Info { .. } | Event::Help { .. } => {
                line(None, None, described(None), "info")
            }
            Event::Error { .. } => line(None, None, described(None), "error"),
            Event::SessionNote { .. } => line(None, None, described(None), "info"),
            Event::History { window, .. } | Event::Summary { window, .. } => {
                let room = match window {
                    Window::Room(r) => Some(r.as_str()),
                    Window::Dm(_) | Window::Session(_) => None,
                };
                line(room, None, described(None), "history")
            }
            Event::ReadMarker { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn at(sec: u32) -> Timestamp {
        format!("2026-12-02T10:00:{sec:02}Z").parse().unwrap()
    }

    fn spec(label: &str, port: u16) -> TrackerSpec {
        TrackerSpec {
            host: "127.0.0.1".into(),
            port,
            label: label.into(),
        }
    }

    fn msg(line: &str) -> Message {
        Message::parse(line).unwrap()
    }

    /// A monitor of three trackers, each logged in as `mon` and in #general.
    fn three() -> Monitor {
        let mut m = Monitor::new(vec![
            spec("alpha", 4001),
            spec("beta", 4002),
            spec("gamma", 4003),
        ]);
        for id in 0..3 {
            let mut app = App::new("mon", &m.spec(id).address());
            app.set_caps(&["echo-message".into(), "server-time".into()]);
            let out = m.on_connected(id, app, Vec::new(), at(0));
            assert_eq!(out.send, []);
            m.on_message(id, &msg(":mon!mon@h JOIN #general"), at(0));
            m.on_message(id, &msg(":srv 353 mon = #general :mon bob"), at(0));
            m.on_message(id, &msg(":srv 366 mon #general :End"), at(0));
        }
        m
    }

    fn records(m: &Monitor, out: &Output) -> Vec<Record> {
        let words = PlainRenderer::new(TimeZone::UTC);
        out.reports
            .iter()
            .filter_map(|r| m.record(r, &words))
            .collect()
    }

    fn rec(
        tracker: &str,
        room: Option<&str>,
        sender: Option<&str>,
        text: &str,
        sec: u32,
        kind: &str,
    ) -> Record {
        Record {
            tracker: tracker.into(),
            room: room.map(Into::into),
            sender: sender.map(Into::into),
            text: text.into(),
            time: json_time(at(sec)),
            kind: kind.into(),
        }
    }

    #[test]
    fn the_same_name_on_two_trackers_is_told_apart() {
        let mut m = three();
        let line = ":bob!bob@h PRIVMSG #general :hello";
        let a = m.on_message(0, &msg(line), at(5));
        let c = m.on_message(2, &msg(line), at(6));
        assert_eq!(
            records(&m, &a),
            [rec(
                "alpha",
                Some("#general"),
                Some("bob"),
                "hello",
                5,
                "message"
            )]
        );
        assert_eq!(
            records(&m, &c),
            [rec(
                "gamma",
                Some("#general"),
                Some("bob"),
                "hello",
                6,
                "message"
            )]
        );
        let tagged = m.on_message(
            1,
            &msg(
                "@time=2026-12-02T09:59:58.000Z :bob!bob@h PRIVMSG #general :\x01ACTION waves\x01",
            ),
            at(7),
        );
        let got = records(&m, &tagged);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].tracker.as_str(),
                got[0].kind.as_str(),
                got[0].text.as_str()
            ),
            ("beta", "action", "waves")
        );
        assert_eq!(
            got[0].time, "2026-12-02T09:59:58.000Z",
            "the tracker's time"
        );
        let json = serde_json::to_string(&records(&m, &a)[0]).unwrap();
        assert_eq!(
            json,
            r##"{"tracker":"alpha","room":"#general","sender":"bob","text":"hello","time":"2026-12-02T10:00:05.000Z","kind":"message"}"##
        );
    }

    #[test]
    fn posting_goes_to_that_tracker_only() {
        let mut m = three();
        let out = m.post(
            1,
            &Window::Room("#general".into()),
            Outgoing::Typed("hi beta".into()),
            at(3),
        );
        assert_eq!(
            out.send,
            [(
                1,
                Message::new("PRIVMSG").param("#general").param("hi beta")
            )]
        );
        assert_eq!(
            records(&m, &out),
            [],
            "shown as pending, printed when echoed"
        );
        let echo = m.on_message(1, &msg(":mon!mon@h PRIVMSG #general :hi beta"), at(4));
        assert_eq!(
            records(&m, &echo),
            [rec(
                "beta",
                Some("#general"),
                Some("mon"),
                "hi beta",
                4,
                "message"
            )]
        );
        let quit = m.post(
            0,
            &Window::Room("#general".into()),
            Outgoing::Typed("/exit".into()),
            at(5),
        );
        assert!(quit.quit.is_some());
    }

    #[test]
    fn a_lost_tracker_is_reported_and_its_rooms_joined_again() {
        let mut m = three();
        m.on_message(0, &msg(":mon!mon@h JOIN #lab"), at(1));
        let lost = m.on_link(
            0,
            LinkNews::Lost {
                reason: "tracker shutting down".into(),
                retry_in: Duration::from_millis(400),
            },
            at(2),
        );
        assert_eq!(
            records(&m, &lost),
            [rec(
                "alpha",
                None,
                None,
                "disconnected from 127.0.0.1:4001: tracker shutting down; trying again in 0.4 s",
                2,
                "disconnected"
            )]
        );
        assert!(matches!(m.link(0), LinkState::Down { .. }));
        assert!(m.app(0).is_none());
        // The others carry on.
        let beta = m.on_message(1, &msg(":bob!bob@h PRIVMSG #general :still here"), at(3));
        assert_eq!(records(&m, &beta).len(), 1);
        // Typing to a tracker that is down says so and sends nothing.
        let refused = m.post(
            0,
            &Window::Room("#general".into()),
            Outgoing::Typed("anyone?".into()),
            at(3),
        );
        assert_eq!(refused.send, []);
        assert_eq!(
            records(&m, &refused)[0].text,
            "not sent (anyone?): not connected to alpha: tracker shutting down"
        );
        let failed = m.on_link(
            0,
            LinkNews::RetryFailed {
                reason: "refused".into(),
                retry_in: Duration::from_secs(12),
            },
            at(4),
        );
        assert_eq!(records(&m, &failed)[0].kind, "retrying");
        assert_eq!(
            m.link(0),
            &LinkState::Down {
                reason: "refused".into(),
                retry_at: at(16)
            }
        );
        let app = App::new("mon", "127.0.0.1:4001");
        let back = m.on_connected(0, app, Vec::new(), at(20));
        assert_eq!(back.send, [(0, Message::new("JOIN").param("#lab"))]);
        assert_eq!(
            records(&m, &back),
            [rec(
                "alpha",
                None,
                None,
                "connected again to 127.0.0.1:4001 as mon",
                20,
                "connected"
            )]
        );
        assert!(!m.all_given_up());
        for id in 0..3 {
            m.on_link(id, LinkNews::GaveUp { reason: "x".into() }, at(21));
        }
        assert!(m.all_given_up());
    }

    #[test]
    fn a_bot_posts_by_label_or_address() {
        let mut m = three();
        let req: PostRequest = serde_json::from_str(
            r##"{"tracker":"127.0.0.1:4003","room":"#general","text":"/not a command"}"##,
        )
        .unwrap();
        let out = m.post_request(&req, at(1)).unwrap();
        assert_eq!(
            out.send,
            [(
                2,
                Message::new("PRIVMSG")
                    .param("#general")
                    .param("/not a command")
            )]
        );
        let unknown = PostRequest {
            tracker: "delta".into(),
            room: "#general".into(),
            text: "x".into(),
        };
        assert_eq!(m.post_request(&unknown, at(1)), None);
    }
}
