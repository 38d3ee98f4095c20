//! Coming back (issue 17), the client's half of the protocol, without I/O:
//! `chathistory` batches (the tracker's replay at login and the pages PgUp
//! asks for), read markers (`draft/read-marker`) and when to send ours.
//!
//! [`super::state::App`] owns one [`History`] and turns what it collects
//! into events; the full-screen view decides where lines and the
//! separator go, and says what the person has in view.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use jiff::{SignedDuration, Timestamp};

use super::state::{ChatKind, Window};
use crate::proto::Message;
use crate::proto::nick::casefold;
use crate::proto::sanitize::for_display;

/// Lines asked for per page (`CHATHISTORY BEFORE <target> <ref> 50`).
pub const PAGE: usize = 50;
/// The most often one window's read marker is sent while lines arrive in
/// view: a busy room must not cost a MARKREAD per line.
pub const MARK_READ_EVERY: SignedDuration = SignedDuration::from_secs(1);
/// Lines one open batch may collect: a tracker that never closes a batch,
/// or sends an endless one, cannot grow the client without bound.
pub const BATCH_MAX: usize = 10_000;

/// One line of a `chathistory` batch, as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryLine {
    /// When it was said (the line's `time` tag).
    pub time: Timestamp,
    pub msgid: Option<String>,
    pub from: String,
    pub text: String,
    pub kind: ChatKind,
    /// Said by us (from another connection, or before).
    pub own: bool,
}

/// Where older history starts: `CHATHISTORY BEFORE`'s reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Before {
    Msgid(String),
    Time(Timestamp),
}

/// A `chathistory` batch being received.
struct OpenBatch {
    target: String,
    /// An answer to our own `CHATHISTORY BEFORE` (a page), not the
    /// tracker's replay.
    page: bool,
    lines: Vec<HistoryLine>,
}

/// A batch received whole.
pub struct ClosedBatch {
    pub window: Window,
    pub page: bool,
    pub lines: Vec<HistoryLine>,
}

/// A window's read marker as the tracker told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub window: Window,
    /// `None`: nothing read yet (`MARKREAD <target> *`).
    pub read: Option<Timestamp>,
    /// The answer to a MARKREAD of ours, not news from another connection.
    pub ours: bool,
}

#[derive(Default)]
pub struct History {
    /// The tracker gives history (`draft/chathistory` acknowledged).
    pub chathistory: bool,
    /// The tracker keeps read markers (`draft/read-marker`), and has not
    /// said this connection may not (no account).
    pub read_marker: bool,
    /// Open `chathistory` batches by reference.
    open: HashMap<String, OpenBatch>,
    /// Folded targets with a page asked for and not yet answered.
    asking: HashSet<String>,
    /// Folded targets whose older history ran out.
    exhausted: HashSet<String>,
    /// Folded target to the marker the tracker last told.
    markers: HashMap<String, Timestamp>,
    /// Folded target to when we last sent its marker.
    sent_at: HashMap<String, Timestamp>,
    /// Markers we sent and the tracker has not answered yet, oldest first.
    unanswered: HashMap<String, VecDeque<Timestamp>>,
    /// Markers held back by [`MARK_READ_EVERY`]: folded target to the
    /// target as named and the time read up to.
    held: BTreeMap<String, (String, Timestamp)>,
}

/// The window a history target names: a room, else a DM partner.
pub fn window_of(target: &str) -> Window {
    if target.starts_with('#') {
        Window::Room(for_display(target))
    } else {
        Window::Dm(for_display(target))
    }
}

/// `2026-12-02T10:00:00.123Z`, the form the tracker's `time` tags take.
pub fn wire_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The target a window's history is asked and marked under, if it has one
/// (a direct session's lines never pass the tracker).
pub fn target_of(window: &Window) -> Option<&str> {
    match window {
        Window::Room(r) => Some(r),
        Window::Dm(n) => Some(n),
        Window::Session(_) => None,
    }
}

impl History {
    pub fn set_caps(&mut self, acked: &[String]) {
        let has = |c: &str| acked.iter().any(|a| a == c);
        self.chathistory = has("draft/chathistory") && has("batch");
        self.read_marker = has("draft/read-marker");
    }

    /// `BATCH +<ref> chathistory <target>` opened; other batch types are
    /// not ours to collect.
    pub fn open(&mut self, reference: &str, kind: &str, target: &str) {
        if kind != "chathistory" || target.is_empty() {
            return;
        }
        let page = self.asking.remove(&casefold(target));
        self.open.insert(
            reference.to_string(),
            OpenBatch {
                target: target.to_string(),
                page,
                lines: Vec::new(),
            },
        );
    }

    /// Whether lines tagged `batch=<reference>` are collected here.
    pub fn collects(&self, reference: &str) -> bool {
        self.open.contains_key(reference)
    }

    pub fn add(&mut self, reference: &str, line: HistoryLine) {
        if let Some(b) = self.open.get_mut(reference)
            && b.lines.len() < BATCH_MAX
        {
            b.lines.push(line);
        }
    }

    /// `BATCH -<ref>`: the batch, whole, if it was one of ours. An empty
    /// page means the history ran out: it is not asked again.
    pub fn close(&mut self, reference: &str) -> Option<ClosedBatch> {
        let b = self.open.remove(reference)?;
        if b.page && b.lines.is_empty() {
            self.exhausted.insert(casefold(&b.target));
        }
        let mut lines = b.lines;
        // In time order whatever order they came in; equal times keep it.
        lines.sort_by_key(|l| l.time);
        Some(ClosedBatch {
            window: window_of(&b.target),
            page: b.page,
            lines,
        })
    }

    /// The `CHATHISTORY BEFORE` to send for `window`, if the tracker gives
    /// history, none is in flight for it and its history has not run out.
    pub fn older(&mut self, window: &Window, before: Before) -> Option<Message> {
        let target = target_of(window)?;
        let key = casefold(target);
        if !self.chathistory || self.asking.contains(&key) || self.exhausted.contains(&key) {
            return None;
        }
        self.asking.insert(key);
        let reference = match before {
            Before::Msgid(id) => format!("msgid={id}"),
            Before::Time(t) => format!("timestamp={}", wire_time(t)),
        };
        Some(
            Message::new("CHATHISTORY")
                .param("BEFORE")
                .param(target)
                .param(reference)
                .param(PAGE.to_string()),
        )
    }

    /// Whether a page for `window` is asked and not answered.
    pub fn asking(&self, window: &Window) -> bool {
        target_of(window).is_some_and(|t| self.asking.contains(&casefold(t)))
    }

    /// `FAIL CHATHISTORY ...`: the pages it names (any of its parameters),
    /// else every page in flight, are no longer awaited.
    pub fn page_failed(&mut self, params: &[String]) {
        let named: Vec<String> = params
            .iter()
            .map(|p| casefold(p))
            .filter(|p| self.asking.contains(p))
            .collect();
        if named.is_empty() {
            self.asking.clear();
        }
        for p in named {
            self.asking.remove(&p);
        }
    }

    /// `MARKREAD <target> timestamp=<t>` or `MARKREAD <target> *` from the
    /// tracker.
    pub fn on_markread(&mut self, target: &str, value: &str) -> Option<Marker> {
        if target.is_empty() {
            return None;
        }
        let key = casefold(target);
        let read = value
            .strip_prefix("timestamp=")
            .and_then(|t| t.parse::<Timestamp>().ok());
        let mut ours = false;
        if let Some(t) = read {
            self.markers
                .entry(key.clone())
                .and_modify(|m| *m = (*m).max(t))
                .or_insert(t);
            if let Some(q) = self.unanswered.get_mut(&key)
                && let Some(i) = q.iter().position(|s| *s == t)
            {
                q.drain(..=i);
                ours = true;
            }
        }
        Some(Marker {
            window: window_of(target),
            read,
            ours,
        })
    }

    /// `FAIL MARKREAD ...`: this connection may not keep markers (it has
    /// no account), so none is sent again.
    pub fn markers_refused(&mut self) {
        self.read_marker = false;
        self.held.clear();
    }

    /// The person has `window` in view, read up to `upto`: the MARKREAD to
    /// send now, if any. At most one per window per [`MARK_READ_EVERY`]
    /// unless `now_anyway` (the person switched windows); a held one goes
    /// out from [`History::due`].
    pub fn read(
        &mut self,
        window: &Window,
        upto: Timestamp,
        now: Timestamp,
        now_anyway: bool,
    ) -> Option<Message> {
        let target = target_of(window)?;
        if !self.read_marker {
            return None;
        }
        let key = casefold(target);
        // As the wire carries it (milliseconds), so the answer is known.
        let upto = Timestamp::from_millisecond(upto.as_millisecond()).unwrap_or(upto);
        // Only forward, and only what is not already asked for.
        let known = self.markers.get(&key).copied();
        let asked = self.unanswered.get(&key).and_then(|q| q.back().copied());
        let held = self.held.get(&key).map(|(_, t)| *t);
        if [known, asked, held]
            .into_iter()
            .flatten()
            .any(|t| t >= upto)
        {
            return None;
        }
        let recent = self
            .sent_at
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < MARK_READ_EVERY);
        if recent && !now_anyway {
            self.held.insert(key, (target.to_string(), upto));
            return None;
        }
        self.held.remove(&key);
        Some(self.send_marker(key, target, upto, now))
    }

    /// A held marker of `window` sent at once (the person left it).
    pub fn flush(&mut self, window: &Window, now: Timestamp) -> Option<Message> {
        let key = casefold(target_of(window)?);
        let (target, upto) = self.held.remove(&key)?;
        Some(self.send_marker(key, &target, upto, now))
    }

    /// Held markers whose time has come.
    pub fn due(&mut self, now: Timestamp) -> Vec<Message> {
        let ready: Vec<String> = self
            .held
            .keys()
            .filter(|k| {
                self.sent_at
                    .get(*k)
                    .is_none_or(|at| now.duration_since(*at) >= MARK_READ_EVERY)
            })
            .cloned()
            .collect();
        ready
            .into_iter()
            .filter_map(|key| {
                let (target, upto) = self.held.remove(&key)?;
                Some(self.send_marker(key, &target, upto, now))
            })
            .collect()
    }

    /// When the next held marker is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.held
            .keys()
            .filter_map(|k| self.sent_at.get(k))
            .filter_map(|at| at.checked_add(MARK_READ_EVERY).ok())
            .min()
    }

    fn send_marker(
        &mut self,
        key: String,
        target: &str,
        upto: Timestamp,
        now: Timestamp,
    ) -> Message {
        self.sent_at.insert(key.clone(), now);
        let q = self.unanswered.entry(key).or_default();
        q.push_back(upto);
        // An answer lost (never sent) must not keep the queue growing.
        if q.len() > 16 {
            q.pop_front();
        }
        Message::new("MARKREAD")
            .param(target)
            .param(format!("timestamp={}", wire_time(upto)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::state::{App, Event, Update};

    /// `secs` after 2026-12-02 10:00:00 UTC.
    fn at(secs: i64) -> Timestamp {
        let base: Timestamp = "2026-12-02T10:00:00Z".parse().expect("time");
        base.checked_add(SignedDuration::from_secs(secs))
            .expect("time")
    }

    fn app() -> App {
        let mut a = App::new("me", "t:1");
        a.set_caps(
            &[
                "batch",
                "draft/chathistory",
                "draft/read-marker",
                "echo-message",
                "message-tags",
                "server-time",
            ]
            .map(String::from),
        );
        a
    }

    fn feed(a: &mut App, line: &str) -> Update {
        a.on_message(&Message::parse(line).expect("line"), at(1000))
    }

    fn lines(a: &mut App, wire: &[&str]) -> Vec<Event> {
        wire.iter().flat_map(|l| feed(a, l).events).collect()
    }

    fn sent(msgs: &[Message]) -> Vec<String> {
        msgs.iter()
            .map(|m| m.to_line().trim_end().to_string())
            .collect()
    }

    #[test]
    fn asks_for_history_and_read_markers() {
        let wanted = crate::client::state::WANTED_CAPS;
        for cap in [
            "batch",
            "server-time",
            "message-tags",
            "draft/chathistory",
            "draft/read-marker",
        ] {
            assert!(wanted.contains(&cap), "{cap}");
        }
    }

    #[test]
    fn a_replay_batch_comes_whole_in_time_order_after_its_summary() {
        let mut a = app();
        let events = lines(
            &mut a,
            &[
                "@confab/away-summary=#general :confab NOTICE #general :While you were away: 3 messages in #general, 1 mentions you",
                ":confab BATCH +h1 chathistory #general",
                "@batch=h1;time=2026-12-01T09:00:02.000Z;msgid=m2 :bob!b@h PRIVMSG #general :me, look",
                "@batch=h1;time=2026-12-01T09:00:01.000Z;msgid=m1 :bob!b@h PRIVMSG #general :\x01ACTION waves\x01",
                "@batch=h1;time=2026-12-01T09:00:03.000Z;msgid=m3 :me!m@h PRIVMSG #general :from my phone",
                "@batch=h1;time=2026-12-01T09:00:04.000Z;msgid=m4 :bob!b@h PRIVMSG #general :\x01VERSION\x01",
            ],
        );
        // The summary in the room's window; the lines held until the end.
        assert_eq!(
            events,
            [Event::Summary {
                time: at(1000),
                window: Window::Room("#general".into()),
                text: "While you were away: 3 messages in #general, 1 mentions you".into(),
            }]
        );
        let up = feed(&mut a, ":confab BATCH -h1");
        let t = |s: &str| s.parse::<Timestamp>().expect("time");
        let line = |time: &str, id: &str, from: &str, text: &str, kind, own| HistoryLine {
            time: t(time),
            msgid: Some(id.into()),
            from: from.into(),
            text: text.into(),
            kind,
            own,
        };
        assert_eq!(
            up.events,
            [Event::History {
                time: at(1000),
                window: Window::Room("#general".into()),
                lines: vec![
                    line(
                        "2026-12-01T09:00:01Z",
                        "m1",
                        "bob",
                        "waves",
                        ChatKind::Action,
                        false
                    ),
                    line(
                        "2026-12-01T09:00:02Z",
                        "m2",
                        "bob",
                        "me, look",
                        ChatKind::Message,
                        false
                    ),
                    line(
                        "2026-12-01T09:00:03Z",
                        "m3",
                        "me",
                        "from my phone",
                        ChatKind::Message,
                        true
                    ),
                ],
                page: false,
            }]
        );
        // After the batch, lines are live again.
        let up = feed(&mut a, ":bob!b@h PRIVMSG #general :now");
        assert!(matches!(&up.events[0], Event::Chat { text, .. } if text == "now"));
    }

    #[test]
    fn a_dm_summary_and_replay_go_to_the_dm_window() {
        let mut a = app();
        let mut events = lines(
            &mut a,
            &[
                "@confab/away-summary=bob :confab NOTICE me :While you were away: 1 direct message from bob",
                ":confab BATCH +h2 chathistory bob",
                "@batch=h2;time=2026-12-01T09:00:01.000Z;msgid=d1 :bob!b@h PRIVMSG me :are you there?",
                ":confab BATCH -h2",
            ],
        );
        assert!(
            matches!(&events[0], Event::Summary { window: Window::Dm(n), text, .. } if n == "bob" && text.ends_with("from bob"))
        );
        let Event::History { window, lines, .. } = events.remove(1) else {
            panic!("{events:?}")
        };
        assert_eq!(window, Window::Dm("bob".into()));
        assert_eq!(lines[0].text, "are you there?");
        // A tracker notice without the tag stays what it was.
        let up = feed(&mut a, ":confab NOTICE me :Server restarting soon");
        assert!(matches!(&up.events[0], Event::Info { .. }));
        // Other batch types are not held back.
        feed(&mut a, ":confab BATCH +x netsplit a b");
        let up = feed(&mut a, "@batch=x :bob!b@h PRIVMSG #general :live");
        assert!(matches!(&up.events[0], Event::Chat { .. }));
    }

    #[test]
    fn paging_back_once_at_a_time_until_history_runs_out() {
        let mut a = app();
        let general = Window::Room("#general".into());
        let up = a.older_history(&general, Before::Msgid("m1".into()));
        assert_eq!(sent(&up.send), ["CHATHISTORY BEFORE #general msgid=m1 50"]);
        assert!(a.asking_history(&general));
        // Asked already: nothing more until the answer.
        assert!(
            a.older_history(&general, Before::Msgid("m1".into()))
                .send
                .is_empty()
        );
        // Another window asks on its own.
        let up = a.older_history(&Window::Dm("bob".into()), Before::Time(at(0)));
        assert_eq!(
            sent(&up.send),
            ["CHATHISTORY BEFORE bob timestamp=2026-12-02T10:00:00.000Z 50"]
        );
        let events = lines(
            &mut a,
            &[
                ":confab BATCH +h3 chathistory #general",
                "@batch=h3;time=2026-11-30T09:00:00.000Z;msgid=m0 :bob!b@h PRIVMSG #general :older",
                ":confab BATCH -h3",
            ],
        );
        assert!(
            matches!(&events[..], [Event::History { page: true, lines, .. }] if lines[0].msgid.as_deref() == Some("m0"))
        );
        assert!(!a.asking_history(&general));
        // The next page is empty: said once, never asked again.
        a.older_history(&general, Before::Msgid("m0".into()));
        let events = lines(
            &mut a,
            &[
                ":confab BATCH +h4 chathistory #general",
                ":confab BATCH -h4",
            ],
        );
        assert!(
            matches!(&events[..], [Event::History { page: true, lines, .. }] if lines.is_empty())
        );
        assert!(
            a.older_history(&general, Before::Msgid("m0".into()))
                .send
                .is_empty()
        );
        // A refusal ends the wait for that window's page, and is shown.
        let up = feed(
            &mut a,
            ":confab FAIL CHATHISTORY INVALID_TARGET BEFORE bob :You are not in that room",
        );
        assert!(matches!(&up.events[0], Event::Error { .. }));
        assert!(!a.asking_history(&Window::Dm("bob".into())));
        // A direct session has no tracker history; a tracker without
        // chathistory is never asked.
        assert!(
            a.older_history(&Window::Session("bob".into()), Before::Time(at(0)))
                .send
                .is_empty()
        );
        let mut plain = App::new("me", "t:1");
        plain.set_caps(&["batch".into(), "echo-message".into()]);
        assert!(
            plain
                .older_history(&general, Before::Time(at(0)))
                .send
                .is_empty()
        );
    }

    #[test]
    fn read_markers_from_the_tracker_and_ours_throttled_by_the_clock() {
        let mut a = app();
        let general = Window::Room("#general".into());
        let up = feed(
            &mut a,
            ":confab MARKREAD #general timestamp=2026-12-01T09:00:00.000Z",
        );
        assert_eq!(
            up.events,
            [Event::ReadMarker {
                time: at(1000),
                window: general.clone(),
                read: Some("2026-12-01T09:00:00Z".parse().expect("time")),
                ours: false,
            }]
        );
        let up = feed(&mut a, ":confab MARKREAD #lab *");
        assert!(matches!(
            &up.events[0],
            Event::ReadMarker { read: None, .. }
        ));
        // Not behind what the tracker has.
        assert!(a.mark_read(&general, at(-100_000), at(0), false).is_empty());
        // The first goes at once; the answer is known as ours.
        let m = a.mark_read(&general, at(1), at(100), false);
        assert_eq!(
            sent(&m),
            ["MARKREAD #general timestamp=2026-12-02T10:00:01.000Z"]
        );
        let up = feed(
            &mut a,
            ":confab MARKREAD #general timestamp=2026-12-02T10:00:01.000Z",
        );
        assert!(matches!(
            &up.events[0],
            Event::ReadMarker { ours: true, .. }
        ));
        // Within the second: held, sent when the second is up, newest only.
        assert!(a.mark_read(&general, at(2), at(100), false).is_empty());
        assert!(a.mark_read(&general, at(3), at(100), false).is_empty());
        assert_eq!(a.next_mark_read(), Some(at(101)));
        assert!(a.due_mark_reads(at(100)).is_empty());
        assert_eq!(
            sent(&a.due_mark_reads(at(101))),
            ["MARKREAD #general timestamp=2026-12-02T10:00:03.000Z"]
        );
        assert_eq!(a.next_mark_read(), None);
        // Switching to a window sends at once; leaving one flushes it.
        assert_eq!(a.mark_read(&general, at(4), at(101), true).len(), 1);
        assert!(a.mark_read(&general, at(5), at(101), false).is_empty());
        assert_eq!(
            sent(&a.left_window(&general, at(101))),
            ["MARKREAD #general timestamp=2026-12-02T10:00:05.000Z"]
        );
        // Another connection read further: not ours.
        let up = feed(
            &mut a,
            ":confab MARKREAD #general timestamp=2026-12-02T10:05:00.000Z",
        );
        assert!(matches!(
            &up.events[0],
            Event::ReadMarker { ours: false, .. }
        ));
        assert!(
            a.mark_read(&general, at(6), at(200), false).is_empty(),
            "behind"
        );
        // No account: refused once, silently, and never sent again.
        let up = feed(
            &mut a,
            ":confab FAIL MARKREAD ACCOUNT_REQUIRED #general :Read markers need an account",
        );
        assert!(up.events.is_empty());
        assert!(a.mark_read(&general, at(9999), at(300), true).is_empty());
        // A direct session's lines never pass the tracker.
        let mut b = app();
        assert!(
            b.mark_read(&Window::Session("bob".into()), at(1), at(1), true)
                .is_empty()
        );
    }
}

#[cfg(test)]
mod plain_tests {
    use super::*;
    use crate::client::plain::PlainRenderer;
    use crate::client::state::Event;
    use jiff::tz::TimeZone;

    #[test]
    fn the_line_mode_marks_replay_with_its_day() {
        let r = PlainRenderer::new(TimeZone::UTC);
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().expect("time");
        let said: Timestamp = "2026-12-01T09:58:03Z".parse().expect("time");
        let replay = Event::History {
            time: now,
            window: Window::Room("#general".into()),
            lines: vec![HistoryLine {
                time: said,
                msgid: Some("m1".into()),
                from: "bob".into(),
                text: "while you slept".into(),
                kind: ChatKind::Message,
                own: false,
            }],
            page: false,
        };
        assert_eq!(
            r.render(&replay),
            ["[replay] 2026-12-01 09:58:03 #general <bob> while you slept"]
        );
        let summary = Event::Summary {
            time: now,
            window: Window::Dm("bob".into()),
            text: "While you were away: 4 direct messages from bob".into(),
        };
        assert_eq!(
            r.render(&summary),
            ["10:00:00 [DM bob] *** While you were away: 4 direct messages from bob"]
        );
        let marker = Event::ReadMarker {
            time: now,
            window: Window::Room("#general".into()),
            read: Some(said),
            ours: false,
        };
        assert!(r.render(&marker).is_empty());
    }
}
