//! The tracker and the client as a person runs them: in a real terminal
//! (tmux), answering questions by typing. Checks that passwords are never
//! echoed, that retries work, that Ctrl+C is clean everywhere, and that the
//! terminal is left sane (echo and line editing back on) on every exit.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::tmux::{Tmux, have};

const TRACKER_PASSWORD: &str = "Tr4cker pass";

/// Runs a command, then reports its exit code and the terminal's echo and
/// canonical-mode settings, then stays so the screen can be read.
/// `trap : INT` keeps the shell alive through the Ctrl+C sent to the
/// program; the program itself gets the default SIGINT handling.
const WRAPPER: &str = r#"#!/bin/sh
trap : INT
"$@"
echo "EXIT=$?"
echo "TTY=$(stty -a | tr ' ;' '\n\n' | grep -x -e -echo -e echo -e icanon -e -icanon | tr '\n' ' ')"
exec sleep 600
"#;

pub fn wrapped(dir: &Path, program: &str, args: &[&str]) -> String {
    let wrapper = dir.join("wrap.sh");
    if !wrapper.exists() {
        std::fs::write(&wrapper, WRAPPER).expect("write wrapper");
    }
    let mut line = format!("sh {} {program}", wrapper.display());
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    line
}

/// The value after `prefix` on the line of `screen` that starts with it.
pub fn screen_value<'a>(screen: &'a str, prefix: &str) -> &'a str {
    screen
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line on screen:\n{screen}"))
        .trim_end()
}

#[test]
fn interactive_tracker_and_client_in_a_terminal() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let logs = d.join("logs");
    let data = d.join("data");
    let known = d.join("known_trackers");

    // The operator starts the tracker and is asked for the password twice;
    // an empty one and a mismatch are refused; nothing typed is shown.
    let tracker = Tmux::start(
        "tracker",
        &wrapped(
            d,
            tracker_bin(),
            &[
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--log-dir",
                &logs.display().to_string(),
                "--data-dir",
                &data.display().to_string(),
            ],
        ),
        &[("XDG_CONFIG_HOME", d)],
        &["CONFAB_PASSWORD"],
    );
    tracker.wait_screen("Server password: ");
    tracker.type_line("");
    tracker.wait_screen("The password cannot be empty.");
    tracker.type_line("first-try");
    tracker.wait_screen("Repeat password: ");
    tracker.type_line("second-try");
    tracker.wait_screen("The passwords differ; try again.");
    tracker.wait_count("Server password: ", 3);
    tracker.type_line(TRACKER_PASSWORD);
    tracker.wait_count("Repeat password: ", 2);
    tracker.type_line(TRACKER_PASSWORD);
    let screen = tracker.wait_screen("clients join with: ");
    for secret in ["first-try", "second-try", TRACKER_PASSWORD] {
        assert!(!screen.contains(secret), "{secret:?} echoed:\n{screen}");
    }
    let port: u16 = screen_value(&screen, "listening on 127.0.0.1:")
        .parse()
        .expect("port");
    let fingerprint = screen_value(&screen, "fingerprint ").to_string();
    assert_eq!(
        screen_value(&screen, "clients join with: "),
        format!("client 127.0.0.1 {port}")
    );

    // bob is already in, from a script.
    let mut bob = ClientProc::spawn(
        {
            let mut cmd = Command::new(client_bin());
            cmd.arg(format!("127.0.0.1:{port}"))
                .args(["--plain", "--user", "bob", "--fingerprint", &fingerprint])
                .arg("--known-trackers")
                .arg(d.join("bob_known"))
                .env("CONFAB_PASSWORD", TRACKER_PASSWORD)
                .env("TZ", "UTC")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd
        },
        "bob",
    );
    bob.expect("#general --> you joined");

    // carol types everything: trust on first use, a wrong password, a taken
    // and an invalid name, then gets in.
    // --plain: this test reads the chat as lines; the full-screen UI has
    // its own tests (tui.rs). The questions before it are the same.
    let carol = Tmux::start(
        "carol",
        &wrapped(
            d,
            client_bin(),
            &["127.0.0.1", &port.to_string(), "--plain"],
        ),
        &[("CONFAB_KNOWN_TRACKERS", &known)],
        &["CONFAB_PASSWORD"],
    );
    let screen = carol.wait_screen("Trust it and continue (yes/no)? ");
    assert!(
        screen.contains(&format!("Its fingerprint is {fingerprint}")),
        "{screen}"
    );
    carol.type_line("yes");
    carol.wait_screen("The tracker needs a password. Password: ");
    carol.type_line("not the password");
    carol.wait_screen("Username: ");
    carol.type_line("bob");
    carol.wait_screen("Wrong password, try again (2 left).");
    carol.wait_count("The tracker needs a password. Password: ", 2);
    carol.type_line(TRACKER_PASSWORD);
    carol.wait_screen("That username is taken: bob");
    carol.wait_count("Username: ", 2);
    carol.type_line("no spaces allowed");
    carol.wait_count("Username: ", 3);
    carol.type_line("carol");
    carol.wait_screen("#general --> you joined");
    bob.expect("#general --> carol joined");
    let screen = carol.screen();
    for secret in ["not the password", TRACKER_PASSWORD] {
        assert!(!screen.contains(secret), "{secret:?} echoed:\n{screen}");
    }
    assert_eq!(
        std::fs::read_to_string(&known).expect("known_trackers written"),
        format!("127.0.0.1:{port} {fingerprint}\n")
    );

    carol.type_line("hello from a terminal");
    bob.expect("#general <carol> hello from a terminal");
    bob.send("hi carol");
    carol.wait_screen("#general <bob> hi carol");

    // Ctrl+C in the chat is a clean leave, and the terminal is sane after.
    carol.press("C-c");
    bob.expect("<-- carol left (Quit: Leaving)");
    let screen = carol.wait_screen("TTY=");
    assert!(screen.contains("*** you left the tracker"), "{screen}");
    assert!(!screen.contains("carol left"), "{screen}");
    assert_eq!(screen_value(&screen, "EXIT="), "0");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo");

    // Ctrl+C at the (hidden) password prompt: cancelled, exit 130, echo
    // back on. The tracker is already trusted, so the password comes first.
    let dave = Tmux::start(
        "dave",
        &wrapped(d, client_bin(), &["127.0.0.1", &port.to_string()]),
        &[("CONFAB_KNOWN_TRACKERS", &known)],
        &["CONFAB_PASSWORD"],
    );
    dave.wait_screen("The tracker needs a password. Password: ");
    dave.type_text("half typed");
    dave.press("C-c");
    let screen = dave.wait_screen("TTY=");
    assert!(screen.contains("client: cancelled"), "{screen}");
    assert!(!screen.contains("Trust it"), "{screen}");
    assert_eq!(screen_value(&screen, "EXIT="), "130");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo");

    // Ctrl+C on the tracker: bob is told, the tracker exits 0.
    tracker.press("C-c");
    bob.expect("*** disconnected by the tracker: tracker shutting down");
    assert_eq!(bob.wait_exit().code(), Some(0));
    let screen = tracker.wait_screen("TTY=");
    assert_eq!(screen_value(&screen, "EXIT="), "0");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo");
    let log = std::fs::read_to_string(logs.join("chat.log")).expect("chat.log");
    // Without a message line's tags (msgid, source: durable.rs).
    let events: Vec<String> = log
        .lines()
        .map(|l| {
            let e = confab::tracker::review::format::parse_line(l).expect("a chat.log line");
            format!("{} {}", e.event, e.detail)
        })
        .collect();
    assert_eq!(
        events[1..],
        [
            "join #general bob (127.0.0.1)",
            "join #general carol (127.0.0.1)",
            "msg #general <carol> hello from a terminal",
            "msg #general <bob> hi carol",
            "leave carol (Quit: Leaving)",
            "stop stopped by the operator (SIGINT)",
        ],
        "{log}"
    );
}

/// Started with no terminal and no password source, the tracker says how to
/// give one and exits 2 without listening.
#[test]
fn tracker_without_terminal_or_password_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(tracker_bin())
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("CONFAB_PASSWORD")
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run tracker");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tracker: no terminal to ask for the server password: use --password-file PATH, CONFAB_PASSWORD, or --no-password\n"
    );
    assert!(!dir.path().join("logs").exists());
}
