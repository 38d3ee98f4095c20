//! Rooms and moderation as people see them in confab's client: the real
//! `tracker` and `client` binaries, the plain mode through pipes and the
//! full-screen mode in tmux. Every reply and refusal is checked in the
//! words the person reads.

use std::path::Path;

use crate::harness::*;
use crate::tmux::{Tmux, have};

/// A tracker with one operator, `teacher`, whose password is `chalk dust`
/// (hashed by `tracker hash-password`, as an organiser would).
fn tracker_with_operator(dir: &Path, extra: &[&str]) -> Tracker {
    let hash = operator_hash("chalk dust");
    let config = dir.join("tracker.toml");
    std::fs::write(
        &config,
        format!("[[oper]]\nname = \"teacher\"\npassword-hash = \"{hash}\"\n"),
    )
    .expect("config");
    let mut args = vec!["--config", config.to_str().expect("utf-8 path")];
    args.extend(extra);
    Tracker::start_in(dir, &args)
}

#[test]
fn plain_rooms_roles_kick_invite_and_close_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &[]);
    let mut fay = ClientProc::join(&tracker, "fay");
    let mut otto = ClientProc::join(&tracker, "otto");
    let mut vic = ClientProc::join(&tracker, "vic");

    // Creating a room makes its founder and operator, and says so.
    fay.send("/join #lab");
    fay.expect("#lab --> you joined");
    fay.expect("#lab --- you created #lab: you are its founder (~) and an operator (@)");
    otto.send("/join lab");
    otto.expect("#lab --> you joined");
    fay.expect("#lab --> otto joined");
    vic.send("/join #lab");
    vic.expect("#lab --> you joined");
    fay.send("/topic lesson one: ownership");
    for c in [&mut fay, &mut otto, &mut vic] {
        c.expect("#lab *** fay set the topic: lesson one: ownership");
    }
    otto.send("/rooms");
    otto.expect("--- rooms (2):");
    otto.expect("---   #lab (3) lesson one: ownership");

    // Roles in words, and in /who.
    fay.send("/mode +o otto");
    otto.expect("#lab --- fay made you an operator");
    vic.expect("#lab --- fay made otto an operator");
    fay.expect("#lab --- you made otto an operator");
    vic.send("/who");
    vic.expect("--- users in #lab (3; ~ founder, @ operator, + voice):");
    vic.expect("---   ~@fay ACTIVE");
    vic.expect("---   @otto ACTIVE");
    vic.expect("---   vic ACTIVE");

    // A member may not kick; an operator may, and everyone reads it.
    vic.send("/kick otto");
    vic.expect("!!! You need to be an operator of #lab (or a tracker operator) to kick");
    otto.send("/kick vic too loud");
    vic.expect("#lab <-- You were removed from #lab by otto (too loud)");
    fay.expect("#lab <-- otto removed vic from #lab (too loud)");
    otto.expect("#lab <-- you removed vic from #lab (too loud)");

    // Invite only: refused in words, then an invitation.
    fay.send("/mode +i");
    fay.expect("#lab --- you made #lab invite only");
    vic.send("/join #lab");
    vic.expect("!!! #lab is invite only: ask one of its operators to /invite you");
    fay.send("/invite vic");
    fay.expect("*** you invited vic to #lab");
    vic.expect("*** fay invites you to #lab — /join #lab");
    vic.send("/join #lab");
    vic.expect("#lab --> you joined");

    // Closing: only the founder (or a tracker operator); never #general.
    otto.send("/close #lab");
    otto.expect("!!! Only fay, who created #lab, or a tracker operator can close it");
    fay.send("/close #general");
    fay.expect(
        "!!! everyone stays in #general, so it cannot be left or closed; to leave the tracker, type exit",
    );
    fay.send("/close #lab lesson over");
    otto.expect("#lab <-- fay closed #lab: lesson over");
    vic.expect("#lab <-- fay closed #lab: lesson over");
    fay.expect("#lab <-- you closed #lab: lesson over");
    otto.send("/rooms");
    otto.expect("--- rooms (1):");

    // Parting, with a reason, and a room that is not there.
    vic.send("/join #x");
    vic.expect("#x --> you joined");
    vic.send("/part #x see you");
    vic.expect("#x <-- you left (see you)");
    vic.send("/part #x");
    vic.expect("!!! #x: No such room");
    let events = tracker.log_events();
    assert!(
        events.iter().any(|e| e == "close #lab fay (lesson over)"),
        "{events:#?}"
    );
}

#[test]
fn plain_oper_kill_and_away_text_kept_as_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = tracker_with_operator(dir.path(), &[]);
    let mut teacher = ClientProc::join(&tracker, "teacher");
    let mut bob = ClientProc::join(&tracker, "bob");
    let mut carol = ClientProc::join(&tracker, "carol");

    // The password asked: the next line, never shown.
    teacher.send("/oper teacher wrong");
    teacher.expect("!!! the tracker refused that operator name or password");
    bob.send("/kill carol spam");
    bob.expect("!!! only a tracker operator may do that (/oper <name> if you are one)");
    teacher.send("/oper teacher");
    teacher.expect("*** operator password for teacher (not shown; an empty line cancels):");
    teacher.send("chalk dust");
    teacher.expect(
        "*** you are now a tracker operator: you may kick from and close any room, and /kill",
    );
    assert!(
        teacher.bodies().iter().all(|l| !l.contains("chalk dust")),
        "{:#?}",
        teacher.bodies()
    );

    // An operator closes a room she is not in.
    bob.send("/join #bobs");
    bob.expect("#bobs --> you joined");
    teacher.send("/close #bobs not during class");
    bob.expect("#bobs <-- teacher closed #bobs: not during class");

    // Away text kept exactly as typed; the tracker's own form refused.
    carol.send("/status busy Busy: writing a test");
    carol.expect("--- you are now BUSY: Busy: writing a test");
    bob.expect("--- carol is now BUSY: Busy: writing a test");
    carol.send("/status busy Inactive: idle for 9 min");
    carol.expect(
        "!!! Away texts starting with \"Inactive:\" are the tracker's own (INACTIVE after idling); your status is unchanged, say it in other words",
    );
    bob.send("/info carol");
    bob.expect("---   status BUSY: Busy: writing a test");

    // KILL: the user is gone, told why; everyone else reads it.
    teacher.send("/kill bob spamming the room");
    bob.expect("*** disconnected by the tracker: Killed by teacher (spamming the room)");
    carol.expect("<-- bob left (Killed by teacher (spamming the room))");
    assert!(bob.wait_exit().success());
    let events = tracker.log_events();
    for wanted in [
        "status carol BUSY (Busy: writing a test)",
        "oper teacher as teacher",
        "kill teacher -> bob (spamming the room)",
    ] {
        assert!(events.iter().any(|e| e == wanted), "{wanted}: {events:#?}");
    }
    assert!(
        !tracker.log().contains("Inactive: idle for 9"),
        "a refused away text is not recorded"
    );
}

/// Starts `client` full-screen as `name` in its own terminal.
/// `test` names the terminal apart from other tests' (they run at once).
fn full_screen(test: &str, tracker: &Tracker, name: &str) -> Tmux {
    in_terminal(test, tracker, name, &[])
}

fn in_terminal(test: &str, tracker: &Tracker, name: &str, extra: &[&str]) -> Tmux {
    crate::tmux::client_in_terminal(&format!("rooms-{test}-{name}"), tracker, name, extra)
}

/// The side list: each row right of its border, trimmed.
fn side(screen: &str) -> Vec<String> {
    let rows: Vec<&str> = screen.lines().collect();
    rows[..rows.len().saturating_sub(2)]
        .iter()
        .filter_map(|l| l.split_once('│').map(|(_, s)| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The message pane's last non-empty row (above the status bar and the
/// input, the last two rows).
fn last_message(screen: &str) -> String {
    let rows: Vec<&str> = screen.lines().collect();
    rows[..rows.len().saturating_sub(2)]
        .iter()
        .filter(|l| l.contains('│'))
        .map(|l| l.split('│').next().unwrap_or("").trim().to_string())
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
}

#[test]
fn full_screen_side_list_of_the_room_and_windows_of_rooms_left() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &[]);
    let mut fay = ClientProc::join(&tracker, "fay");
    fay.send("/join #lab");
    fay.expect("#lab --> you joined");
    let alice = full_screen("side", &tracker, "alice");

    // Joining opens the room's window; its side list shows its members'
    // roles (founder ~), and switches with the window.
    alice.type_line("/join #lab");
    let screen = crate::tmux::wait_until(&alice, "#lab's members with roles", |s| {
        let side = side(s);
        side.first().is_some_and(|h| h == "#lab (2)")
            && side
                .iter()
                .any(|r| r.starts_with("●  alice") && r.ends_with("ACTIVE"))
            && side
                .iter()
                .any(|r| r.starts_with("● ~fay") && r.ends_with("ACTIVE"))
    });
    assert!(screen.contains("2:#lab"), "{screen}");
    fay.send("/mode +o alice");
    crate::tmux::wait_until(&alice, "alice an operator", |s| {
        side(s).iter().any(|r| r.starts_with("● @alice"))
            && last_message(s).ends_with("#lab --- fay made you an operator")
    });
    alice.press("M-1");
    crate::tmux::wait_until(&alice, "#general's members, no roles", |s| {
        let side = side(s);
        side.first().is_some_and(|h| h == "#general (2)")
            && side.iter().any(|r| r.starts_with("● alice "))
            && side.iter().any(|r| r.starts_with("● fay "))
    });
    alice.press("M-2");
    crate::tmux::wait_until(&alice, "#lab's list again", |s| {
        side(s).first().is_some_and(|h| h == "#lab (2)")
    });

    // Removed: the window stays readable, its last line says why.
    fay.send("/join #code");
    fay.expect("#code --> you joined");
    alice.type_line("/join #code");
    crate::tmux::wait_until(&alice, "in #code", |s| {
        side(s).first().is_some_and(|h| h == "#code (2)")
    });
    fay.send("/kick #code alice wrong room");
    let screen = crate::tmux::wait_until(&alice, "the kick as the last line", |s| {
        last_message(s).ends_with("#code <-- You were removed from #code by fay (wrong room)")
    });
    assert!(
        side(&screen).iter().any(|r| r == "Not in #code"),
        "{screen}"
    );
    assert!(screen.contains("3:#code"), "{screen}");
    // Closed: the same, in that room's window.
    alice.press("M-2");
    fay.send("/close #lab lesson over");
    let screen = crate::tmux::wait_until(&alice, "the close as the last line", |s| {
        last_message(s).ends_with("#lab <-- fay closed #lab: lesson over")
    });
    assert!(side(&screen).iter().any(|r| r == "Not in #lab"), "{screen}");
    // Typing there is refused and kept; /close closes the window.
    alice.type_line("anyone?");
    crate::tmux::wait_until(&alice, "text refused in a dead window", |s| {
        s.contains("!!! you are no longer in #lab: /join #lab to go back")
    });
    alice.press("C-u");
    alice.type_line("/close");
    let screen = crate::tmux::wait_until(&alice, "the window closed", |s| !s.contains(":#lab"));
    assert!(screen.contains("2:#code"), "{screen}");
}

#[test]
fn oper_password_is_never_on_screen_nor_in_the_history() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = tracker_with_operator(dir.path(), &[]);

    // Full-screen: the question in the input line, nothing of the answer.
    let alice = full_screen("oper", &tracker, "alice");
    alice.type_line("/oper teacher");
    alice.wait_screen("[operator password for teacher (not shown; an empty line cancels):]");
    alice.type_line("chalk dust");
    let screen = alice.wait_screen("*** you are now a tracker operator");
    assert!(!screen.contains("chalk"), "{screen}");
    alice.press("Up");
    let screen = crate::tmux::wait_until(&alice, "the line before the password", |s| {
        s.lines().last().unwrap_or("").trim_end() == "[#general] /oper teacher"
    });
    assert!(!screen.contains("chalk"), "{screen}");

    // Plain mode at a terminal: the terminal's echo is off for the answer,
    // and back on after it.
    let bob = in_terminal("oper", &tracker, "bob", &["--plain"]);
    bob.type_line("/oper teacher");
    bob.wait_screen("*** operator password for teacher (not shown; an empty line cancels):");
    bob.type_line("chalk dust");
    let screen = bob.wait_screen("*** you are now a tracker operator");
    assert!(!screen.contains("chalk"), "{screen}");
    bob.type_line("echo is back");
    let screen = bob.wait_screen("#general <bob> echo is back");
    assert!(
        screen.lines().any(|l| l.trim_end() == "echo is back"),
        "the typed line echoed again:\n{screen}"
    );
}
