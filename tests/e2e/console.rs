//! The operator's console: on the tracker's own terminal (a real pty via
//! tmux) and through `tracker console` attached to its socket. Real
//! clients see what the console does; chat.log records it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::terminal::{screen_value, wrapped};
use crate::tmux::{Tmux, have, wait_until};

/// A tracker started at a terminal (password from the environment, so no
/// question), with its console open.
struct AtTerminal {
    term: Tmux,
    port: u16,
    fingerprint: String,
}

fn tracker_at_terminal(session: &str, d: &Path) -> AtTerminal {
    let logs = d.join("logs").display().to_string();
    let data = d.join("data").display().to_string();
    let term = Tmux::start(
        session,
        &wrapped(
            d,
            tracker_bin(),
            &[
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--log-dir",
                &logs,
                "--data-dir",
                &data,
                "--stay",
            ],
        ),
        &[
            ("XDG_CONFIG_HOME", d),
            ("CONFAB_PASSWORD", Path::new(PASSWORD)),
        ],
        &[],
    );
    let screen = term.wait_screen("tracker> ");
    assert!(
        screen.contains("console: type help for the commands; Ctrl+C or stop stops the tracker"),
        "{screen}"
    );
    AtTerminal {
        port: screen_value(&screen, "listening on 127.0.0.1:")
            .parse()
            .expect("port"),
        fingerprint: screen_value(&screen, "fingerprint ").to_string(),
        term,
    }
}

/// `client --plain` as `name`, in #general.
fn join(d: &Path, t: &AtTerminal, name: &str) -> ClientProc {
    let mut cmd = Command::new(client_bin());
    cmd.arg(format!("127.0.0.1:{}", t.port))
        .args(["--plain", "--user", name, "--fingerprint", &t.fingerprint])
        .arg("--known-trackers")
        .arg(d.join(format!("{name}_known")))
        .env("CONFAB_PASSWORD", PASSWORD)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = ClientProc::spawn(cmd, name);
    c.expect("#general --> you joined");
    c
}

/// A diagnostic line (tracing's timestamp first), not console output.
fn is_diagnostic(line: &str) -> bool {
    line.len() > 20 && line.starts_with("20") && line.as_bytes()[10] == b'T'
}

/// Runs `line` on the console in `term` (screen cleared first) and returns
/// what it printed, diagnostics left out.
fn console(term: &Tmux, line: &str) -> Vec<String> {
    term.press("C-l");
    wait_until(term, "a cleared console", |s| {
        s.lines().next() == Some("tracker>")
    });
    term.type_line(line);
    let typed = format!("tracker> {line}");
    let screen = wait_until(term, &format!("the output of {line:?}"), |s| {
        let lines: Vec<&str> = s.lines().filter(|l| !l.is_empty()).collect();
        lines.first() == Some(&typed.as_str())
            && lines.len() > 1
            && lines.last() == Some(&"tracker>")
    });
    let lines: Vec<String> = screen
        .lines()
        .filter(|l| !l.is_empty() && !is_diagnostic(l))
        .map(str::to_string)
        .collect();
    lines[1..lines.len() - 1].to_vec()
}

/// The rows of a table whose first column is `first`, split into columns.
fn row<'a>(lines: &'a [String], first: &str) -> Vec<&'a str> {
    lines
        .iter()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .find(|cols| cols.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row for {first:?} in {lines:#?}"))
}

fn is_clock(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 8 && b[2] == b':' && b[5] == b':'
}

/// Every command and seed alias at the tracker's own terminal, with real
/// clients: what they see of kick, announce and close, what chat.log
/// keeps, a diagnostic arriving mid-command, and `stop`.
#[test]
fn every_command_at_the_tracker_terminal() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let t = tracker_at_terminal("console-terminal", d);
    let term = &t.term;
    let mut alice = join(d, &t, "alice");
    let mut bob = join(d, &t, "bob");
    let mut carol = join(d, &t, "carol");
    alice.send("/join #maths");
    alice.expect("#maths --> you joined");
    bob.send("/join #maths");
    alice.expect("#maths --> bob joined");
    alice.send("/topic fractions");
    bob.expect("#maths *** alice set the topic: fractions");
    alice.send("/msg bob hi");
    bob.expect("[DM alice] <alice> hi");
    bob.send("@alice hello");
    alice.expect("[DM bob] <bob> hello");
    bob.send("/status busy lunch");
    alice.expect_matching("bob busy", |l| l.contains("bob is now BUSY"));

    // help, and a mistyped command.
    let help = console(term, "help");
    assert_eq!(help[0], "COMMAND                ALIASES");
    for l in [
        "users                  lu       everyone seen this run, online or not: when they came and left",
        "online                 lcu      members connected now: address, status, idle time, rooms",
        "sessions               ls       direct-message conversations and direct sessions so far: who, how many, when",
        "rooms                  lr       rooms with founder, member count, modes, topic",
        "room <room>            lru      a room's members and their roles",
        "kick <user> [reason]            disconnect a user; everyone sees why; recorded in chat.log",
        "stop                   x        stop the tracker cleanly, as Ctrl+C does",
    ] {
        assert!(help.contains(&l.to_string()), "{l:?} not in {help:#?}");
    }
    assert_eq!(
        console(term, "romos"),
        ["unknown command \"romos\"; did you mean \"rooms\"?"]
    );
    assert_eq!(console(term, "kick"), ["usage: kick <user> [reason]"]);

    // online / lcu: the same table.
    for name in ["online", "lcu"] {
        let out = console(term, name);
        assert_eq!(
            out[0], "USER   ADDRESS    STATUS        IDLE  ROOMS",
            "{name}"
        );
        let a = row(&out, "alice");
        assert_eq!(
            (a[1], a[2], a[4]),
            ("127.0.0.1", "ACTIVE", "#general #maths")
        );
        assert!(a[3].ends_with('s'), "idle {a:?}");
        let b = row(&out, "bob");
        assert_eq!((b[2], b[4]), ("BUSY (lunch)", "#general #maths"));
        assert_eq!(row(&out, "carol")[4], "#general");
        assert_eq!(out.last().map(String::as_str), Some("3 online"));
    }

    // sessions / ls.
    for name in ["sessions", "ls"] {
        let out = console(term, name);
        assert_eq!(out[0], "BETWEEN        MESSAGES  FIRST     LAST", "{name}");
        let r = row(&out, "alice and bob");
        assert_eq!(r[1], "2");
        assert!(is_clock(r[2]) && is_clock(r[3]), "{r:?}");
        assert_eq!(out.len(), 2);
    }

    // rooms / lr.
    for name in ["rooms", "lr"] {
        let out = console(term, name);
        assert_eq!(out[0], "ROOM      FOUNDER  MEMBERS  MODES  TOPIC", "{name}");
        assert_eq!(
            out[1],
            "#general  -        3        +nt    Group room: everyone is here. Everything said o…"
        );
        assert_eq!(out[2], "#maths    alice    2        +nt    fractions");
    }

    // room / lru.
    for name in ["room", "lru"] {
        assert_eq!(
            console(term, &format!("{name} #MATHS")),
            [
                "#maths: 2 member(s), modes +nt, founder alice",
                "topic: fractions",
                "USER   ROLES       STATUS",
                "alice  founder,op  ACTIVE",
                "bob    -           BUSY",
            ],
            "{name}"
        );
    }
    assert_eq!(console(term, "lru #nope"), ["refused: no room named #nope"]);

    // announce: every member sees it; chat.log records it.
    assert_eq!(
        console(term, "announce Break in 5 minutes"),
        ["announced to 3 member(s)"]
    );
    for c in [&mut alice, &mut bob, &mut carol] {
        c.expect("*** Break in 5 minutes");
    }

    // close: the members are told and removed, as by an operator's CLOSE.
    assert_eq!(
        console(term, "close #maths lesson over"),
        ["#maths is closed; its 2 member(s) were told and removed"]
    );
    alice.expect("#maths <-- confab closed #maths: lesson over");
    bob.expect("#maths <-- confab closed #maths: lesson over");
    assert_eq!(
        console(term, "close #general"),
        ["refused: #general is the group room everyone is in; it cannot be closed"]
    );

    // A diagnostic line (someone joining) arrives while a command is half
    // typed: it is printed above, the half-typed line stays, and completes.
    term.press("C-l");
    wait_until(term, "a cleared console", |s| {
        s.lines().next() == Some("tracker>")
    });
    term.type_text("kick ca");
    term.wait_screen("tracker> kick ca");
    let _dave = join(d, &t, "dave");
    let screen = term.wait_screen("nick=dave");
    let lines: Vec<&str> = screen.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        is_diagnostic(lines[0]) && lines[0].contains("registered"),
        "{screen}"
    );
    assert_eq!(lines.last(), Some(&"tracker> kick ca"), "{screen}");
    term.press("Tab");
    term.wait_screen("tracker> kick carol");
    term.type_line(" being rude");
    term.wait_screen("carol was disconnected");
    carol.expect("*** disconnected by the tracker: Killed by confab (being rude)");
    alice.expect("<-- carol left (Killed by confab (being rude))");
    bob.expect("<-- carol left (Killed by confab (being rude))");

    // users / lu: everyone seen, carol with when and why she left.
    for name in ["users", "lu"] {
        let out = console(term, name);
        assert_eq!(
            out[0], "USER   ADDRESS    CAME      LEFT      REASON",
            "{name}"
        );
        let c = row(&out, "carol");
        assert_eq!((c[1], c[4]), ("127.0.0.1", "Killed by confab (being rude)"));
        assert!(is_clock(c[2]) && is_clock(c[3]), "{c:?}");
        let a = row(&out, "alice");
        assert_eq!(a[3], "online");
        assert_eq!(out.last().map(String::as_str), Some("4 seen, 3 online"));
    }
    // History: Up brings back the last command.
    term.press("C-l");
    term.press("Up");
    term.wait_screen("tracker> lu");
    term.press("C-u");

    // stop / x: the same clean stop as Ctrl+C.
    term.type_line("x");
    term.wait_screen("stopping the tracker");
    alice.expect("*** disconnected by the tracker: tracker shutting down");
    let screen = term.wait_screen("TTY=");
    assert_eq!(screen_value(&screen, "EXIT="), "0");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo");
    assert!(screen.contains("tracker stopped"), "{screen}");
    let log = std::fs::read_to_string(d.join("logs/chat.log")).expect("chat.log");
    let events: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|p| p.1)
        .collect();
    for e in [
        "announce confab: Break in 5 minutes",
        "close #maths confab (lesson over)",
        "kill confab -> carol (being rude)",
        "leave carol (Killed by confab (being rude))",
    ] {
        assert!(events.contains(&e), "{e:?} not in chat.log:\n{log}");
    }
    assert_eq!(
        events.last(),
        Some(&"stop stopped by the operator (console)"),
        "{log}"
    );
    // The socket went with the tracker.
    assert!(!d.join("data/console.sock").exists());
}

/// Ctrl+C at the console's prompt stops the tracker as Ctrl+C always did,
/// and the terminal is restored.
#[test]
fn ctrl_c_at_the_console_stops_the_tracker() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let t = tracker_at_terminal("console-ctrl-c", d);
    t.term.type_text("half typed");
    t.term.press("C-c");
    let screen = t.term.wait_screen("TTY=");
    assert_eq!(screen_value(&screen, "EXIT="), "0");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo");
    let log = std::fs::read_to_string(d.join("logs/chat.log")).expect("chat.log");
    assert!(
        log.trim_end()
            .ends_with("stop stopped by the operator (SIGINT)"),
        "{log}"
    );
}

/// Waits until a started tracker listens on its console socket (it opens
/// it just after the start-up lines).
fn wait_for_socket(path: &Path) {
    crate::tmux::poll(
        "the console socket",
        || UnixStream::connect(path).ok().map(|_| ()),
        || format!("no socket at {}", path.display()),
    );
}

/// `tracker console` with commands on its standard input (no terminal).
fn attach_piped(data: &Path, input: &str) -> std::process::Output {
    let mut child = Command::new(tracker_bin())
        .arg("--data-dir")
        .arg(data)
        .arg("console")
        .env("XDG_CONFIG_HOME", data)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tracker console");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        assert!(Instant::now() < deadline, "tracker console did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tracker without a terminal (a service) is reached with `tracker
/// console`: the same commands, completion and help; several attach at
/// once; detaching leaves it running; `stop` from one stops it.
#[test]
fn tracker_console_attaches_through_the_socket() {
    if !have(&["tmux"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut tracker = Tracker::start_in(d, &["--stay"]);
    let data = d.join("data");
    let socket = data.join("console.sock");
    wait_for_socket(&socket);
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let meta = std::fs::metadata(&socket).expect("console.sock");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let mut alice = ClientProc::join(&tracker, "alice");
    alice.send("/join #maths");
    alice.expect("#maths --> you joined");

    // In a terminal: completion, a command, diagnostics above the prompt.
    let attached = Tmux::start(
        "console-attached",
        &wrapped(
            d,
            tracker_bin(),
            &["--data-dir", &data.display().to_string(), "console"],
        ),
        &[("XDG_CONFIG_HOME", d)],
        &[],
    );
    let screen = attached.wait_screen("tracker> ");
    assert!(
        screen.contains(&format!(
            "attached to confab at {}: type help for the commands; Ctrl+D or exit detaches (the tracker keeps running)",
            socket.display()
        )),
        "{screen}"
    );
    attached.type_text("lru #ma");
    attached.press("Tab");
    attached.wait_screen("tracker> lru #maths");
    attached.press("Enter");
    attached.wait_screen("alice  founder,op  ACTIVE");
    // A second console at the same time, without a terminal.
    let out = attach_piped(&data, "lcu\nonlin\n");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "USER   ADDRESS    STATUS  IDLE  ROOMS", "{text}");
    assert!(lines[1].starts_with("alice  127.0.0.1  ACTIVE  "), "{text}");
    assert!(lines[1].ends_with("  #general #maths"), "{text}");
    assert_eq!(lines[2], "1 online");
    assert_eq!(
        lines[3],
        "unknown command \"onlin\"; did you mean \"online\"?"
    );
    // The attached terminal sees the tracker's diagnostics.
    let mut bob = ClientProc::join(&tracker, "bob");
    attached.wait_screen("registered");
    // Detaching (Ctrl+C, then exit in another) leaves the tracker running.
    attached.press("C-c");
    let screen = attached.wait_screen("TTY=");
    assert!(
        screen.contains("detached; the tracker keeps running"),
        "{screen}"
    );
    assert_eq!(screen_value(&screen, "EXIT="), "0");
    assert_eq!(screen_value(&screen, "TTY="), "icanon echo");
    let out = attach_piped(&data, "exit\nusers\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(tracker.is_running());
    alice.send("/msg bob still here");
    bob.expect("[DM alice] <alice> still here");

    // kick from an attached console.
    let out = attach_piped(&data, "kick bob enough\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bob was disconnected\n"
    );
    alice.expect("<-- bob left (Killed by confab (enough))");

    // stop from an attached console stops the tracker.
    let out = attach_piped(&data, "stop\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("stopping the tracker"),
        "{out:?}"
    );
    assert_eq!(wait_exit(&mut tracker.child, WAIT).code(), Some(0));
    assert_eq!(
        tracker.log_events().last().map(String::as_str),
        Some("stop stopped by the operator (tracker console)")
    );
    assert!(!socket.exists(), "the socket is removed at stop");
    let out = attach_piped(&data, "users\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "tracker console: no tracker is running with the console socket {} (is it running? with which --data-dir?)\n",
            socket.display()
        )
    );
}

/// A socket left by a tracker that did not stop cleanly is replaced.
#[test]
fn a_stale_console_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = d.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let stale = std::os::unix::net::UnixListener::bind(data.join("console.sock")).expect("bind");
    drop(stale);
    let tracker = Tracker::start_in(d, &["--stay"]);
    tracker.wait_stderr("replaced a stale console socket");
    let out = attach_piped(&data, "rooms\n");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ROOM      FOUNDER  MEMBERS"),
        "{out:?}"
    );
    tracker.wait_stderr("replaced a stale console socket");
}

/// Another user cannot use the console: the socket's mode keeps them out,
/// and a peer let through the file modes is refused by its uid.
#[test]
fn another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run tracker console as user nobody (setpriv)");
        return;
    }
    if !have(&["setpriv"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tracker = Tracker::start_in(d, &["--stay"]);
    let socket = d.join("data").join("console.sock");
    wait_for_socket(&socket);
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(tracker_bin())
            .arg("console")
            .arg("--socket")
            .arg(&socket)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .expect("setpriv")
    };
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "tracker console: cannot attach to {}: permission denied: only the user running the tracker may use its console\n",
            socket.display()
        )
    );
    // Open the way through the file modes: the tracker still refuses by
    // the peer's uid.
    use std::os::unix::fs::PermissionsExt;
    for p in [d, &d.join("data"), &socket] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tracker console: the tracker refused: only the user running the tracker (uid 0) may use its console; you are uid 65534\n"
    );
    tracker.wait_stderr("console socket: refused uid 65534");
}

/// An attached console that stops reading costs chat nothing: messages
/// still cross at once, another console still answers, and the tracker
/// still stops cleanly.
#[test]
fn a_stuck_attached_console_does_not_delay_chat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Flood control off: what is timed is the tracker, not the rate limit.
    let mut tracker = Tracker::start_in(d, &["--stay", "--flood-rate", "0"]);
    let data = d.join("data");
    wait_for_socket(&data.join("console.sock"));
    let stuck = UnixStream::connect(data.join("console.sock")).expect("connect");
    let mut hello = String::new();
    BufReader::new(stuck.try_clone().expect("clone"))
        .read_line(&mut hello)
        .expect("hello");
    assert_eq!(hello, "confab-console 1 confab\n");
    // Ask for far more than the socket holds, and never read it.
    let mut writer = stuck.try_clone().expect("clone");
    let flood = std::thread::spawn(move || {
        let mut sent = 0usize;
        while sent < 400_000 && writer.write_all(b"run help\n").is_ok() {
            sent += 1;
        }
        sent
    });
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        let start = Instant::now();
        alice.send(&format!("message {i}"));
        bob.expect(&format!("#general <alice> message {i}"));
        slowest = slowest.max(start.elapsed());
    }
    eprintln!("slowest round trip with a stuck console: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a message took {slowest:?} with a stuck console"
    );
    // The stuck console is stuck: its requests are not all read.
    assert!(
        !flood.is_finished(),
        "the stuck console's requests were all read"
    );
    let out = attach_piped(&data, "online\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last(), Some("2 online"), "{text}");
    signal(&tracker.child, "TERM");
    assert_eq!(wait_exit(&mut tracker.child, WAIT).code(), Some(0));
    assert_eq!(
        tracker.log_events().last().map(String::as_str),
        Some("stop stopped by the operator (SIGTERM)")
    );
    let _ = stuck.shutdown(std::net::Shutdown::Both);
    let _ = flood.join();
}
