//! The full-screen client's drawing cost (criterion), not part of
//! `cargo test`:
//!
//! ```sh
//! cargo bench --bench tui -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! A window holding a full scrollback (10,000 lines of mixed lengths, some
//! wrapping, some CJK), drawn at 120x40 into ratatui's `TestBackend`:
//!
//! - `tui/frame_10k_new_message`: a message arrives, then one frame is
//!   drawn (what happens for each message in a busy room);
//! - `tui/frame_10k_scrolled_middle`: one frame with the view scrolled
//!   half-way up the scrollback;
//! - `tui/keypress_10k`: a key typed into the input, then one frame (what
//!   typing costs with that window on screen).

use std::hint::black_box;

use confab::client::state::{ChatKind, Event, Window};
use confab::client::tui::{draw, view::View};
use criterion::{Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const NAMES: &[&str] = &["alice", "bob", "carol", "dave", "李雷"];

fn message(i: usize, now: Timestamp) -> Event {
    let text = match i % 4 {
        0 => format!("short line {i}"),
        1 => format!(
            "a longer line {i} that goes on and on so that it has to wrap at least once on a 120-column terminal, with words"
        ),
        2 => format!("漢字とかなの行 {i} 全角文字は二桁で数えます"),
        _ => format!("emoji {i} 👍🎉 and a mention of alice"),
    };
    Event::Chat {
        time: now,
        window: Window::Room("#general".into()),
        from: NAMES[i % NAMES.len()].into(),
        text,
        kind: ChatKind::Message,
        own: false,
        confirms: None,
        msgid: None,
    }
}

fn full_view(now: Timestamp) -> View {
    let mut v = View::new("alice", "192.168.1.20:6697", true, TimeZone::UTC);
    v.resize(120, 40);
    for i in 0..10_000 {
        v.apply(&[message(i, now)]);
    }
    v
}

fn frames(c: &mut Criterion) {
    let now = Timestamp::now();
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("test backend");
    let mut v = full_view(now);
    let mut i = 10_000;
    c.bench_function("tui/frame_10k_new_message", |b| {
        b.iter(|| {
            v.apply(&[message(i, now)]);
            i += 1;
            term.draw(|f| draw::draw(f, black_box(&v))).expect("draw");
        })
    });

    let mut v = full_view(now);
    // Half of 10,000 lines of about 1.5 rows each.
    v.scroll_up(7_500);
    c.bench_function("tui/frame_10k_scrolled_middle", |b| {
        b.iter(|| {
            term.draw(|f| draw::draw(f, black_box(&v))).expect("draw");
        })
    });

    let mut v = full_view(now);
    let mut n = 0usize;
    c.bench_function("tui/keypress_10k", |b| {
        b.iter(|| {
            // Type, and clear now and then so the input stays short.
            let code = if n % 50 == 49 {
                KeyCode::Char('u')
            } else {
                KeyCode::Char('x')
            };
            let mods = if n % 50 == 49 {
                KeyModifiers::CONTROL
            } else {
                KeyModifiers::NONE
            };
            n += 1;
            v.on_key(KeyEvent::new(code, mods), now);
            term.draw(|f| draw::draw(f, black_box(&v))).expect("draw");
        })
    });
}

criterion_group!(benches, frames);
criterion_main!(benches);
