//! A full-screen client whose terminal disappears without a SIGHUP: its
//! pty master closes (the tmux server is killed) while the client sits in
//! a session of its own, so the kernel's hangup signal goes to the pane's
//! shell, not to it. It must notice the dead terminal, say goodbye and
//! exit, not spin on a terminal that reads nothing for ever.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::tmux::{Tmux, have, poll};

/// Runs `$2...` in a session of its own (`setsid`: no controlling
/// terminal, so no SIGHUP when the terminal goes) on the pane's terminal,
/// writing its pid and then its exit code into the directory `$1`. The
/// shell ignores SIGHUP so it outlives the terminal to write the code.
const WRAPPER: &str = r#"#!/bin/sh
trap '' HUP
out=$1
shift
sh -c 'echo $$ > "$0/client.pid"; exec setsid "$@"' "$out" "$@"
echo $? > "$out/client.exit.part" && mv "$out/client.exit.part" "$out/client.exit"
"#;

/// How long the client may take to leave once its terminal is gone.
const LEAVE_WITHIN: Duration = Duration::from_secs(2);

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// User plus system CPU time of process `pid`, in clock ticks, from
/// `/proc/<pid>/stat` (a spinning client shows hundreds a second).
fn cpu_used(pid: &str) -> String {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return "unknown".into();
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return "unknown".into();
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    format!("{} ticks", fields.iter().sum::<u64>())
}

/// Starts `client` with `args` through [`WRAPPER`] in a terminal of its
/// own; returns the terminal once the screen shows `ready`, and the pid.
fn start_detached(dir: &Path, name: &str, args: &[&str], ready: &str) -> (Tmux, String) {
    let wrapper = dir.join("setsid-wrap.sh");
    std::fs::write(&wrapper, WRAPPER).expect("write wrapper");
    let mut line = format!(
        "sh {} {} {}",
        wrapper.display(),
        dir.display(),
        client_bin()
    );
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let term = Tmux::start(
        name,
        &line,
        &[("CONFAB_PASSWORD", Path::new(PASSWORD))],
        &[],
    );
    term.wait_screen(ready);
    assert_eq!(term.pane_format("#{alternate_on}"), "1", "not full-screen");
    let pid = poll(
        "the client's pid",
        || read_trimmed(&dir.join("client.pid")),
        || term.screen(),
    );
    (term, pid)
}

/// Closes `term`'s terminal and waits for the client `pid` to exit;
/// returns its exit code.
fn close_and_wait_exit(term: &Tmux, dir: &Path, pid: &str) -> String {
    // The pty master closes; nobody sends the client a signal.
    term.close_terminal();
    let gone_at = Instant::now();
    loop {
        if let Some(code) = read_trimmed(&dir.join("client.exit")) {
            eprintln!(
                "client left {:?} after its terminal closed",
                gone_at.elapsed()
            );
            return code;
        }
        assert!(
            gone_at.elapsed() < LEAVE_WITHIN,
            "client {pid} still running {LEAVE_WITHIN:?} after its terminal closed, \
             {} of CPU used so far",
            cpu_used(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_leaves_when_its_terminal_vanishes_without_sighup() {
    if !have(&["tmux", "setsid"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tracker = Tracker::start_in(d, &[]);
    let mut bob = ClientProc::join(&tracker, "bob");
    let known = tracker.dir.join("known_trackers").display().to_string();
    let target = format!("127.0.0.1:{}", tracker.port);
    let args = [
        target.as_str(),
        "--user",
        "alice",
        "--known-trackers",
        &known,
        "--fingerprint",
        &tracker.fingerprint,
    ];
    let (alice, pid) = start_detached(d, "tty-gone-alice", &args, "#general --> you joined");
    bob.expect("#general --> alice joined");

    assert_eq!(close_and_wait_exit(&alice, d, &pid), "0", "a leave exits 0");
    bob.expect("<-- alice left (Quit: Leaving)");
    tracker.wait_log("leave alice (Quit: Leaving)");
}

#[test]
fn monitor_leaves_when_its_terminal_vanishes_without_sighup() {
    if !have(&["tmux", "setsid"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let tracker = Tracker::start_in(d, &[]);
    let mut bob = ClientProc::join(&tracker, "bob");
    let servers = d.join("servers.txt");
    std::fs::write(&servers, format!("127.0.0.1:{} lab\n", tracker.port)).expect("servers");
    // The monitor takes passwords from the file beside its list.
    let passwords = d.join("servers.txt.passwords");
    std::fs::write(&passwords, format!("lab {PASSWORD}\n")).expect("passwords");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let known = d.join("monitor_known");
    std::fs::write(
        &known,
        format!("127.0.0.1:{} {}\n", tracker.port, tracker.fingerprint),
    )
    .expect("known");
    let servers = servers.display().to_string();
    let known = known.display().to_string();
    let args = [
        "--monitor",
        &servers,
        "--user",
        "mon",
        "--known-trackers",
        &known,
    ];
    let (mon, pid) = start_detached(d, "tty-gone-mon", &args, "lab up");
    bob.expect("#general --> mon joined");

    assert_eq!(close_and_wait_exit(&mon, d, &pid), "0", "a leave exits 0");
    bob.expect("<-- mon left (Quit: Leaving)");
    tracker.wait_log("leave mon (Quit: Leaving)");
}
