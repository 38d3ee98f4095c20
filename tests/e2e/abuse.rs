//! The tracker under abuse: password guessing, connection floods, line
//! floods and clients that stop reading. Each case has a clear outcome for
//! the abuser and none for everyone else.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::harness::*;

fn plain_tracker(extra: &[&str]) -> (tempfile::TempDir, Tracker) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--no-tls", "--stay"];
    args.extend_from_slice(extra);
    let t = Tracker::start_in(dir.path(), &args);
    (dir, t)
}

#[cfg(target_os = "linux")]
fn try_login(from: &str, port: u16, password: &str, nick: &str) -> Raw {
    let mut r = Raw::connect_from(from, port);
    r.send(&format!("PASS :{password}"));
    r.send(&format!("NICK {nick}"));
    r.send(&format!("USER {nick} 0 * :{nick}"));
    r
}

/// Ten wrong passwords from one address spend its allowance: the next
/// login from there, even with the right password, is not refused but
/// waits (told why) until a guess is earned back, then gets in. Another
/// address logs in meanwhile without waiting. Refusals and waits go to the
/// diagnostics, not to chat.log.
#[cfg(target_os = "linux")] // other 127.x addresses, prlimit: Linux only
#[test]
fn password_guessing_makes_one_address_wait_and_never_refuses_the_right_password() {
    let (_dir, tracker) = plain_tracker(&[]);
    for i in 0..10 {
        let mut r = try_login("127.0.0.3", tracker.port, "guess", &format!("g{i}"));
        r.expect("464");
        r.expect("ERROR :Closing link: 127.0.0.3 (Bad password)");
    }
    let mut r = try_login("127.0.0.3", tracker.port, PASSWORD, "rightpw");
    let notice = r.expect("NOTICE");
    assert!(
        notice.starts_with(":confab NOTICE rightpw :Too many wrong passwords from your address in the last minute: your password will be checked in about "),
        "{notice}"
    );
    // Another address is not affected.
    let mut other = Raw::register_from("127.0.0.4", tracker.port, "bystander");
    other.send("PRIVMSG #general :fine here");
    tracker.wait_log("msg #general <bystander> fine here");
    r.expect(" 366 ");
    assert!(
        !r.lines
            .seen
            .iter()
            .any(|l| l.contains("464") || l.starts_with("ERROR")),
        "the right password was refused: {:?}\n{}",
        r.lines.seen,
        tracker.stderr_text()
    );
    tracker.wait_stderr("wrong server password");
    tracker.wait_stderr("login waits about");
    tracker.wait_log("join #general rightpw (127.0.0.3)");
    assert_eq!(
        tracker.log_events()[1..],
        [
            "join #general bystander (127.0.0.4)".to_string(),
            "msg #general <bystander> fine here".into(),
            "join #general rightpw (127.0.0.3)".into(),
        ]
    );
}

/// Per-address and total connection limits: the refused client is told why;
/// a freed slot can be used again.
#[cfg(target_os = "linux")] // other 127.x addresses, prlimit: Linux only
#[test]
fn connection_limits_per_address_and_in_all() {
    let (_dir, tracker) = plain_tracker(&["--max-per-address", "2", "--max-connections", "3"]);
    let a1 = Raw::connect_from("127.0.0.5", tracker.port);
    let _a2 = Raw::connect_from("127.0.0.5", tracker.port);
    let mut a3 = Raw::connect_from("127.0.0.5", tracker.port);
    a3.expect("ERROR :Closing link: 127.0.0.5 (Too many connections from your address)");
    let _b1 = Raw::register_from("127.0.0.6", tracker.port, "b1");
    let mut b2 = Raw::connect_from("127.0.0.6", tracker.port);
    b2.expect("ERROR :Closing link: 127.0.0.6 (The tracker is full)");
    // Closing one frees its slot (the tracker notices the close).
    a1.shutdown_write();
    drop(a1);
    let start = Instant::now();
    loop {
        let mut again = Raw::connect_from("127.0.0.5", tracker.port);
        again.send("PING :x");
        let line = again.expect(" ");
        if line.contains("PONG") {
            break;
        }
        assert!(start.elapsed() < WAIT, "slot never freed: {line}");
        std::thread::sleep(Duration::from_millis(20));
    }
    tracker.wait_stderr("connection refused: Too many connections from your address");
}

/// A client sending faster than the flood limit is held back (its lines
/// arrive at the sustained rate, in order, none lost), and one that keeps
/// going is disconnected with "Excess Flood". Meanwhile another member's
/// round trip stays fast.
#[test]
fn floods_are_slowed_then_disconnected_and_others_stay_fast() {
    // 20 lines/s sustained, 10 at once: small numbers keep the test short.
    let (_dir, tracker) = plain_tracker(&["--flood-rate", "20", "--flood-burst", "10"]);
    let mut watcher = Raw::register(tracker.port, "watcher");
    let mut calm = Raw::connect(tracker.port);
    calm.send("CAP REQ :echo-message");
    calm.send(&format!("PASS :{PASSWORD}"));
    calm.send("NICK calm");
    calm.send("USER calm 0 * :calm");
    calm.send("CAP END");
    calm.expect(" 366 ");
    let mut flooder = Raw::register(tracker.port, "flooder");
    watcher.expect(":flooder!flooder@127.0.0.1 JOIN #general");

    // The calm member measures its echo round trip the whole time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_flag = stop.clone();
    let measurer = std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let mut n = 0;
        while !stop_flag.load(std::sync::atomic::Ordering::Relaxed) || n < 5 {
            let sent = Instant::now();
            calm.send(&format!("PRIVMSG #general :rtt {n}"));
            calm.expect(&format!(":rtt {n}"));
            worst = worst.max(sent.elapsed());
            n += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        (worst, n)
    });

    // 30 lines at once: 10 pass, 20 are held and released at 20/s.
    let burst: String = (0..30)
        .map(|i| format!("PRIVMSG #general :slow {i}\r\n"))
        .collect();
    let sent = Instant::now();
    flooder.send_bytes(burst.as_bytes());
    watcher.expect(":slow 9");
    let tenth = sent.elapsed();
    watcher.expect(":slow 29");
    let last = sent.elapsed();
    assert!(
        tenth < Duration::from_millis(500),
        "burst held back: {tenth:?}"
    );
    assert!(
        last >= Duration::from_millis(900),
        "20 held lines at 20/s came in {last:?}"
    );
    let slow: Vec<&String> = watcher
        .lines
        .seen
        .iter()
        .filter(|l| l.contains(":slow "))
        .collect();
    assert_eq!(slow.len(), 30, "held lines lost or doubled: {slow:#?}");
    for (i, l) in slow.iter().enumerate() {
        assert!(
            l.ends_with(&format!(":slow {i}")),
            "out of order: {slow:#?}"
        );
    }

    // 5000 lines at once: disconnected, and the hub never saw the excess.
    let flood: String = (0..5000)
        .map(|i| format!("PRIVMSG #general :flood {i}\r\n"))
        .collect();
    let _ = flooder.send_all_lossy(flood.as_bytes());
    flooder.expect("ERROR :Closing link: 127.0.0.1 (Excess Flood)");
    watcher.expect(":flooder!flooder@127.0.0.1 QUIT :Excess Flood");
    tracker.wait_log("leave flooder (Excess Flood)");
    let flooded = tracker
        .log_events()
        .iter()
        .filter(|e| e.starts_with("msg #general <flooder> flood "))
        .count();
    assert!(flooded <= 10, "{flooded} flood lines got through");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, n) = measurer.join().expect("measurer");
    eprintln!("calm member: worst round trip {worst:?} over {n} messages during the flood");
    assert!(
        worst < Duration::from_millis(250),
        "round trip {worst:?} during a flood"
    );
}

/// A member that stops reading is disconnected once its send queue is full;
/// the others keep receiving everything.
#[test]
fn slow_reader_is_dropped_and_others_keep_everything() {
    let (_dir, tracker) = plain_tracker(&["--flood-rate", "0", "--sendq", "1048576"]);
    let mut sleeper = connect_from("127.0.0.1", tracker.port);
    write!(
        sleeper,
        "PASS :{PASSWORD}\r\nNICK sleeper\r\nUSER s 0 * :s\r\n"
    )
    .expect("register sleeper");
    let mut watcher = Raw::register(tracker.port, "watcher");
    let mut talker = Raw::register(tracker.port, "talker");
    watcher.expect(":talker!talker@127.0.0.1 JOIN #general");
    tracker.wait_log("join #general sleeper (127.0.0.1)");

    // Enough to fill the sleeper's socket buffers and its 1 MiB queue.
    let started = Instant::now();
    let sent = flood_until(&mut talker, &mut watcher, |seen| {
        seen.iter().any(|l| l.contains("QUIT :SendQ exceeded"))
    });
    eprintln!(
        "sleeper dropped after {sent} messages, {:?}",
        started.elapsed()
    );
    tracker.wait_log("leave sleeper (SendQ exceeded)");
    // What the sleeper's socket holds: the welcome, then the talker's
    // messages in order with none missing or cut (the hub writes an idle
    // member's socket itself until it is full; the line its last write cut
    // is finished by the task), then the goodbye on a line of its own.
    sleeper
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut sleeper, &mut bytes).expect("read the sleeper's socket");
    let text = String::from_utf8(bytes).expect("utf-8");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(
        lines.last().copied(),
        Some("ERROR :Closing link: 127.0.0.1 (SendQ exceeded)\r\n"),
        "the sleeper's last line"
    );
    let numbers: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(":talker!talker@127.0.0.1 PRIVMSG #general :"))
        .map(|t| {
            let (n, x) = t.split_once(' ').expect("number and text");
            assert_eq!(x, format!("{}\r\n", "x".repeat(400)), "message {n} cut");
            n.parse().expect("number")
        })
        .collect();
    assert!(!numbers.is_empty());
    assert_eq!(numbers, (0..numbers.len()).collect::<Vec<_>>());
    eprintln!(
        "the sleeper got {} whole messages before the goodbye",
        numbers.len()
    );
    // And the tracker keeps serving.
    talker.send("PRIVMSG #general :after");
    watcher.expect(":after");
}

/// Has `talker` send 400-byte messages to #general, 500 at a time, until
/// `done` holds for the lines `watcher` has seen; then checks that the
/// watcher got every one of them, in order. Returns how many were sent.
fn flood_until(talker: &mut Raw, watcher: &mut Raw, done: impl Fn(&[String]) -> bool) -> usize {
    let text = "x".repeat(400);
    let mut sent = 0;
    while !done(&watcher.lines.seen) {
        let batch: String = (sent..sent + 500)
            .map(|i| format!("PRIVMSG #general :{i} {text}\r\n"))
            .collect();
        talker.send_bytes(batch.as_bytes());
        sent += 500;
        watcher.expect(&format!(":{} x", sent - 1));
        assert!(sent < 200_000, "nobody was dropped");
    }
    assert_eq!(numbered(&watcher.lines.seen), (0..sent).collect::<Vec<_>>());
    sent
}

/// The numbers of the flood's messages a member saw, in the order seen.
fn numbered(seen: &[String]) -> Vec<usize> {
    seen.iter()
        .filter_map(|l| l.split(" PRIVMSG #general :").nth(1))
        .filter_map(|t| t.split(' ').next()?.parse().ok())
        .collect()
}

/// The policies of the tracker's runtime threads (`tokio-*`), from
/// /proc: 0 is SCHED_OTHER, 3 SCHED_BATCH.
#[cfg(target_os = "linux")]
fn runtime_thread_policies(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the command's closing parenthesis start at the
            // third; the policy is the 41st.
            let rest = &stat[stat.rfind(')')? + 1..];
            let policy = rest.split_whitespace().nth(41 - 3)?.parse().ok()?;
            comm.starts_with("tokio-").then_some(policy)
        })
        .collect()
}

/// While the hub is busy delivering a flood, the runtime's workers run as
/// SCHED_BATCH (they yield to it rather than preempt it); once the flood
/// stops they are back to SCHED_OTHER. Nothing is lost meanwhile.
#[cfg(target_os = "linux")]
#[test]
fn runtime_workers_yield_to_a_busy_hub_and_stop_when_it_quiets() {
    let (_dir, tracker) = plain_tracker(&["--flood-rate", "0"]);
    let pid = tracker.child.id();
    assert!(runtime_thread_policies(pid).iter().all(|&p| p == 0));
    let mut readers: Vec<Raw> = (0..20)
        .map(|i| Raw::register(tracker.port, &format!("reader{i}")))
        .collect();
    let mut talker = Raw::register(tracker.port, "talker");
    readers[0].expect(":talker!talker@127.0.0.1 JOIN #general");
    let text = "x".repeat(200);
    let mut sent = 0;
    let mut saw_batch = false;
    while !(saw_batch && tracker.stderr_text().contains("busy hub yielding=true")) {
        let batch: String = (sent..sent + 500)
            .map(|i| format!("PRIVMSG #general :{i} {text}\r\n"))
            .collect();
        talker.send_bytes(batch.as_bytes());
        sent += 500;
        saw_batch |= runtime_thread_policies(pid).contains(&3);
        readers[0].expect(&format!(":{} x", sent - 1));
        assert!(sent < 200_000, "the workers never yielded");
    }
    eprintln!("the workers yielded after {sent} messages");
    tracker.wait_stderr("busy hub yielding=false");
    crate::tmux::poll(
        "every runtime thread back to SCHED_OTHER",
        || {
            runtime_thread_policies(pid)
                .iter()
                .all(|&p| p == 0)
                .then_some(())
        },
        || format!("{:?}", runtime_thread_policies(pid)),
    );
    // Every reader got every message, in order.
    let last = format!(":{} x", sent - 1);
    for r in &mut readers {
        if !r.lines.seen.iter().any(|l| l.contains(&last)) {
            r.expect(&last);
        }
        assert_eq!(numbered(&r.lines.seen), (0..sent).collect::<Vec<_>>());
    }
}

/// Many members stop reading at once: their queues together pass
/// `--sendq-total` long before any reaches its own `--sendq`, and they are
/// dropped for that, so the tracker's memory stays bounded; the members
/// that read lose nothing and stay.
#[test]
fn many_slow_readers_are_held_to_the_tracker_wide_limit() {
    const SLEEPERS: usize = 20;
    // The first sleepers go when the total passes 16 MiB (about 745 KiB
    // each over 22 members); kernel buffers differ, so some are under
    // their share then and go later, the last when they alone hold
    // 16 MiB: still far under their own 64 MiB.
    let (_dir, tracker) = plain_tracker(&[
        "--flood-rate",
        "0",
        "--sendq",
        "67108864",
        "--sendq-total",
        "16777216",
    ]);
    let mut sleepers = Vec::new();
    for i in 0..SLEEPERS {
        let mut s = connect_from("127.0.0.1", tracker.port);
        write!(
            s,
            "PASS :{PASSWORD}\r\nNICK sleeper{i}\r\nUSER s 0 * :s\r\n"
        )
        .expect("register sleeper");
        sleepers.push(s);
    }
    for i in 0..SLEEPERS {
        tracker.wait_log(&format!("join #general sleeper{i} (127.0.0.1)"));
    }
    let mut watcher = Raw::register(tracker.port, "watcher");
    let mut talker = Raw::register(tracker.port, "talker");
    watcher.expect(":talker!talker@127.0.0.1 JOIN #general");

    let quits = |seen: &[String]| seen.iter().filter(|l| l.contains(" QUIT :")).count();
    let sent = flood_until(&mut talker, &mut watcher, |seen| quits(seen) == SLEEPERS);
    eprintln!("{SLEEPERS} sleepers dropped after {sent} messages");
    for i in 0..SLEEPERS {
        let quit = format!(":sleeper{i}!s@127.0.0.1 QUIT :Tracker-wide SendQ exceeded");
        assert!(watcher.lines.seen.contains(&quit), "no {quit:?}");
        tracker.wait_log(&format!("leave sleeper{i} (Tracker-wide SendQ exceeded)"));
    }
    // The readers are still members.
    talker.send("PRIVMSG #general :after");
    watcher.expect(":after");
    drop(sleepers);
}

/// chat.log cannot be written (the file size limit stands in for a full
/// disk: writes fail with EFBIG): a message is not delivered and its sender
/// is told; a join waits; the operator gets a diagnostic. Once the log is
/// writable again the tracker carries on, the held join goes out, and
/// chat.log holds every line anyone received, with no torn line.
#[cfg(target_os = "linux")] // other 127.x addresses, prlimit: Linux only
#[test]
fn unwritable_chat_log_refuses_messages_and_recovers() {
    if !crate::tmux::have(&["prlimit"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // dash counts `ulimit -f` in 512-byte blocks: no file may pass 128 KiB,
    // which the store's files (80 KiB when created, its write-ahead log
    // emptied after the migrations) stay under and chat.log fills.
    let mut tracker = Tracker::start_wrapped(
        dir.path(),
        &["--flood-rate", "0"],
        "trap '' XFSZ\nulimit -S -f 256",
    );
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.expect("#general --> bob joined");
    let filler = "y".repeat(300);
    let mut refused = None;
    for k in 0..800 {
        alice.send(&format!("fill {k} {filler}"));
        let line = alice.expect_matching("echo or refusal", |l| {
            l.starts_with(&format!("#general <alice> fill {k} ")) || l.starts_with("!!! ")
        });
        if body(&line).starts_with("!!! ") {
            refused = Some((k, body(&line).to_string()));
            break;
        }
    }
    let (k, line) = refused.expect("chat.log never filled up");
    assert_eq!(
        line,
        format!(
            "!!! Not delivered: the tracker cannot write its chat log (fill {k} {})",
            &filler[..60 - format!("fill {k} ").len()]
        )
    );
    tracker.wait_stderr("cannot write");
    // A message line (with its msgid and source) can be longer than what
    // room is left and a join line shorter: the file is capped where it
    // ends now (the soft limit, in bytes), so even a join line no longer
    // fits.
    let size = std::fs::metadata(tracker.log_path())
        .expect("chat.log")
        .len();
    let capped = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(tracker.child.id().to_string())
        .arg(format!("--fsize={size}:"))
        .status()
        .expect("run prlimit");
    assert!(capped.success());
    // Fill what room is left with short messages, so even a join line no
    // longer fits.
    let mut short = 0;
    loop {
        alice.send(&format!("s{short}"));
        let line = alice.expect_matching("echo or refusal", |l| {
            l == format!("#general <alice> s{short}") || l.starts_with("!!! ")
        });
        if body(&line).starts_with("!!! ") {
            break;
        }
        short += 1;
    }
    // A join during the outage is held, not delivered unrecorded.
    let mut carol = ClientProc::spawn(
        client_command(
            &tracker,
            &["--user", "carol", "--fingerprint", &tracker.fingerprint],
        ),
        "carol",
    );
    tracker.wait_stderr("nick=carol");
    // A barrier: once this refusal is back, carol's join was handled.
    alice.send("barrier");
    alice.expect_matching("refusal", |l| l.contains("(barrier)"));
    assert!(
        !bob.bodies().iter().any(|l| l.contains("carol")),
        "a join was delivered before it was recorded"
    );
    assert!(!tracker.log().contains("carol"));
    let ok = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(tracker.child.id().to_string())
        .arg("--fsize=unlimited")
        .status()
        .expect("run prlimit");
    assert!(ok.success());
    carol.expect("#general --> you joined");
    bob.expect("#general --> carol joined");
    alice.send("after recovery");
    bob.expect("#general <alice> after recovery");
    tracker.wait_log("msg #general <alice> after recovery");
    tracker.wait_stderr("is writable again");

    // Everything bob saw is in chat.log; the refused message is not; every
    // line is whole.
    let log = tracker.log();
    assert!(log.ends_with('\n'));
    for l in log.lines() {
        let (ts, rest) = l.split_once(' ').expect("timestamp");
        assert!(ts.ends_with('Z') && ts.len() == 24, "bad line {l:?}");
        assert!(!rest.is_empty());
    }
    let events = tracker.log_events();
    for seen in bob.bodies() {
        if let Some(m) = seen.strip_prefix("#general <") {
            let wanted = format!("msg #general <{m}");
            assert!(
                events.contains(&wanted),
                "bob saw {seen:?}, not in chat.log"
            );
        }
    }
    assert!(
        !bob.bodies()
            .iter()
            .any(|b| b.contains(&format!("fill {k} ")))
    );
    assert!(!events.iter().any(|e| e.contains(&format!("fill {k} "))));
    assert!(events.contains(&"join #general carol (127.0.0.1)".to_string()));
    // Held, not refused: carol's join reaches the room's history too
    // (draft/event-playback) once chat.log has it.
    let store = confab::store::Store::open_existing(&dir.path().join("data").join("store.db"))
        .expect("the store");
    crate::tmux::poll(
        "carol's join in #general's history",
        || {
            let page = store.history_of(
                "#general",
                &confab::store::HistoryQuery::Latest(None),
                100,
                0,
                confab::store::Lines::MessagesAndEvents,
            );
            page.ok()?
                .iter()
                .any(|m| m.command == "JOIN" && m.source.starts_with("carol!"))
                .then_some(())
        },
        String::new,
    );
    signal(&tracker.child, "TERM");
    assert_eq!(wait_exit(&mut tracker.child, WAIT).code(), Some(0));
}
