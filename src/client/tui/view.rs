//! What the full-screen UI shows, as plain data: one window per room and DM
//! partner with its scrollback, unread and mention marks, the scroll
//! position, the roster, the input line. Updated from the application's
//! [`Event`]s and from keys; read by `draw`. No I/O, so it is tested
//! without a terminal.

use std::collections::VecDeque;
use std::ops::Range;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::layout::Rect;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::editor::Editor;
use super::keys::{self, KeyAction};
use crate::client::history::{Before, HistoryLine};
use crate::client::input;
use crate::client::plain::{PlainRenderer, SENDING_MARK};
use crate::client::state::{
    App, ChatKind, Event, GENERAL, UserEntry, Window, cannot_leave_general, entry,
};
use crate::proto::nick::{casefold, validate_nick};
use crate::proto::sanitize::for_display;
use crate::proto::status::Status;

/// Lines kept per window; older ones are dropped.
pub const SCROLLBACK: usize = 10_000;
/// Most lines one Enter may send. The tracker holds back a client that
/// sends faster than its flood limit and disconnects it 200 lines ahead, so
/// a huge paste is refused here, with the input kept, rather than there.
pub const MAX_SEND_LINES: usize = 50;
const WHEEL_ROWS: usize = 3;
/// Width of the clock column, `HH:MM` and a space.
const CLOCK_WIDTH: usize = 6;

/// Lines `/help` adds for the full-screen mode, before the keys (which
/// come from [`keys::KEYS`]).
const UI_HELP: &[&str] = &[
    "/w <number|name>     switch window; /w <user> opens a DM window",
    "/query <user>        open a DM window",
    "/close               close this window: a DM, or a room you left or were removed from",
    "                     (/close #room [reason] closes the room itself, for everyone)",
    "A paste is sent only when you press Enter, each line as text (never as a command).",
];
/// Status changes of others within this long of the first one shown fold
/// into that line (while it is still the last line of the window).
pub const FOLD_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);
/// Names a folded status line spells out before "and N others".
const FOLD_NAMES: usize = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tone {
    /// Someone else's message.
    #[default]
    Normal,
    Own,
    /// Names the user, or a DM to them.
    Mention,
    Join,
    Part,
    /// Status and name changes: shown, but quieter than the chat.
    Quiet,
    /// Our own line, not confirmed by the tracker yet.
    Pending,
    Info,
    Error,
}

/// What a line did to its window's unread mark when it came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unread {
    /// Nothing: ours, a note, or history replayed or paged back.
    #[default]
    No,
    /// Counted as unread.
    Yes,
    /// Counted, and it names the user (or is a DM).
    Mention,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Line {
    /// `HH:MM` (in the monitor's merged view followed by the line's
    /// tracker and room).
    pub clock: String,
    /// The sender of a chat line.
    pub from: Option<(String, ChatKind)>,
    pub text: String,
    pub tone: Tone,
    /// The id of our own line while it waits for the tracker's echo.
    pub pending: Option<u64>,
    /// When a message was said, by the tracker's clock: where the read
    /// marker and the separator fall. `None` for notes.
    pub time: Option<Timestamp>,
    /// The tracker's id for a message: where older history starts.
    pub msgid: Option<String>,
    pub unread: Unread,
}

impl Line {
    /// The sender part after the clock: `<alice> `, `* alice `, `-alice- `.
    pub fn sender(&self) -> Option<String> {
        self.from.as_ref().map(|(n, kind)| match kind {
            ChatKind::Message => format!("<{n}> "),
            ChatKind::Action => format!("* {n} "),
            ChatKind::Notice => format!("-{n}- "),
        })
    }

    /// Columns before the text on the first row.
    pub fn prefix_width(&self) -> usize {
        // The clock column is wider in the monitor's merged view, which
        // writes the line's tracker and room after the time.
        (self.clock.width() + 1).max(CLOCK_WIDTH) + self.sender().map_or(0, |s| s.width())
    }

    /// Where continuation rows start: under the text, unless the prefix
    /// would take most of a narrow window.
    pub fn indent(&self, width: usize) -> usize {
        let p = self.prefix_width();
        if p * 2 <= width { p } else { 0 }
    }

    /// The byte ranges of `text` on each row at `width` columns.
    pub fn rows(&self, width: usize) -> Vec<Range<usize>> {
        let first = width.saturating_sub(self.prefix_width());
        let rest = width.saturating_sub(self.indent(width));
        wrap(&self.text, first, rest)
    }
}

/// Splits `text` into rows: the first `first` columns wide, the others
/// `rest`. Breaks at spaces; a word longer than a row is cut between
/// characters (graphemes). Widths are display columns, so CJK and emoji
/// count two. Always at least one row.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<Range<usize>> {
    let mut rows = Vec::new();
    let mut limit = first.max(1);
    // The row being filled: its start and the end of its last word.
    let mut row: Option<(usize, usize)> = Some((0, 0));
    let mut col = 0;
    let mut pos = 0;
    for word in text.split(' ') {
        let (ws, we) = (pos, pos + word.len());
        pos = we + 1;
        if word.is_empty() {
            continue;
        }
        let width = word.width();
        if let Some((s, e)) = row {
            let gap = ws - e;
            if col + gap + width <= limit {
                row = Some((s, we));
                col += gap + width;
                continue;
            }
            if e > s {
                rows.push(s..e);
                limit = rest.max(1);
            }
        }
        if width <= limit {
            row = Some((ws, we));
            col = width;
            continue;
        }
        let (mut s, mut c) = (ws, 0);
        for (gi, g) in word.grapheme_indices(true) {
            let gw = g.width();
            if c + gw > limit && ws + gi > s {
                rows.push(s..ws + gi);
                limit = rest.max(1);
                s = ws + gi;
                c = 0;
            }
            c += gw;
        }
        row = Some((s, we));
        col = c;
    }
    match row {
        Some((s, e)) if e > s || rows.is_empty() => rows.push(s..e),
        _ => {}
    }
    rows
}

/// Whether a typed line holds a password (`/oper <name> <password>`),
/// which the input history must not keep.
fn carries_password(line: &str) -> bool {
    let mut words = line.split_whitespace();
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("/oper") => words.nth(1).is_some(),
        Some(w) if w.eq_ignore_ascii_case("/register") => words.next().is_some(),
        _ => false,
    }
}

pub use crate::proto::nick::mentions;

/// A scroll position: the line at the bottom edge (by sequence number)
/// and how many of its rows are hidden below it. Anchored to a line, not a
/// row count from the end, so new messages do not move what is on screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    seq: u64,
    below: usize,
}

/// The first sequence number of a window: pages of older history are
/// numbered down from it, so anchors to lines stay valid when they come.
const FIRST_SEQ: u64 = 1 << 40;

/// What the separator line says.
pub const SEPARATOR: &str = "new since you read";

#[derive(Debug)]
pub struct Win {
    pub target: Window,
    lines: VecDeque<Line>,
    /// Sequence number of `lines[0]`.
    first_seq: u64,
    /// How far the user has read, as far as the separator goes: it is
    /// drawn before the first message from someone else said after it.
    /// It stays put while the window is in view, and moves when the
    /// window is left or the account reads further on another connection.
    separator: Option<Timestamp>,
    /// The line the separator is drawn before, if any follows it.
    separator_seq: Option<u64>,
    /// Messages from others since the window was last in view.
    pub unread: usize,
    /// One of them names the user, or is a DM.
    pub mention: bool,
    /// `None` follows the newest line.
    pub scroll: Option<Anchor>,
    /// Lines that arrived while scrolled up.
    pub new_below: usize,
    pub topic: Option<String>,
    /// The status changes folded into the last line, if it is such a line.
    fold: Option<Fold>,
    /// We are in this room (always true for a DM): false once we left it,
    /// were removed or it was closed. Its lines stay readable.
    pub live: bool,
    /// Who the side list shows for this window: the room's members with
    /// their roles and statuses, or the two people of a DM.
    pub roster: Vec<UserEntry>,
}

/// Several people's status changes shown as one line.
#[derive(Debug)]
struct Fold {
    /// The sequence number of the line.
    seq: u64,
    status: Status,
    /// When the first change of the fold happened.
    since: Timestamp,
    nicks: Vec<String>,
}

/// `bob is now INACTIVE: idle for 5 min`, `bob and carol are now
/// INACTIVE`, `bob, carol and 12 others are now INACTIVE`.
fn fold_text(nicks: &[String], status: Status, detail: Option<&str>) -> String {
    let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
    match nicks {
        [] => String::new(),
        [one] => format!("--- {one} is now {status}{detail}"),
        [a, b] => format!("--- {a} and {b} are now {status}"),
        [a, b, c] => format!("--- {a}, {b} and {c} are now {status}"),
        many => format!(
            "--- {} and {} others are now {status}",
            many[..FOLD_NAMES].join(", "),
            many.len() - FOLD_NAMES
        ),
    }
}

impl Win {
    pub(crate) fn new(target: Window) -> Self {
        Win {
            target,
            lines: VecDeque::new(),
            first_seq: FIRST_SEQ,
            separator: None,
            separator_seq: None,
            unread: 0,
            mention: false,
            scroll: None,
            new_below: 0,
            topic: None,
            fold: None,
            live: true,
            roster: Vec::new(),
        }
    }

    fn last_seq(&self) -> Option<u64> {
        (!self.lines.is_empty()).then(|| self.first_seq + self.lines.len() as u64 - 1)
    }

    /// The line of our own pending line `id`, newest first.
    pub(crate) fn pending_line(&mut self, id: u64) -> Option<&mut Line> {
        self.lines.iter_mut().rev().find(|l| l.pending == Some(id))
    }

    /// Shows `nick`'s new status: folded into the last line when that line
    /// is a recent fold of the same status, else as a new line.
    fn push_status(
        &mut self,
        clock: &str,
        nick: &str,
        status: Status,
        detail: Option<&str>,
        at: Timestamp,
    ) {
        let last = self.last_seq();
        if let Some(f) = &mut self.fold
            && Some(f.seq) == last
            && f.status == status
            && at.duration_since(f.since) < FOLD_WINDOW
        {
            if !f.nicks.iter().any(|n| casefold(n) == casefold(nick)) {
                f.nicks.push(nick.to_string());
            }
            let text = fold_text(&f.nicks, status, detail);
            if let Some(line) = self.lines.back_mut() {
                line.text = text;
            }
            return;
        }
        self.push(Line {
            clock: clock.to_string(),
            from: None,
            text: fold_text(&[nick.to_string()], status, detail),
            tone: Tone::Quiet,
            pending: None,
            ..Line::default()
        });
        self.fold = self.last_seq().map(|seq| Fold {
            seq,
            status,
            since: at,
            nicks: vec![nick.to_string()],
        });
    }

    pub fn name(&self) -> &str {
        match &self.target {
            Window::Room(r) | Window::Dm(r) | Window::Session(r) => r,
        }
    }

    /// The name as the window list shows it: a session's is `=nick`, as
    /// irssi names DCC chats, so it is not taken for the DM window.
    pub fn label(&self) -> String {
        match &self.target {
            Window::Session(n) => format!("={n}"),
            _ => self.name().to_string(),
        }
    }

    pub fn lines(&self) -> &VecDeque<Line> {
        &self.lines
    }

    pub(crate) fn push(&mut self, line: Line) {
        let mut dropped = false;
        if self.lines.len() == SCROLLBACK {
            self.lines.pop_front();
            self.first_seq += 1;
            dropped = true;
        }
        self.lines.push_back(line);
        if self.scroll.is_some() {
            self.new_below += 1;
        }
        if dropped && self.separator_seq.is_some_and(|s| s < self.first_seq + 1) {
            self.place_separator();
        } else if self.separator_seq.is_none()
            && self.lines.len() > 1
            && let (Some(at), Some(line)) = (self.separator, self.lines.back())
            && unread_after(line, at)
        {
            self.separator_seq = self.last_seq();
        }
    }

    /// Puts the separator after what was read up to `at` (`None`: no
    /// separator).
    pub fn set_separator(&mut self, at: Option<Timestamp>) {
        self.separator = at;
        self.place_separator();
    }

    pub fn separator(&self) -> Option<Timestamp> {
        self.separator
    }

    /// The index of the line the separator is drawn before: the first
    /// message from someone else said after the read point, when one
    /// follows and something comes before it.
    pub fn separator_index(&self) -> Option<usize> {
        self.separator_seq
            .map(|s| (s.saturating_sub(self.first_seq)) as usize)
            .filter(|i| *i < self.lines.len())
    }

    fn place_separator(&mut self) {
        self.separator_seq = self.separator.and_then(|at| {
            self.lines
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, l)| unread_after(l, at))
                .map(|(i, _)| self.first_seq + i as u64)
        });
    }

    /// The account read up to `at` on another connection: the lines said
    /// until then are no longer unread here.
    fn read_elsewhere(&mut self, at: Timestamp) {
        let after = |l: &&Line| l.time.is_some_and(|t| t > at);
        let still = self
            .lines
            .iter()
            .filter(after)
            .filter(|l| l.unread != Unread::No)
            .count();
        self.unread = self.unread.min(still);
        self.mention = self.mention
            && self
                .lines
                .iter()
                .filter(after)
                .any(|l| l.unread == Unread::Mention);
    }

    /// The newest message the view shows (at or above its bottom line):
    /// what the window has been read up to.
    pub fn read_upto(&self) -> Option<Timestamp> {
        if self.lines.is_empty() {
            return None;
        }
        let (bottom, _) = self.bottom();
        self.lines
            .iter()
            .take(bottom + 1)
            .filter(|l| l.from.is_some() && l.pending.is_none())
            .filter_map(|l| l.time)
            .max()
    }

    /// Where the page before this window's oldest message starts: its
    /// msgid, else its time, else (no message yet) now.
    pub fn oldest(&self, now: Timestamp) -> Before {
        let messages = || self.lines.iter().filter(|l| l.from.is_some());
        if let Some((id, _)) = messages()
            .filter_map(|l| Some((l.msgid.as_ref()?, l.time?)))
            .min_by_key(|(_, t)| *t)
        {
            return Before::Msgid(id.clone());
        }
        Before::Time(messages().filter_map(|l| l.time).min().unwrap_or(now))
    }

    /// Whether the oldest line is on screen (the top of the scrollback),
    /// on a pane of `width` by `rows`.
    pub fn shows_oldest(&self, width: usize, rows: usize) -> bool {
        if self.lines.is_empty() {
            return true;
        }
        let rows = rows.saturating_sub(usize::from(self.scroll.is_some()));
        let (idx, below) = self.bottom();
        let mut filled = self.height(idx, width).saturating_sub(below);
        let mut i = idx;
        while i > 0 {
            if filled >= rows {
                return false;
            }
            i -= 1;
            filled += self.height(i, width);
        }
        filled <= rows
    }

    /// Lines from the tracker's history: replay goes after what the window
    /// shows (it follows the summary), an older page on top. Never unread;
    /// a line the window already has (by msgid) is not shown twice.
    pub(crate) fn add_history(&mut self, lines: Vec<Line>, page: bool) {
        let have: std::collections::HashSet<String> =
            self.lines.iter().filter_map(|l| l.msgid.clone()).collect();
        let fresh = lines
            .into_iter()
            .filter(|l| l.msgid.as_ref().is_none_or(|id| !have.contains(id)));
        if page {
            // Only what the scrollback has room for: the newest of the page.
            let room = SCROLLBACK.saturating_sub(self.lines.len());
            let fresh: Vec<Line> = fresh.collect();
            let skip = fresh.len().saturating_sub(room);
            for line in fresh.into_iter().skip(skip).rev() {
                self.lines.push_front(line);
                self.first_seq -= 1;
            }
            self.place_separator();
        } else {
            for line in fresh {
                self.push(line);
            }
        }
    }

    /// A note above the oldest line (`no older history`).
    pub(crate) fn note_on_top(&mut self, line: Line) {
        if self.lines.len() < SCROLLBACK {
            self.lines.push_front(line);
            self.first_seq -= 1;
            self.place_separator();
        }
    }

    fn index_of(&self, seq: u64) -> usize {
        (seq.saturating_sub(self.first_seq) as usize).min(self.lines.len().saturating_sub(1))
    }

    /// The bottom line's index and rows hidden under the bottom edge.
    fn bottom(&self) -> (usize, usize) {
        match self.scroll {
            Some(a) => (self.index_of(a.seq), a.below),
            None => (self.lines.len().saturating_sub(1), 0),
        }
    }

    fn anchor_at(&mut self, idx: usize, below: usize) {
        self.scroll = Some(Anchor {
            seq: self.first_seq + idx as u64,
            below,
        });
    }

    fn follow(&mut self) {
        self.scroll = None;
        self.new_below = 0;
    }

    fn height(&self, idx: usize, width: usize) -> usize {
        self.lines[idx].rows(width).len() + usize::from(self.separator_index() == Some(idx))
    }

    pub(crate) fn scroll_up(&mut self, n: usize, width: usize, rows: usize) {
        if self.lines.is_empty() {
            return;
        }
        let (mut idx, mut below) = self.bottom();
        below += n;
        loop {
            let h = self.height(idx, width);
            if below < h {
                break;
            }
            if idx == 0 {
                below = h - 1;
                break;
            }
            below -= h;
            idx -= 1;
        }
        self.anchor_at(idx, below);
        // Scrolled up, the last row shows "more below": one row less.
        self.clamp_top(width, rows.saturating_sub(1));
    }

    /// Past the oldest line the view would show blank rows: come down
    /// until the oldest line is at the top.
    fn clamp_top(&mut self, width: usize, rows: usize) {
        let (idx, below) = self.bottom();
        let mut filled = self.height(idx, width).saturating_sub(below);
        let mut i = idx;
        while filled < rows && i > 0 {
            i -= 1;
            filled += self.height(i, width);
        }
        if filled < rows {
            self.scroll_down(rows - filled, width);
        }
    }

    pub(crate) fn scroll_down(&mut self, n: usize, width: usize) {
        let Some(_) = self.scroll else { return };
        let (mut idx, mut below) = self.bottom();
        if n <= below {
            below -= n;
        } else {
            let mut left = n - below;
            loop {
                idx += 1;
                if idx >= self.lines.len() {
                    return self.follow();
                }
                let h = self.height(idx, width);
                if left <= h {
                    below = h - left;
                    break;
                }
                left -= h;
            }
        }
        if idx + 1 == self.lines.len() && below == 0 {
            self.follow();
        } else {
            self.anchor_at(idx, below);
        }
    }
}

/// Whether `line` is a message from someone else said after `at`: where
/// the separator goes.
fn unread_after(line: &Line, at: Timestamp) -> bool {
    line.from.is_some()
        && !matches!(line.tone, Tone::Own | Tone::Pending)
        && line.time.is_some_and(|t| t > at)
}

/// One row of the message pane: a line and which of its wrapped rows.
pub struct Row<'a> {
    pub line: &'a Line,
    /// 0 for the first row (the one with the clock and sender).
    pub index: usize,
    pub range: Range<usize>,
    /// The separator drawn above `line` (`range` is empty).
    pub separator: bool,
}

/// Where things go on a screen of `area`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Areas {
    /// Window list (tabs).
    pub tabs: Rect,
    pub messages: Rect,
    /// Who is connected; empty on a narrow screen.
    pub side: Rect,
    pub status: Rect,
    pub input: Rect,
}

pub fn layout(area: Rect) -> Areas {
    let side_w = if area.width >= 60 {
        (area.width / 5).clamp(20, 28)
    } else {
        0
    };
    let body_h = area.height.saturating_sub(3);
    let at = |dy: u16, h: u16| Rect::new(area.x, area.y + dy.min(area.height), area.width, h);
    let body = at(1, body_h);
    Areas {
        tabs: at(0, area.height.min(1)),
        messages: Rect::new(body.x, body.y, body.width - side_w, body.height),
        side: Rect::new(body.x + body.width - side_w, body.y, side_w, body.height),
        status: at(1 + body_h, area.height.saturating_sub(1 + body_h).min(1)),
        input: at(2 + body_h, area.height.saturating_sub(2 + body_h).min(1)),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conn {
    Connected,
    /// A keep-alive PING is unanswered so far.
    Checking,
    Closed,
}

/// What the run loop does after a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Send(Vec<Outgoing>),
    Quit(String),
    /// Ctrl+L: clear and redraw everything.
    Repaint,
    /// PgUp at the top of a window: ask for the history before `before`.
    Older {
        window: Window,
        before: Before,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A typed line: commands are commands.
    Typed(String),
    /// A line of a multi-line paste: sent as text, whatever it starts with.
    Text(String),
    /// The answer to a password question ([`Event::AskSecret`]); empty
    /// gives up.
    Secret(String),
}

pub struct View {
    pub windows: Vec<Win>,
    active: usize,
    pub editor: Editor,
    pub me: String,
    /// The user's own status as the tracker reports it.
    pub my: UserEntry,
    pub tracker: String,
    pub tls: bool,
    pub conn: Conn,
    size: Rect,
    tz: TimeZone,
    renderer: PlainRenderer,
    /// Others' status changes in the conversation (Alt+S); off by
    /// default: in a class, the idle timeout would bury what was said, and
    /// the side list shows every status anyway.
    pub show_status: bool,
    /// What the input holds came from a paste (see [`View::submit`]).
    pasted: bool,
    /// The terminal has the focus (true where it never says).
    pub focused: bool,
    /// The input is a password (`/oper <name>`): never drawn, never kept
    /// in the history; this is what the prompt says.
    pub secret: Option<String>,
}

impl View {
    pub fn new(me: &str, tracker: &str, tls: bool, tz: TimeZone) -> Self {
        View {
            windows: vec![Win::new(Window::Room(GENERAL.into()))],
            active: 0,
            editor: Editor::default(),
            me: me.to_string(),
            my: entry(me, None),
            tracker: tracker.to_string(),
            tls,
            conn: Conn::Connected,
            secret: None,
            size: Rect::new(0, 0, 80, 24),
            renderer: PlainRenderer::new(tz.clone()),
            tz,
            show_status: false,
            pasted: false,
            focused: true,
        }
    }

    pub fn resize(&mut self, width: u16, height: u16) {
        self.size = Rect::new(0, 0, width, height);
    }

    pub fn size(&self) -> Rect {
        self.size
    }

    pub fn active(&self) -> &Win {
        &self.windows[self.active]
    }

    pub fn active_index(&self) -> usize {
        self.active
    }

    /// The side list of the window in view.
    pub fn roster(&self) -> &[UserEntry] {
        &self.active().roster
    }

    /// Takes the names, statuses and every window's side list from the
    /// application state.
    pub fn sync(&mut self, app: &App) {
        self.me = for_display(&app.me);
        self.my = entry(&self.me, app.my_away.as_deref());
        let shown = |u: UserEntry| UserEntry {
            nick: for_display(&u.nick),
            roles: u.roles,
            status: u.status,
            detail: u.detail.map(|d| for_display(&d)),
        };
        for w in &mut self.windows {
            w.roster = match &w.target {
                Window::Room(r) => app
                    .room_users(r)
                    .unwrap_or_default()
                    .into_iter()
                    .map(shown)
                    .collect(),
                Window::Dm(nick) | Window::Session(nick) => [app.user(&app.me), app.user(nick)]
                    .into_iter()
                    .map(shown)
                    .collect(),
            };
            if let Window::Room(r) = &w.target {
                w.live = app.in_room(r);
            }
        }
    }

    // ---- windows --------------------------------------------------------

    fn find(&self, target: &Window) -> Option<usize> {
        let same = |a: &str, b: &str| casefold(a) == casefold(b);
        self.windows.iter().position(|w| match (&w.target, target) {
            (Window::Room(a), Window::Room(b))
            | (Window::Dm(a), Window::Dm(b))
            | (Window::Session(a), Window::Session(b)) => same(a, b),
            _ => false,
        })
    }

    /// The window for `target`, opened (at the end, not in view) if new.
    fn ensure(&mut self, target: &Window) -> usize {
        if let Some(i) = self.find(target) {
            return i;
        }
        let target = match target {
            Window::Room(r) => Window::Room(for_display(r)),
            Window::Dm(n) => Window::Dm(for_display(n)),
            Window::Session(n) => Window::Session(for_display(n)),
        };
        self.windows.push(Win::new(target));
        self.windows.len() - 1
    }

    pub fn switch(&mut self, idx: usize) {
        if idx < self.windows.len() {
            if idx != self.active {
                self.leave_active();
            }
            self.active = idx;
            let w = &mut self.windows[idx];
            w.unread = 0;
            w.mention = false;
        }
    }

    /// The window in view is left (another window, or the terminal lost
    /// the focus) after reading it: its separator moves to where the
    /// reading stopped, so it shows what comes after.
    fn leave_active(&mut self) {
        let left = &mut self.windows[self.active];
        if let Some(read) = left.read_upto() {
            left.set_separator(Some(read.max(left.separator.unwrap_or(read))));
        }
    }

    /// The terminal gained or lost the focus (where it reports it): away
    /// from it, nothing is being read.
    pub fn set_focus(&mut self, focused: bool) {
        if self.focused && !focused {
            self.leave_active();
        }
        self.focused = focused;
    }

    fn close(&mut self, idx: usize) {
        if self.windows.len() <= 1 || idx >= self.windows.len() {
            return;
        }
        self.windows.remove(idx);
        if self.active > idx || self.active == self.windows.len() {
            self.active -= 1;
        }
        self.switch(self.active);
    }

    fn general(&self) -> usize {
        self.find(&Window::Room(GENERAL.into())).unwrap_or(0)
    }

    // ---- events -----------------------------------------------------------

    fn clock(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).strftime("%H:%M").to_string()
    }

    /// A line of history as shown: its own time (with the day when it
    /// was not today), never unread.
    fn history_line(&self, l: &HistoryLine, now: Timestamp) -> Line {
        let said = l.time.to_zoned(self.tz.clone());
        let clock = if said.date() == now.to_zoned(self.tz.clone()).date() {
            said.strftime("%H:%M").to_string()
        } else {
            said.strftime("%b %d %H:%M").to_string()
        };
        let text = for_display(&l.text);
        let tone = if l.own {
            Tone::Own
        } else if mentions(&text, &self.me) {
            Tone::Mention
        } else {
            Tone::Normal
        };
        Line {
            clock,
            from: Some((for_display(&l.from), l.kind)),
            text,
            tone,
            pending: None,
            time: Some(l.time),
            msgid: l.msgid.clone(),
            unread: Unread::No,
        }
    }

    /// The window in view and how far its messages are shown: what a
    /// MARKREAD says was read. Nothing while the terminal is without the
    /// focus: the person is elsewhere.
    pub fn in_view(&self) -> Option<(Window, Option<Timestamp>)> {
        let w = self.active();
        self.focused.then(|| (w.target.clone(), w.read_upto()))
    }

    fn note(&mut self, idx: usize, clock: &str, text: &str, tone: Tone) {
        self.windows[idx].push(Line {
            clock: clock.to_string(),
            from: None,
            text: for_display(text),
            tone,
            pending: None,
            ..Line::default()
        });
    }

    /// Shows `text` in the window in view (answers and errors).
    pub fn notice(&mut self, text: &str, tone: Tone, now: Timestamp) {
        let clock = self.clock(now);
        self.note(self.active, &clock, text, tone);
    }

    /// Shows `event` in window `idx` as the plain mode words it.
    fn show(&mut self, idx: usize, event: &Event, tone: Tone) {
        let clock = self.clock(event.time());
        for line in self.renderer.describe(event) {
            self.note(idx, &clock, &line, tone);
        }
    }

    pub fn apply(&mut self, events: &[Event]) {
        for e in events {
            self.apply_one(e);
        }
    }

    fn apply_one(&mut self, event: &Event) {
        let clock = self.clock(event.time());
        match event {
            Event::Chat {
                window,
                from,
                text,
                kind,
                own,
                confirms,
                time,
                msgid,
            } => {
                let idx = self.ensure(window);
                if let Some(line) = confirms.and_then(|id| self.windows[idx].pending_line(id)) {
                    // The echo: the pending line becomes the line everyone saw.
                    line.text = for_display(text);
                    line.tone = Tone::Own;
                    line.pending = None;
                    line.time = Some(*time);
                    line.msgid = msgid.clone();
                    return;
                }
                let text = for_display(text);
                let mention = !own && mentions(&text, &self.me);
                // A DM is for the user: it marks its window like a mention,
                // without painting the whole conversation as one.
                let marks =
                    mention || (!own && matches!(window, Window::Dm(_) | Window::Session(_)));
                let tone = match (own, mention) {
                    (true, _) => Tone::Own,
                    (false, true) => Tone::Mention,
                    (false, false) => Tone::Normal,
                };
                let counts = idx != self.active && !own;
                let line = Line {
                    clock: clock.clone(),
                    from: Some((for_display(from), *kind)),
                    text,
                    tone,
                    pending: None,
                    time: Some(*time),
                    msgid: msgid.clone(),
                    unread: match (counts, marks) {
                        (false, _) => Unread::No,
                        (true, false) => Unread::Yes,
                        (true, true) => Unread::Mention,
                    },
                };
                let w = &mut self.windows[idx];
                w.push(line);
                if counts {
                    w.unread += 1;
                    w.mention |= marks;
                }
            }
            Event::History {
                time: now,
                window,
                lines,
                page,
            } => {
                let idx = self.ensure(window);
                let (width, rows) = self.pane();
                // Asked with PgUp at the top: the page comes into view.
                let at_top = *page && self.windows[idx].shows_oldest(width, rows);
                if *page && lines.is_empty() {
                    let text = format!(
                        "--- no older history in {}",
                        for_display(self.windows[idx].name())
                    );
                    self.windows[idx].note_on_top(Line {
                        clock,
                        text,
                        tone: Tone::Quiet,
                        ..Line::default()
                    });
                } else {
                    let lines = lines
                        .iter()
                        .map(|l| self.history_line(l, *now))
                        .collect::<Vec<_>>();
                    let w = &mut self.windows[idx];
                    // Nothing read there yet (no marker): the replay is
                    // what was missed, so the separator goes before it.
                    if !*page
                        && w.separator.is_none()
                        && let Some(first) = lines.first().and_then(|l| l.time)
                    {
                        w.set_separator(
                            first.checked_sub(jiff::SignedDuration::from_millis(1)).ok(),
                        );
                    }
                    w.add_history(lines, *page);
                }
                if at_top {
                    let page = self.page();
                    self.windows[idx].scroll_up(page, width, rows);
                }
            }
            Event::Summary { window, .. } => {
                let idx = self.ensure(window);
                self.show(idx, event, Tone::Info);
            }
            Event::ReadMarker {
                window, read, ours, ..
            } => {
                // Our own marker coming back changes nothing on screen: the
                // separator stays while the window is in view.
                if *ours {
                    return;
                }
                let Some(idx) = self.find(window) else { return };
                let w = &mut self.windows[idx];
                if let Some(at) = read {
                    w.set_separator(Some(*at));
                    w.read_elsewhere(*at);
                }
            }
            Event::Sending {
                id,
                window,
                from,
                text,
                kind,
                ..
            } => {
                let idx = self.ensure(window);
                self.windows[idx].push(Line {
                    clock,
                    from: Some((for_display(from), *kind)),
                    text: format!("{} {SENDING_MARK}", for_display(text)),
                    tone: Tone::Pending,
                    pending: Some(*id),
                    ..Line::default()
                });
            }
            Event::Unsent {
                lines, explained, ..
            } => {
                for (window, text) in lines {
                    let marked = self.find(window).and_then(|idx| {
                        let w = &mut self.windows[idx];
                        let line = w.lines.iter_mut().find(|l| l.pending.is_some())?;
                        line.text = format!("{} (not sent)", for_display(text));
                        line.tone = Tone::Error;
                        line.pending = None;
                        Some(())
                    });
                    if marked.is_none() && !explained {
                        let note = format!("!!! not sent: {}", for_display(text));
                        self.note(self.active, &clock, &note, Tone::Error);
                    }
                }
            }
            Event::Joined { room, me, .. } => {
                let idx = self.ensure(&Window::Room(room.clone()));
                if *me {
                    self.windows[idx].live = true;
                    self.switch(idx);
                }
                self.show(idx, event, Tone::Join);
            }
            // Leaving a room, by choice or not, leaves its window readable:
            // the last line says why; /close closes it.
            Event::Parted { room, me, .. } | Event::Kicked { room, me, .. } => {
                let idx = self
                    .find(&Window::Room(room.clone()))
                    .unwrap_or_else(|| self.general());
                if *me {
                    self.windows[idx].live = false;
                }
                self.show(idx, event, Tone::Part);
            }
            Event::RoomClosed { room, .. } => {
                let idx = self.ensure(&Window::Room(room.clone()));
                self.windows[idx].live = false;
                self.show(idx, event, Tone::Error);
            }
            Event::RoomNote { room, answer, .. } => {
                let idx = match answer {
                    true => self.active,
                    false => self
                        .find(&Window::Room(room.clone()))
                        .unwrap_or(self.active),
                };
                self.show(idx, event, Tone::Info);
            }
            Event::AskSecret { prompt, .. } => {
                self.secret = Some(prompt.clone());
                self.show(self.active, event, Tone::Info);
            }
            Event::Quit { nick, rooms, .. } => {
                self.show(self.general(), event, Tone::Part);
                let general = self.general();
                for room in rooms {
                    if let Some(idx) = self.find(&Window::Room(room.clone()))
                        && idx != general
                    {
                        self.show(idx, event, Tone::Part);
                    }
                }
                if let Some(dm) = self.find(&Window::Dm(nick.clone())) {
                    self.show(dm, event, Tone::Part);
                }
            }
            Event::Status {
                time,
                nick,
                me: false,
                status,
                detail,
            } => {
                // A DM window has one partner: their changes never flood it.
                if let Some(dm) = self.find(&Window::Dm(nick.clone())) {
                    self.show(dm, event, Tone::Quiet);
                }
                if self.show_status {
                    let g = self.general();
                    let nick = for_display(nick);
                    let detail = detail.as_deref().map(for_display);
                    self.windows[g].push_status(&clock, &nick, *status, detail.as_deref(), *time);
                }
            }
            Event::NickChanged { old, new, .. } => {
                if let Some(dm) = self.find(&Window::Dm(old.clone())) {
                    self.windows[dm].target = Window::Dm(for_display(new));
                }
                if let Some(s) = self.find(&Window::Session(old.clone())) {
                    self.windows[s].target = Window::Session(for_display(new));
                }
                self.show(self.general(), event, Tone::Quiet);
                if let Some(dm) = self.find(&Window::Dm(new.clone())) {
                    self.show(dm, event, Tone::Quiet);
                }
            }
            Event::Topic { room, topic, .. } => {
                let idx = self.ensure(&Window::Room(room.clone()));
                self.windows[idx].topic = Some(for_display(topic));
                self.show(idx, event, Tone::Info);
            }
            Event::Help { .. } => {
                self.show(self.active, event, Tone::Info);
                for l in UI_HELP
                    .iter()
                    .map(|l| l.to_string())
                    .chain(keys::help_lines())
                {
                    self.note(self.active, &clock, &format!("*** {l}"), Tone::Info);
                }
            }
            Event::Closed { .. } => {
                self.conn = Conn::Closed;
                self.show(self.active, event, Tone::Error);
            }
            Event::Error { .. } => self.show(self.active, event, Tone::Error),
            // A session's news goes to its window (opened if new), marked
            // like a DM so an offer is seen from any window.
            Event::SessionNote { peer, warn, .. } => {
                let idx = self.ensure(&Window::Session(peer.clone()));
                self.show(idx, event, if *warn { Tone::Error } else { Tone::Info });
                if idx != self.active {
                    let w = &mut self.windows[idx];
                    w.unread += 1;
                    w.mention = true;
                }
            }
            Event::Status { me: true, .. }
            | Event::Users { .. }
            | Event::Whois { .. }
            | Event::Rooms { .. }
            | Event::Info { .. } => self.show(self.active, event, Tone::Info),
        }
    }

    // ---- keys -------------------------------------------------------------

    fn pane(&self) -> (usize, usize) {
        let m = layout(self.size).messages;
        (m.width as usize, m.height as usize)
    }

    pub fn scroll_up(&mut self, n: usize) {
        let (w, h) = self.pane();
        self.windows[self.active].scroll_up(n, w, h);
    }

    pub fn scroll_down(&mut self, n: usize) {
        let (w, _) = self.pane();
        self.windows[self.active].scroll_down(n, w);
    }

    fn page(&self) -> usize {
        self.pane().1.saturating_sub(2).max(1)
    }

    /// The wheel scrolls; false for mouse events that change nothing.
    pub fn on_mouse(&mut self, m: MouseEvent) -> bool {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_up(WHEEL_ROWS),
            MouseEventKind::ScrollDown => self.scroll_down(WHEEL_ROWS),
            _ => return false,
        }
        true
    }

    /// A bracketed paste: into the input, line breaks kept, sent on Enter.
    pub fn on_paste(&mut self, text: &str, now: Timestamp) {
        self.pasted = true;
        if !self.editor.insert(text) {
            self.notice(
                &format!(
                    "!!! the paste was cut at {} KiB",
                    super::editor::MAX_INPUT / 1024
                ),
                Tone::Error,
                now,
            );
        }
    }

    /// What Tab completes: the people in view first, then everyone in
    /// another window's list, then window names.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.roster().iter().map(|u| u.nick.clone()).collect();
        for w in &self.windows {
            for u in &w.roster {
                if !names.iter().any(|n| casefold(n) == casefold(&u.nick)) {
                    names.push(u.nick.clone());
                }
            }
        }
        names.extend(self.windows.iter().map(|w| w.name().to_string()));
        names
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
        if self.secret.is_some() {
            return self.secret_key(key);
        }
        let Some(action) = keys::lookup(&key) else {
            let plain = !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
            if let (KeyCode::Char(c), true) = (key.code, plain) {
                self.editor.insert(c.encode_utf8(&mut [0; 4]));
            }
            return Action::None;
        };
        let e = &mut self.editor;
        match action {
            KeyAction::ClearOrLeave if e.is_empty() => return Action::Quit("Leaving".into()),
            // Half a line typed: Ctrl+C takes it back (Up brings it back
            // again), as in a shell; a second Ctrl+C leaves.
            KeyAction::ClearOrLeave => {
                e.take();
            }
            KeyAction::LeaveIfEmpty if e.is_empty() => return Action::Quit("Leaving".into()),
            KeyAction::LeaveIfEmpty => {}
            KeyAction::Repaint => return Action::Repaint,
            KeyAction::NextWindow => self.switch((self.active + 1) % self.windows.len()),
            KeyAction::PrevWindow => {
                self.switch((self.active + self.windows.len() - 1) % self.windows.len())
            }
            KeyAction::WindowByDigit => {
                if let KeyCode::Char(c) = key.code {
                    let n = c.to_digit(10).unwrap_or(0) as usize;
                    self.switch(if n == 0 { 9 } else { n - 1 });
                }
            }
            KeyAction::ToggleStatusLines => {
                self.show_status = !self.show_status;
                let text = if self.show_status {
                    "*** status changes are shown in the conversation from now on (Alt+S hides them)"
                } else {
                    "*** status changes are hidden from the conversation; the side list shows them (Alt+S shows them)"
                };
                self.notice(text, Tone::Info, now);
            }
            KeyAction::Send => return self.submit(now),
            // App knows the offers: `/session accept` is about the
            // session window in view, or the one offer waiting.
            KeyAction::AcceptSession => {
                return Action::Send(vec![Outgoing::Typed("/session accept".into())]);
            }
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
                let (width, rows) = self.pane();
                let w = self.active();
                // At the top: older history, from the tracker.
                if w.shows_oldest(width, rows) && !matches!(w.target, Window::Session(_)) {
                    let older = Action::Older {
                        window: w.target.clone(),
                        before: w.oldest(now),
                    };
                    self.scroll_up(self.page());
                    return older;
                }
                self.scroll_up(self.page())
            }
            KeyAction::PageDown => self.scroll_down(self.page()),
            KeyAction::Complete => {
                let names = self.names();
                let mut commands = input::COMMANDS.to_vec();
                commands.extend(["w", "window"]);
                commands.sort();
                commands.dedup();
                self.editor.complete(&commands, &names);
            }
        }
        Action::None
    }

    /// A key while a password is typed: editing, Enter sends it, Ctrl+C
    /// (or Enter on nothing) gives up; no history, no completion, nothing
    /// that could show or keep it.
    fn secret_key(&mut self, key: KeyEvent) -> Action {
        let e = &mut self.editor;
        match keys::lookup(&key) {
            Some(KeyAction::Send) | Some(KeyAction::ClearOrLeave) => {
                let answer = if keys::lookup(&key) == Some(KeyAction::Send) {
                    e.take_secret()
                } else {
                    e.take_secret();
                    String::new()
                };
                self.secret = None;
                return Action::Send(vec![Outgoing::Secret(answer)]);
            }
            Some(KeyAction::Backspace) => e.backspace(),
            Some(KeyAction::Delete) => e.delete(),
            Some(KeyAction::Left) => e.left(),
            Some(KeyAction::Right) => e.right(),
            Some(KeyAction::Home) => e.home(),
            Some(KeyAction::End) => e.end(),
            Some(KeyAction::KillToStart) => e.kill_to_start(),
            Some(KeyAction::KillToEnd) => e.kill_to_end(),
            Some(_) => {}
            None => {
                let plain = !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
                if let (KeyCode::Char(c), true) = (key.code, plain) {
                    e.insert(c.encode_utf8(&mut [0; 4]));
                }
            }
        }
        Action::None
    }

    fn submit(&mut self, now: Timestamp) -> Action {
        let count = self.editor.line_count();
        if count > MAX_SEND_LINES {
            self.notice(
                &format!(
                    "!!! {count} lines is more than {MAX_SEND_LINES} at once (the tracker cuts off floods); nothing sent, the text is still in the input"
                ),
                Tone::Error,
                now,
            );
            return Action::None;
        }
        // Text for a room we are no longer in would only be refused.
        let w = self.active();
        if let (Window::Room(r), false) = (&w.target, w.live)
            && self
                .editor
                .text()
                .lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('/'))
        {
            let text = format!(
                "!!! you are no longer in {r}: /join {r} to go back; /close closes this window (your text is still in the input)"
            );
            self.notice(&text, Tone::Error, now);
            return Action::None;
        }
        // `/oper <name> <password>` typed in full: sent, never kept.
        let text = if carries_password(self.editor.text()) {
            self.editor.take_secret()
        } else {
            self.editor.take()
        };
        let pasted = std::mem::take(&mut self.pasted);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        match lines.as_slice() {
            [] => Action::None,
            // A pasted `exit` is a word someone copied, not a person
            // leaving: it goes as text.
            [line] if pasted && input::is_exit_word(line) => {
                Action::Send(vec![Outgoing::Text(line.to_string())])
            }
            [line] => {
                // A lone line, even pasted, is what a person would type.
                match self.view_command(line, now) {
                    Some(action) => action,
                    None => Action::Send(vec![Outgoing::Typed(line.to_string())]),
                }
            }
            many => Action::Send(many.iter().map(|l| Outgoing::Text(l.to_string())).collect()),
        }
    }

    /// Commands about windows, which only the full-screen mode has.
    fn view_command(&mut self, line: &str, now: Timestamp) -> Option<Action> {
        let rest = line.strip_prefix('/')?;
        let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        let arg = arg.trim();
        match name.to_ascii_lowercase().as_str() {
            "w" | "window" | "win" if arg.is_empty() => {
                self.notice("!!! usage: /w <number|name>", Tone::Error, now);
            }
            "w" | "window" | "win" => self.goto(arg, now),
            "query" if !arg.is_empty() && !arg.contains(' ') => self.goto(arg, now),
            // `/close #room` asks the tracker to close the room (App); a
            // bare `/close` is about this window.
            "close" | "wc" if arg.starts_with('#') => return None,
            "close" | "wc" => match &self.active().target {
                Window::Dm(_) | Window::Session(_) => self.close(self.active),
                Window::Room(_) if !self.active().live => self.close(self.active),
                Window::Room(r) if casefold(r) == casefold(GENERAL) => {
                    let text = format!("!!! {}", cannot_leave_general());
                    self.notice(&text, Tone::Error, now);
                }
                Window::Room(r) => {
                    let text = format!(
                        "!!! you are still in {r}: /part leaves it (then /close closes the window); /close {r} [reason] closes the room for everyone (its founder or a tracker operator)"
                    );
                    self.notice(&text, Tone::Error, now);
                }
            },
            _ => return None,
        }
        Some(Action::None)
    }

    fn goto(&mut self, arg: &str, now: Timestamp) {
        if let Ok(n) = arg.parse::<usize>() {
            if (1..=self.windows.len()).contains(&n) {
                self.switch(n - 1);
            } else {
                self.notice(&format!("!!! no window {n}"), Tone::Error, now);
            }
            return;
        }
        let found = self.windows.iter().position(|w| {
            casefold(w.name().trim_start_matches('#')) == casefold(arg.trim_start_matches('#'))
        });
        match found {
            Some(i) => self.switch(i),
            None if arg.starts_with('#') => {
                let text = format!("!!! you are not in {arg}: /join {arg} first");
                self.notice(&for_display(&text), Tone::Error, now);
            }
            None => match validate_nick(arg) {
                Ok(()) => {
                    let idx = self.ensure(&Window::Dm(arg.to_string()));
                    self.switch(idx);
                }
                Err(e) => self.notice(&for_display(&format!("!!! {e}")), Tone::Error, now),
            },
        }
    }

    /// The rows the message pane shows, top to bottom, `rows` at most.
    pub fn visible(&self, width: usize, rows: usize) -> Vec<Row<'_>> {
        self.active().visible(width, rows)
    }
}

impl Win {
    /// The rows of this window on a pane of `width` by `rows`, top to
    /// bottom, at its scroll position.
    pub fn visible(&self, width: usize, rows: usize) -> Vec<Row<'_>> {
        let w = self;
        let mut out = Vec::new();
        if w.lines.is_empty() || rows == 0 {
            return out;
        }
        let (mut idx, mut skip) = w.bottom();
        let separator = w.separator_index();
        loop {
            let line = &w.lines[idx];
            let mut rows_of: Vec<Row> = Vec::new();
            if separator == Some(idx) {
                rows_of.push(Row {
                    line,
                    index: 0,
                    range: 0..0,
                    separator: true,
                });
            }
            rows_of.extend(
                line.rows(width)
                    .into_iter()
                    .enumerate()
                    .map(|(index, range)| Row {
                        line,
                        index,
                        range,
                        separator: false,
                    }),
            );
            let shown = rows_of.len().saturating_sub(skip);
            for row in rows_of.into_iter().take(shown).rev() {
                if out.len() == rows {
                    break;
                }
                out.push(row);
            }
            skip = 0;
            if out.len() == rows || idx == 0 {
                break;
            }
            idx -= 1;
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::status::Status;
    use crossterm::event::KeyEventState;

    fn t() -> Timestamp {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        }
    }

    fn typed(v: &mut View, text: &str) -> Action {
        for c in text.chars() {
            v.on_key(key(KeyCode::Char(c), KeyModifiers::NONE), t());
        }
        v.on_key(key(KeyCode::Enter, KeyModifiers::NONE), t())
    }

    fn chat(window: Window, from: &str, text: &str, own: bool) -> Event {
        Event::Chat {
            time: t(),
            window,
            from: from.into(),
            text: text.into(),
            kind: ChatKind::Message,
            own,
            confirms: None,
            msgid: None,
        }
    }

    fn room(r: &str) -> Window {
        Window::Room(r.into())
    }

    fn dm(n: &str) -> Window {
        Window::Dm(n.into())
    }

    /// The newest line of the window in view.
    fn last(v: &View) -> String {
        v.active()
            .lines()
            .back()
            .map(|l| l.text.clone())
            .unwrap_or_default()
    }

    fn view() -> View {
        let mut v = View::new("alice", "127.0.0.1:6697", true, TimeZone::UTC);
        v.resize(80, 24);
        v
    }

    #[test]
    fn wraps_by_display_width() {
        let s = |text: &str, rows: Vec<Range<usize>>| -> Vec<String> {
            rows.into_iter().map(|r| text[r].to_string()).collect()
        };
        let text = "the quick brown fox";
        assert_eq!(s(text, wrap(text, 10, 10)), ["the quick", "brown fox"]);
        assert_eq!(s(text, wrap(text, 4, 20)), ["the", "quick brown fox"]);
        let long = "abcdefghijkl";
        assert_eq!(s(long, wrap(long, 5, 5)), ["abcde", "fghij", "kl"]);
        // Wide characters count two columns and are never split.
        let cjk = "漢字漢字漢";
        assert_eq!(s(cjk, wrap(cjk, 5, 5)), ["漢字", "漢字", "漢"]);
        let emoji = "hi 👍👍👍";
        assert_eq!(s(emoji, wrap(emoji, 4, 4)), ["hi", "👍👍", "👍"]);
        assert_eq!(wrap("", 10, 10).len(), 1);
        // Inner runs of spaces are kept.
        let spaced = "a   b";
        assert_eq!(s(spaced, wrap(spaced, 10, 10)), ["a   b"]);
        // A row too narrow for even one wide character still advances.
        assert_eq!(s(cjk, wrap(cjk, 1, 1)).len(), 5);
    }

    #[test]
    fn mentions_are_whole_names() {
        assert!(mentions("hey alice, lunch?", "alice"));
        assert!(mentions("ALICE!", "alice"));
        assert!(mentions("@alice", "alice"));
        assert!(!mentions("malice aforethought", "alice"));
        assert!(!mentions("alice_b is here", "alice"));
        assert!(mentions("[x] is {x}", "[x]"));
    }

    #[test]
    fn dm_opens_a_window_without_taking_focus() {
        let mut v = view();
        v.apply(&[chat(room("#general"), "bob", "hello", false)]);
        v.apply(&[chat(dm("bob"), "bob", "psst", false)]);
        v.apply(&[chat(dm("bob"), "bob", "still there?", false)]);
        assert_eq!(v.windows.len(), 2);
        assert_eq!(v.active_index(), 0);
        let w = &v.windows[1];
        assert_eq!((w.name(), w.unread, w.mention), ("bob", 2, true));
        // A mention in a room marks it too; own lines never count.
        v.apply(&[Event::Joined {
            time: t(),
            room: "#games".into(),
            nick: "alice".into(),
            me: true,
        }]);
        assert_eq!(v.active().name(), "#games");
        v.apply(&[chat(room("#general"), "bob", "plain", false)]);
        v.apply(&[chat(room("#general"), "alice", "mine", true)]);
        assert_eq!((v.windows[0].unread, v.windows[0].mention), (1, false));
        v.apply(&[chat(room("#general"), "bob", "alice: look", false)]);
        assert_eq!((v.windows[0].unread, v.windows[0].mention), (2, true));
        // Looking at a window clears its marks.
        v.on_key(key(KeyCode::Char('2'), KeyModifiers::ALT), t());
        assert_eq!(v.active().name(), "bob");
        assert_eq!((v.active().unread, v.active().mention), (0, false));
        v.on_key(key(KeyCode::Char('n'), KeyModifiers::CONTROL), t());
        assert_eq!(v.active().name(), "#games");
        v.on_key(key(KeyCode::Char('n'), KeyModifiers::CONTROL), t());
        assert_eq!(v.active().name(), "#general");
        v.on_key(key(KeyCode::Char('p'), KeyModifiers::CONTROL), t());
        assert_eq!(v.active().name(), "#games");
    }

    #[test]
    fn window_commands() {
        let mut v = view();
        v.apply(&[chat(dm("bob"), "bob", "hi", false)]);
        assert_eq!(typed(&mut v, "/w 2"), Action::None);
        assert_eq!(v.active().name(), "bob");
        assert_eq!(typed(&mut v, "/w #GENERAL"), Action::None);
        assert_eq!(v.active_index(), 0);
        typed(&mut v, "/w 7");
        assert!(last(&v).contains("no window 7"), "{}", last(&v));
        typed(&mut v, "/w #nope");
        assert!(last(&v).contains("/join #nope"), "{}", last(&v));
        // /w and /query with a new name open a DM window and show it.
        typed(&mut v, "/query carol");
        assert_eq!(v.active().target, dm("carol"));
        typed(&mut v, "/close");
        assert_eq!(v.windows.len(), 2);
        typed(&mut v, "/w 1");
        typed(&mut v, "/close");
        assert_eq!(
            last(&v),
            "!!! everyone stays in #general, so it cannot be left or closed; to leave the tracker, type exit"
        );
        // Everything else is for the application.
        assert_eq!(
            typed(&mut v, "/msg bob hi"),
            Action::Send(vec![Outgoing::Typed("/msg bob hi".into())])
        );
    }

    #[test]
    fn paste_is_sent_on_enter_as_text_lines() {
        let mut v = view();
        v.on_paste("first line\r\n/not a command\n\nlast", t());
        assert_eq!(v.editor.line_count(), 3);
        assert_eq!(
            v.on_key(key(KeyCode::Enter, KeyModifiers::NONE), t()),
            Action::Send(vec![
                Outgoing::Text("first line".into()),
                Outgoing::Text("/not a command".into()),
                Outgoing::Text("last".into()),
            ])
        );
        assert!(v.editor.is_empty());
        // Too many lines: refused, kept for the user to trim.
        v.on_paste(&"x\n".repeat(MAX_SEND_LINES + 1), t());
        assert_eq!(
            v.on_key(key(KeyCode::Enter, KeyModifiers::NONE), t()),
            Action::None
        );
        assert_eq!(v.editor.line_count(), MAX_SEND_LINES + 1);
        assert_eq!(v.active().lines().back().unwrap().tone, Tone::Error);
    }

    #[test]
    fn keys_for_leaving_and_editing() {
        let mut v = view();
        assert_eq!(
            v.on_key(key(KeyCode::Char('c'), KeyModifiers::CONTROL), t()),
            Action::Quit("Leaving".into())
        );
        typed(&mut v, "");
        for c in "one two".chars() {
            v.on_key(key(KeyCode::Char(c), KeyModifiers::NONE), t());
        }
        v.on_key(key(KeyCode::Char('w'), KeyModifiers::CONTROL), t());
        assert_eq!(v.editor.text(), "one ");
        assert_eq!(
            v.on_key(key(KeyCode::Char('d'), KeyModifiers::CONTROL), t()),
            Action::None,
            "Ctrl+D only leaves on an empty line"
        );
        v.on_key(key(KeyCode::Enter, KeyModifiers::ALT), t());
        v.on_key(key(KeyCode::Char('x'), KeyModifiers::NONE), t());
        assert_eq!(v.editor.text(), "one \nx");
        v.on_key(key(KeyCode::Char('a'), KeyModifiers::CONTROL), t());
        v.on_key(key(KeyCode::Char('k'), KeyModifiers::CONTROL), t());
        assert_eq!(
            v.on_key(key(KeyCode::Char('d'), KeyModifiers::CONTROL), t()),
            Action::Quit("Leaving".into())
        );
    }

    #[test]
    fn ctrl_c_clears_then_leaves_and_a_pasted_exit_is_text() {
        let mut v = view();
        for c in "half a line".chars() {
            v.on_key(key(KeyCode::Char(c), KeyModifiers::NONE), t());
        }
        let ctrl_c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(v.on_key(ctrl_c, t()), Action::None);
        assert_eq!(v.editor.text(), "");
        v.on_key(key(KeyCode::Up, KeyModifiers::NONE), t());
        assert_eq!(v.editor.text(), "half a line", "Up brings it back");
        v.on_key(ctrl_c, t());
        assert_eq!(v.on_key(ctrl_c, t()), Action::Quit("Leaving".into()));
        // Typed, `exit` is for the application (which leaves); pasted, it
        // is text.
        assert_eq!(
            typed(&mut v, "exit"),
            Action::Send(vec![Outgoing::Typed("exit".into())])
        );
        v.on_paste("exit", t());
        assert_eq!(
            v.on_key(key(KeyCode::Enter, KeyModifiers::NONE), t()),
            Action::Send(vec![Outgoing::Text("exit".into())])
        );
        assert_eq!(
            typed(&mut v, "quit"),
            Action::Send(vec![Outgoing::Typed("quit".into())]),
            "the paste mark went with the paste"
        );
    }

    fn status(nick: &str, status: Status, secs: i64) -> Event {
        Event::Status {
            time: t()
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .unwrap(),
            nick: nick.into(),
            me: false,
            status,
            detail: (status == Status::Inactive).then(|| "idle for 5 min".into()),
        }
    }

    #[test]
    fn status_changes_hidden_by_default_and_folded_when_shown() {
        let mut v = view();
        let before = v.active().lines().len();
        v.apply(&[status("bob", Status::Inactive, 0)]);
        assert_eq!(v.active().lines().len(), before, "hidden by default");
        let alt_s = key(KeyCode::Char('s'), KeyModifiers::ALT);
        v.on_key(alt_s, t());
        assert!(v.show_status);
        let shown = v.active().lines().len();
        v.apply(&[status("bob", Status::Inactive, 1)]);
        assert_eq!(last(&v), "--- bob is now INACTIVE: idle for 5 min");
        v.apply(&[status("carol", Status::Inactive, 2)]);
        assert_eq!(last(&v), "--- bob and carol are now INACTIVE");
        v.apply(&[status("dave", Status::Inactive, 3)]);
        assert_eq!(last(&v), "--- bob, carol and dave are now INACTIVE");
        for (i, n) in ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "e10"]
            .iter()
            .enumerate()
        {
            v.apply(&[status(n, Status::Inactive, 4 + i as i64)]);
        }
        assert_eq!(last(&v), "--- bob, carol and 11 others are now INACTIVE");
        assert_eq!(v.active().lines().len(), shown + 1, "one line for all");
        // Another status, a later time, or a line in between: a new line.
        v.apply(&[status("bob", Status::Active, 30)]);
        assert_eq!(v.active().lines().len(), shown + 2);
        v.apply(&[status("carol", Status::Active, 30 + FOLD_WINDOW.as_secs())]);
        assert_eq!(v.active().lines().len(), shown + 3);
        v.apply(&[chat(room("#general"), "carol", "back", false)]);
        v.apply(&[status("dave", Status::Active, 31 + FOLD_WINDOW.as_secs())]);
        assert_eq!(last(&v), "--- dave is now ACTIVE");
        // Alt+S again hides them.
        v.on_key(alt_s, t());
        let n = v.active().lines().len();
        v.apply(&[status("e1", Status::Active, 500)]);
        assert_eq!(v.active().lines().len(), n);
    }

    fn fill(v: &mut View, n: usize) {
        let from = v.active().lines().len();
        for i in from..from + n {
            v.apply(&[chat(room("#general"), "bob", &format!("line {i}"), false)]);
        }
    }

    fn shown(v: &View) -> Vec<String> {
        let m = layout(v.size()).messages;
        let rows = m.height as usize - usize::from(v.active().scroll.is_some());
        v.visible(m.width as usize, rows)
            .iter()
            .map(|r| r.line.text[r.range.clone()].to_string())
            .collect()
    }

    #[test]
    fn scrolling_stays_put_while_messages_arrive() {
        let mut v = view();
        fill(&mut v, 100);
        let pane = layout(v.size()).messages.height as usize;
        assert_eq!(shown(&v).last().unwrap(), "line 99");
        assert_eq!(shown(&v).len(), pane);
        v.on_key(key(KeyCode::PageUp, KeyModifiers::NONE), t());
        let before = shown(&v);
        assert_eq!(before.last().unwrap(), &format!("line {}", 99 - v.page()));
        fill(&mut v, 5);
        assert_eq!(shown(&v), before, "the view stays put");
        assert_eq!(v.active().new_below, 5);
        v.on_mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        });
        assert_eq!(
            shown(&v).last().unwrap(),
            &format!("line {}", 99 - v.page() + WHEEL_ROWS)
        );
        // Down past the end: following the newest line again.
        for _ in 0..5 {
            v.on_key(key(KeyCode::PageDown, KeyModifiers::NONE), t());
        }
        assert_eq!(v.active().scroll, None);
        assert_eq!(v.active().new_below, 0);
        assert_eq!(shown(&v).last().unwrap(), "line 104");
        // Up past the oldest line stops with it at the top.
        for _ in 0..50 {
            v.on_key(key(KeyCode::PageUp, KeyModifiers::NONE), t());
        }
        assert_eq!(shown(&v).first().unwrap(), "line 0");
        assert_eq!(shown(&v).len(), pane - 1);
    }

    #[test]
    fn scrolling_a_short_window_does_nothing() {
        let mut v = view();
        fill(&mut v, 3);
        v.on_key(key(KeyCode::PageUp, KeyModifiers::NONE), t());
        assert_eq!(v.active().scroll, None);
        assert_eq!(shown(&v), ["line 0", "line 1", "line 2"]);
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut v = view();
        fill(&mut v, SCROLLBACK + 10);
        assert_eq!(v.active().lines().len(), SCROLLBACK);
        assert_eq!(v.active().lines().front().unwrap().text, "line 10");
        assert_eq!(v.active().lines().back().unwrap().text, "line 10009");
        // An anchor on a dropped line is clamped, not a panic.
        v.scroll_up(5);
        fill(&mut v, SCROLLBACK);
        assert!(!shown(&v).is_empty());
    }

    #[test]
    fn network_text_is_made_harmless() {
        let mut v = view();
        v.apply(&[chat(
            dm("ev\x1b[31mil"),
            "ev\x1b[31mil",
            "a\x1b[2Jb\x1b]0;x\x07c\rd\u{202e}e",
            false,
        )]);
        let w = &v.windows[1];
        assert_eq!(w.name(), "evil");
        let line = w.lines().back().unwrap();
        assert_eq!(line.text, "abcde");
        assert_eq!(line.from.as_ref().unwrap().0, "evil");
    }

    /// Feeds tracker lines to the app and the view, as the run loop does.
    fn feed(app: &mut App, v: &mut View, lines: &[&str]) {
        for l in lines {
            let up = app.on_message(&crate::proto::Message::parse(l).unwrap(), t());
            v.apply(&up.events);
            v.sync(app);
        }
    }

    fn side(v: &View) -> Vec<String> {
        v.roster()
            .iter()
            .map(|u| format!("{}{} {}", u.roles, u.nick, u.status))
            .collect()
    }

    #[test]
    fn room_windows_side_list_and_dead_windows() {
        let mut app = App::new("alice", "t:1");
        let mut v = view();
        feed(
            &mut app,
            &mut v,
            &[
                ":alice!a@h JOIN #general",
                ":confab 353 alice = #general :alice bob fay",
                ":alice!a@h JOIN #lab",
                ":confab 353 alice = #lab :~@fay alice",
            ],
        );
        // Joining opened the room's window and went there.
        assert_eq!(v.active().name(), "#lab");
        assert_eq!(side(&v), ["alice ACTIVE", "~@fay ACTIVE"]);
        feed(&mut app, &mut v, &[":fay!f@h MODE #lab +v alice"]);
        assert_eq!(side(&v), ["+alice ACTIVE", "~@fay ACTIVE"]);
        assert_eq!(
            last(&v),
            "#lab --- fay gave you a voice (may speak when moderated)"
        );
        // Someone quitting is told in every room window they were in.
        feed(
            &mut app,
            &mut v,
            &[":vic!v@h JOIN #lab", ":vic!v@h QUIT :Quit: bye"],
        );
        assert_eq!(last(&v), "<-- vic left (Quit: bye)");
        assert_eq!(side(&v), ["+alice ACTIVE", "~@fay ACTIVE"]);
        // The side list follows the window in view.
        v.switch(0);
        assert_eq!(side(&v), ["alice ACTIVE", "bob ACTIVE", "fay ACTIVE"]);
        // An answer to `/mode #lab` asked from here is shown here.
        feed(&mut app, &mut v, &[":confab 324 alice #lab +nt"]);
        assert_eq!(
            last(&v),
            "#lab --- modes +nt: no messages from outside, only operators set the topic"
        );
        v.switch(1);
        // Removed: the window stays, readable, its last line says why.
        feed(
            &mut app,
            &mut v,
            &[":fay!f@h KICK #lab alice :Room closed by fay: lesson over"],
        );
        assert_eq!(v.active().name(), "#lab");
        assert!(!v.active().live);
        assert_eq!(last(&v), "#lab <-- fay closed #lab: lesson over");
        assert!(side(&v).is_empty());
        // Text there would only be refused: kept in the input, explained.
        assert_eq!(typed(&mut v, "hello?"), Action::None);
        assert!(last(&v).starts_with("!!! you are no longer in #lab: /join #lab"));
        assert_eq!(v.editor.text(), "hello?");
        v.editor.take();
        // /close closes a dead window.
        assert_eq!(typed(&mut v, "/close"), Action::None);
        assert_eq!(v.windows.len(), 1);
        // In a live room, a bare /close explains; /close #room goes to the
        // tracker.
        feed(&mut app, &mut v, &[":alice!a@h JOIN #code"]);
        assert_eq!(typed(&mut v, "/close"), Action::None);
        assert!(last(&v).starts_with("!!! you are still in #code: /part leaves it"));
        assert_eq!(
            typed(&mut v, "/close #code done"),
            Action::Send(vec![Outgoing::Typed("/close #code done".into())])
        );
        // Parting keeps the window too; joining again revives it.
        feed(&mut app, &mut v, &[":alice!a@h PART #code :bye"]);
        assert_eq!(v.active().name(), "#code");
        assert!(!v.active().live);
        assert_eq!(last(&v), "#code <-- you left (bye)");
        feed(&mut app, &mut v, &[":alice!a@h JOIN #code"]);
        assert!(v.active().live);
    }

    #[test]
    fn a_password_is_never_shown_nor_kept() {
        let mut v = view();
        v.apply(&[Event::AskSecret {
            time: t(),
            prompt: "operator password for teacher".into(),
        }]);
        assert!(v.secret.is_some());
        let action = typed(&mut v, "hunter2");
        assert_eq!(
            action,
            Action::Send(vec![Outgoing::Secret("hunter2".into())])
        );
        assert!(v.secret.is_none());
        v.on_key(key(KeyCode::Up, KeyModifiers::NONE), t());
        assert_eq!(v.editor.text(), "", "not in the history");
        assert!(
            v.windows
                .iter()
                .all(|w| w.lines().iter().all(|l| !l.text.contains("hunter2")))
        );
        // Typed in full, it is sent and not kept either.
        let action = typed(&mut v, "/oper teacher hunter2");
        assert_eq!(
            action,
            Action::Send(vec![Outgoing::Typed("/oper teacher hunter2".into())])
        );
        v.on_key(key(KeyCode::Up, KeyModifiers::NONE), t());
        assert_eq!(v.editor.text(), "", "not in the history");
        // Ctrl+C gives up.
        v.apply(&[Event::AskSecret {
            time: t(),
            prompt: "operator password for teacher".into(),
        }]);
        v.editor.insert("abc");
        let action = v.on_key(key(KeyCode::Char('c'), KeyModifiers::CONTROL), t());
        assert_eq!(action, Action::Send(vec![Outgoing::Secret(String::new())]));
    }

    #[test]
    fn roster_and_own_status_come_from_the_app() {
        let mut app = App::new("alice", "t:1");
        app.set_caps(&["echo-message".into(), "away-notify".into()]);
        let p = |l: &str| crate::proto::Message::parse(l).unwrap();
        app.on_message(&p(":alice!a@h JOIN #general"), t());
        app.on_message(&p(":confab 353 alice = #general :alice bob"), t());
        app.on_message(&p(":bob!b@h AWAY :lunch"), t());
        app.on_message(&p(":alice!a@h AWAY :Inactive: idle for 5 min"), t());
        let mut v = view();
        v.sync(&app);
        let shown: Vec<(&str, Status)> = v
            .roster()
            .iter()
            .map(|u| (u.nick.as_str(), u.status))
            .collect();
        assert_eq!(shown, [("alice", Status::Inactive), ("bob", Status::Busy)]);
        assert_eq!(v.my.status, Status::Inactive);
    }
}
