//! Draws a [`MonitorView`]: the one-tracker client's layout (tabs,
//! messages, side list, status bar, input) with the monitor's content.
//! Drawing only.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::model::LinkState;
use super::view::{MonitorView, Place};
use crate::client::state::Window;
use crate::client::tui::draw::{fit, name_color, put, roster_row, row_spans};
use crate::client::tui::view::layout;
use crate::proto::nick::casefold;

pub fn draw(frame: &mut Frame, view: &MonitorView) {
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

/// A link state in a word and its colour.
fn link_word(link: &LinkState) -> (&'static str, Color) {
    match link {
        LinkState::Up => ("up", Color::LightGreen),
        LinkState::Connecting => ("connecting", Color::Yellow),
        LinkState::Down { .. } => ("down", Color::LightRed),
        LinkState::GaveUp { .. } => ("off", Color::LightRed),
    }
}

fn tabs(buf: &mut Buffer, area: Rect, view: &MonitorView) {
    if area.height == 0 {
        return;
    }
    buf.set_style(area, Style::new().bg(Color::Indexed(236)));
    let mut spans = Vec::new();
    for (i, p) in view.panes.iter().enumerate() {
        let w = &p.win;
        let mut label = format!(" {}:{}", i + 1, view.title(i));
        if w.unread > 0 {
            label.push_str(&format!(
                " ({}{})",
                w.unread,
                if w.mention { "!" } else { "" }
            ));
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
    // Many trackers make more tabs than a row holds: the row starts late
    // enough for the window in view to be on it, `…` saying some are left.
    let width = |s: &Span| s.content.width();
    let mut first = 0;
    while first < view.active_index()
        && spans[first..=view.active_index()]
            .iter()
            .map(width)
            .sum::<usize>()
            + 1
            > area.width as usize
    {
        first += 1;
    }
    let mut spans: Vec<Span> = spans.split_off(first);
    if first > 0 {
        spans.insert(0, Span::styled("…", Style::new().fg(Color::Gray)));
    }
    if let Some(topic) = &view.active().win.topic {
        spans.push(Span::styled(
            format!(" {topic}"),
            Style::new().fg(Color::Gray),
        ));
    }
    put(buf, area, area.y, spans);
}

fn messages(buf: &mut Buffer, area: Rect, view: &MonitorView) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let win = &view.active().win;
    let merged = view.active().place == Place::All;
    let width = area.width as usize;
    let scrolled = win.scroll.is_some();
    let rows = area.height as usize - usize::from(scrolled);
    for (y, row) in (area.y..).zip(win.visible(width, rows)) {
        let text = &row.line.text[row.range.clone()];
        let mut spans = row_spans(row.line, row.index, text, width);
        // The merged view's clock column names the tracker: in its colour.
        if merged
            && row.index == 0
            && let Some((clock, origin)) = row.line.clock.split_once(' ')
        {
            let label = origin.split(' ').next().unwrap_or(origin);
            spans.splice(
                0..1,
                [
                    Span::styled(clock.to_string(), Style::new().fg(Color::DarkGray)),
                    Span::raw(" "),
                    Span::styled(
                        origin.to_string(),
                        Style::new()
                            .fg(name_color(label))
                            .add_modifier(Modifier::BOLD),
                    ),
                ],
            );
        }
        put(buf, area, y, spans);
    }
    if scrolled {
        let label = match win.new_below {
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

fn side(buf: &mut Buffer, area: Rect, view: &MonitorView) {
    if area.width < 4 || area.height == 0 {
        return;
    }
    let border = Style::new().fg(Color::DarkGray);
    for y in area.y..area.y + area.height {
        put(buf, area, y, vec![Span::styled("│", border)]);
    }
    let inner = Rect::new(area.x + 2, area.y, area.width - 2, area.height);
    let width = inner.width as usize;
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let pane = view.active();
    match &pane.place {
        Place::All | Place::Tracker(_) => {
            // Which trackers are there, and which are not.
            let header = format!("Trackers ({})", view.trackers.len());
            put(
                buf,
                inner,
                inner.y,
                vec![Span::styled(fit(&header, width), bold)],
            );
            for (y, t) in (inner.y + 1..inner.y + inner.height).zip(&view.trackers) {
                let (word, color) = link_word(&t.link);
                let name = fit(&t.label, width.saturating_sub(word.width() + 3).max(1));
                let pad = width.saturating_sub(2 + name.width() + word.width());
                put(
                    buf,
                    inner,
                    y,
                    vec![
                        Span::styled("● ", Style::new().fg(color)),
                        Span::styled(name, Style::new().fg(name_color(&t.label))),
                        Span::raw(" ".repeat(pad)),
                        Span::styled(word, Style::new().fg(color)),
                    ],
                );
            }
        }
        Place::Chat(id, target) => {
            let w = &pane.win;
            let header = match target {
                Window::Room(r) if !w.live => format!("Not in {r}"),
                Window::Room(r) => format!("{r} ({})", w.roster.len()),
                Window::Dm(n) => format!("DM {n}"),
                Window::Session(n) => format!("session ={n}"),
            };
            put(
                buf,
                inner,
                inner.y,
                vec![Span::styled(fit(&header, width), bold)],
            );
            let me = &view.trackers[*id].nick;
            let roles = w.roster.iter().any(|u| !u.roles.is_empty());
            for (y, u) in (inner.y + 1..inner.y + inner.height).zip(&w.roster) {
                let mine = casefold(&u.nick) == casefold(me);
                put(buf, inner, y, roster_row(u, width, mine, roles));
            }
        }
    }
}

fn status(buf: &mut Buffer, area: Rect, view: &MonitorView) {
    if area.height == 0 {
        return;
    }
    let bar = Style::new().fg(Color::White).bg(Color::Blue);
    buf.set_style(area, bar);
    let sep = Span::styled(" │ ", bar);
    let mut spans = vec![Span::styled(" monitor", bar.add_modifier(Modifier::BOLD))];
    for t in &view.trackers {
        let (word, color) = link_word(&t.link);
        spans.push(sep.clone());
        spans.push(Span::styled(format!("{} {word}", t.label), bar.fg(color)));
    }
    spans.push(sep);
    let place = view.title(view.active_index());
    spans.push(Span::styled(place, bar.add_modifier(Modifier::BOLD)));
    let tls = if view.tls { " (TLS)" } else { " (no TLS)" };
    spans.push(Span::styled(tls, bar));
    put(buf, area, area.y, spans);
}

fn input(buf: &mut Buffer, area: Rect, view: &MonitorView) -> Option<(u16, u16)> {
    if area.height == 0 || area.width == 0 {
        return None;
    }
    if let Some((_, question)) = &view.secret {
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
    let prompt = fit(
        &format!("[{}] ", view.title(view.active_index())),
        area.width as usize / 2,
    );
    let room = (area.width as usize).saturating_sub(prompt.width()).max(1);
    let (text, cursor_col) = view.editor.display();
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
    put(
        buf,
        area,
        area.y,
        vec![
            Span::styled(
                prompt.clone(),
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ),
            Span::raw(shown),
        ],
    );
    let x = area.x as usize + prompt.width() + cursor_col - skip;
    Some((
        (x.min(area.x as usize + area.width as usize - 1)) as u16,
        area.y,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::monitor::model::{LinkNews, Monitor};
    use crate::client::monitor::servers::TrackerSpec;
    use crate::client::state::App;
    use crate::proto::Message;
    use jiff::Timestamp;
    use jiff::tz::TimeZone;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    #[test]
    fn merged_view_marks_every_line_with_its_tracker() {
        let at: Timestamp = "2026-12-02T10:04:00Z".parse().unwrap();
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
            let out = m.on_connected(id, App::new("mon", "x"), Vec::new(), at);
            v.apply(&out.reports);
            let line = ":bob!b@h PRIVMSG #general :same name, other tracker";
            let out = m.on_message(id, &Message::parse(line).unwrap(), at);
            v.apply(&out.reports);
        }
        let out = m.on_link(
            1,
            LinkNews::Lost {
                reason: "gone".into(),
                retry_in: std::time::Duration::from_secs(2),
            },
            at,
        );
        v.apply(&out.reports);
        v.sync(&m);
        v.resize(100, 10);
        let mut term = Terminal::new(TestBackend::new(100, 10)).unwrap();
        term.draw(|f| draw(f, &v)).unwrap();
        let screen: Vec<String> = (0..10)
            .map(|y| {
                (0..100)
                    .map(|x| term.backend().buffer()[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect();
        let text = screen.join("\n");
        assert!(
            text.contains("10:04 alpha #general <bob> same name, other tracker"),
            "{text}"
        );
        assert!(
            text.contains("10:04 beta #general <bob> same name, other tracker"),
            "{text}"
        );
        assert!(
            text.contains("10:04 beta !!! disconnected from 127.0.0.1:4001: gone"),
            "{text}"
        );
        assert!(
            text.contains("monitor │ alpha up │ beta down │ all (TLS)"),
            "{text}"
        );
        assert!(text.contains("● beta"), "{text}");
        // On a narrow screen the tab in view stays on the row.
        v.switch(v.panes.len() - 1);
        v.resize(40, 10);
        let mut term = Terminal::new(TestBackend::new(40, 10)).unwrap();
        term.draw(|f| draw(f, &v)).unwrap();
        let tabs: String = (0..40)
            .map(|x| term.backend().buffer()[(x, 0)].symbol().to_string())
            .collect();
        assert_eq!(tabs.trim_end(), "… 4:beta  5:beta/#general");
    }
}
