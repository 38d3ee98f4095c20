//! Coming back with the full-screen client (issue 17) against the real
//! tracker and its store, in a real terminal (tmux): PgUp at the top of a
//! window pages back through the room's history until there is none.

use crate::harness::*;
use crate::tmux::{Tmux, have, poll};

const ALICE_PASSWORD: &str = "river stone 42";

/// The message pane: each row left of the side list's border.
fn pane(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.split('│').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The numbers of the `history line NNN` rows on screen, top to bottom.
fn numbers(screen: &str) -> Vec<u32> {
    pane(screen)
        .lines()
        .filter_map(|l| l.split("history line ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// The account `alice`, registered on a raw connection, then in #lab (a
/// room an account reads from its first join, which is after its
/// registration), her password in a file.
fn register_alice(tracker: &Tracker) -> (Raw, std::path::PathBuf) {
    let mut alice = Raw::register(tracker.port, "alice");
    alice.send(&format!("REGISTER * * :{ALICE_PASSWORD}"));
    alice.expect("REGISTER SUCCESS");
    alice.send("JOIN #lab");
    alice.expect(" 366 alice #lab ");
    let file = tracker.dir.join("alice.password");
    std::fs::write(&file, format!("{ALICE_PASSWORD}\n")).expect("password file");
    (alice, file)
}

/// `client --account alice` full-screen, once it has joined #lab (which
/// logging in to the account gives back).
fn alice_in_terminal(tracker: &Tracker, session: &str, password_file: &std::path::Path) -> Tmux {
    let known = tracker.dir.join("known_trackers").display().to_string();
    let target = format!("127.0.0.1:{}", tracker.port);
    let file = password_file.display().to_string();
    let args = [
        target.as_str(),
        "--no-tls",
        "--known-trackers",
        &known,
        "--account",
        "alice",
        "--account-password-file",
        &file,
    ];
    let term = Tmux::start(
        session,
        &crate::terminal::wrapped(&tracker.dir, client_bin(), &args),
        &[("CONFAB_PASSWORD", std::path::Path::new(PASSWORD))],
        &[],
    );
    term.wait_screen("#lab --> you joined");
    term
}

/// Waits until the clock is past the millisecond of chat.log's line
/// ending with `suffix`. The tracker keeps when an account was last
/// connected to the millisecond, and a line said in that same millisecond
/// counts as seen: what a test says is missed must come later.
fn past_the_millisecond_of(tracker: &Tracker, suffix: &str) {
    tracker.wait_log(suffix);
    let log = tracker.log();
    let at: jiff::Timestamp = log
        .lines()
        .find(|l| l.ends_with(suffix))
        .and_then(|l| l.split(' ').next())
        .and_then(|t| t.parse().ok())
        .expect("a logged time");
    poll(
        "the clock to pass that millisecond",
        || (jiff::Timestamp::now().as_millisecond() > at.as_millisecond() + 1).then_some(()),
        String::new,
    );
}

/// Presses PgUp until the screen shows `until`, each press waiting for the
/// screen to change (a scroll, or the page asked for arriving).
fn page_back_until(term: &Tmux, until: &str) -> String {
    for _ in 0..60 {
        let before = term.screen();
        if before.contains(until) {
            return before;
        }
        term.press("PPage");
        poll(
            "the screen to change after PgUp",
            || Some(term.screen()).filter(|s| *s != before),
            || format!("screen:\n{}", term.screen()),
        );
    }
    panic!("never showed {until:?}:\n{}", term.screen());
}

#[test]
fn pgup_pages_back_through_the_history_until_there_is_no_more() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay", "--flood-rate", "0"]);
    let (mut alice, password_file) = register_alice(&tracker);
    // 120 lines said while alice is there (so none is missed): only
    // paging back brings them to her next session.
    let mut bob = Raw::register(tracker.port, "bob");
    bob.send("JOIN #lab");
    bob.expect(" 366 bob #lab ");
    for i in 1..=120 {
        bob.send(&format!("PRIVMSG #lab :history line {i:03}"));
    }
    alice.expect("PRIVMSG #lab :history line 120");
    alice.send("QUIT");
    tracker.wait_log("leave alice (Quit)");

    // Logging in puts her back in #lab.
    let term = alice_in_terminal(&tracker, "history-paging", &password_file);
    term.type_line("/w #lab");
    term.wait_screen("│ #lab (2)");
    assert!(numbers(&term.screen()).is_empty(), "{}", term.screen());
    // The first PgUp (the window fits the screen: it is at its top) asks
    // for the newest page, 50 lines; it comes into view from its top.
    term.press("PPage");
    let screen = term.wait_screen("<bob> history line 071");
    let first = numbers(&screen);
    assert_eq!(first.first(), Some(&71), "{screen}");
    assert!(
        first.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {first:?}"
    );
    assert!(!screen.contains("history line 070"), "{screen}");

    let screen = page_back_until(&term, "no older history in #lab");
    // At the top: the note, then the oldest line, in order, each once.
    let shown = pane(&screen);
    let note = shown
        .find("--- no older history in #lab")
        .expect("the note");
    let oldest = shown.find("<bob> history line 001").expect("line 001");
    assert!(note < oldest, "{screen}");
    let top = numbers(&screen);
    assert_eq!(top.first(), Some(&1), "{screen}");
    assert!(
        top.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {top:?}"
    );
    assert_eq!(shown.matches("no older history").count(), 1);

    // PgUp again asks nothing more: the note stays the only one, and
    // everything between is there once, read down with PgDn.
    term.press("PPage");
    let mut seen: Vec<u32> = Vec::new();
    for _ in 0..40 {
        let screen = term.screen();
        assert!(
            pane(&screen).matches("no older history").count() <= 1,
            "{screen}"
        );
        for n in numbers(&screen) {
            if seen.last().is_none_or(|last| n > *last) {
                seen.push(n);
            }
        }
        if seen.last() == Some(&120) {
            break;
        }
        term.press("NPage");
        poll(
            "the screen to change after PgDn",
            || Some(term.screen()).filter(|s| *s != screen),
            || format!("screen:\n{}", term.screen()),
        );
    }
    assert_eq!(seen, (1..=120).collect::<Vec<_>>());
    term.press("C-c");
}

/// The tab of window `n` in the top row (`2:#lab`, `3:bob (1!)`).
fn tab(screen: &str, n: usize) -> String {
    let top = screen.lines().next().unwrap_or("");
    let start = format!("{n}:");
    let at = top
        .find(&start)
        .unwrap_or_else(|| panic!("no window {n}:\n{screen}"));
    let rest = &top[at..];
    let end = rest.find(&format!("{}:", n + 1)).unwrap_or(rest.len());
    rest[..end].trim().to_string()
}

#[test]
fn missed_lines_come_after_the_summary_with_a_separator_and_are_not_unread() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let (mut alice, password_file) = register_alice(&tracker);
    let mut bob = Raw::register(tracker.port, "bob");
    bob.send("JOIN #lab");
    bob.expect(" 366 bob #lab ");
    bob.send("PRIVMSG #lab :seen before leaving");
    alice.expect("PRIVMSG #lab :seen before leaving");
    alice.send("QUIT :lunch");
    bob.expect("QUIT :Quit: lunch");
    past_the_millisecond_of(&tracker, "leave alice (Quit: lunch)");
    // Missed while away: two in #lab (one naming her), one DM.
    bob.send("PRIVMSG #lab :missed one");
    bob.send("PRIVMSG #lab :alice: missed two, for you");
    bob.send("PRIVMSG alice :are you there?");
    bob.expect("your message is kept and will be delivered when alice logs in");

    // Logging in puts her back in #lab, the window in view: the summary,
    // the separator, then what she missed.
    let term = alice_in_terminal(&tracker, "history-replay", &password_file);
    let screen = term.wait_screen("<bob> alice: missed two, for you");
    let shown = pane(&screen);
    let rows: Vec<&str> = shown.lines().map(str::trim_end).collect();
    let at = |text: &str| {
        rows.iter()
            .position(|r| r.contains(text))
            .unwrap_or_else(|| panic!("no {text:?}:\n{screen}"))
    };
    let summary = at("#lab *** While you were away: 2 messages in #lab, 1 mentions you");
    let separator = at("new since you read");
    assert!(rows[separator].starts_with("────"), "{screen}");
    let one = at("<bob> missed one");
    assert_eq!(
        (separator, one, at("<bob> alice: missed two, for you")),
        (summary + 1, summary + 2, summary + 3),
        "summary, separator, the missed lines:\n{screen}"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.contains("new since you read"))
            .count(),
        1
    );
    assert!(!shown.contains("seen before leaving"), "{screen}");
    // The DM's replay opened its window, not counted as unread.
    assert_eq!(tab(&screen, 1), "1:#general", "{screen}");
    assert_eq!(tab(&screen, 3), "3:bob", "{screen}");
    // Each with the time it was said (chat.log's, to the minute).
    let said = tracker
        .log()
        .lines()
        .find(|l| l.contains(" msg ") && l.ends_with(" #lab <bob> missed one"))
        .and_then(|l| l.get(11..16))
        .expect("logged")
        .to_string();
    assert!(
        rows[one].trim_start().starts_with(&said),
        "{said}: {screen}"
    );

    term.type_line("/w bob");
    let screen = term.wait_screen("<bob> are you there?");
    let shown = pane(&screen);
    let summary = shown
        .find("[DM bob] *** While you were away: 1 direct message from bob")
        .expect("the DM's summary");
    let separator = shown.find("new since you read").expect("a separator");
    assert!(summary < separator, "{screen}");
    assert!(
        separator < shown.find("<bob> are you there?").unwrap_or(0),
        "{screen}"
    );
    // A live line still counts: the counting is not simply off.
    bob.send("PRIVMSG #lab :live now");
    let screen = term.wait_screen("2:#lab (1)");
    assert_eq!(tab(&screen, 1), "1:#general", "{screen}");
    term.press("C-c");
}

#[test]
fn read_on_one_connection_is_read_on_the_other() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let (mut alice, password_file) = register_alice(&tracker);
    alice.send("QUIT");
    tracker.wait_log("leave alice (Quit)");
    let laptop = alice_in_terminal(&tracker, "history-laptop", &password_file);
    let phone = alice_in_terminal(&tracker, "history-phone", &password_file);
    tracker.wait_log("attach alice 2 (127.0.0.1)");
    for term in [&laptop, &phone] {
        term.type_line("/w #lab");
        term.wait_screen("│ #lab (1)");
    }
    let mut bob = Raw::register(tracker.port, "bob");
    bob.send("PRIVMSG #general :lunch at noon?");
    for term in [&laptop, &phone] {
        term.wait_screen("1:#general (1)");
    }
    // Read on the phone: the laptop's #general is read too.
    phone.type_line("/w #general");
    phone.wait_screen("<bob> lunch at noon?");
    let screen = crate::tmux::wait_until(&laptop, "#general read on the laptop", |s| {
        tab(s, 1) == "1:#general"
    });
    assert_eq!(tab(&screen, 2), "2:#lab", "{screen}");
    // The laptop still counts what comes after.
    bob.send("PRIVMSG #general :or one?");
    laptop.wait_screen("1:#general (1)");
    laptop.press("C-c");
    phone.press("C-c");
}

#[test]
fn the_line_mode_prints_the_summary_and_marks_replayed_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--stay"]);
    let (mut alice, password_file) = register_alice(&tracker);
    let mut bob = Raw::register(tracker.port, "bob");
    bob.send("JOIN #lab");
    bob.expect(" 366 bob #lab ");
    alice.send("QUIT :lunch");
    bob.expect("QUIT :Quit: lunch");
    past_the_millisecond_of(&tracker, "leave alice (Quit: lunch)");
    bob.send("PRIVMSG #lab :missed in the lab");
    bob.send("PRIVMSG alice :a word for you");
    bob.expect("your message is kept and will be delivered when alice logs in");
    // A message line: its event, then its tags, then what was said.
    let said = |event: &str, what: &str| {
        let log = tracker.log();
        let line = log
            .lines()
            .find(|l| l.contains(event) && l.ends_with(what))
            .unwrap_or_else(|| panic!("{what} not in chat.log:\n{log}"))
            .to_string();
        // `2026-12-02T04:23:01.123Z ...` as the client prints it.
        format!("{} {}", &line[..10], &line[11..19])
    };
    tracker.wait_log("dm bob -> alice: a word for you");

    let file = password_file.display().to_string();
    let mut client = ClientProc::spawn(
        client_command(
            &tracker,
            &[
                "--no-tls",
                "--account",
                "alice",
                "--account-password-file",
                &file,
            ],
        ),
        "alice",
    );
    client.expect("#lab *** While you were away: 1 message in #lab");
    let room = client.out.wait_for("the replayed line", |l| {
        l.ends_with("#lab <bob> missed in the lab")
    });
    assert_eq!(
        room,
        format!(
            "[replay] {} #lab <bob> missed in the lab",
            said(" msg ", " #lab <bob> missed in the lab")
        )
    );
    client.expect("[DM bob] *** While you were away: 1 direct message from bob");
    let dm = client.out.wait_for("the replayed DM", |l| {
        l.ends_with("[DM bob] <bob> a word for you")
    });
    assert_eq!(
        dm,
        format!(
            "[replay] {} [DM bob] <bob> a word for you",
            said(" dm ", " bob -> alice: a word for you")
        )
    );
    // Live lines are printed as always, with their clock only.
    bob.send("PRIVMSG #lab :and now live");
    let live = client.expect("#lab <bob> and now live");
    assert!(!live.starts_with("[replay]"), "{live}");
    client.send("/exit");
    assert!(client.wait_exit().success());
}
