//! Issue 13, the client's side: what a teacher and a class meet in their
//! first minutes. Plain mode through pipes, the full-screen client in tmux,
//! against real trackers (frozen with SIGSTOP, killed, refusing names).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::terminal::{screen_value, wrapped};
#[cfg(target_os = "linux")] // freeze() reads /proc
use crate::tmux::poll;
use crate::tmux::{Tmux, have};

/// `client` full-screen as `name` in its own terminal (`test` names it,
/// unique among tests running at once), password from the environment,
/// fingerprint pinned; `extra` flags added.
fn full_screen(test: &str, tracker: &Tracker, name: &str, extra: &[&str]) -> Tmux {
    crate::tmux::client_in_terminal(&format!("classroom-{test}-{name}"), tracker, name, extra)
}

/// The message pane: each row left of the side list's border.
fn pane(screen: &str) -> String {
    screen
        .lines()
        .map(|l| l.split('│').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The input row (the last row of the terminal).
fn input_row(screen: &str) -> String {
    screen.lines().last().unwrap_or("").trim_end().to_string()
}

/// The status word the side list shows for `nick`.
fn side_status(screen: &str, nick: &str) -> Option<String> {
    let row = format!("● {nick} ");
    screen.lines().find_map(|l| {
        let at = l.find(&row)?;
        l[at..]
            .split('│')
            .next()?
            .split_whitespace()
            .last()
            .map(str::to_string)
    })
}

#[cfg(target_os = "linux")]
/// Freezes `child` with SIGSTOP and waits until every one of its threads
/// is stopped: `kill` returns once the signal is queued, and a thread
/// busy on another core may still handle a line before it stops.
fn freeze(child: &std::process::Child) {
    signal(child, "STOP");
    let tasks = format!("/proc/{}/task", child.id());
    poll(
        "every thread of the tracker stopped",
        || {
            let all = std::fs::read_dir(&tasks).ok()?.all(|t| {
                t.ok()
                    .and_then(|t| std::fs::read_to_string(t.path().join("stat")).ok())
                    .and_then(|stat| {
                        // `pid (comm) S ...`: the state follows the last ')'.
                        let (_, rest) = stat.rsplit_once(')')?;
                        rest.split_whitespace().next().map(|s| s == "T" || s == "t")
                    })
                    .unwrap_or(false)
            });
            all.then_some(())
        },
        || std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default(),
    );
}

/// After the client ended: its exit code and what it printed.
fn ended(term: &Tmux, code: &str) -> String {
    let screen = term.wait_screen("TTY=");
    assert_eq!(screen_value(&screen, "EXIT="), code, "{screen}");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo", "{screen}");
    screen
}

/// Item 4, plain mode: `exit` (or `quit`) alone on a line leaves, the
/// word is never broadcast; `/say exit` sends it.
#[test]
fn exit_alone_on_a_line_leaves_and_say_sends_the_word() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.expect("#general --> bob joined");
    // stdin stays open: the word itself leaves.
    bob.send("exit");
    alice.expect("<-- bob left (Quit: Leaving)");
    assert_eq!(bob.wait_exit().code(), Some(0));
    assert!(
        bob.out
            .drain()
            .iter()
            .any(|l| l == "*** you left the tracker")
    );
    let mut carol = ClientProc::join(&tracker, "carol");
    carol.send("/say exit");
    alice.expect("#general <carol> exit");
    carol.send("  QUIT ");
    alice.expect("<-- carol left (Quit: Leaving)");
    assert_eq!(carol.wait_exit().code(), Some(0));
    let said: Vec<String> = tracker
        .log_events()
        .into_iter()
        .filter(|l| l.starts_with("msg "))
        .collect();
    assert_eq!(said, ["msg #general <carol> exit"]);
}

/// Items 4, 8 and 9 full-screen: Ctrl+C with text typed clears it (Up
/// brings it back) and leaves only on an empty input; a pasted `exit` is
/// sent as text; `/close` and `/part` in #general give the same answer;
/// /help lists the exit words and the keys; a typed `exit` leaves.
#[test]
fn full_screen_ctrl_c_clears_and_exit_leaves() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &[]);
    let mut bob = ClientProc::join(&tracker, "bob");
    let alice = full_screen("ctrl-c", &tracker, "alice", &[]);
    bob.expect("#general --> alice joined");

    alice.type_text("half a line");
    crate::tmux::wait_until(&alice, "the text in the input", |s| {
        input_row(s) == "[#general] half a line"
    });
    alice.press("C-c");
    crate::tmux::wait_until(&alice, "the input cleared", |s| {
        input_row(s) == "[#general]"
    });
    alice.press("Up");
    crate::tmux::wait_until(&alice, "the text back", |s| {
        input_row(s) == "[#general] half a line"
    });
    alice.press("C-c");
    crate::tmux::wait_until(&alice, "the input cleared again", |s| {
        input_row(s) == "[#general]"
    });

    // A pasted `exit` is a word, sent on Enter.
    alice.paste("exit");
    crate::tmux::wait_until(&alice, "the paste in the input", |s| {
        input_row(s) == "[#general] exit"
    });
    alice.press("Enter");
    bob.expect("#general <alice> exit");

    let answer = "everyone stays in #general, so it cannot be left or closed; to leave the tracker, type exit";
    alice.type_line("/close");
    alice.wait_screen(answer);
    alice.type_line("/part #general");
    alice.wait_count(answer, 2);

    alice.type_line("/help");
    crate::tmux::wait_until(&alice, "the help", |s| {
        s.contains("exit or quit         (alone on a line) leave")
            && s.contains("Ctrl+C")
            && s.contains("clear the input; on an empty input, leave")
            && s.contains("Alt+S")
    });

    // None of that made her leave; a typed `exit` does.
    assert!(!bob.bodies().iter().any(|l| l.contains("alice left")));
    alice.type_line("exit");
    bob.expect("<-- alice left (Quit: Leaving)");
    let screen = ended(&alice, "0");
    assert!(screen.contains("*** you left the tracker"), "{screen}");
    let said: Vec<String> = tracker
        .log_events()
        .into_iter()
        .filter(|l| l.starts_with("msg "))
        .collect();
    assert_eq!(said, ["msg #general <alice> exit"]);
}

/// Item 7: a changed fingerprint's warning gives the exact command, and
/// `client --forget` removes only that tracker, so the next connection
/// can trust the new one.
#[test]
fn forget_a_tracker_whose_fingerprint_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let known = tracker.dir.join("known_trackers");
    // What this machine pinned before the tracker made a new certificate.
    let old = format!("SHA256:{}", ["AB"; 32].join(":"));
    let other = format!("10.0.0.9:6697 {old}");
    std::fs::write(
        &known,
        format!("{other}\n127.0.0.1:{} {old}\n", tracker.port),
    )
    .expect("write known_trackers");

    let mut refused = ClientProc::spawn(
        client_command(&tracker, &["--user", "dana", "--accept-new"]),
        "dana",
    );
    assert_eq!(refused.wait_exit().code(), Some(3));
    let err = refused.err.drain().join("\n");
    assert!(
        err.contains("WARNING: THE TRACKER'S FINGERPRINT HAS CHANGED!"),
        "{err}"
    );
    let command = format!(
        "client --forget 127.0.0.1:{} --known-trackers '{}'",
        tracker.port,
        known.display()
    );
    let shown = err
        .lines()
        .find(|l| l.trim() == command)
        .unwrap_or_else(|| panic!("no {command:?} in:\n{err}"));

    // Run it as shown (with the real path of the binary).
    let run = shown.trim().replacen("client", client_bin(), 1);
    let out = Command::new("sh")
        .arg("-c")
        .arg(&run)
        .output()
        .expect("run --forget");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "Forgot 127.0.0.1:{} (from {}). The next connection shows its fingerprint and asks whether to trust it.",
            tracker.port,
            known.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&known).expect("known_trackers"),
        format!("{other}\n")
    );

    // Nothing left to forget: said, exit 1.
    let out = Command::new("sh")
        .arg("-c")
        .arg(&run)
        .output()
        .expect("run --forget");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to forget"),
        "{out:?}"
    );

    // The next connection trusts the new certificate.
    let mut dana = ClientProc::spawn(
        client_command(&tracker, &["--user", "dana", "--accept-new"]),
        "dana",
    );
    dana.expect("#general --> you joined");
    assert!(
        std::fs::read_to_string(&known)
            .expect("known_trackers")
            .contains(&format!(
                "127.0.0.1:{} {}",
                tracker.port, tracker.fingerprint
            ))
    );
}

/// Items 9, 10 and 13: refusals name what the user typed, in plain words;
/// the welcome has no IRC mask; one's own rename is "you"; a refused
/// connection says what to check; --help names CONFAB_PASSWORD.
#[test]
fn errors_in_plain_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let fp = tracker.fingerprint.clone();

    let mut spaced = ClientProc::spawn(
        client_command(&tracker, &["--user", "bob smith", "--fingerprint", &fp]),
        "spaced",
    );
    assert_eq!(spaced.wait_exit().code(), Some(2));
    assert_eq!(
        spaced.err.drain(),
        [
            "client: That username is not allowed: \"bob smith\": usernames may use letters, digits and - _ [ ] \\ ^ { } | ` and may not start with a digit or -"
        ]
    );

    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    assert!(
        bob.bodies()
            .iter()
            .any(|l| l == "*** Welcome to the confab tracker, bob"),
        "{:?}",
        bob.bodies()
    );
    bob.send("/nick alice");
    bob.expect("!!! That username is taken: alice");
    bob.send("/nick robert");
    bob.expect("--- you are now known as robert");
    alice.expect("--- bob is now known as robert");
    bob.send("/part #general");
    bob.expect(
        "!!! everyone stays in #general, so it cannot be left or closed; to leave the tracker, type exit",
    );
    bob.send("/part #nope");
    bob.expect("!!! #nope: No such room");

    // Nothing listening: what to check.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let out = Command::new(client_bin())
        .arg(format!("127.0.0.1:{closed_port}"))
        .args(["--plain", "--user", "x", "--accept-new", "--known-trackers"])
        .arg(tracker.dir.join("known_trackers"))
        .stdin(Stdio::null())
        .output()
        .expect("run client");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("Is the tracker running?"), "{err}");
    assert!(err.contains("firewall"), "{err}");

    let help = Command::new(client_bin())
        .arg("--help")
        .output()
        .expect("client --help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("CONFAB_PASSWORD"));
}

/// Item 11: piped commands print their answers before the client leaves,
/// including answers that need a second question (an away reason).
#[test]
fn piped_commands_get_their_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let mut alice = ClientProc::join(&tracker, "alice");
    alice.send("/status busy lunch");
    alice.expect("--- you are now BUSY: lunch");

    for (name, script) in [
        ("bob", "/users\n/info alice\n/exit\n"),
        ("carol", "/users\n/rooms\n"),
    ] {
        let mut cmd = client_command(
            &tracker,
            &["--user", name, "--fingerprint", &tracker.fingerprint],
        );
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().expect("client");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).expect("write");
        drop(stdin);
        let mut out = Lines::spawn(child.stdout.take().expect("stdout"));
        let status = wait_exit(&mut child, WAIT);
        assert_eq!(status.code(), Some(0));
        let lines: Vec<String> = out.drain().iter().map(|l| body(l).to_string()).collect();
        let users = lines
            .iter()
            .position(|l| l == "--- users in #general (2):")
            .unwrap_or_else(|| panic!("{name}: no user list in {lines:#?}"));
        assert_eq!(
            lines[users + 1..users + 3],
            [
                "---   alice BUSY: lunch".to_string(),
                format!("---   {name} ACTIVE")
            ],
            "{lines:#?}"
        );
        if name == "bob" {
            assert!(
                lines.iter().any(|l| l == "---   status BUSY: lunch"),
                "{lines:#?}"
            );
        } else {
            assert!(lines.iter().any(|l| l == "--- rooms (1):"), "{lines:#?}");
        }
        assert_eq!(
            lines.last().map(String::as_str),
            Some("*** you left the tracker")
        );
    }
}

/// Item 11, lines: a file piped in is sent whole even when the tracker's
/// flood control paces it over several seconds; the client leaves only
/// once every line is confirmed.
#[test]
fn a_piped_file_arrives_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let lines: Vec<String> = (1..=40).map(|i| format!("lesson line {i}")).collect();
    let mut cmd = client_command(
        &tracker,
        &["--user", "bob", "--fingerprint", &tracker.fingerprint],
    );
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{}\n", lines.join("\n")).as_bytes())
        .expect("write");
    drop(stdin);
    let mut out = Lines::spawn(child.stdout.take().expect("stdout"));
    assert_eq!(wait_exit(&mut child, WAIT).code(), Some(0));
    for l in &lines {
        alice.expect(&format!("#general <bob> {l}"));
    }
    alice.expect("<-- bob left (Quit: Leaving)");
    let shown: Vec<String> = out.drain().iter().map(|l| body(l).to_string()).collect();
    assert!(
        !shown.iter().any(|l| l.starts_with("!!! not sent")),
        "{shown:#?}"
    );
    let logged = tracker
        .log_events()
        .iter()
        .filter(|l| l.starts_with("msg #general <bob> lesson line "))
        .count();
    assert_eq!(logged, 40);
}

/// Item 12, plain mode: a line sent to a frozen tracker is shown as
/// `(sending…)`, then confirmed when the tracker resumes; one sent before
/// the tracker dies is reported as not sent.
#[cfg(target_os = "linux")] // freeze() reads /proc
#[test]
fn plain_line_pending_while_the_tracker_is_frozen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracker = Tracker::start_in(dir.path(), &[]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.expect("#general --> bob joined");

    freeze(&tracker.child);
    bob.send("said while frozen");
    bob.expect("#general <bob> said while frozen (sending…)");
    signal(&tracker.child, "CONT");
    bob.expect("#general <bob> said while frozen");
    alice.expect("#general <bob> said while frozen");

    // Normal speed: printed once, when confirmed.
    bob.send("quick one");
    alice.expect("#general <bob> quick one");
    bob.expect("#general <bob> quick one");

    freeze(&tracker.child);
    bob.send("never confirmed");
    bob.expect("#general <bob> never confirmed (sending…)");
    signal(&tracker.child, "KILL");
    let _ = tracker.child.wait();
    bob.expect("!!! not sent: #general never confirmed");
    assert_eq!(bob.wait_exit().code(), Some(1));
    assert!(
        bob.err
            .drain()
            .iter()
            .any(|l| l.contains("connection to the tracker lost")),
    );
    assert!(
        !bob.bodies()
            .iter()
            .any(|l| l == "#general <bob> never confirmed"),
        "{:?}",
        bob.bodies()
    );
    assert!(!tracker.is_running());
}

/// Item 12, full-screen: shown at once, marked, confirmed in place; a
/// drop lists what was not sent after the terminal is restored.
#[cfg(target_os = "linux")] // freeze() reads /proc
#[test]
fn full_screen_line_pending_while_the_tracker_is_frozen() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracker = Tracker::start_in(dir.path(), &[]);
    let mut bob = ClientProc::join(&tracker, "bob");
    let alice = full_screen("frozen", &tracker, "alice", &[]);
    bob.expect("#general --> alice joined");

    freeze(&tracker.child);
    alice.type_line("hello frozen room");
    alice.wait_screen("<alice> hello frozen room (sending…)");
    signal(&tracker.child, "CONT");
    bob.expect("#general <alice> hello frozen room");
    crate::tmux::wait_until(&alice, "the line confirmed in place", |s| {
        s.matches("<alice> hello frozen room").count() == 1 && !s.contains("(sending…)")
    });

    freeze(&tracker.child);
    alice.type_line("lost words");
    alice.wait_screen("<alice> lost words (sending…)");
    signal(&tracker.child, "KILL");
    let _ = tracker.child.wait();
    let screen = ended(&alice, "1");
    assert!(
        screen.contains("client: not sent: #general lost words"),
        "{screen}"
    );
    assert!(
        screen.contains("client: connection to the tracker lost"),
        "{screen}"
    );
}

/// Item 13: a tracker without a password is not asked about: the client
/// goes straight to the username.
#[test]
fn no_password_question_for_an_open_tracker() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-password"]);
    let known = tracker.dir.join("known_trackers").display().to_string();
    let target = format!("127.0.0.1:{}", tracker.port);
    let term = Tmux::start(
        "classroom-open",
        &wrapped(
            &tracker.dir,
            client_bin(),
            &[
                &target,
                "--fingerprint",
                &tracker.fingerprint,
                "--known-trackers",
                &known,
            ],
        ),
        &[],
        &["CONFAB_PASSWORD"],
    );
    let screen = term.wait_screen("Username: ");
    assert!(!screen.contains("assword"), "{screen}");
    term.type_line("dora");
    term.wait_screen("#general --> you joined");
}

/// Item 13, the fallback: a tracker that does not say it needs a password
/// (an older one, or another IRC server) and refuses the login without
/// one: the client asks for the password then, and logs in.
#[test]
fn a_tracker_that_does_not_say_gets_the_password_after_refusing() {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // An IRC server of its own: refuses a login without PASS, welcomes one
    // with it. Reports each connection's lines.
    let server = std::thread::spawn(move || {
        let mut sessions = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().expect("accept");
            let mut out = stream.try_clone().expect("clone");
            let mut seen = Vec::new();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                seen.push(line.clone());
                let reply = match line.split(' ').next().unwrap_or("") {
                    "CAP" if line.starts_with("CAP LS") => ":old CAP * LS :\r\n".to_string(),
                    "USER" if seen.iter().any(|l| l.starts_with("PASS ")) => {
                        ":old 001 zed :Welcome, zed\r\n".to_string()
                    }
                    "USER" => ":old 464 * :Password incorrect\r\nERROR :Closing link: 127.0.0.1 (Bad password)\r\n".to_string(),
                    _ => String::new(),
                };
                let _ = out.write_all(reply.as_bytes());
                // After a welcome the link stays open until the client goes.
                if reply.contains("ERROR") {
                    break;
                }
            }
            sessions.push(seen);
        }
        sessions
    });
    let known = dir.path().join("known").display().to_string();
    let term = Tmux::start(
        "classroom-old",
        &wrapped(
            dir.path(),
            client_bin(),
            &[
                &format!("127.0.0.1:{port}"),
                "--no-tls",
                "--user",
                "zed",
                "--known-trackers",
                &known,
            ],
        ),
        &[],
        &["CONFAB_PASSWORD"],
    );
    term.wait_screen("The tracker needs a password. Password: ");
    term.type_line("sesame");
    term.wait_screen("Welcome, zed");
    drop(term);
    let sessions = server.join().expect("server");
    assert!(
        sessions[0].iter().any(|l| l == "NICK zed")
            && !sessions[0].iter().any(|l| l.starts_with("PASS")),
        "first a login without a password: {sessions:?}"
    );
    assert!(
        sessions[1].iter().any(|l| l == "PASS sesame"),
        "{sessions:?}"
    );
}

/// Item 15: others' status changes stay out of the conversation (the side
/// list shows them); Alt+S shows them, folded into one line.
#[test]
fn status_changes_do_not_flood_the_conversation() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--no-tls", "--idle-timeout", "3"]);
    let mut students: Vec<Raw> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|n| Raw::register(tracker.port, n))
        .collect();
    let alice = full_screen("status", &tracker, "alice", &["--no-tls"]);
    let all = |s: &str, status: &str| {
        ["s1", "s2", "s3", "s4", "alice"]
            .iter()
            .all(|n| side_status(s, n).as_deref() == Some(status))
    };
    // Everyone goes INACTIVE: the side list says so, the conversation not.
    let screen = crate::tmux::wait_until(&alice, "everyone INACTIVE in the side list", |s| {
        all(s, "INACTIVE")
    });
    let said: Vec<&str> = screen
        .lines()
        .map(|l| l.split('│').next().unwrap_or("").trim_end())
        .filter(|l| l.contains("now INACTIVE"))
        .collect();
    // Only her own, which is about her, not a flood.
    assert_eq!(said.len(), 1, "{screen}");
    assert!(
        said[0].ends_with("--- you are now INACTIVE: idle for 3 s"),
        "{screen}"
    );

    alice.press("M-s");
    alice.wait_screen("status changes are shown in the conversation");
    // They come back (AWAY with no text: active again).
    for s in &mut students {
        s.send("AWAY");
    }
    let screen = crate::tmux::wait_until(&alice, "the students ACTIVE", |s| {
        ["s1", "s2", "s3", "s4"]
            .iter()
            .all(|n| side_status(s, n).as_deref() == Some("ACTIVE"))
            && s.contains("and 2 others are now ACTIVE")
    });
    let conversation = pane(&screen);
    assert_eq!(
        conversation.matches("now ACTIVE").count(),
        1,
        "one line for all four:\n{screen}"
    );
}
