//! Running a tracker for a class: when an empty tracker stops, what
//! leave reasons say, one tracker per chat.log, where its identity lives,
//! and who may read its files.

use std::time::{Duration, Instant};

use crate::harness::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The line after the join hints: when the tracker stops by itself.
fn exit_rule(tracker: &mut Tracker) -> String {
    tracker
        .stdout
        .wait_for("the exit rule", |l| !l.starts_with("clients join with: "))
}

/// The first student leaves; the next one, arriving within the grace
/// period, finds the tracker still there, and it stops only once the room
/// has stayed empty for the whole grace period.
#[test]
fn empty_tracker_waits_for_the_next_arrival() {
    let dir = tempdir();
    let grace = Duration::from_secs(4);
    let mut tracker = Tracker::start_in(dir.path(), &["--exit-grace", "4"]);
    assert_eq!(
        exit_rule(&mut tracker),
        "stops 4 s after the last member leaves unless someone joins (--exit-grace); --stay keeps it running"
    );
    let mut alice = ClientProc::join(&tracker, "alice");
    alice.send("hi");
    alice.expect("#general <alice> hi");
    alice.send("/quit bye");
    assert_eq!(alice.wait_exit().code(), Some(0));
    let alice_left = Instant::now();
    tracker.wait_stderr(
        "the last member left; the tracker stops in 4 s unless someone joins (--stay keeps it running)",
    );
    let mut bob = ClientProc::join(&tracker, "bob");
    tracker.wait_stderr("someone joined: the tracker keeps running");
    // Past the moment alice's leaving would have stopped it, bob still chats.
    std::thread::sleep(
        (alice_left + grace + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    );
    assert!(tracker.is_running(), "{}", tracker.stderr_text());
    bob.send("still here");
    bob.expect("#general <bob> still here");
    // Timed from before the exit: the tracker sees bob leave before his
    // client process has ended, so timing from its end came out a few
    // milliseconds short of the grace under CI's load (3.998 s).
    let bob_leaving = Instant::now();
    bob.send("/exit");
    assert_eq!(bob.wait_exit().code(), Some(0));
    let status = wait_exit(&mut tracker.child, WAIT);
    assert_eq!(status.code(), Some(0), "{}", tracker.stderr_text());
    let waited = bob_leaving.elapsed();
    assert!(
        waited >= grace,
        "stopped {waited:?} after the last member left"
    );
    tracker.wait_stderr("nobody joined within 4 s: stopping");
    assert_eq!(
        tracker.log_events()[1..],
        [
            "join #general alice (127.0.0.1)",
            "msg #general <alice> hi",
            "leave alice (Quit: bye)",
            "join #general bob (127.0.0.1)",
            "msg #general <bob> still here",
            "leave bob (Quit: Leaving)",
            "stop last member left",
        ]
    );
}

/// A short grace: the tracker exits 0 soon after the last member leaves,
/// saying so; with --stay the start-up output says it stays.
#[test]
fn tiny_grace_exits_after_the_last_member_and_stay_is_announced() {
    let dir = tempdir();
    let mut tracker = Tracker::start_in(dir.path(), &["--exit-grace", "0.2"]);
    assert_eq!(
        exit_rule(&mut tracker),
        "stops 0.2 s after the last member leaves unless someone joins (--exit-grace); --stay keeps it running"
    );
    let mut alice = ClientProc::join(&tracker, "alice");
    alice.send("/exit");
    assert_eq!(alice.wait_exit().code(), Some(0));
    assert_eq!(wait_exit(&mut tracker.child, WAIT).code(), Some(0));
    tracker.wait_stderr("nobody joined within 0.2 s: stopping");
    assert_eq!(
        tracker.log_events()[1..],
        [
            "join #general alice (127.0.0.1)",
            "leave alice (Quit: Leaving)",
            "stop last member left",
        ]
    );

    let dir = tempdir();
    let mut tracker = Tracker::start_in(dir.path(), &["--exit-grace", "0"]);
    assert_eq!(
        exit_rule(&mut tracker),
        "stops as soon as the last member leaves; --stay keeps it running"
    );
    let dir = tempdir();
    let mut tracker = Tracker::start_in(dir.path(), &["--stay"]);
    assert_eq!(
        exit_rule(&mut tracker),
        "stays running when everyone has left (--stay); stop it with Ctrl+C"
    );

    // The default, as --print-config and --help show it; a bad value is
    // refused by name.
    let out = std::process::Command::new(tracker_bin())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .arg("--print-config")
        .output()
        .expect("run tracker");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\nexit-grace = 60.0\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = std::process::Command::new(tracker_bin())
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["--exit-grace=-1", "--print-config"])
        .output()
        .expect("run tracker");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tracker: exit-grace must be 0 (stop at once) or a positive number of seconds\n"
    );
}

/// A client killed with -9 over TLS: the others and chat.log get a plain
/// reason, the library's words go only to the diagnostics.
#[test]
fn killed_client_leaves_with_a_plain_reason() {
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.expect("#general --> bob joined");
    signal(&bob.child, "KILL");
    bob.wait_exit();
    let seen = alice.expect_matching("bob's leave", |l| l.starts_with("<-- bob left"));
    let reason = body(&seen)
        .strip_prefix("<-- bob left (")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_default()
        .to_string();
    assert!(
        reason == "Connection closed" || reason == "Connection reset",
        "{seen}"
    );
    tracker.wait_log(&format!("leave bob ({reason})"));
    let log = tracker.log();
    assert!(!log.contains("docs.rs") && !log.contains("error"), "{log}");
    // The detail is for the operator.
    tracker.wait_stderr(if reason == "Connection closed" {
        "read error: peer closed connection without sending TLS close_notify"
    } else {
        "read error: Connection reset by peer"
    });
}

/// A second tracker on the same chat.log refuses to start, naming the
/// first, and leaves the log alone; after a kill -9 of the first, the next
/// one starts and records the crash.
#[test]
fn one_tracker_per_chat_log() {
    let dir = tempdir();
    let mut first = Tracker::start_in(dir.path(), &["--stay"]);
    first.wait_log(&format!(
        "start tracker listening on 127.0.0.1:{} (TLS, password required)",
        first.port
    ));
    let before = first.log();
    let mut out = std::process::Command::new(tracker_bin())
        .args(["--bind", "127.0.0.1", "--port", "0", "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--data-dir")
        .arg(dir.path().join("other-data"))
        .env("CONFAB_PASSWORD", PASSWORD)
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run a second tracker");
    let mut second_out = Lines::spawn(out.stdout.take().expect("stdout"));
    let mut second_err = Lines::spawn(out.stderr.take().expect("stderr"));
    assert_eq!(wait_exit(&mut out, WAIT).code(), Some(1));
    assert_eq!(second_out.drain(), [] as [String; 0]);
    assert_eq!(
        second_err.drain().join("\n") + "\n",
        format!(
            "tracker: another tracker (pid {}, listening on 127.0.0.1:{}) is using {}; stop it or use --log-dir\n",
            first.child.id(),
            first.port,
            first.log_path().display()
        )
    );
    assert_eq!(first.log(), before, "the second tracker wrote to chat.log");
    assert!(first.is_running());

    signal(&first.child, "KILL");
    wait_exit(&mut first.child, WAIT);
    let second = Tracker::start_in(dir.path(), &["--stay"]);
    second.wait_log(&format!(
        "start tracker listening on 127.0.0.1:{} (TLS, password required)",
        second.port
    ));
    let events = second.log_events();
    assert_eq!(
        events[1..],
        [
            "restart previous run ended without a stop line (crash or kill); appending".to_string(),
            format!(
                "start tracker listening on 127.0.0.1:{} (TLS, password required)",
                second.port
            ),
        ]
    );
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Under the usual umask (022) the tracker's folders are 0700 and its
/// files 0600; a log left readable by others is reported once, with the fix.
#[cfg(unix)]
#[test]
fn chat_log_and_folders_are_private() {
    let dir = tempdir();
    let tracker = Tracker::start_wrapped(dir.path(), &["--stay"], "umask 022");
    let logs = dir.path().join("logs");
    let data = dir.path().join("data");
    tracker.wait_log(&format!(
        "start tracker listening on 127.0.0.1:{} (TLS, password required)",
        tracker.port
    ));
    assert_eq!(mode(&logs), 0o700);
    assert_eq!(mode(&logs.join("chat.log")), 0o600);
    assert_eq!(mode(&logs.join("chat.log.lock")), 0o600);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("tracker-key.pem")), 0o600);
    assert!(
        !tracker.stderr_text().contains("open to other users"),
        "{}",
        tracker.stderr_text()
    );
    drop(tracker);

    // What an older tracker left: a 0755 folder and a 0644 log.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        logs.join("chat.log"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let tracker = Tracker::start_wrapped(dir.path(), &["--stay"], "umask 022");
    let log = logs.join("chat.log");
    tracker.wait_stderr(&format!(
        "{} (file, mode 0644) is open to other users of this machine; to fix: chmod 600 {}",
        log.display(),
        log.display()
    ));
    tracker.wait_stderr(&format!(
        "{} (folder, mode 0755) is open to other users of this machine; to fix: chmod 700 {}",
        logs.display(),
        logs.display()
    ));
    let text = tracker.stderr_text();
    assert_eq!(text.matches("open to other users").count(), 2, "{text}");
    // Reported, not changed behind the operator's back.
    assert_eq!(mode(&log), 0o644);
}

/// Starts a tracker the way a person does: from `cwd`, with no --log-dir
/// or --data-dir, `home` as the home folder and `env` added.
fn start_from(
    cwd: &std::path::Path,
    home: &std::path::Path,
    env: &[(&str, &std::path::Path)],
) -> Tracker {
    let mut command = std::process::Command::new(tracker_bin());
    command
        .current_dir(cwd)
        .args(["--bind", "127.0.0.1", "--port", "0", "--stay"])
        .env("CONFAB_PASSWORD", PASSWORD)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("STATE_DIRECTORY")
        .env("RUST_LOG", "confab=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().expect("start tracker");
    Tracker::from_child(child, cwd)
}

fn data_dir_line(tracker: &Tracker) -> String {
    tracker
        .stdout
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("data dir "))
        .expect("a data dir line")
        .to_string()
}

/// The tracker's identity lives in the per-user data folder, so it is the
/// same whichever folder the tracker is started from; XDG_DATA_HOME and
/// systemd's STATE_DIRECTORY move it.
#[test]
fn identity_is_the_same_from_any_folder() {
    let dir = tempdir();
    let home = dir.path().join("home");
    let (class_a, class_b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&home, &class_a, &class_b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let per_user = home.join(".local/share/confab");

    let first = start_from(&class_a, &home, &[]);
    assert_eq!(data_dir_line(&first), per_user.display().to_string());
    first.wait_stderr(&format!(
        "created a new TLS certificate in {}",
        per_user.display()
    ));
    assert!(per_user.join("tracker-key.pem").exists());
    assert!(
        !class_a.join("data").exists(),
        "a data folder in the start folder"
    );
    let fingerprint = first.fingerprint.clone();
    drop(first);

    let second = start_from(&class_b, &home, &[]);
    assert_eq!(second.fingerprint, fingerprint);
    assert_eq!(data_dir_line(&second), per_user.display().to_string());
    // A client that trusted the first start connects without a question.
    let mut alice = ClientProc::spawn(
        client_command(&second, &["--user", "alice", "--fingerprint", &fingerprint]),
        "alice",
    );
    alice.expect("#general --> you joined");
    assert!(
        !second.stderr_text().contains("TLS certificate"),
        "{}",
        second.stderr_text()
    );
    drop(alice);
    drop(second);

    let xdg = dir.path().join("xdg-data");
    let moved = start_from(&class_b, &home, &[("XDG_DATA_HOME", &xdg)]);
    assert_eq!(
        data_dir_line(&moved),
        xdg.join("confab").display().to_string()
    );
    assert_ne!(moved.fingerprint, fingerprint);
    drop(moved);
    let state = dir.path().join("state");
    let service = start_from(&class_b, &home, &[("STATE_DIRECTORY", &state)]);
    assert_eq!(data_dir_line(&service), state.display().to_string());
    assert!(state.join("tracker-cert.pem").exists());
}

/// Upgrading: a certificate an older version left in ./data is carried
/// over to the per-user folder (same fingerprint, old files kept); a
/// different one found later is reported, not used.
#[test]
fn certificate_in_the_start_folder_is_carried_over() {
    let dir = tempdir();
    let home = dir.path().join("home");
    let (class_a, class_b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&home, &class_a, &class_b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let per_user = home.join(".local/share/confab");
    // What older versions did: the identity in ./data of the start folder.
    let old = Tracker::start_in(&class_a, &["--stay"]);
    let old_fingerprint = old.fingerprint.clone();
    drop(old);
    let other = Tracker::start_in(&class_b, &["--stay"]);
    let other_fingerprint = other.fingerprint.clone();
    drop(other);

    let upgraded = start_from(&class_a, &home, &[]);
    assert_eq!(upgraded.fingerprint, old_fingerprint);
    upgraded.wait_stderr(&format!(
        "copied the TLS certificate and key from data to {} (same fingerprint); the tracker now uses {} wherever it is started, and data can be removed",
        per_user.display(),
        per_user.display()
    ));
    assert!(!upgraded.stderr_text().contains("created a new"));
    assert_eq!(
        std::fs::read(class_a.join("data/tracker-key.pem")).unwrap(),
        std::fs::read(per_user.join("tracker-key.pem")).unwrap()
    );
    #[cfg(unix)]
    assert_eq!(mode(&per_user.join("tracker-key.pem")), 0o600);
    drop(upgraded);

    // Again from the same folder: nothing to say.
    let again = start_from(&class_a, &home, &[]);
    assert_eq!(again.fingerprint, old_fingerprint);
    assert!(
        !again.stderr_text().contains("TLS certificate"),
        "{}",
        again.stderr_text()
    );
    drop(again);

    // From a folder holding another certificate: the per-user one is used
    // and the operator is told how to use the other instead.
    let elsewhere = start_from(&class_b, &home, &[]);
    assert_eq!(elsewhere.fingerprint, old_fingerprint);
    elsewhere.wait_stderr(&format!(
        "note: data holds another TLS certificate ({other_fingerprint}), not used: this tracker's is in {}; to use that one, start with --data-dir data",
        per_user.display()
    ));
}

/// --help names every source of the password; a zero that would quietly
/// have become 1 is refused by name, from a flag or the file.
#[test]
fn help_names_the_password_variable_and_zero_timeouts_are_refused() {
    let dir = tempdir();
    let run = |args: &[&str]| {
        std::process::Command::new(tracker_bin())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("CONFAB_PASSWORD", PASSWORD)
            .stdin(std::process::Stdio::null())
            .args(args)
            .output()
            .expect("run tracker")
    };
    for help in ["--help", "-h"] {
        let out = run(&[help]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("CONFAB_PASSWORD"), "{help}:\n{text}");
        assert!(
            text.contains(
                "Seconds without activity before a user becomes INACTIVE, at least 1 [default: 300]"
            ),
            "{help}:\n{text}"
        );
    }
    let refused = |args: &[&str], message: &str| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("tracker: {message}\n"),
            "{args:?}"
        );
    };
    refused(
        &["--idle-timeout", "0", "--print-config"],
        "idle-timeout must be at least 1 second (for no INACTIVE status in practice, give a long time, e.g. 86400)",
    );
    refused(
        &["--ping-interval", "0", "--print-config"],
        "ping-interval must be at least 1 second",
    );
    refused(
        &["--register-timeout", "0", "--print-config"],
        "register-timeout must be at least 1 second",
    );
    refused(
        &["--max-per-address", "0", "--print-config"],
        "max-per-address must be at least 1",
    );
    let file = dir.path().join("tracker.toml");
    std::fs::write(&file, "idle-timeout = 0\n").unwrap();
    refused(
        &["--config", file.to_str().unwrap(), "--print-config"],
        "idle-timeout must be at least 1 second (for no INACTIVE status in practice, give a long time, e.g. 86400)",
    );
}

/// At a terminal, a second tracker on the same chat.log is refused before
/// the operator is asked for a password.
#[test]
fn second_tracker_at_a_terminal_is_refused_before_the_password_question() {
    if !crate::tmux::have(&["tmux"]) {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let first = Tracker::start_in(d, &["--stay"]);
    let logs = d.join("logs").display().to_string();
    let data = d.join("other-data").display().to_string();
    let second = crate::tmux::Tmux::start(
        "second-tracker",
        &crate::terminal::wrapped(
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
            ],
        ),
        &[("XDG_CONFIG_HOME", d)],
        &["CONFAB_PASSWORD"],
    );
    let screen = second.wait_screen("EXIT=");
    assert!(screen.contains("EXIT=1"), "{screen}");
    assert!(!screen.contains("Server password"), "{screen}");
    assert!(
        screen.contains(&format!(
            "tracker: another tracker (pid {}, listening on 127.0.0.1:{})",
            first.child.id(),
            first.port
        )),
        "{screen}"
    );
}
