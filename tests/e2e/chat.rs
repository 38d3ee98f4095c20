//! The core chat, driven through real `client --plain` processes over TLS.

use std::time::{Duration, Instant};

use crate::harness::*;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Three people chat: joins, group order, DMs, /info, /users, /exit,
/// SIGINT on a client, and the tracker leaving with the last member.
#[test]
fn group_chat_dms_info_users_and_leaving() {
    let dir = tempdir();
    let mut tracker = Tracker::start_in(dir.path(), &[]);
    let mut alice = ClientProc::join(&tracker, "alice");
    // The welcome says what is recorded.
    assert!(
        alice.bodies().iter().any(|l| l.starts_with(
            "*** This tracker records the whole conversation, direct messages included, in its chat log"
        )),
        "{:?}",
        alice.bodies()
    );
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.expect("#general --> bob joined");
    let mut carol = ClientProc::join(&tracker, "carol");
    alice.expect("#general --> carol joined");
    bob.expect("#general --> carol joined");

    // Everyone sends at once; everyone must see the same order, which is
    // also chat.log's order.
    for i in 0..10 {
        alice.send(&format!("a{i}"));
        bob.send(&format!("b{i}"));
        carol.send(&format!("c{i}"));
    }
    let mut orders = Vec::new();
    for c in [&mut alice, &mut bob, &mut carol] {
        let mut got = Vec::new();
        while got.len() < 30 {
            let line = c.expect_matching("30 group messages", |l| l.starts_with("#general <"));
            got.push(body(&line).to_string());
        }
        orders.push(got);
    }
    assert_eq!(orders[0], orders[1], "alice and bob saw different orders");
    assert_eq!(orders[0], orders[2], "alice and carol saw different orders");
    let logged: Vec<String> = tracker
        .log_events()
        .into_iter()
        .filter_map(|l| l.strip_prefix("msg ").map(str::to_string))
        .collect();
    assert_eq!(
        logged, orders[0],
        "chat.log order differs from delivery order"
    );

    // Direct messages reach only their two ends.
    alice.send("/msg bob secret one");
    bob.expect("[DM alice] <alice> secret one");
    alice.expect("[DM bob] <alice> secret one");
    bob.send("@alice secret two");
    alice.expect("[DM bob] <bob> secret two");
    bob.expect("[DM alice] <bob> secret two");
    alice.send("after the secrets");
    carol.expect("#general <alice> after the secrets");
    assert!(
        !carol
            .bodies()
            .iter()
            .any(|l| l.contains("secret one") || l.contains("secret two")),
        "carol saw a DM: {:?}",
        carol.bodies()
    );

    // /info shows the address, status, idle time, rooms.
    alice.send("/info bob");
    alice.expect("--- info bob: bob@127.0.0.1 (bob)");
    alice.expect("---   address 127.0.0.1");
    alice.expect("---   status ACTIVE");
    alice.expect_matching("idle", |l| l.starts_with("---   idle ") && l.ends_with('s'));
    alice.expect_matching("joined at", |l| l.starts_with("---   joined at 20"));
    alice.expect("---   rooms #general");
    alice.send("/info nobody");
    alice.expect("!!! no such user: nobody");

    // /users lists everyone with a status.
    carol.send("/users");
    carol.expect("--- users in #general (3):");
    carol.expect("---   alice ACTIVE");
    carol.expect("---   bob ACTIVE");
    carol.expect("---   carol ACTIVE");

    // /exit: a clean leave everyone sees.
    carol.send("/exit");
    carol.expect("*** you left the tracker");
    assert_eq!(carol.wait_exit().code(), Some(0));
    // The leaver is told "you left", not shown its own leave as someone's.
    assert!(
        !carol.bodies().iter().any(|l| l.contains("carol left")),
        "{:#?}",
        carol.bodies()
    );
    alice.expect("<-- carol left (Quit: Leaving)");
    bob.expect("<-- carol left (Quit: Leaving)");

    // Ctrl+C on a client is a clean leave too.
    signal(&bob.child, "INT");
    assert_eq!(bob.wait_exit().code(), Some(0));
    alice.expect("<-- bob left (Quit: Leaving)");

    // The last member leaving stops the tracker (exit 0).
    alice.send("/quit see you");
    assert_eq!(alice.wait_exit().code(), Some(0));
    let status = wait_exit(&mut tracker.child, Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(0),
        "tracker stderr:\n{}",
        tracker.stderr_text()
    );

    let events = tracker.log_events();
    let mut expected = vec![
        format!(
            "start tracker listening on 127.0.0.1:{} (TLS, password required)",
            tracker.port
        ),
        "join #general alice (127.0.0.1)".to_string(),
        "join #general bob (127.0.0.1)".to_string(),
        "join #general carol (127.0.0.1)".to_string(),
    ];
    expected.extend(orders[0].iter().map(|m| format!("msg {m}")));
    expected.extend(
        [
            "dm alice -> bob: secret one",
            "dm bob -> alice: secret two",
            "msg #general <alice> after the secrets",
            "leave carol (Quit: Leaving)",
            "leave bob (Quit: Leaving)",
            "leave alice (Quit: see you)",
            "stop last member left",
        ]
        .map(String::from),
    );
    assert_eq!(events, expected);
    // Every line starts with an RFC 3339 UTC timestamp with milliseconds.
    for line in tracker.log().lines() {
        let ts = line.split(' ').next().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.parse::<jiff::Timestamp>().is_ok(),
            "bad timestamp in {line:?}"
        );
    }
}

/// BUSY set by a user and INACTIVE set by the tracker, seen by everyone
/// (including someone who joins later) and cleared by activity.
#[test]
fn busy_and_inactive_statuses() {
    let dir = tempdir();
    let tracker = Tracker::start_in(dir.path(), &["--idle-timeout", "2"]);
    let mut alice = ClientProc::join(&tracker, "alice");
    alice.send("/status busy in a meeting");
    alice.expect("--- you are now BUSY: in a meeting");
    let mut bob = ClientProc::join(&tracker, "bob");
    // bob idles: the tracker marks him INACTIVE and tells everyone.
    bob.expect_matching("own INACTIVE", |l| {
        l.starts_with("--- you are now INACTIVE: idle for ")
    });
    alice.expect_matching("bob INACTIVE", |l| {
        l.starts_with("--- bob is now INACTIVE: idle for ")
    });
    // A latecomer learns both statuses from the tracker.
    let mut carol = ClientProc::join(&tracker, "carol");
    carol.send("/users");
    carol.expect("--- users in #general (3):");
    carol.expect("---   alice BUSY: in a meeting");
    carol.expect_matching("bob inactive", |l| {
        l.starts_with("---   bob INACTIVE: idle for ")
    });
    carol.expect("---   carol ACTIVE");
    alice.send("/info bob");
    alice.expect_matching("bob's status", |l| {
        l.starts_with("---   status INACTIVE: idle for ")
    });
    // Activity clears INACTIVE; BUSY stays until the user clears it.
    bob.send("back now");
    bob.expect("--- you are now ACTIVE");
    alice.expect("--- bob is now ACTIVE");
    carol.expect("--- bob is now ACTIVE");
    alice.expect("#general <bob> back now");
    alice.send("/status active");
    alice.expect("--- you are now ACTIVE");
    bob.expect("--- alice is now ACTIVE");
    let events = tracker.log_events();
    for wanted in [
        "status alice BUSY (in a meeting)",
        "status bob ACTIVE",
        "status alice ACTIVE",
    ] {
        assert!(
            events.iter().any(|e| e == wanted),
            "chat.log lacks {wanted:?}:\n{events:#?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("status bob INACTIVE (Inactive: idle for ")),
        "{events:#?}"
    );
}

/// Failed logins change nothing: not members, not logged, no shutdown.
#[test]
fn wrong_password_and_refused_usernames() {
    let dir = tempdir();
    let mut tracker = Tracker::start_in(dir.path(), &[]);
    let fp = tracker.fingerprint.clone();

    // A wrong password before anyone joined must not stop the tracker.
    let mut cmd = client_command(&tracker, &["--user", "mallory", "--fingerprint", &fp]);
    cmd.env("CONFAB_PASSWORD", "wrong");
    let mut wrong = ClientProc::spawn(cmd, "mallory");
    assert_eq!(wrong.wait_exit().code(), Some(3));
    assert!(
        wrong
            .err
            .drain()
            .iter()
            .any(|l| l == "client: wrong password"),
        "{:?}",
        wrong.err.seen
    );
    assert!(tracker.is_running(), "a failed login stopped the tracker");

    let mut alice = ClientProc::join(&tracker, "alice");
    for (name, why) in [
        ("alice", "client: That username is taken: alice"),
        ("ALICE", "client: That username is taken: ALICE"),
        (
            "1bad",
            "client: That username is not allowed: \"1bad\": usernames may use letters, digits and - _ [ ] \\ ^ { } | ` and may not start with a digit or -",
        ),
    ] {
        let mut c = ClientProc::spawn(
            client_command(&tracker, &["--user", name, "--fingerprint", &fp]),
            name,
        );
        assert_eq!(c.wait_exit().code(), Some(2), "{name}");
        assert!(
            c.err.drain().iter().any(|l| l == why),
            "{name}: {:?}",
            c.err.seen
        );
    }
    // A changed fingerprint is refused loudly, before the password is sent.
    let other = "SHA256:".to_string() + &"AB:".repeat(31) + "AB";
    let mut c = ClientProc::spawn(
        client_command(&tracker, &["--user", "eve", "--fingerprint", &other]),
        "eve",
    );
    assert_eq!(c.wait_exit().code(), Some(3));
    assert!(
        c.err
            .drain()
            .iter()
            .any(|l| l.contains("does not match --fingerprint")),
        "{:?}",
        c.err.seen
    );
    // No fingerprint given, the pin stored by the first login is checked.
    std::fs::write(
        tracker.dir.join("known_trackers"),
        format!("127.0.0.1:{} {other}\n", tracker.port),
    )
    .unwrap();
    let mut c = ClientProc::spawn(client_command(&tracker, &["--user", "eve"]), "eve");
    assert_eq!(c.wait_exit().code(), Some(3));
    let err = c.err.drain().join("\n");
    assert!(
        err.contains("WARNING: THE TRACKER'S FINGERPRINT HAS CHANGED!"),
        "{err}"
    );
    // And an unknown tracker is not trusted without a person saying so.
    std::fs::remove_file(tracker.dir.join("known_trackers")).unwrap();
    let mut c = ClientProc::spawn(client_command(&tracker, &["--user", "eve"]), "eve");
    assert_eq!(c.wait_exit().code(), Some(3));
    assert!(
        c.err
            .drain()
            .iter()
            .any(|l| l.contains("unknown tracker fingerprint")),
        "{:?}",
        c.err.seen
    );

    alice.send("still here");
    alice.expect("#general <alice> still here");
    alice.send("/exit");
    assert_eq!(alice.wait_exit().code(), Some(0));
    assert_eq!(
        wait_exit(&mut tracker.child, Duration::from_secs(5)).code(),
        Some(0)
    );
    let events = tracker.log_events();
    assert_eq!(
        events[1..],
        [
            "join #general alice (127.0.0.1)",
            "msg #general <alice> still here",
            "leave alice (Quit: Leaving)",
            "stop last member left"
        ]
    );
    tracker.wait_stderr("wrong server password");
}

/// Ctrl+C on the tracker: every client is told, chat.log is closed, exit 0
/// within 2 seconds.
#[test]
fn tracker_interrupt_tells_everyone() {
    let dir = tempdir();
    let mut tracker = Tracker::start_in(dir.path(), &[]);
    let mut alice = ClientProc::join(&tracker, "alice");
    let mut bob = ClientProc::join(&tracker, "bob");
    alice.send("last words");
    bob.expect("#general <alice> last words");
    let asked = Instant::now();
    signal(&tracker.child, "INT");
    let status = wait_exit(&mut tracker.child, Duration::from_secs(5));
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    for c in [&mut alice, &mut bob] {
        c.expect("*** disconnected by the tracker: tracker shutting down");
        assert_eq!(c.wait_exit().code(), Some(0));
        assert!(
            c.err
                .drain()
                .iter()
                .any(|l| l.contains("disconnected by the tracker"))
        );
    }
    let events = tracker.log_events();
    assert_eq!(
        events[1..],
        [
            "join #general alice (127.0.0.1)",
            "join #general bob (127.0.0.1)",
            "msg #general <alice> last words",
            "stop stopped by the operator (SIGINT)"
        ]
    );
}

/// With --stay the tracker outlives its members; SIGTERM stops it.
#[test]
fn stay_keeps_the_tracker_running() {
    let dir = tempdir();
    let mut tracker = Tracker::start_in(dir.path(), &["--stay"]);
    // What the operator is told at start, on stdout.
    let banner = tracker.stdout.seen.clone();
    assert_eq!(banner.len(), 5, "{banner:#?}");
    assert_eq!(
        banner[0],
        format!("listening on 127.0.0.1:{}", tracker.port)
    );
    let fp = banner[1]
        .strip_prefix("fingerprint SHA256:")
        .expect("fingerprint line");
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    assert!(
        fp.split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit())),
        "{fp}"
    );
    let logs = dir.path().join("logs");
    let data = dir.path().join("data");
    assert_eq!(
        banner[2],
        format!("chat log {}", logs.join("chat.log").display())
    );
    assert_eq!(banner[3], format!("data dir {}", data.display()));
    // Bound to one address, that is the address to give out.
    assert_eq!(
        banner[4],
        format!("clients join with: client 127.0.0.1 {}", tracker.port)
    );

    let mut alice = ClientProc::join(&tracker, "alice");
    alice.send("/exit");
    assert_eq!(alice.wait_exit().code(), Some(0));
    tracker.wait_log("leave alice (Quit: Leaving)");
    assert!(tracker.is_running());
    let mut bob = ClientProc::join(&tracker, "bob");
    bob.send("anyone?");
    bob.expect("#general <bob> anyone?");
    // A piped client whose input ends leaves cleanly, like /exit.
    let mut carol = ClientProc::join(&tracker, "carol");
    bob.expect("#general --> carol joined");
    carol.close_stdin();
    assert_eq!(carol.wait_exit().code(), Some(0));
    bob.expect("<-- carol left (Quit: Leaving)");
    assert!(tracker.is_running());
    signal(&tracker.child, "TERM");
    assert_eq!(
        wait_exit(&mut tracker.child, Duration::from_secs(5)).code(),
        Some(0)
    );
    bob.expect("*** disconnected by the tracker: tracker shutting down");
    assert_eq!(
        tracker.log_events().last().map(String::as_str),
        Some("stop stopped by the operator (SIGTERM)")
    );
}

/// kill -9 in the middle of a burst: whatever any client received is in
/// chat.log, and a restart appends after a clear line.
#[test]
fn kill_9_loses_nothing_delivered() {
    let dir = tempdir();
    // Flood control off: the point is a dense burst when the kill lands.
    // The strictest log-sync policy here, the background flusher after the
    // restart: the invariant holds under each.
    let mut tracker = Tracker::start_in(dir.path(), &["--flood-rate", "0", "--log-sync", "fsync"]);
    let mut clients: Vec<ClientProc> = ["ann", "ben", "cat"]
        .iter()
        .map(|n| ClientProc::join(&tracker, n))
        .collect();
    for (k, c) in clients.iter_mut().enumerate() {
        let burst: String = (0..300).map(|i| format!("m{k}-{i}\n")).collect();
        c.send(burst.trim_end());
    }
    // Kill once traffic is flowing.
    let mut seen = 0;
    while seen < 100 {
        clients[0].expect_matching("burst traffic", |l| l.starts_with("#general <"));
        seen += 1;
    }
    signal(&tracker.child, "KILL");
    wait_exit(&mut tracker.child, Duration::from_secs(5));
    let logged: std::collections::HashSet<String> = tracker
        .log_events()
        .into_iter()
        .filter_map(|l| l.strip_prefix("msg ").map(str::to_string))
        .collect();
    let mut received = 0;
    for c in clients.iter_mut() {
        assert_eq!(
            c.wait_exit().code(),
            Some(1),
            "{}: connection lost is exit 1",
            c.name
        );
        c.out.drain();
        for line in c.bodies() {
            if line.starts_with("#general <") {
                received += 1;
                assert!(
                    logged.contains(&line),
                    "{} received {line:?} which chat.log lacks",
                    c.name
                );
            }
        }
    }
    assert!(received >= 100);
    let before = tracker.log();
    let restarted = Tracker::start_in(dir.path(), &["--log-sync", "periodic"]);
    restarted.wait_log(&format!(
        "start tracker listening on 127.0.0.1:{} (TLS, password required)",
        restarted.port
    ));
    let after = restarted.log();
    assert!(after.starts_with(&before), "the restart rewrote old lines");
    let new: Vec<&str> = after[before.len()..]
        .lines()
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(
        new[0],
        "restart previous run ended without a stop line (crash or kill); appending"
    );
    // The store, if it was behind at the kill, is refilled first (durable.rs).
    let start = new[1..].iter().find(|l| !l.starts_with("repair history: "));
    assert!(
        start.is_some_and(|l| l.starts_with("start tracker listening on")),
        "{new:?}"
    );
}

/// An open tracker (--no-password) warns its operator; a scripted client with
/// --accept-new and no password joins it and remembers its fingerprint. The
/// same client against a tracker with a password is told what is missing.
#[test]
fn open_tracker_and_accept_new() {
    let dir = tempdir();
    let open = Tracker::start_in(&dir.path().join("open"), &["--no-password"]);
    open.wait_stderr("WARNING: no password: anyone who can reach this tracker may join.");
    let mut cmd = client_command(&open, &["--user", "zed", "--accept-new"]);
    cmd.env_remove("CONFAB_PASSWORD");
    let mut zed = ClientProc::spawn(cmd, "zed");
    zed.expect("#general --> you joined");
    assert_eq!(
        zed.err
            .wait_for("trust notice", |l| l.starts_with("Trusting new tracker")),
        format!(
            "Trusting new tracker 127.0.0.1:{} with fingerprint {}",
            open.port, open.fingerprint
        )
    );
    assert_eq!(
        std::fs::read_to_string(open.dir.join("known_trackers")).unwrap(),
        format!("127.0.0.1:{} {}\n", open.port, open.fingerprint)
    );
    open.wait_log("join #general zed (127.0.0.1)");
    assert!(
        open.log_events()[0].ends_with("(TLS, no password)"),
        "{:?}",
        open.log_events()
    );

    let closed = Tracker::start_in(&dir.path().join("closed"), &[]);
    let mut cmd = client_command(&closed, &["--user", "zed", "--accept-new"]);
    cmd.env_remove("CONFAB_PASSWORD");
    let mut c = ClientProc::spawn(cmd, "zed");
    assert_eq!(c.wait_exit().code(), Some(3));
    assert_eq!(
        c.err.drain().last().map(String::as_str),
        Some(
            "client: the tracker needs a password: give it with --password-file PATH or CONFAB_PASSWORD"
        )
    );
}
