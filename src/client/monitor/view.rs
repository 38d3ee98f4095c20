//! What the monitor's full screen shows, as data: the merged timeline of
//! every tracker (window 1), then per tracker a window for its own notices
//! and one per room (and DM) it is in. Built from the model's
//! [`Report`]s and keys; no I/O. The windows themselves (scrollback,
//! scroll position, unread marks) and the input line are the one-tracker
//! client's ([`Win`], [`Editor`]).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::layout::Rect;

use super::model::{LinkNews, LinkState, Monitor, News, Report, TrackerId};
use crate::client::input;
use crate::client::plain::{PlainRenderer, SENDING_MARK};
use crate::client::state::{Event, GENERAL, UserEntry, Window};
use crate::client::tui::editor::Editor;
use crate::client::tui::keys::{self, KeyAction};
use crate::client::tui::view::{Line, MAX_SEND_LINES, Outgoing, Tone, Win, layout, mentions};
use crate::proto::nick::casefold;
use crate::proto::sanitize::for_display;

const WHEEL_ROWS: usize = 3;

/// What `/help` says about the monitor's screen, before the keys.
pub const MONITOR_HELP: &[&str] = &[
    "Window 1 (all) is every tracker at once, each line marked with its tracker and room: for reading.",
    "Each tracker has a window for its notices (commands such as /join and /rooms work there)",
    "  and one per room or DM: what you type in a room's window goes to that room on that tracker.",
    "/w <number|name>     switch window: all, a label, label/#room (or #room, when one tracker has it)",
    "/exit                leave every tracker",
];

/// What a window shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// Everything from every tracker, each line marked with its tracker.
    All,
    /// A tracker's own notices, answers and link news.
    Tracker(TrackerId),
    /// A room or DM on a tracker.
    Chat(TrackerId, Window),
}

impl Place {
    fn tracker(&self) -> Option<TrackerId> {
        match self {
            Place::All => None,
            Place::Tracker(id) | Place::Chat(id, _) => Some(*id),
        }
    }
}

pub struct Pane {
    pub place: Place,
    pub win: Win,
}

/// What the run loop does after a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Lines for `window` on a tracker.
    Send(TrackerId, Window, Vec<Outgoing>),
    Quit(String),
    Repaint,
}

/// One tracker as the status bar and the merged view's side list show it.
#[derive(Clone, Debug)]
pub struct TrackerShown {
    pub label: String,
    pub address: String,
    pub nick: String,
    pub link: LinkState,
}

pub struct MonitorView {
    pub panes: Vec<Pane>,
    active: usize,
    pub editor: Editor,
    pub trackers: Vec<TrackerShown>,
    pub tls: bool,
    size: Rect,
    tz: TimeZone,
    renderer: PlainRenderer,
    /// Others' status changes in the conversation (Alt+S).
    pub show_status: bool,
    pasted: bool,
    /// A password question (`/oper <name>`) of this tracker is open.
    pub secret: Option<(TrackerId, String)>,
    /// A `/join` typed here: its window comes into view when joined.
    joining: Option<(TrackerId, String)>,
    /// Trackers whose welcome (the lines between logging in and being
    /// in #general) is coming: shown in their own window only, so three
    /// trackers' greetings, again at each reconnection, do not bury the
    /// merged view.
    welcoming: Vec<bool>,
}

impl MonitorView {
    pub fn new(monitor: &Monitor, tls: bool, tz: TimeZone) -> Self {
        let mut panes = vec![Pane {
            place: Place::All,
            win: Win::new(Window::Room("all".into())),
        }];
        let mut trackers = Vec::new();
        for id in 0..monitor.len() {
            let spec = monitor.spec(id);
            panes.push(Pane {
                place: Place::Tracker(id),
                win: Win::new(Window::Room(spec.label.clone())),
            });
            trackers.push(TrackerShown {
                label: spec.label.clone(),
                address: spec.address(),
                nick: String::new(),
                link: LinkState::Connecting,
            });
        }
        MonitorView {
            panes,
            active: 0,
            editor: Editor::default(),
            trackers,
            tls,
            size: Rect::new(0, 0, 80, 24),
            renderer: PlainRenderer::new(tz.clone()),
            tz,
            show_status: false,
            pasted: false,
            secret: None,
            joining: None,
            welcoming: vec![false; monitor.len()],
        }
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        self.size = Rect::new(0, 0, width, height);
    }

    pub fn active(&self) -> &Pane {
        &self.panes[self.active]
    }

    pub fn active_index(&self) -> usize {
        self.active
    }

    /// A window's name in the tab list and the input prompt: `all`, a
    /// tracker's label, `label/#room`, `label/nick` for a DM.
    pub fn title(&self, idx: usize) -> String {
        let label = |id: TrackerId| self.trackers[id].label.as_str();
        match &self.panes[idx].place {
            Place::All => "all".into(),
            Place::Tracker(id) => label(*id).to_string(),
            Place::Chat(id, Window::Room(r)) | Place::Chat(id, Window::Dm(r)) => {
                format!("{}/{r}", label(*id))
            }
            Place::Chat(id, Window::Session(n)) => format!("{}/={n}", label(*id)),
        }
    }

    /// Takes names, rosters, room membership and link states from the model.
    pub fn sync(&mut self, monitor: &Monitor) {
        for (id, t) in self.trackers.iter_mut().enumerate() {
            t.link = monitor.link(id).clone();
            if let Some(app) = monitor.app(id) {
                t.nick = for_display(&app.me);
            }
        }
        let shown = |u: UserEntry| UserEntry {
            nick: for_display(&u.nick),
            roles: u.roles,
            status: u.status,
            detail: u.detail.map(|d| for_display(&d)),
        };
        for p in &mut self.panes {
            let Place::Chat(id, target) = &p.place else {
                continue;
            };
            let Some(app) = monitor.app(*id) else {
                p.win.live = false;
                continue;
            };
            match target {
                Window::Room(r) => {
                    p.win.live = app.in_room(r);
                    p.win.roster = app
                        .room_users(r)
                        .unwrap_or_default()
                        .into_iter()
                        .map(shown)
                        .collect();
                }
                Window::Dm(nick) | Window::Session(nick) => {
                    p.win.live = true;
                    p.win.roster = [app.user(&app.me), app.user(nick)]
                        .into_iter()
                        .map(shown)
                        .collect();
                }
            }
        }
    }

    // ---- windows --------------------------------------------------------

    fn find(&self, place: &Place) -> Option<usize> {
        self.panes.iter().position(|p| match (&p.place, place) {
            (Place::Chat(a, Window::Room(x)), Place::Chat(b, Window::Room(y)))
            | (Place::Chat(a, Window::Dm(x)), Place::Chat(b, Window::Dm(y))) => {
                a == b && casefold(x) == casefold(y)
            }
            (a, b) => a == b,
        })
    }

    fn tracker_pane(&self, id: TrackerId) -> usize {
        self.find(&Place::Tracker(id)).unwrap_or(0)
    }

    /// The window of `target` on tracker `id`, opened after that
    /// tracker's other windows if new.
    fn ensure(&mut self, id: TrackerId, target: &Window) -> usize {
        let place = Place::Chat(id, target.clone());
        if let Some(i) = self.find(&place) {
            return i;
        }
        let target = match target {
            Window::Room(r) => Window::Room(for_display(r)),
            Window::Dm(n) => Window::Dm(for_display(n)),
            Window::Session(n) => Window::Session(for_display(n)),
        };
        let at = self
            .panes
            .iter()
            .rposition(|p| p.place.tracker() == Some(id))
            .map_or(self.panes.len(), |i| i + 1);
        self.panes.insert(
            at,
            Pane {
                place: Place::Chat(id, target.clone()),
                win: Win::new(target),
            },
        );
        if self.active >= at {
            self.active += 1;
        }
        at
    }

    pub fn switch(&mut self, idx: usize) {
        if idx < self.panes.len() {
            self.active = idx;
            let w = &mut self.panes[idx].win;
            w.unread = 0;
            w.mention = false;
        }
    }

    // ---- reports ----------------------------------------------------------

    fn clock(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%H:%M").to_string()
    }

    /// The merged view's clock column: the time, the tracker, the room.
    fn merged_clock(&self, t: Timestamp, id: TrackerId, room: Option<&str>) -> String {
        let label = &self.trackers[id].label;
        match room {
            Some(r) => format!("{} {label} {}", self.clock(t), for_display(r)),
            None => format!("{} {label}", self.clock(t)),
        }
    }

    fn push(&mut self, idx: usize, line: Line, counts: bool, mention: bool) {
        let active = self.active;
        let w = &mut self.panes[idx].win;
        w.push(line);
        if idx != active && counts {
            w.unread += 1;
            w.mention |= mention;
        }
    }

    fn note(&mut self, idx: usize, clock: String, text: &str, tone: Tone) {
        self.push(
            idx,
            Line {
                clock,
                from: None,
                text: for_display(text),
                tone,
                pending: None,
                ..Line::default()
            },
            false,
            false,
        );
    }

    /// `event` in words in window `idx`, and in the merged view.
    fn show(&mut self, id: TrackerId, idx: usize, event: &Event, tone: Tone, merged: bool) {
        let lines = self.renderer.describe(event);
        let clock = self.clock(event.time());
        for l in &lines {
            self.note(idx, clock.clone(), l, tone);
        }
        if merged {
            let clock = self.merged_clock(event.time(), id, None);
            for l in &lines {
                self.note(0, clock.clone(), l, tone);
            }
        }
    }

    /// Where answers to what was typed go: the window in view when it is
    /// this tracker's, else the tracker's own window.
    fn answer_pane(&self, id: TrackerId) -> usize {
        match self.active().place.tracker() {
            Some(t) if t == id => self.active,
            _ => self.tracker_pane(id),
        }
    }

    pub fn apply(&mut self, reports: &[Report]) {
        for r in reports {
            match &r.news {
                News::Chat(e) => self.apply_event(r.tracker, e),
                News::Link(news) => self.apply_link(r.tracker, news, r.time),
            }
        }
    }

    fn apply_link(&mut self, id: TrackerId, news: &LinkNews, time: Timestamp) {
        let address = self.trackers[id].address.clone();
        let (mark, tone) = match news {
            LinkNews::Connected { .. } => ("***", Tone::Join),
            _ => ("!!!", Tone::Error),
        };
        let text = format!("{mark} {}", news.words(&address));
        if let LinkNews::Connected { nick, .. } = news {
            self.trackers[id].nick = for_display(nick);
            self.welcoming[id] = true;
        }
        // Every window of the tracker says so, and the merged view.
        let clock = self.clock(time);
        for idx in 0..self.panes.len() {
            if self.panes[idx].place.tracker() == Some(id) {
                self.note(idx, clock.clone(), &text, tone);
            }
        }
        let clock = self.merged_clock(time, id, None);
        self.note(0, clock, &text, tone);
    }

    fn apply_event(&mut self, id: TrackerId, event: &Event) {
        let me = self.trackers[id].nick.clone();
        match event {
            Event::Chat {
                time,
                window,
                from,
                text,
                kind,
                own,
                confirms,
                ..
            } => {
                let idx = self.ensure(id, window);
                let text = for_display(text);
                let from = for_display(from);
                let mention = !own && mentions(&text, &me);
                let marks = mention || (!own && matches!(window, Window::Dm(_)));
                let tone = match (own, mention) {
                    (true, _) => Tone::Own,
                    (false, true) => Tone::Mention,
                    (false, false) => Tone::Normal,
                };
                let confirmed = confirms.and_then(|c| {
                    let line = self.panes[idx].win.pending_line(c)?;
                    line.text = text.clone();
                    line.tone = Tone::Own;
                    line.pending = None;
                    Some(())
                });
                if confirmed.is_none() {
                    let line = Line {
                        clock: self.clock(*time),
                        from: Some((from.clone(), *kind)),
                        text: text.clone(),
                        tone,
                        pending: None,
                        ..Line::default()
                    };
                    self.push(idx, line, !own, marks);
                }
                let room = match window {
                    Window::Room(r) => r.clone(),
                    Window::Dm(n) => format!("[DM {n}]"),
                    Window::Session(n) => format!("[={n}]"),
                };
                let line = Line {
                    clock: self.merged_clock(*time, id, Some(&room)),
                    from: Some((from, *kind)),
                    text,
                    tone,
                    pending: None,
                    ..Line::default()
                };
                self.push(0, line, !own, marks);
            }
            Event::Sending {
                time,
                id: pending,
                window,
                from,
                text,
                kind,
            } => {
                let idx = self.ensure(id, window);
                let line = Line {
                    clock: self.clock(*time),
                    from: Some((for_display(from), *kind)),
                    text: format!("{} {SENDING_MARK}", for_display(text)),
                    tone: Tone::Pending,
                    pending: Some(*pending),
                    ..Line::default()
                };
                self.push(idx, line, false, false);
            }
            Event::Joined { room, me: true, .. } => {
                self.welcoming[id] = false;
                let idx = self.ensure(id, &Window::Room(room.clone()));
                self.panes[idx].win.live = true;
                if let Some((j, r)) = &self.joining
                    && *j == id
                    && casefold(r) == casefold(room)
                {
                    self.joining = None;
                    self.switch(idx);
                }
                self.show(id, idx, event, Tone::Join, true);
            }
            Event::Joined { room, .. } => {
                let idx = self.ensure(id, &Window::Room(room.clone()));
                self.show(id, idx, event, Tone::Join, true);
            }
            Event::Parted { room, me, .. } | Event::Kicked { room, me, .. } => {
                let idx = self.ensure(id, &Window::Room(room.clone()));
                if *me {
                    self.panes[idx].win.live = false;
                }
                self.show(id, idx, event, Tone::Part, true);
            }
            Event::RoomClosed { room, .. } => {
                let idx = self.ensure(id, &Window::Room(room.clone()));
                self.panes[idx].win.live = false;
                self.show(id, idx, event, Tone::Error, true);
            }
            Event::RoomNote { room, answer, .. } => {
                let idx = if *answer {
                    self.answer_pane(id)
                } else {
                    self.ensure(id, &Window::Room(room.clone()))
                };
                self.show(id, idx, event, Tone::Info, !answer);
            }
            Event::Topic { room, topic, .. } => {
                let idx = self.ensure(id, &Window::Room(room.clone()));
                self.panes[idx].win.topic = Some(for_display(topic));
                self.show(id, idx, event, Tone::Info, true);
            }
            Event::Quit { nick, rooms, .. } => {
                let mut shown = false;
                for room in rooms {
                    if let Some(idx) = self.find(&Place::Chat(id, Window::Room(room.clone()))) {
                        self.show(id, idx, event, Tone::Part, !shown);
                        shown = true;
                    }
                }
                if let Some(idx) = self.find(&Place::Chat(id, Window::Dm(nick.clone()))) {
                    self.show(id, idx, event, Tone::Part, !shown);
                    shown = true;
                }
                if !shown {
                    let idx = self.tracker_pane(id);
                    self.show(id, idx, event, Tone::Part, true);
                }
            }
            Event::Status {
                nick, me: false, ..
            } => {
                if let Some(dm) = self.find(&Place::Chat(id, Window::Dm(nick.clone()))) {
                    self.show(id, dm, event, Tone::Quiet, false);
                }
                if self.show_status {
                    let idx = self
                        .find(&Place::Chat(id, Window::Room(GENERAL.into())))
                        .unwrap_or_else(|| self.tracker_pane(id));
                    self.show(id, idx, event, Tone::Quiet, true);
                }
            }
            Event::NickChanged { .. } => {
                let idx = self.tracker_pane(id);
                self.show(id, idx, event, Tone::Quiet, true);
            }
            Event::AskSecret { prompt, .. } => {
                self.secret = Some((id, prompt.clone()));
                let idx = self.answer_pane(id);
                self.show(id, idx, event, Tone::Info, false);
            }
            Event::Unsent { lines, .. } => {
                for (window, text) in lines {
                    if let Some(idx) = self.find(&Place::Chat(id, window.clone())) {
                        let note = format!("!!! not sent: {}", for_display(text));
                        self.note(idx, self.clock(event.time()), &note, Tone::Error);
                    }
                }
                let idx = self.tracker_pane(id);
                self.show(id, idx, event, Tone::Error, true);
            }
            Event::Error { .. } => {
                let idx = self.answer_pane(id);
                self.show(id, idx, event, Tone::Error, true);
            }
            // The monitor offers no direct sessions; a note about one
            // (an offer received) is shown where answers go.
            Event::SessionNote { .. } => {
                let idx = self.answer_pane(id);
                self.show(id, idx, event, Tone::Info, true);
            }
            Event::Info { .. } => {
                let idx = self.answer_pane(id);
                let merged = !self.welcoming[id];
                self.show(id, idx, event, Tone::Info, merged);
            }
            Event::Help { .. } => {
                let idx = self.answer_pane(id);
                self.show(id, idx, event, Tone::Info, false);
                self.help(idx, event.time());
            }
            Event::Status { me: true, .. }
            | Event::Users { .. }
            | Event::Whois { .. }
            | Event::Rooms { .. } => {
                let idx = self.answer_pane(id);
                self.show(id, idx, event, Tone::Info, false);
            }
            Event::Closed { .. } => {}
            // Replayed history and the summary before it go to their
            // window only, never counted: the merged timeline is live.
            Event::History { window, .. } => {
                let idx = self.ensure(id, window);
                self.show(id, idx, event, Tone::Quiet, false);
            }
            Event::Summary { window, .. } => {
                let idx = self.ensure(id, window);
                self.show(id, idx, event, Tone::Info, false);
            }
            // The monitor watches; it neither shows nor sends read markers.
            Event::ReadMarker { .. } => {}
        }
    }

    /// The monitor's screen and keys, in words, in window `idx`.
    fn help(&mut self, idx: usize, now: Timestamp) {
        let clock = self.clock(now);
        for l in MONITOR_HELP
            .iter()
            .map(|l| l.to_string())
            .chain(keys::help_lines())
        {
            self.note(idx, clock.clone(), &format!("*** {l}"), Tone::Info);
        }
    }

    /// A line of the view's own in the window in view.
    pub fn notice(&mut self, text: &str, tone: Tone, now: Timestamp) {
        let clock = self.clock(now);
        self.note(self.active, clock, text, tone);
    }

    // ---- keys -------------------------------------------------------------

    fn pane_size(&self) -> (usize, usize) {
        let m = layout(self.size).messages;
        (m.width as usize, m.height as usize)
    }

    pub fn scroll_up(&mut self, n: usize) {
        let (w, h) = self.pane_size();
        self.panes[self.active].win.scroll_up(n, w, h);
    }

    pub fn scroll_down(&mut self, n: usize) {
        let (w, _) = self.pane_size();
        self.panes[self.active].win.scroll_down(n, w);
    }

    pub fn on_mouse(&mut self, m: MouseEvent) -> bool {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_up(WHEEL_ROWS),
            MouseEventKind::ScrollDown => self.scroll_down(WHEEL_ROWS),
            _ => return false,
        }
        true
    }

    pub fn on_paste(&mut self, text: &str, now: Timestamp) {
        self.pasted = true;
        if !self.editor.insert(text) {
            self.notice("!!! the paste was cut short", Tone::Error, now);
        }
    }

    pub fn on_key(&mut self, key: KeyEvent, now: Timestamp) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let action = self.key_action(key, now);
        if self.editor.is_empty() {
            self.pasted = false;
        }
        action
    }

    fn key_action(&mut self, key: KeyEvent, now: Timestamp) -> Action {
        let found = keys::lookup(&key);
        if let Some((id, _)) = self.secret.clone() {
            return match found {
                Some(KeyAction::Send) => {
                    self.secret = None;
                    let answer = self.editor.take_secret();
                    Action::Send(
                        id,
                        Window::Room(GENERAL.into()),
                        vec![Outgoing::Secret(answer)],
                    )
                }
                Some(KeyAction::ClearOrLeave) => {
                    self.secret = None;
                    self.editor.take_secret();
                    Action::Send(
                        id,
                        Window::Room(GENERAL.into()),
                        vec![Outgoing::Secret(String::new())],
                    )
                }
                Some(KeyAction::Backspace) => {
                    self.editor.backspace();
                    Action::None
                }
                _ => {
                    self.type_char(key);
                    Action::None
                }
            };
        }
        let Some(action) = found else {
            self.type_char(key);
            return Action::None;
        };
        let e = &mut self.editor;
        let n = self.panes.len();
        match action {
            KeyAction::ClearOrLeave if e.is_empty() => return Action::Quit("Leaving".into()),
            KeyAction::ClearOrLeave => {
                e.take();
            }
            KeyAction::LeaveIfEmpty if e.is_empty() => return Action::Quit("Leaving".into()),
            KeyAction::LeaveIfEmpty => {}
            KeyAction::Repaint => return Action::Repaint,
            // Direct sessions are the one-tracker client's.
            KeyAction::AcceptSession => {}
            KeyAction::NextWindow => self.switch((self.active + 1) % n),
            KeyAction::PrevWindow => self.switch((self.active + n - 1) % n),
            KeyAction::WindowByDigit => {
                if let KeyCode::Char(c) = key.code {
                    let d = c.to_digit(10).unwrap_or(0) as usize;
                    self.switch(if d == 0 { 9 } else { d - 1 });
                }
            }
            KeyAction::ToggleStatusLines => {
                self.show_status = !self.show_status;
                let text = if self.show_status {
                    "*** status changes are shown from now on (Alt+S hides them)"
                } else {
                    "*** status changes are hidden (Alt+S shows them)"
                };
                self.notice(text, Tone::Info, now);
            }
            KeyAction::Send => return self.submit(now),
            KeyAction::Newline => {
                e.insert("\n");
            }
            KeyAction::Left => e.left(),
            KeyAction::Right => e.right(),
            KeyAction::WordLeft => e.word_left(),
            KeyAction::WordRight => e.word_right(),
            KeyAction::Home => e.home(),
            KeyAction::End => e.end(),
            KeyAction::Backspace => e.backspace(),
            KeyAction::Delete => e.delete(),
            KeyAction::DeleteWordBack => e.delete_word_back(),
            KeyAction::DeleteWordForward => e.delete_word_forward(),
            KeyAction::KillToStart => e.kill_to_start(),
            KeyAction::KillToEnd => e.kill_to_end(),
            KeyAction::HistoryPrev => e.history_prev(),
            KeyAction::HistoryNext => e.history_next(),
            KeyAction::PageUp => {
                let page = self.pane_size().1.saturating_sub(2).max(1);
                self.scroll_up(page);
            }
            KeyAction::PageDown => {
                let page = self.pane_size().1.saturating_sub(2).max(1);
                self.scroll_down(page);
            }
            KeyAction::Complete => {
                let mut names: Vec<String> = self
                    .active()
                    .win
                    .roster
                    .iter()
                    .map(|u| u.nick.clone())
                    .collect();
                names.extend((0..self.panes.len()).map(|i| self.title(i)));
                let mut commands = input::COMMANDS.to_vec();
                commands.extend(["w", "window"]);
                commands.sort();
                commands.dedup();
                self.editor.complete(&commands, &names);
            }
        }
        Action::None
    }

    fn type_char(&mut self, key: KeyEvent) {
        let plain = !key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        if let (KeyCode::Char(c), true) = (key.code, plain) {
            self.editor.insert(c.encode_utf8(&mut [0; 4]));
        }
    }

    fn submit(&mut self, now: Timestamp) -> Action {
        let count = self.editor.line_count();
        if count > MAX_SEND_LINES {
            let text = format!(
                "!!! {count} lines is more than {MAX_SEND_LINES} at once; nothing sent, the text is still in the input"
            );
            self.notice(&text, Tone::Error, now);
            return Action::None;
        }
        let text = self.editor.text().to_string();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let pasted = std::mem::take(&mut self.pasted);
        let single = match lines.as_slice() {
            [] => {
                self.editor.take();
                return Action::None;
            }
            [one] if !(pasted && input::is_exit_word(one)) => Some(one.to_string()),
            _ => None,
        };
        if let Some(line) = &single
            && let Some(action) = self.view_command(line, now)
        {
            self.editor.take();
            return action;
        }
        let place = self.active().place.clone();
        let (id, window) = match place {
            Place::All => {
                self.notice(
                    "!!! the merged view is for reading: to write, go to a room's window (Ctrl+N, Alt+digit, /w label/#room)",
                    Tone::Error,
                    now,
                );
                return Action::None;
            }
            Place::Tracker(id) => {
                let label = self.trackers[id].label.clone();
                if !single.as_deref().is_some_and(|l| l.starts_with('/')) {
                    let text = format!(
                        "!!! this window is {label}'s notices: commands work here (/join, /rooms, ...); to write, go to a room's window (/w {label}/#general)"
                    );
                    self.notice(&text, Tone::Error, now);
                    return Action::None;
                }
                (id, Window::Room(GENERAL.into()))
            }
            Place::Chat(id, window) => {
                if let (Window::Room(r), false) = (&window, self.active().win.live)
                    && lines.iter().any(|l| !l.starts_with('/'))
                {
                    let text = match &self.trackers[id].link {
                        LinkState::Up => format!(
                            "!!! you are no longer in {r}: /join {r} to go back (your text is still in the input)"
                        ),
                        _ => format!(
                            "!!! {} is not connected: nothing sent (your text is still in the input)",
                            self.trackers[id].label
                        ),
                    };
                    self.notice(&for_display(&text), Tone::Error, now);
                    return Action::None;
                }
                (id, window)
            }
        };
        self.editor.take();
        let outgoing = match single {
            Some(line) => {
                if let Some(room) = line.strip_prefix("/join ") {
                    self.joining = room
                        .split([',', ' '])
                        .next()
                        .map(|r| (id, r.trim().to_string()));
                }
                vec![Outgoing::Typed(line)]
            }
            None => lines
                .iter()
                .map(|l| Outgoing::Text(l.to_string()))
                .collect(),
        };
        Action::Send(id, window, outgoing)
    }

    /// Commands about the screen itself: `/w`, and leaving from the
    /// merged view.
    fn view_command(&mut self, line: &str, now: Timestamp) -> Option<Action> {
        if self.active().place == Place::All && input::is_exit_word(line) {
            return Some(Action::Quit("Leaving".into()));
        }
        let rest = line.strip_prefix('/')?;
        let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        let arg = arg.trim();
        match name.to_ascii_lowercase().as_str() {
            "w" | "window" | "win" if arg.is_empty() => {
                self.notice(
                    "!!! usage: /w <number|name> (all, a label, label/#room)",
                    Tone::Error,
                    now,
                );
            }
            "w" | "window" | "win" => self.goto(arg, now),
            "help" if self.active().place == Place::All => self.help(self.active, now),
            "exit" | "quit" if self.active().place == Place::All => {
                let reason = if arg.is_empty() { "Leaving" } else { arg };
                return Some(Action::Quit(reason.to_string()));
            }
            _ => return None,
        }
        Some(Action::None)
    }

    fn goto(&mut self, arg: &str, now: Timestamp) {
        if let Ok(n) = arg.parse::<usize>() {
            if (1..=self.panes.len()).contains(&n) {
                self.switch(n - 1);
            } else {
                self.notice(&format!("!!! no window {n}"), Tone::Error, now);
            }
            return;
        }
        let want = casefold(arg);
        let exact: Vec<usize> = (0..self.panes.len())
            .filter(|&i| casefold(&self.title(i)) == want)
            .collect();
        // `#room` alone is enough when one tracker has it.
        let by_room: Vec<usize> = (0..self.panes.len())
            .filter(|&i| {
                self.title(i)
                    .split_once('/')
                    .is_some_and(|(_, r)| casefold(r) == want)
            })
            .collect();
        match (exact.as_slice(), by_room.as_slice()) {
            ([i], _) | ([], [i]) => self.switch(*i),
            ([], []) => self.notice(
                &for_display(&format!("!!! no window {arg}")),
                Tone::Error,
                now,
            ),
            (_, many) => {
                let names: Vec<String> = many.iter().map(|&i| self.title(i)).collect();
                let text = format!("!!! {arg} is on several trackers: {}", names.join(", "));
                self.notice(&for_display(&text), Tone::Error, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::monitor::servers::TrackerSpec;
    use crate::client::state::App;
    use crate::proto::Message;
    use crossterm::event::KeyEventState;

    fn at(sec: u32) -> Timestamp {
        format!("2026-12-02T10:00:{sec:02}Z").parse().unwrap()
    }

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        }
    }

    fn typed(v: &mut MonitorView, text: &str) -> Action {
        for c in text.chars() {
            v.on_key(key(KeyCode::Char(c), KeyModifiers::NONE), at(0));
        }
        v.on_key(key(KeyCode::Enter, KeyModifiers::NONE), at(0))
    }

    fn texts(w: &Win) -> Vec<String> {
        w.lines()
            .iter()
            .map(|l| {
                let from = l.sender().unwrap_or_default();
                format!("{} {from}{}", l.clock, l.text)
            })
            .collect()
    }

    fn setup() -> (Monitor, MonitorView) {
        let specs = ["alpha", "beta"]
            .iter()
            .enumerate()
            .map(|(i, l)| TrackerSpec {
                host: "127.0.0.1".into(),
                port: 4000 + i as u16,
                label: l.to_string(),
            })
            .collect();
        let mut m = Monitor::new(specs);
        let mut v = MonitorView::new(&m, true, TimeZone::UTC);
        for id in 0..2 {
            let mut app = App::new("mon", "x");
            app.set_caps(&["echo-message".into()]);
            let out = m.on_connected(id, app, Vec::new(), at(0));
            v.apply(&out.reports);
            let out = m.on_message(
                id,
                &Message::parse(":mon!m@h JOIN #general").unwrap(),
                at(1),
            );
            v.apply(&out.reports);
        }
        v.sync(&m);
        (m, v)
    }

    #[test]
    fn windows_per_tracker_and_room_and_one_merged_timeline() {
        let (mut m, mut v) = setup();
        let titles: Vec<String> = (0..v.panes.len()).map(|i| v.title(i)).collect();
        assert_eq!(
            titles,
            ["all", "alpha", "alpha/#general", "beta", "beta/#general"]
        );
        for id in 0..2 {
            let out = m.on_message(
                id,
                &Message::parse(":bob!b@h PRIVMSG #general :hi").unwrap(),
                at(2),
            );
            v.apply(&out.reports);
        }
        let merged = texts(&v.panes[0].win);
        assert_eq!(
            merged[merged.len() - 2..],
            [
                "10:00 alpha #general <bob> hi",
                "10:00 beta #general <bob> hi"
            ]
        );
        assert_eq!(texts(&v.panes[2].win).last().unwrap(), "10:00 <bob> hi");
        assert_eq!(v.panes[4].win.unread, 1);
        assert_eq!(v.panes[0].win.unread, 0, "in view");
        // Typing in a room window posts to that room on that tracker.
        v.switch(4);
        assert_eq!(
            typed(&mut v, "hello beta"),
            Action::Send(
                1,
                Window::Room("#general".into()),
                vec![Outgoing::Typed("hello beta".into())]
            )
        );
        // The merged view is for reading.
        v.switch(0);
        assert_eq!(typed(&mut v, "hello"), Action::None);
        assert!(
            texts(&v.panes[0].win)
                .last()
                .unwrap()
                .contains("the merged view is for reading")
        );
        assert_eq!(v.editor.take(), "hello", "kept in the input");
        assert_eq!(typed(&mut v, "/w beta/#general"), Action::None);
        assert_eq!(v.active_index(), 4);
        assert_eq!(typed(&mut v, "/w #general"), Action::None);
        assert!(
            texts(&v.panes[4].win)
                .last()
                .unwrap()
                .contains("#general is on several trackers: alpha/#general, beta/#general")
        );
        v.switch(0);
        assert_eq!(typed(&mut v, "/help"), Action::None);
        let help = texts(&v.panes[0].win);
        assert!(
            help.iter().any(|l| l.contains("/w <number|name>")),
            "{help:?}"
        );
        assert!(help.iter().any(|l| l.contains("Ctrl+N")), "{help:?}");
        assert_eq!(typed(&mut v, "/exit"), Action::Quit("Leaving".into()));
    }

    #[test]
    fn a_welcome_stays_in_its_trackers_window() {
        let (mut m, mut v) = setup();
        let lost = LinkNews::Lost {
            reason: "gone".into(),
            retry_in: std::time::Duration::from_secs(1),
        };
        v.apply(&m.on_link(0, lost, at(2)).reports);
        v.apply(
            &m.on_connected(0, App::new("mon", "x"), Vec::new(), at(3))
                .reports,
        );
        let welcome = Message::parse(":srv 001 mon :Welcome to the tracker").unwrap();
        v.apply(&m.on_message(0, &welcome, at(3)).reports);
        let notice = Message::parse(":srv NOTICE mon :tracker going down at noon").unwrap();
        let joined = Message::parse(":mon!m@h JOIN #general").unwrap();
        v.apply(&m.on_message(0, &joined, at(3)).reports);
        v.apply(&m.on_message(0, &notice, at(4)).reports);
        let merged = texts(&v.panes[0].win).join("\n");
        let own = texts(&v.panes[1].win).join("\n");
        assert!(own.contains("Welcome to the tracker"), "{own}");
        assert!(!merged.contains("Welcome to the tracker"), "{merged}");
        assert!(merged.contains("connected again"), "{merged}");
        assert!(merged.contains("alpha #general --> you joined"), "{merged}");
        assert!(merged.contains("tracker going down at noon"), "{merged}");
    }

    #[test]
    fn a_lost_tracker_says_so_in_its_windows_and_the_merged_view() {
        let (mut m, mut v) = setup();
        let out = m.on_link(
            0,
            LinkNews::Lost {
                reason: "tracker shutting down".into(),
                retry_in: std::time::Duration::from_secs(1),
            },
            at(5),
        );
        v.apply(&out.reports);
        v.sync(&m);
        let want =
            "!!! disconnected from 127.0.0.1:4000: tracker shutting down; trying again in 1.0 s";
        assert_eq!(
            texts(&v.panes[1].win).last().unwrap(),
            &format!("10:00 {want}")
        );
        assert_eq!(
            texts(&v.panes[2].win).last().unwrap(),
            &format!("10:00 {want}")
        );
        assert_eq!(
            texts(&v.panes[0].win).last().unwrap(),
            &format!("10:00 alpha {want}")
        );
        assert!(
            !texts(&v.panes[4].win)
                .last()
                .unwrap()
                .contains("disconnected"),
            "beta carries on"
        );
        assert!(!v.panes[2].win.live);
        assert!(v.panes[4].win.live);
        v.switch(2);
        assert_eq!(typed(&mut v, "anyone?"), Action::None);
        assert!(
            texts(&v.panes[2].win)
                .last()
                .unwrap()
                .contains("alpha is not connected")
        );
        assert_eq!(v.editor.text(), "anyone?", "kept");
    }
}
