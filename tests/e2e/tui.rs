//! The full-screen client in a real terminal (tmux) against a real
//! tracker: what two people see and do, and the terminal they get back.

use crate::harness::*;
use crate::terminal::screen_value;
use crate::tmux::{Tmux, have, poll};

/// Starts `client` full-screen as `name` (password from the environment,
/// fingerprint pinned) in its own terminal.
fn start(tracker: &Tracker, name: &str) -> Tmux {
    let term = crate::tmux::client_in_terminal(&format!("tui-{name}"), tracker, name, &[]);
    assert_eq!(term.pane_format("#{alternate_on}"), "1", "not full-screen");
    term
}

/// The status word the side list shows for `nick`.
fn side_status(screen: &str, nick: &str) -> Option<String> {
    let row = format!("● {nick} ");
    screen.lines().find_map(|l| {
        let at = l.find(&row)?;
        l[at..].split_whitespace().last().map(str::to_string)
    })
}

/// The message pane: each row left of the side list's border.
fn pane(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.split('│').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// After the client exited: how it ended is on the normal screen, the exit
/// code is `code`, and the terminal is back as it was (echo, line editing,
/// no alternate screen, no mouse reports, cursor shown).
fn left_cleanly(term: &Tmux, said: &str, code: &str) -> String {
    let screen = term.wait_screen("TTY=");
    assert!(screen.contains(said), "{screen}");
    assert!(!screen.contains("Users ("), "UI left on screen:\n{screen}");
    assert_eq!(screen_value(&screen, "EXIT="), code, "{screen}");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo", "{screen}");
    assert_eq!(
        term.pane_format("#{alternate_on} #{mouse_standard_flag} #{mouse_sgr_flag} #{cursor_flag}"),
        "0 0 0 1"
    );
    screen
}

/// Two people in full-screen clients: a group message, a DM that opens a
/// window without taking focus, a paste sent on Enter, a status change in
/// the other's side list, /info, then Ctrl+C and /exit.
#[test]
fn two_people_chat_full_screen() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &[]);
    let alice = start(&tracker, "alice");
    let bob = start(&tracker, "bob");
    alice.wait_screen("#general --> bob joined");
    let status_of = |term: &Tmux, nick: &str, want: &str| {
        poll(
            &format!("{nick} {want} in the side list"),
            || (side_status(&term.screen(), nick).as_deref() == Some(want)).then_some(()),
            || term.screen(),
        )
    };
    status_of(&alice, "bob", "ACTIVE");
    status_of(&bob, "alice", "ACTIVE");

    // A group message.
    alice.type_line("hello from alice");
    bob.wait_screen("<alice> hello from alice");
    tracker.wait_log("msg #general <alice> hello from alice");

    // A DM opens a window on alice's side, marked, but she stays in #general.
    bob.type_line("/msg alice psst, a secret");
    let screen = crate::tmux::wait_until(&alice, "bob's DM marked", |s| {
        s.contains(" 2:bob (1!)") && s.contains("│ #general │")
    });
    assert!(!pane(&screen).contains("psst"), "{screen}");
    alice.press("M-2");
    crate::tmux::wait_until(&alice, "bob's DM in view", |s| {
        s.contains("<bob> psst, a secret") && s.contains("│ DM bob │") && !s.contains("(1!)")
    });

    // A multi-line paste waits for Enter, then goes as lines, in order,
    // even one that looks like a command.
    alice.paste("first pasted line\n/exit is not a command here\nthird");
    alice.wait_screen("[bob, 3 lines]");
    alice.type_line("");
    bob.wait_screen(" 2:alice (3!)");
    bob.press("C-n");
    let screen = bob.wait_screen("<alice> third");
    let order: Vec<usize> = ["first pasted line", "/exit is not a command here", "third"]
        .iter()
        .map(|l| {
            screen
                .find(l)
                .unwrap_or_else(|| panic!("{l:?} missing:\n{screen}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{screen}");
    tracker.wait_log("dm alice -> bob: /exit is not a command here");

    // bob becomes BUSY: alice's side list says so.
    bob.type_line("/status busy in a meeting");
    bob.wait_screen("│ BUSY: in a meeting │");
    status_of(&alice, "bob", "BUSY");

    // /info answers in the window.
    alice.type_line("/info bob");
    crate::tmux::wait_until(&alice, "the answer to /info", |s| {
        s.contains("address 127.0.0.1")
            && s.contains("status BUSY: in a meeting")
            && s.contains("joined at ")
    });

    // Ctrl+C: alice leaves, her terminal is hers again.
    alice.press("C-c");
    bob.wait_screen("<-- alice left (Quit: Leaving)");
    let screen = left_cleanly(&alice, "*** you left the tracker", "0");
    assert!(screen.find("you left").unwrap() < screen.find("EXIT=").unwrap());

    // /exit: bob leaves too.
    bob.type_line("/exit");
    left_cleanly(&bob, "*** you left the tracker", "0");
    tracker.wait_log("leave bob (Quit: Leaving)");
}

/// Resizing redraws to the new size; the tracker shutting down, or
/// vanishing, ends the UI with the reason printed after the terminal is
/// restored.
#[test]
fn resize_and_the_tracker_going_away() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &[]);
    let carol = start(&tracker, "carol");
    carol.type_line(&format!(
        "a line long enough to wrap once the window is narrow {}",
        "x".repeat(20)
    ));
    carol.wait_screen("<carol> a line long enough");
    carol.resize(60, 15);
    let screen = poll(
        "a redraw at 60x15",
        || {
            let s = carol.screen();
            let lines: Vec<&str> = s.lines().collect();
            // The whole frame: one capture may hold half of it.
            (lines.len() == 15
                && lines[13].starts_with(" carol │ ACTIVE")
                && lines[14].starts_with("[#general]")
                && side_status(&s, "carol").as_deref() == Some("ACTIVE"))
            .then_some(s)
        },
        || carol.screen(),
    );
    assert!(screen.lines().all(|l| l.chars().count() <= 60), "{screen}");
    assert_eq!(side_status(&screen, "carol").as_deref(), Some("ACTIVE"));
    // The long line now takes three rows, the others under its text.
    let indent = " ".repeat("00:00 <carol> ".len());
    assert!(
        screen.contains(&format!("\n{indent}once the window")),
        "{screen}"
    );
    assert!(screen.contains(&format!("\n{indent}xxxx")), "{screen}");

    signal(&tracker.child, "INT");
    let screen = left_cleanly(&carol, "client: disconnected by the tracker", "0");
    assert!(screen.contains("shutting down"), "{screen}");

    // A tracker that vanishes without a word: the link is lost, exit 1.
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &[]);
    let dave = start(&tracker, "dave");
    signal(&tracker.child, "KILL");
    left_cleanly(&dave, "client: connection to the tracker lost", "1");
}
