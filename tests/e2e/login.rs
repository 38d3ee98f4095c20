//! The login gate under wrong passwords: a class behind one address gets
//! in whatever one of them types, and guessing stays bounded however the
//! guesses are sent (one after another or all at once).
//!
//! The tracker's allowance (built in): 10 wrong passwords per address at
//! once, then one more every 6 s; 60 tracker-wide.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Wrong passwords an address may have checked at once.
const BURST: usize = 10;
/// And then one every this long.
const REFILL: Duration = Duration::from_secs(6);

/// Wrong guesses an address may have had checked in `elapsed`: the burst,
/// plus what was earned back meanwhile.
fn allowance(elapsed: Duration) -> usize {
    BURST + (elapsed.as_millis() / REFILL.as_millis()) as usize
}

/// A class of 30 behind one address (127.0.0.1): one of them runs the real
/// client with a wrong password over and over, as fast as the tracker
/// answers, and has spent the address's allowance before the others
/// start. The other 29 (real clients, right password) all get in, and the
/// typo-er's wrong guesses stay within the allowance. On the old lockout
/// the 29 were refused with "Too many wrong passwords from your address".
#[test]
fn a_class_behind_one_address_gets_in_while_one_keeps_mistyping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(dir.path(), &["--stay"]);
    let wrong = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let typo_er = {
        let (wrong, attempts, stop) = (wrong.clone(), attempts.clone(), stop.clone());
        let port = tracker.port;
        let fingerprint = tracker.fingerprint.clone();
        let known = tracker.dir.join("known_trackers");
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut other_outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let mut attempt = std::process::Command::new(client_bin());
                attempt
                    .arg(format!("127.0.0.1:{port}"))
                    .args(["--plain", "--user", "typoer", "--fingerprint", &fingerprint])
                    .arg("--known-trackers")
                    .arg(&known)
                    .env("CONFAB_PASSWORD", "correct hrose")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let mut c = ClientProc::spawn(attempt, "typoer");
                // A login that waits for its turn ends by the tracker's
                // registration limit (30 s) at the latest.
                let status = wait_exit(&mut c.child, Duration::from_secs(45));
                let said = c.err.drain().join("\n");
                if status.code() == Some(3) && said.contains("client: wrong password") {
                    wrong.fetch_add(1, Ordering::Relaxed);
                } else {
                    other_outcomes.push(format!("{status}: {said}"));
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
            (started.elapsed(), other_outcomes)
        })
    };
    // The typo-er spends the address's allowance first.
    crate::tmux::poll(
        "the typo-er's first 10 attempts",
        || (attempts.load(Ordering::Relaxed) >= BURST).then_some(()),
        || format!("{} wrong so far", wrong.load(Ordering::Relaxed)),
    );
    let class_started = Instant::now();
    let names: Vec<String> = (1..=29).map(|i| format!("pupil{i}")).collect();
    let mut class: Vec<ClientProc> = names
        .iter()
        .map(|name| {
            ClientProc::spawn(
                client_command(
                    &tracker,
                    &["--user", name, "--fingerprint", &tracker.fingerprint],
                ),
                name,
            )
        })
        .collect();
    // All 29 joined, as chat.log records. Their logins wait for the
    // allowance, up to the registration limit (30 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    let class_took = loop {
        let events = tracker.log_events();
        let joined = names
            .iter()
            .filter(|n| events.contains(&format!("join #general {n} (127.0.0.1)")))
            .count();
        if joined == names.len() {
            break class_started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{joined} of 29 joined; chat.log:\n{}\ntracker:\n{}",
            tracker.log(),
            tracker.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for pupil in &mut class {
        pupil.expect("#general --> you joined");
    }
    stop.store(true, Ordering::Relaxed);
    let (guessing_for, other_outcomes) = typo_er.join().expect("typo-er thread");
    let wrong = wrong.load(Ordering::Relaxed);
    assert!(
        other_outcomes.is_empty(),
        "every typo-er attempt ends as a wrong password: {other_outcomes:?}"
    );
    // Bounded: no more wrong guesses were checked than the allowance for
    // the time the typo-er kept at it.
    assert!(
        (BURST..=allowance(guessing_for)).contains(&wrong),
        "{wrong} wrong passwords checked in {guessing_for:?}"
    );
    tracker.wait_stderr("login waits about");
    let events = tracker.log_events();
    assert!(!events.iter().any(|e| e.contains("typoer")), "{events:?}");
    // Who had to wait was told why (on stderr, before the chat starts).
    let told = class
        .iter_mut()
        .map(|p| {
            let _ = p.child.kill();
            p.err.drain().iter().any(|l| {
                l.starts_with("Too many wrong passwords from your address in the last minute: your password will be checked in about ")
            })
        })
        .filter(|&told| told)
        .count();
    eprintln!(
        "{wrong} wrong passwords checked in {guessing_for:?}; all 29 pupils in after {class_took:?}, {told} of them told to wait"
    );
}

/// 50 connections from one address send a wrong password at the same
/// moment: only the allowance (10) is checked, the same as 50 one after
/// another would get; the others wait their turn, are told so, and are
/// closed at the end of their time to log in. Then the right password
/// from that address still gets in, as soon as one guess is earned back.
/// On the old lockout all 50 were checked (`464` for each).
#[cfg(target_os = "linux")] // other 127.x addresses: Linux only
#[test]
fn fifty_parallel_wrong_guesses_get_only_the_allowance_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(
        dir.path(),
        &["--no-tls", "--stay", "--register-timeout", "5"],
    );
    let from = "127.0.0.7";
    let mut guessers: Vec<Raw> = (0..50)
        .map(|_| Raw::connect_from(from, tracker.port))
        .collect();
    // Everything but the last line first, so the 50 checks ask at once.
    for (i, g) in guessers.iter_mut().enumerate() {
        g.send(&format!("PASS :guess {i}"));
        g.send(&format!("NICK g{i}"));
    }
    let burst_started = Instant::now();
    for (i, g) in guessers.iter_mut().enumerate() {
        g.send(&format!("USER g{i} 0 * :g{i}"));
    }
    let mut checked = 0;
    let mut waited = 0;
    for (i, g) in guessers.iter_mut().enumerate() {
        let end = g.expect("ERROR");
        if g.lines.seen.iter().any(|l| l.contains(" 464 ")) {
            checked += 1;
            assert_eq!(end, format!("ERROR :Closing link: {from} (Bad password)"));
        } else {
            waited += 1;
            let notice = g
                .lines
                .seen
                .iter()
                .find(|l| l.contains(" NOTICE "))
                .unwrap_or_else(|| panic!("guesser {i} was not told: {:?}", g.lines.seen));
            assert!(
                notice.starts_with(&format!(
                    ":confab NOTICE g{i} :Too many wrong passwords from your address in the last minute: your password will be checked in about "
                )),
                "{notice}"
            );
            assert!(
                end.starts_with(&format!(
                    "ERROR :Closing link: {from} (Registration timed out waiting for the password check: too many wrong passwords from your address; try again in "
                )),
                "{end}"
            );
        }
    }
    let burst_took = burst_started.elapsed();
    assert_eq!(
        (checked, waited),
        (BURST, 50 - BURST),
        "checked within {burst_took:?}"
    );
    drop(guessers);
    // The right password from the same address is never refused: it waits
    // for the next guess earned back (6 s after the burst), then gets in.
    let mut right = Raw::connect_from(from, tracker.port);
    right.send(&format!("PASS :{PASSWORD}"));
    right.send("NICK pupil");
    right.send("USER pupil 0 * :pupil");
    right.expect(" 366 ");
    assert!(
        right
            .lines
            .seen
            .iter()
            .any(|l| l.contains(" NOTICE pupil :Too many wrong passwords")),
        "{:?}",
        right.lines.seen
    );
    assert!(!right.lines.seen.iter().any(|l| l.contains(" 464 ")));
    tracker.wait_stderr("login timed out waiting for the password check");
    assert_eq!(
        tracker.log_events()[1..],
        ["join #general pupil (127.0.0.7)".to_string()]
    );
}
