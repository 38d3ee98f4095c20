//! Draws a [`View`] into a ratatui frame. Drawing only: nothing here
//! changes state. Only the rows in view are wrapped and drawn, so a window
//! with a full scrollback costs no more than one with a screenful.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::editor::NEWLINE_MARK;
use super::view::{Conn, Line, Tone, View, layout};
use crate::client::state::{UserEntry, Window};
use crate::proto::nick::casefold;
use crate::proto::status::Status;

/// Colours for names: readable on dark and light backgrounds, and none
/// of them the mention yellow or the error red.
const NAME_COLORS: &[Color] = &[
    Color::Cyan,
    Color::Green,
    Color::Magenta,
    Color::Indexed(75), // sky blue: plain blue is unreadable on black
    Color::LightCyan,
    Color::LightGreen,
    Color::LightMagenta,
    Color::LightBlue,
    Color::Indexed(208), // orange
    Color::Indexed(37),  // teal
    Color::Indexed(141), // violet
    Color::Indexed(71),  // olive green
];

/// The same colour for a name in every run and on every machine (FNV-1a of
/// the folded name, not a randomly seeded hash).
pub fn name_color(nick: &str) -> Color {
    let mut h: u32 = 0x811c_9dc5;
    for b in casefold(nick).bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    NAME_COLORS[h as usize % NAME_COLORS.len()]
}

pub(crate) fn status_style(s: Status) -> Style {
    match s {
        Status::Active => Style::new().fg(Color::Green),
        Status::Busy => Style::new().fg(Color::Yellow),
        Status::Inactive => Style::new().fg(Color::DarkGray),
    }
}

pub(crate) fn text_style(tone: Tone) -> Style {
    match tone {
        Tone::Normal | Tone::Own => Style::new(),
        Tone::Mention => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Tone::Join => Style::new().fg(Color::Green),
        Tone::Part => Style::new().fg(Color::Red),
        Tone::Quiet => Style::new().fg(Color::DarkGray),
        Tone::Pending => Style::new()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::ITALIC),
        Tone::Info => Style::new().fg(Color::Cyan),
        Tone::Error => Style::new()
            .fg(Color::LightRed)
            .add_modifier(Modifier::BOLD),
    }
}

pub fn draw(frame: &mut Frame, view: &View) {
    let areas = layout(frame.area());
    let buf = frame.buffer_mut();
    tabs(buf, areas.tabs, view);
    messages(buf, areas.messages, view);
    side(buf, areas.side, view);
    status(buf, areas.status, view);
    if let Some(cursor) = input(buf, areas.input, view) {
        frame.set_cursor_position(cursor);
    }
}

/// Writes `spans` on row `y` of `area`, clipped to its width.
pub(crate) fn put(buf: &mut Buffer, area: Rect, y: u16, spans: Vec<Span>) {
    if area.width > 0 && y < area.y + area.height {
        buf.set_line(area.x, y, &TextLine::from(spans), area.width);
    }
}

fn tabs(buf: &mut Buffer, area: Rect, view: &View) {
    if area.height == 0 {
        return;
    }
    buf.set_style(area, Style::new().bg(Color::Indexed(236)));
    let mut spans = Vec::new();
    for (i, w) in view.windows.iter().enumerate() {
        let mut label = format!(" {}:{}", i + 1, w.label());
        if w.unread > 0 {
            label.push_str(&format!(
                " ({}{})",
                w.unread,
                if w.mention { "!" } else { "" }
            ));
        } else if w.mention {
            label.push_str(" (!)");
        }
        label.push(' ');
        let style = if i == view.active_index() {
            Style::new()
                .fg(Color::Black)
                .bg(Color::White)
                .add_modifier(Modifier::BOLD)
        } else if w.mention {
            Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD)
        } else if w.unread > 0 {
            Style::new().fg(Color::White).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Gray)
        };
        spans.push(Span::styled(label, style));
    }
    if let Some(topic) = &view.active().topic {
        spans.push(Span::styled(
            format!(" {topic}"),
            Style::new().fg(Color::Gray),
        ));
    }
    put(buf, area, area.y, spans);
}

/// `──── new since you read ────────`: where the unread lines start.
pub(crate) fn separator_spans(width: usize) -> Vec<Span<'static>> {
    let words = format!(" {} ", super::view::SEPARATOR);
    let left = 4.min(width);
    let right = width.saturating_sub(left + words.width());
    vec![Span::styled(
        format!("{}{words}{}", "─".repeat(left), "─".repeat(right)),
        Style::new().fg(Color::LightRed),
    )]
}

pub(crate) fn row_spans<'a>(
    line: &'a Line,
    index: usize,
    text: &'a str,
    width: usize,
) -> Vec<Span<'a>> {
    let style = text_style(line.tone);
    if index > 0 {
        return vec![
            Span::raw(" ".repeat(line.indent(width))),
            Span::styled(text, style),
        ];
    }
    let clock_style = if line.tone == Tone::Mention {
        Style::new().fg(Color::Black).bg(Color::Yellow)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    let mut spans = vec![
        Span::styled(line.clock.as_str(), clock_style),
        Span::raw(" "),
    ];
    if let (Some((nick, _)), Some(sender)) = (&line.from, line.sender()) {
        let mut name = Style::new()
            .fg(name_color(nick))
            .add_modifier(Modifier::BOLD);
        if line.tone == Tone::Own {
            name = name.add_modifier(Modifier::REVERSED);
        }
        // `sender` is the name with its punctuation: colour the name only.
        let at = sender.find(nick.as_str()).unwrap_or(0);
        let dim = Style::new().fg(Color::DarkGray);
        spans.push(Span::styled(sender[..at].to_string(), dim));
        spans.push(Span::styled(nick.clone(), name));
        spans.push(Span::styled(sender[at + nick.len()..].to_string(), dim));
    }
    spans.push(Span::styled(text, style));
    spans
}

fn messages(buf: &mut Buffer, area: Rect, view: &View) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let win = view.active();
    let width = area.width as usize;
    let scrolled = win.scroll.is_some();
    let rows = area.height as usize - usize::from(scrolled);
    for (y, row) in (area.y..).zip(view.visible(width, rows)) {
        if row.separator {
            put(buf, area, y, separator_spans(width));
            continue;
        }
        let text = &row.line.text[row.range.clone()];
        put(buf, area, y, row_spans(row.line, row.index, text, width));
    }
    if scrolled {
        let n = win.new_below;
        let label = match n {
            0 => " ▼ scrolled up · PgDn to go down ".to_string(),
            1 => " ▼ 1 new message below · PgDn ".to_string(),
            n => format!(" ▼ {n} new messages below · PgDn "),
        };
        let y = area.y + area.height - 1;
        let style = Style::new().fg(Color::Black).bg(Color::Yellow);
        buf.set_style(Rect::new(area.x, y, area.width, 1), style);
        put(buf, area, y, vec![Span::styled(label, style)]);
    }
}

/// `name` cut to `max` columns, with `…` when cut.
pub(crate) fn fit(name: &str, max: usize) -> String {
    if name.width() <= max {
        return name.to_string();
    }
    let mut out = String::new();
    for g in name.graphemes(true) {
        if out.width() + g.width() + 1 > max {
            break;
        }
        out.push_str(g);
    }
    out.push('…');
    out
}

fn side(buf: &mut Buffer, area: Rect, view: &View) {
    if area.width < 4 || area.height == 0 {
        return;
    }
    let border = Style::new().fg(Color::DarkGray);
    for y in area.y..area.y + area.height {
        put(buf, area, y, vec![Span::styled("│", border)]);
    }
    let inner = Rect::new(area.x + 2, area.y, area.width - 2, area.height);
    let w = view.active();
    let roster = view.roster();
    let header = match &w.target {
        Window::Room(r) if !w.live => format!("Not in {r}"),
        Window::Room(r) => format!("{r} ({})", roster.len()),
        Window::Dm(n) => format!("DM {n}"),
        Window::Session(n) => format!("session {n}"),
    };
    let header = fit(&header, inner.width as usize);
    put(
        buf,
        inner,
        inner.y,
        vec![Span::styled(
            header,
            Style::new().add_modifier(Modifier::BOLD),
        )],
    );
    let width = inner.width as usize;
    if let (Window::Room(r), false) = (&w.target, w.live) {
        // A room we left: the window stays readable; say how to go on.
        let hint = [
            format!("/join {r}"),
            "  to go back;".to_string(),
            "/close closes".to_string(),
            "  this window.".to_string(),
        ];
        for (y, line) in (inner.y + 2..inner.y + inner.height).zip(hint) {
            put(buf, inner, y, vec![Span::styled(fit(&line, width), border)]);
        }
        return;
    }
    // A column for roles only where someone has one (not in #general).
    let roles = roster.iter().any(|u| !u.roles.is_empty());
    for (y, u) in (inner.y + 1..inner.y + inner.height).zip(roster) {
        put(
            buf,
            inner,
            y,
            roster_row(u, width, casefold(&u.nick) == casefold(&view.me), roles),
        );
    }
    if roster.len() + 1 > inner.height as usize && inner.height > 1 {
        let more = roster.len() + 2 - inner.height as usize;
        let y = inner.y + inner.height - 1;
        buf.set_style(Rect::new(inner.x, y, inner.width, 1), Style::new());
        put(
            buf,
            inner,
            y,
            vec![Span::styled(format!("… {more} more"), border)],
        );
    }
}

/// `● ~fay      ACTIVE`: status dot, the highest room role (`~` founder,
/// `@` operator, `+` voice; a space for none, no column in a room where
/// nobody has one), name, status.
pub(crate) fn roster_row(u: &UserEntry, width: usize, me: bool, roles: bool) -> Vec<Span<'static>> {
    let word = u.status.to_string();
    let role = match (roles, u.roles.chars().next()) {
        (false, _) => String::new(),
        (true, Some(mark)) => mark.to_string(),
        (true, None) => " ".to_string(),
    };
    let nick_room = width.saturating_sub(word.width() + 3 + role.width()).max(1);
    let nick = fit(&u.nick, nick_room);
    let pad = width.saturating_sub(2 + role.width() + nick.width() + word.width());
    let mut name = Style::new().fg(name_color(&u.nick));
    if me {
        name = name.add_modifier(Modifier::BOLD);
    }
    vec![
        Span::styled("● ", status_style(u.status)),
        Span::styled(
            role,
            Style::new()
                .fg(Color::LightCyan)
                .add_modifier(Modifier::BOLD),
        ),
        Span::styled(nick, name),
        Span::raw(" ".repeat(pad)),
        Span::styled(word, status_style(u.status)),
    ]
}

fn status(buf: &mut Buffer, area: Rect, view: &View) {
    if area.height == 0 {
        return;
    }
    let bar = Style::new().fg(Color::White).bg(Color::Blue);
    buf.set_style(area, bar);
    let sep = Span::styled(" │ ", bar);
    let mut mine = view.my.status.to_string();
    if let Some(d) = &view.my.detail {
        mine.push_str(&format!(": {d}"));
    }
    let place = match &view.active().target {
        Window::Room(r) => r.clone(),
        Window::Dm(n) => format!("DM {n}"),
        Window::Session(n) => format!("session {n}"),
    };
    let (conn, conn_style) = match view.conn {
        Conn::Connected => ("connected", bar.fg(Color::LightGreen)),
        Conn::Checking => ("checking the connection…", bar.fg(Color::Yellow)),
        Conn::Closed => ("disconnected", bar.fg(Color::LightRed)),
    };
    let tls = if view.tls { "TLS" } else { "no TLS" };
    put(
        buf,
        area,
        area.y,
        vec![
            Span::styled(" ", bar),
            Span::styled(view.me.clone(), bar.add_modifier(Modifier::BOLD)),
            sep.clone(),
            Span::styled(mine, status_style(view.my.status).bg(Color::Blue)),
            sep.clone(),
            Span::styled(format!("{} ({tls})", view.tracker), bar),
            sep.clone(),
            Span::styled(place, bar.add_modifier(Modifier::BOLD)),
            sep,
            Span::styled(conn, conn_style),
        ],
    );
}

/// Draws the input line, scrolled sideways to keep the cursor in view;
/// returns where the cursor goes.
fn input(buf: &mut Buffer, area: Rect, view: &View) -> Option<(u16, u16)> {
    if area.height == 0 || area.width == 0 {
        return None;
    }
    if let Some(question) = &view.secret {
        // A password: nothing of it is drawn, not even its length.
        let prompt = fit(&format!("[{question}] "), area.width as usize);
        let x = area.x as usize + prompt.width();
        put(
            buf,
            area,
            area.y,
            vec![Span::styled(
                prompt,
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            )],
        );
        return Some((
            (x.min(area.x as usize + area.width as usize - 1)) as u16,
            area.y,
        ));
    }
    let lines = view.editor.line_count();
    let prompt = if lines > 1 {
        format!("[{}, {lines} lines] ", view.active().label())
    } else {
        format!("[{}] ", view.active().label())
    };
    let prompt = fit(&prompt, area.width as usize / 2);
    let room = (area.width as usize).saturating_sub(prompt.width()).max(1);
    let (text, cursor_col) = view.editor.display();
    // Keep the cursor on screen: skip whole characters from the left.
    let start = cursor_col.saturating_sub(room - 1);
    let mut skip = 0;
    let mut shown = String::new();
    for g in text.graphemes(true) {
        if skip < start {
            skip += g.width();
        } else {
            shown.push_str(g);
        }
    }
    let mark = Style::new().fg(Color::DarkGray);
    let mut spans = vec![Span::styled(
        prompt.clone(),
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
    )];
    // The newline marks are dimmed so a paste's line breaks stand out.
    for (i, part) in shown.split(NEWLINE_MARK).enumerate() {
        if i > 0 {
            spans.push(Span::styled(NEWLINE_MARK, mark));
        }
        spans.push(Span::raw(part.to_string()));
    }
    put(buf, area, area.y, spans);
    let x = area.x as usize + prompt.width() + cursor_col - skip;
    Some((
        (x.min(area.x as usize + area.width as usize - 1)) as u16,
        area.y,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::state::{ChatKind, Event, UserEntry};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn at(min: u32) -> Timestamp {
        format!("2026-11-21T10:{min:02}:00Z").parse().unwrap()
    }

    fn say(min: u32, window: Window, from: &str, text: &str, own: bool) -> Event {
        Event::Chat {
            time: at(min),
            window,
            from: from.into(),
            text: text.into(),
            kind: ChatKind::Message,
            own,
            confirms: None,
            msgid: None,
        }
    }

    fn general() -> Window {
        Window::Room("#general".into())
    }

    fn user(nick: &str, status: Status) -> UserEntry {
        UserEntry {
            nick: nick.into(),
            roles: String::new(),
            status,
            detail: None,
        }
    }

    fn screen(view: &mut View, w: u16, h: u16) -> Terminal<TestBackend> {
        view.resize(w, h);
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| draw(f, view)).unwrap();
        term
    }

    fn conversation() -> View {
        let mut v = View::new("alice", "192.168.1.20:6697", true, TimeZone::UTC);
        v.windows[0].roster = vec![
            user("alice", Status::Active),
            UserEntry {
                nick: "bob".into(),
                roles: String::new(),
                status: Status::Busy,
                detail: Some("lunch".into()),
            },
            user("carol", Status::Active),
            user("dave_the_long_name", Status::Inactive),
        ];
        v.apply(&[
            Event::Info {
                time: at(0),
                text: "Welcome to confab, alice".into(),
            },
            Event::Joined {
                time: at(0),
                room: "#general".into(),
                nick: "alice".into(),
                me: true,
            },
            say(1, general(), "bob", "morning all", false),
            say(2, general(), "alice", "hi bob, hi carol", true),
            say(3, general(), "carol", "alice: did you push the fix?", false),
            Event::Status {
                time: at(4),
                nick: "bob".into(),
                me: false,
                status: Status::Busy,
                detail: Some("lunch".into()),
            },
            say(
                5,
                general(),
                "carol",
                "a longer message that has to wrap onto the next row because the pane is narrow enough",
                false,
            ),
        ]);
        v
    }

    #[test]
    fn main_window() {
        let mut v = conversation();
        v.editor.insert("typing a reply");
        insta::assert_snapshot!(screen(&mut v, 80, 14).backend());
    }

    #[test]
    fn room_roles_and_a_room_left() {
        let mut v = conversation();
        v.apply(&[Event::Joined {
            time: at(6),
            room: "#lab".into(),
            nick: "alice".into(),
            me: true,
        }]);
        v.windows[1].roster = vec![
            UserEntry {
                roles: "~@".into(),
                ..user("fay", Status::Active)
            },
            UserEntry {
                roles: "+".into(),
                ..user("alice", Status::Active)
            },
            user("otto", Status::Inactive),
        ];
        insta::assert_snapshot!("room_roles", screen(&mut v, 80, 8).backend());
        v.apply(&[Event::RoomClosed {
            time: at(7),
            room: "#lab".into(),
            by: "fay".into(),
            reason: Some("lesson over".into()),
        }]);
        v.windows[1].roster.clear();
        insta::assert_snapshot!("room_closed", screen(&mut v, 80, 10).backend());
        // The password question shows nothing of what is typed.
        v.apply(&[Event::AskSecret {
            time: at(8),
            prompt: "operator password for teacher".into(),
        }]);
        v.editor.insert("hunter2");
        let term = screen(&mut v, 80, 10);
        let shown = format!("{:?}", term.backend());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[operator password for teacher]"), "{shown}");
    }

    #[test]
    fn dm_window_and_unread_marks() {
        let mut v = conversation();
        v.apply(&[
            say(6, Window::Dm("bob".into()), "bob", "got a minute?", false),
            say(
                7,
                Window::Dm("dave_the_long_name".into()),
                "dave_the_long_name",
                "ping",
                false,
            ),
            say(
                8,
                Window::Dm("dave_the_long_name".into()),
                "dave_the_long_name",
                "ping?",
                false,
            ),
        ]);
        let before = screen(&mut v, 80, 10);
        insta::assert_snapshot!("dm_arrives_in_background", before.backend());
        v.switch(1);
        v.apply(&[say(9, general(), "carol", "anyone?", false)]);
        insta::assert_snapshot!("dm_in_view", screen(&mut v, 80, 10).backend());
    }

    #[test]
    fn wide_characters_and_long_words_wrap() {
        let mut v = View::new("alice", "t:6697", true, TimeZone::UTC);
        v.apply(&[
            say(
                1,
                general(),
                "李",
                "漢字かな交じり文を折り返して表示するテストです。全角文字は二桁",
                false,
            ),
            say(
                2,
                general(),
                "bob",
                "emoji 👍🎉🚀 family 👨‍👩‍👧 flags 🇫🇷🇯🇵 done 👍🎉🚀👍🎉🚀👍🎉🚀",
                false,
            ),
            say(3, general(), "bob", &"x".repeat(70), false),
        ]);
        v.editor.insert("入力も 漢字 👍");
        let term = screen(&mut v, 40, 16);
        insta::assert_snapshot!(term.backend());
    }

    #[test]
    fn escapes_from_the_network_are_shown_harmless() {
        let mut v = View::new("alice", "t:6697", true, TimeZone::UTC);
        v.apply(&[say(
            1,
            general(),
            "mal\x1b[2Jlory",
            "clear\x1b[2J title\x1b]0;pwned\x07 cr\rreturn bidi\u{202e}txet\x1b[31m red\u{9b}2J",
            false,
        )]);
        let term = screen(&mut v, 60, 6);
        for cell in term.backend().buffer().content() {
            assert!(
                !cell.symbol().chars().any(char::is_control),
                "control character in a cell: {:?}",
                cell.symbol()
            );
        }
        insta::assert_snapshot!(term.backend());
    }

    #[test]
    fn scrolled_up_with_new_messages() {
        let mut v = View::new("alice", "t:6697", true, TimeZone::UTC);
        for i in 0..40 {
            v.apply(&[say(
                i % 60,
                general(),
                "bob",
                &format!("message {i}"),
                false,
            )]);
        }
        v.resize(60, 12);
        v.scroll_up(10);
        for i in 40..43 {
            v.apply(&[say(i, general(), "carol", &format!("message {i}"), false)]);
        }
        insta::assert_snapshot!(screen(&mut v, 60, 12).backend());
    }

    #[test]
    fn pasted_lines_and_a_long_input() {
        let mut v = View::new("alice", "t:6697", false, TimeZone::UTC);
        v.on_paste("first\nsecond\nthird", at(0));
        insta::assert_snapshot!("paste", screen(&mut v, 60, 5).backend());
        let mut v = View::new("alice", "t:6697", true, TimeZone::UTC);
        v.editor.insert(&"word ".repeat(30));
        let mut term = screen(&mut v, 60, 5);
        insta::assert_snapshot!("long_input", term.backend());
        term.backend_mut().assert_cursor_position((59, 4));
    }

    #[test]
    fn any_size_draws_without_panicking() {
        let mut v = conversation();
        v.editor.insert("漢字 input");
        v.scroll_up(3);
        for w in 0..=70 {
            for h in 0..=6 {
                screen(&mut v, w, h);
            }
        }
    }

    #[test]
    fn colors_are_stable_and_styles_mark_own_and_mentions() {
        assert_eq!(name_color("bob"), name_color("BOB"));
        let mut v = conversation();
        let term = screen(&mut v, 80, 14);
        let buf = term.backend().buffer();
        let find = |needle: &str| -> (u16, u16) {
            for y in 0..buf.area.height {
                let row: String = (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect();
                if let Some(i) = row.find(needle) {
                    return (row[..i].chars().count() as u16, y);
                }
            }
            panic!("{needle:?} not on screen");
        };
        let (x, y) = find("<alice>");
        assert!(buf[(x + 1, y)].modifier.contains(Modifier::REVERSED));
        let (x, y) = find("alice: did");
        assert_eq!(buf[(x, y)].fg, Color::Yellow);
        let (x, y) = find("<bob>");
        assert_eq!(buf[(x + 1, y)].fg, name_color("bob"));
        let (x, y) = find("BUSY");
        assert_eq!(buf[(x, y)].fg, Color::Yellow);
    }
}
