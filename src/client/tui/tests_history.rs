//! Coming back in the full-screen view (issue 17), the application and the
//! view together without a terminal: replay never unread, the separator
//! where the reading stopped, read markers sent while a window is in view
//! (the clock an argument), paging back with PgUp, the summary's window.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::view::{Action, Unread, View, layout};
use crate::client::history::Before;
use crate::client::state::{App, Window};
use crate::proto::Message;

/// `secs` after 2026-12-02 10:00:00 UTC.
fn at(secs: i64) -> Timestamp {
    let base: Timestamp = "2026-12-02T10:00:00Z".parse().expect("time");
    base.checked_add(SignedDuration::from_secs(secs))
        .expect("time")
}

fn wire(t: Timestamp) -> String {
    crate::client::history::wire_time(t)
}

fn setup() -> (App, View) {
    let mut app = App::new("me", "t:1");
    app.set_caps(
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
    let mut v = View::new("me", "t:1", false, TimeZone::UTC);
    v.resize(80, 24);
    (app, v)
}

/// Feeds the tracker's lines; returns what the application sends back.
fn feed(app: &mut App, v: &mut View, lines: &[String]) -> Vec<Message> {
    let mut sent = Vec::new();
    for l in lines {
        let up = app.on_message(&Message::parse(l).expect("line"), at(3600));
        v.apply(&up.events);
        v.sync(app);
        sent.extend(up.send);
    }
    sent
}

fn said(secs: i64, id: &str, from: &str, room: &str, text: &str) -> String {
    format!(
        "@time={};msgid={id} :{from}!u@h PRIVMSG {room} :{text}",
        wire(at(secs))
    )
}

fn replayed(batch: &str, secs: i64, id: &str, from: &str, room: &str, text: &str) -> String {
    format!("@batch={batch};{}", &said(secs, id, from, room, text)[1..])
}

fn win<'a>(v: &'a View, name: &str) -> &'a super::view::Win {
    v.windows
        .iter()
        .find(|w| w.name() == name)
        .unwrap_or_else(|| panic!("no window {name}"))
}

fn texts(v: &View, name: &str) -> Vec<String> {
    win(v, name)
        .lines()
        .iter()
        .map(|l| l.text.clone())
        .collect()
}

/// The text of the line the separator is drawn before.
fn after_separator(v: &View, name: &str) -> Option<String> {
    let w = win(v, name);
    w.separator_index().map(|i| w.lines()[i].text.clone())
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent {
        code,
        modifiers: KeyModifiers::NONE,
        kind: KeyEventKind::Press,
        state: KeyEventState::NONE,
    }
}

fn strings(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.to_line().trim_end().to_string())
        .collect()
}

/// In #general (in view) and #lab (not).
fn in_two_rooms(app: &mut App, v: &mut View) {
    feed(
        app,
        v,
        &[":me!m@h JOIN #lab".into(), ":me!m@h JOIN #general".into()],
    );
    assert_eq!(v.active().name(), "#general");
}

#[test]
fn replay_is_never_unread_nor_a_mention_and_follows_its_summary() {
    let (mut app, mut v) = setup();
    in_two_rooms(&mut app, &mut v);
    feed(
        &mut app,
        &mut v,
        &[
            "@confab/away-summary=#lab :confab NOTICE #lab :While you were away: 2 messages in #lab, 1 mention you".into(),
            ":confab BATCH +h1 chathistory #lab".into(),
            replayed("h1", -7200, "m1", "bob", "#lab", "me: are you there?"),
            replayed("h1", -7100, "m2", "bob", "#lab", "never mind"),
            ":confab BATCH -h1".into(),
        ],
    );
    let lab = win(&v, "#lab");
    assert_eq!((lab.unread, lab.mention), (0, false));
    let shown = texts(&v, "#lab");
    let n = shown.len();
    assert_eq!(
        shown[n - 3..],
        [
            "#lab *** While you were away: 2 messages in #lab, 1 mention you",
            "me: are you there?",
            "never mind"
        ]
    );
    // Each with its own time, never counted.
    let replay: Vec<_> = lab.lines().iter().skip(n - 2).collect();
    assert_eq!(replay[0].clock, "08:00");
    assert_eq!(replay[0].time, Some(at(-7200)));
    assert!(replay.iter().all(|l| l.unread == Unread::No));
    // No marker from the tracker: the separator goes before the replay.
    assert_eq!(
        after_separator(&v, "#lab").as_deref(),
        Some("me: are you there?")
    );
    // A live line after it counts as it always did.
    feed(
        &mut app,
        &mut v,
        &[said(0, "m3", "bob", "#lab", "me, now?")],
    );
    let lab = win(&v, "#lab");
    assert_eq!((lab.unread, lab.mention), (1, true));
    // A line from another day shows its day.
    feed(
        &mut app,
        &mut v,
        &[
            ":confab BATCH +h2 chathistory #lab".into(),
            replayed("h2", -86_400 * 3, "m0", "bob", "#lab", "long ago"),
            ":confab BATCH -h2".into(),
        ],
    );
    let lab = win(&v, "#lab");
    assert_eq!(
        lab.lines().back().map(|l| l.clock.as_str()),
        Some("Nov 29 10:00")
    );
}

#[test]
fn the_separator_sits_at_the_read_marker_and_moves_with_it() {
    let (mut app, mut v) = setup();
    in_two_rooms(&mut app, &mut v);
    feed(
        &mut app,
        &mut v,
        &[
            format!(":confab MARKREAD #lab timestamp={}", wire(at(-60))),
            said(-120, "a", "bob", "#lab", "read already"),
            said(-30, "b", "bob", "#lab", "first unread"),
            said(-20, "c", "carol", "#lab", "me: second unread"),
        ],
    );
    assert_eq!(after_separator(&v, "#lab").as_deref(), Some("first unread"));
    assert_eq!(win(&v, "#lab").unread, 3);
    // Drawn as one row between the two.
    let w = win(&v, "#lab");
    let rows: Vec<String> = w
        .visible(60, 20)
        .iter()
        .map(|r| {
            if r.separator {
                "----".into()
            } else {
                r.line.text.clone()
            }
        })
        .collect();
    let n = rows.len();
    assert_eq!(
        rows[n - 4..],
        ["read already", "----", "first unread", "me: second unread"]
    );
    // Read on another connection up to "first unread": the separator moves
    // and only the rest is unread; the mention stays (it is after).
    feed(
        &mut app,
        &mut v,
        &[format!(":confab MARKREAD #lab timestamp={}", wire(at(-30)))],
    );
    assert_eq!(
        after_separator(&v, "#lab").as_deref(),
        Some("me: second unread")
    );
    let w = win(&v, "#lab");
    assert_eq!((w.unread, w.mention), (1, true));
    // Read to the end elsewhere: no separator, nothing unread.
    feed(
        &mut app,
        &mut v,
        &[format!(":confab MARKREAD #lab timestamp={}", wire(at(-20)))],
    );
    assert_eq!(after_separator(&v, "#lab"), None);
    let w = win(&v, "#lab");
    assert_eq!((w.unread, w.mention), (0, false));
    // A new line: the separator before it.
    feed(&mut app, &mut v, &[said(-10, "d", "bob", "#lab", "newer")]);
    assert_eq!(after_separator(&v, "#lab").as_deref(), Some("newer"));
    // Viewed: the separator stays while in view (also when our own marker
    // comes back), and moves past what was read when the window is left.
    let lab = v
        .windows
        .iter()
        .position(|w| w.name() == "#lab")
        .expect("lab");
    v.switch(lab);
    let (window, upto) = v.in_view().expect("focused");
    let sent = app.mark_read(&window, upto.expect("read"), at(3600), true);
    assert_eq!(
        strings(&sent),
        [format!("MARKREAD #lab timestamp={}", wire(at(-10)))]
    );
    feed(
        &mut app,
        &mut v,
        &[format!(":confab MARKREAD #lab timestamp={}", wire(at(-10)))],
    );
    assert_eq!(after_separator(&v, "#lab").as_deref(), Some("newer"));
    v.switch(0);
    assert_eq!(after_separator(&v, "#lab"), None);
    // Our own lines never start the unread part.
    feed(&mut app, &mut v, &[said(-5, "e", "me", "#lab", "mine")]);
    assert_eq!(after_separator(&v, "#lab"), None);
}

#[test]
fn a_read_marker_is_sent_for_what_is_in_view_and_throttled() {
    let (mut app, mut v) = setup();
    in_two_rooms(&mut app, &mut v);
    feed(
        &mut app,
        &mut v,
        &[format!(
            ":confab MARKREAD #general timestamp={}",
            wire(at(0))
        )],
    );
    let general = Window::Room("#general".into());
    // Nothing newer than the marker in view: nothing to send.
    assert_eq!(v.in_view(), Some((general.clone(), None)));
    for i in 1..=40 {
        feed(
            &mut app,
            &mut v,
            &[said(
                i,
                &format!("g{i}"),
                "bob",
                "#general",
                &format!("line {i}"),
            )],
        );
    }
    let (window, upto) = v.in_view().expect("focused");
    assert_eq!((window.clone(), upto), (general.clone(), Some(at(40))));
    let now = at(3600);
    assert_eq!(
        strings(&app.mark_read(&window, at(40), now, false)),
        [format!("MARKREAD #general timestamp={}", wire(at(40)))]
    );
    // Scrolled up, what is read is the bottom line of the view.
    v.on_key(key(KeyCode::PageUp), now);
    let (_, upto) = v.in_view().expect("focused");
    let upto = upto.expect("time");
    assert!(upto < at(40) && upto > at(1), "{upto}");
    // More lines within the second: held, then sent at its end.
    feed(
        &mut app,
        &mut v,
        &[said(41, "g41", "bob", "#general", "line 41")],
    );
    v.on_key(key(KeyCode::PageDown), now);
    v.on_key(key(KeyCode::PageDown), now);
    let (_, upto) = v.in_view().expect("focused");
    assert_eq!(upto, Some(at(41)));
    assert!(app.mark_read(&general, at(41), now, false).is_empty());
    let due = now.checked_add(SignedDuration::from_secs(1)).expect("time");
    assert_eq!(app.next_mark_read(), Some(due));
    assert_eq!(
        strings(&app.due_mark_reads(due)),
        [format!("MARKREAD #general timestamp={}", wire(at(41)))]
    );
}

#[test]
fn pgup_at_the_top_pages_back_and_an_empty_page_stops_it() {
    let (mut app, mut v) = setup();
    in_two_rooms(&mut app, &mut v);
    for i in 1..=30 {
        feed(
            &mut app,
            &mut v,
            &[said(
                i,
                &format!("g{i}"),
                "bob",
                "#general",
                &format!("line {i}"),
            )],
        );
    }
    let now = at(3600);
    // Not at the top yet: PgUp scrolls.
    assert_eq!(v.on_key(key(KeyCode::PageUp), now), Action::None);
    let action = v.on_key(key(KeyCode::PageUp), now);
    let Action::Older { window, before } = action else {
        panic!("{action:?}")
    };
    // The oldest message's msgid (the join line before it has none).
    assert_eq!(before, Before::Msgid("g1".into()));
    let up = app.older_history(&window, before.clone());
    assert_eq!(
        strings(&up.send),
        ["CHATHISTORY BEFORE #general msgid=g1 50"]
    );
    // Pressed again while it is on its way: nothing more is asked.
    assert!(app.older_history(&window, before).send.is_empty());
    let on_screen = |v: &View| {
        let m = layout(v.size()).messages;
        let rows = m.height as usize - usize::from(v.active().scroll.is_some());
        v.visible(m.width as usize, rows)
            .iter()
            .map(|r| r.line.text.clone())
            .collect::<Vec<_>>()
    };
    let before_page = on_screen(&v);
    feed(
        &mut app,
        &mut v,
        &[
            ":confab BATCH +p1 chathistory #general".into(),
            replayed("p1", -20, "o1", "carol", "#general", "older one"),
            replayed("p1", -10, "o2", "carol", "#general", "older two"),
            ":confab BATCH -p1".into(),
        ],
    );
    // On top, in order, never unread; asked for at the top, the page
    // comes into view, above what was on screen.
    assert_eq!(texts(&v, "#general")[..2], ["older one", "older two"]);
    assert_eq!(v.active().unread, 0);
    let shown = on_screen(&v);
    assert_eq!(shown[..2], ["older one", "older two"]);
    assert!(shown.contains(&before_page[0]), "{shown:?}");
    // The next PgUp asks before the oldest.
    let Action::Older { before, .. } = v.on_key(key(KeyCode::PageUp), now) else {
        panic!("no page asked")
    };
    assert_eq!(before, Before::Msgid("o1".into()));
    let up = app.older_history(&Window::Room("#general".into()), Before::Msgid("o1".into()));
    assert_eq!(
        strings(&up.send),
        ["CHATHISTORY BEFORE #general msgid=o1 50"]
    );
    feed(
        &mut app,
        &mut v,
        &[
            ":confab BATCH +p2 chathistory #general".into(),
            ":confab BATCH -p2".into(),
        ],
    );
    assert_eq!(texts(&v, "#general")[0], "--- no older history in #general");
    assert_eq!(on_screen(&v)[0], "--- no older history in #general");
    // Said once: PgUp at the top asks nothing any more.
    let mut pressed = 0;
    for _ in 0..5 {
        if let Action::Older { window, before } = v.on_key(key(KeyCode::PageUp), now) {
            assert!(app.older_history(&window, before).send.is_empty());
            pressed += 1;
        }
    }
    assert!(pressed > 0);
    let notes = texts(&v, "#general")
        .iter()
        .filter(|t| t.contains("no older history"))
        .count();
    assert_eq!(notes, 1);
}

#[test]
fn a_window_without_messages_pages_back_from_now() {
    let (_, mut v) = setup();
    let action = v.on_key(key(KeyCode::PageUp), at(5));
    assert_eq!(
        action,
        Action::Older {
            window: Window::Room("#general".into()),
            before: Before::Time(at(5)),
        }
    );
}

#[test]
fn summaries_go_to_their_window_and_a_dm_one_opens_it() {
    let (mut app, mut v) = setup();
    in_two_rooms(&mut app, &mut v);
    feed(
        &mut app,
        &mut v,
        &[
            "@confab/away-summary=bob :confab NOTICE me :While you were away: 2 direct messages from bob".into(),
            ":confab BATCH +d1 chathistory bob".into(),
            replayed("d1", -50, "x1", "bob", "me", "psst"),
            replayed("d1", -40, "x2", "me", "bob", "hm?"),
            ":confab BATCH -d1".into(),
            "@confab/away-summary=#lab :confab NOTICE #lab :Unread: 3 messages in #lab".into(),
        ],
    );
    assert_eq!(v.active().name(), "#general", "focus stays");
    let dm = v
        .windows
        .iter()
        .find(|w| w.target == Window::Dm("bob".into()))
        .expect("the DM window opened");
    assert_eq!((dm.unread, dm.mention), (0, false));
    let shown: Vec<&str> = dm.lines().iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        shown,
        [
            "[DM bob] *** While you were away: 2 direct messages from bob",
            "psst",
            "hm?"
        ]
    );
    assert_eq!(
        texts(&v, "#lab").last().map(String::as_str),
        Some("#lab *** Unread: 3 messages in #lab")
    );
    assert!(
        !texts(&v, "#general").iter().any(|t| t.contains("Unread")),
        "not in the window in view"
    );
}

#[test]
fn away_from_the_terminal_nothing_is_read() {
    let (mut app, mut v) = setup();
    in_two_rooms(&mut app, &mut v);
    feed(
        &mut app,
        &mut v,
        &[said(1, "g1", "bob", "#general", "seen")],
    );
    assert!(v.in_view().is_some());
    // The terminal loses the focus: nothing is in view, and what comes
    // now is after the separator when the person is back.
    v.set_focus(false);
    assert_eq!(v.in_view(), None);
    feed(
        &mut app,
        &mut v,
        &[said(2, "g2", "bob", "#general", "while away")],
    );
    v.set_focus(true);
    assert_eq!(
        after_separator(&v, "#general").as_deref(),
        Some("while away")
    );
    assert_eq!(
        v.in_view(),
        Some((Window::Room("#general".into()), Some(at(2))))
    );
}

#[test]
fn the_separator_drawn_between_the_summary_and_what_was_missed() {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    let (mut app, mut v) = setup();
    in_two_rooms(&mut app, &mut v);
    feed(
        &mut app,
        &mut v,
        &[
            format!(":confab MARKREAD #general timestamp={}", wire(at(-100))),
            said(-200, "r", "bob", "#general", "read before"),
            "@confab/away-summary=#general :confab NOTICE #general :While you were away: 2 messages in #general, 1 mentions you".into(),
            ":confab BATCH +h1 chathistory #general".into(),
            replayed("h1", -90, "m1", "bob", "#general", "missed one"),
            replayed("h1", -80, "m2", "carol", "#general", "me: missed two"),
            ":confab BATCH -h1".into(),
        ],
    );
    v.resize(72, 10);
    let mut term = Terminal::new(TestBackend::new(72, 10)).expect("terminal");
    term.draw(|f| super::draw::draw(f, &v)).expect("draw");
    insta::assert_snapshot!(term.backend());
}

#[test]
fn at_login_the_window_in_view_keeps_its_separator_after_marking_read() {
    let (mut app, mut v) = setup();
    feed(
        &mut app,
        &mut v,
        &[
            ":me!m@h JOIN #general".into(),
            ":confab MARKREAD #general *".into(),
            ":me!m@h JOIN #lab".into(),
            ":confab MARKREAD #lab *".into(),
            "@confab/away-summary=#lab :confab NOTICE #lab :While you were away: 1 message in #lab, 1 mentions you".into(),
            ":confab BATCH +h1 chathistory #lab".into(),
            replayed("h1", -50, "m2", "bob", "#lab", "me: missed two"),
            ":confab BATCH -h1".into(),
        ],
    );
    assert_eq!(v.active().name(), "#lab");
    assert_eq!(
        after_separator(&v, "#lab").as_deref(),
        Some("me: missed two")
    );
    // The chat loop marks what is in view read; the tracker answers.
    let (window, upto) = v.in_view().expect("focused");
    let sent = app.mark_read(&window, upto.expect("read"), at(3600), true);
    assert_eq!(
        strings(&sent),
        [format!("MARKREAD #lab timestamp={}", wire(at(-50)))]
    );
    feed(
        &mut app,
        &mut v,
        &[format!(":confab MARKREAD #lab timestamp={}", wire(at(-50)))],
    );
    assert_eq!(
        after_separator(&v, "#lab").as_deref(),
        Some("me: missed two")
    );
}
