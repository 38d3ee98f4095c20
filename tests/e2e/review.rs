//! `tracker log` on logs written by real sessions: filters and their
//! combination, `--json` read back, `--stats`, `--follow` on a live
//! tracker, a cut last line, rotated files, and `--verify` after an edit,
//! a removal and an insertion.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// What one `tracker log` run printed.
struct LogRun {
    out: Vec<String>,
    err: String,
    code: i32,
}

impl LogRun {
    /// The lines without their (UTC, as written) timestamps.
    fn events(&self) -> Vec<&str> {
        self.out
            .iter()
            .map(|l| l.split_once(' ').map_or(l.as_str(), |(_, rest)| rest))
            .collect()
    }
}

/// Runs `tracker log ARGS` in `cwd`, with no configuration file of the
/// machine's user and the time zone fixed.
fn tracker_log(cwd: &Path, args: &[&str]) -> LogRun {
    let out = Command::new(tracker_bin())
        .arg("log")
        .args(args)
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .expect("tracker log");
    LogRun {
        out: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// The session every review test reads, as chat.log has it (without
/// timestamps): three people in #general and #lab, DMs, an action, a
/// status, a rename, a part and their leaving.
const SESSION: &[&str] = &[
    "join #general alice (127.0.0.1)",
    "join #general bob (127.0.0.1)",
    "join #general carol (127.0.0.1)",
    "msg #general <alice> Good morning, everyone",
    "msg #general <bob> morning!",
    "create #lab alice",
    "join #lab alice (127.0.0.1)",
    "topic #lab alice: fractions, part 2",
    "join #lab bob (127.0.0.1)",
    "msg #lab <bob> is 3/4 bigger than 2/3?",
    "msg #lab <alice> yes: 9/12 against 8/12",
    "action #general * carol waves",
    "dm carol -> bob: did you finish exercise 4?",
    "dm bob -> carol: not yet, after lunch",
    "status bob BUSY (lunch)",
    "status bob ACTIVE",
    "nick alice -> alicia",
    "msg #lab <alicia> renamed myself",
    "part #lab bob (see you later)",
    "leave carol (Quit: bye)",
    "leave bob (Quit: done)",
    "leave alicia (Quit: see you)",
    "stop last member left",
];

/// Plays SESSION with real clients against a real tracker, each step
/// waited for in chat.log so the order is SESSION's; returns the tracker's
/// chain head as printed when it stopped.
fn play_session(dir: &Path) -> String {
    let mut tracker = Tracker::start_in(dir, &[]);
    let mut alice = ClientProc::join(&tracker, "alice");
    tracker.wait_log(SESSION[0]);
    let mut bob = ClientProc::join(&tracker, "bob");
    tracker.wait_log(SESSION[1]);
    let mut carol = ClientProc::join(&tracker, "carol");
    tracker.wait_log(SESSION[2]);
    let step = |who: &mut ClientProc, typed: &str, logged: &str| {
        who.send(typed);
        tracker.wait_log(logged);
    };
    step(&mut alice, "Good morning, everyone", SESSION[3]);
    step(&mut bob, "morning!", SESSION[4]);
    step(&mut alice, "/join #lab", SESSION[6]);
    // /topic is for the room in view: wait until the client is in #lab.
    alice.expect("#lab --> you joined");
    step(&mut alice, "/topic fractions, part 2", SESSION[7]);
    step(&mut bob, "/join #lab", SESSION[8]);
    bob.expect("#lab --> you joined");
    step(&mut bob, "is 3/4 bigger than 2/3?", SESSION[9]);
    step(&mut alice, "yes: 9/12 against 8/12", SESSION[10]);
    step(&mut carol, "/me waves", SESSION[11]);
    step(
        &mut carol,
        "/msg bob did you finish exercise 4?",
        SESSION[12],
    );
    step(&mut bob, "/msg carol not yet, after lunch", SESSION[13]);
    step(&mut bob, "/away lunch", SESSION[14]);
    step(&mut bob, "/back", SESSION[15]);
    step(&mut alice, "/nick alicia", SESSION[16]);
    step(&mut alice, "renamed myself", SESSION[17]);
    step(&mut bob, "/part #lab see you later", SESSION[18]);
    step(&mut carol, "/quit bye", SESSION[19]);
    step(&mut bob, "/quit done", SESSION[20]);
    step(&mut alice, "/quit see you", SESSION[21]);
    assert!(wait_exit(&mut tracker.child, WAIT).success());
    assert_eq!(tracker.log_events(), SESSION_WITH_START(&tracker));
    let said = tracker
        .stderr_text()
        .lines()
        .find_map(|l| l.strip_prefix("chat.log chain head ").map(str::to_string))
        .expect("the chain head at stop");
    said.split(' ').next().expect("head").to_string()
}

#[allow(non_snake_case)]
fn SESSION_WITH_START(tracker: &Tracker) -> Vec<String> {
    let start = tracker.log_events()[0].clone();
    assert!(start.starts_with("start tracker listening on 127.0.0.1:"));
    std::iter::once(start)
        .chain(SESSION.iter().map(|s| s.to_string()))
        .collect()
}

fn session() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = play_session(dir.path());
    (dir, head)
}

fn lines(range: &[usize]) -> Vec<&'static str> {
    range.iter().map(|i| SESSION[*i]).collect()
}

#[test]
fn every_filter_alone_and_combined_on_a_real_session() {
    let (dir, _) = session();
    let d = dir.path();
    // The default folder is the configuration's (here: logs, from the
    // current folder), and stderr says what was read.
    let all = tracker_log(d, &["--utc"]);
    assert_eq!(all.code, 0, "{}", all.err);
    assert_eq!(&all.events()[1..], SESSION);
    assert_eq!(all.err, "read 1 file: logs/chat.log (24 lines)\n");
    let logs = d.join("logs");
    let logs = logs.to_str().expect("utf-8");
    let run = |args: &[&str]| {
        let mut a = vec![logs, "--utc"];
        a.extend_from_slice(args);
        let r = tracker_log(d, &a);
        assert_eq!(r.code, 0, "{args:?}: {}", r.err);
        r.events().iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        run(&["--room", "#lab"]),
        lines(&[5, 6, 7, 8, 9, 10, 17, 18])
    );
    assert_eq!(run(&["--room", "lab"]), lines(&[5, 6, 7, 8, 9, 10, 17, 18]));
    // What alice said and did, under her new name too.
    assert_eq!(
        run(&["--user", "alice"]),
        lines(&[0, 3, 5, 6, 7, 10, 16, 17, 21])
    );
    // One conversation, both directions, whichever order the names come.
    assert_eq!(run(&["--dm", "bob,carol"]), lines(&[12, 13]));
    assert_eq!(run(&["--dm", "carol,bob"]), lines(&[12, 13]));
    assert_eq!(run(&["--dm", "alice,bob"]), Vec::<&str>::new());
    assert_eq!(run(&["--grep", "MORNING"]), lines(&[3, 4]));
    assert_eq!(run(&["--event", "status,nick"]), lines(&[14, 15, 16]));
    assert_eq!(
        run(&["--event", "dm", "--event", "action"]),
        lines(&[11, 12, 13])
    );
    // Times: everything was just now.
    assert_eq!(run(&["--since", "1h"]).len(), 24);
    assert_eq!(run(&["--until", "1h"]).len(), 0);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    assert_eq!(run(&["--since", &today, "--until", &today]).len(), 24);
    // A time from the log itself: from bob's first DM on.
    let dm_line = &all.out[14];
    assert!(dm_line.ends_with("dm bob -> carol: not yet, after lunch"));
    let dm_time = dm_line.split(' ').next().expect("time");
    assert_eq!(
        run(&["--since", dm_time, "--event", "dm,msg"]),
        lines(&[13, 17])
    );
    assert_eq!(
        run(&["--until", dm_time, "--dm", "bob,carol"]),
        lines(&[12])
    );
    // Combined: every filter must pass.
    assert_eq!(
        run(&[
            "--room", "#lab", "--user", "alice", "--event", "msg", "--grep", "9/12", "--since",
            "1d"
        ]),
        lines(&[10])
    );
    assert_eq!(run(&["--user", "bob", "--dm", "bob,carol"]), lines(&[13]));
    assert_eq!(
        run(&["--room", "#general", "--user", "bob", "--event", "msg"]),
        lines(&[4])
    );

    // Local time (TZ=UTC here: the same clock, shown without the date's T).
    let local = tracker_log(d, &[logs, "--event", "topic"]);
    let t = &all.out[8][..19];
    assert_eq!(
        local.out,
        vec![format!("{} {}", t.replace('T', " "), SESSION[7])]
    );

    // Bad filters are usage errors that say what is expected.
    let bad = tracker_log(d, &[logs, "--event", "msg,talk"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.err
            .contains("\"talk\" is not an event of chat.log; one of: start,"),
        "{}",
        bad.err
    );
    let bad = tracker_log(d, &[logs, "--since", "yesterday"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.err
            .contains("--since \"yesterday\": give an RFC 3339 time"),
        "{}",
        bad.err
    );
    let missing = tracker_log(d, &["nowhere"]);
    assert_eq!(
        (missing.code, missing.err.as_str()),
        (1, "tracker: nowhere does not exist\n")
    );
}

#[test]
fn json_lines_read_back_and_stats_count_the_session() {
    let (dir, _) = session();
    let d = dir.path();
    let r = tracker_log(d, &["logs", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let objects: Vec<serde_json::Value> = r
        .out
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(objects.len(), 24);
    let text = tracker_log(d, &["logs", "--utc"]);
    for (i, (o, line)) in objects.iter().zip(&text.out).enumerate() {
        // The same line, field by field.
        let detail = o["detail"].as_str().expect("detail");
        assert_eq!(
            format!(
                "{} {} {detail}",
                o["time"].as_str().expect("time"),
                o["event"].as_str().expect("event")
            ),
            *line
        );
        assert_eq!(o["file"], "logs/chat.log");
        assert_eq!(o["line"], i + 1);
        assert!(
            o.get("cut").is_none() && o.get("malformed").is_none(),
            "{o}"
        );
    }
    assert_eq!(
        objects[14],
        serde_json::json!({
            "time": objects[14]["time"], "event": "dm", "user": "bob", "target": "carol",
            "text": "not yet, after lunch", "detail": "bob -> carol: not yet, after lunch",
            "msgid": objects[14]["msgid"], "seq": objects[14]["seq"], "source": "bob!bob@127.0.0.1",
            "file": "logs/chat.log", "line": 15
        })
    );
    // A message line's msgid (chat.log keeps it for the store's repair).
    assert!(
        objects[14]["msgid"]
            .as_str()
            .is_some_and(|m| m.len() > 32 && m != objects[13]["msgid"]),
        "{}",
        objects[14]
    );
    assert_eq!(objects[1]["ip"], "127.0.0.1");
    assert_eq!(objects[8]["text"], "fractions, part 2");
    assert_eq!(objects[15]["status"], "BUSY");
    assert_eq!(objects[17]["target"], "alicia");
    assert_eq!(objects[19]["reason"], "see you later");

    // --stats: counts as a teacher reads them.
    let s = tracker_log(d, &["logs", "--stats", "--json"]);
    assert_eq!(s.code, 0, "{}", s.err);
    let v: serde_json::Value = serde_json::from_str(&s.out.join("\n")).expect("stats JSON");
    let users = v["users"].as_array().expect("users");
    let row = |name: &str| {
        users
            .iter()
            .find(|u| u["user"] == name)
            .unwrap_or_else(|| panic!("{name} in {users:?}"))
    };
    assert_eq!(users.len(), 3, "alicia is alice: {users:?}");
    assert_eq!(
        (
            row("alice")["messages"].clone(),
            row("alice")["also"].clone()
        ),
        (3.into(), serde_json::json!(["alicia"]))
    );
    assert_eq!(
        (
            row("bob")["messages"].clone(),
            row("bob")["dms_sent"].clone()
        ),
        (2.into(), 1.into())
    );
    assert_eq!(
        (
            row("carol")["messages"].clone(),
            row("carol")["dms_sent"].clone()
        ),
        (1.into(), 1.into())
    );
    let rooms = v["rooms"].as_array().expect("rooms");
    assert_eq!(rooms[0]["room"], "#general");
    assert_eq!(
        (rooms[0]["messages"].clone(), rooms[0]["speakers"].clone()),
        (3.into(), 3.into())
    );
    assert_eq!(
        (rooms[1]["messages"].clone(), rooms[1]["speakers"].clone()),
        (3.into(), 2.into())
    );
    let hours: u64 = v["busiest_hours"]
        .as_array()
        .expect("hours")
        .iter()
        .map(|h| h["messages"].as_u64().expect("count"))
        .sum();
    assert_eq!(hours, 8, "6 room messages and 2 DMs");
    let table = tracker_log(d, &["logs", "--stats"]);
    assert_eq!(table.out[0].split(',').next(), Some("24 lines"));
    assert_eq!(
        table.out[2],
        "user            messages  DMs sent  first seen           last seen"
    );
    assert!(
        table.out[3].starts_with(&format!(
            "alice (alicia){}3{}0  ",
            " ".repeat(9),
            " ".repeat(9)
        )),
        "{}",
        table.out[3]
    );
    assert!(
        table.out[4].starts_with(&format!("bob{}2{}1  ", " ".repeat(20), " ".repeat(9))),
        "{}",
        table.out[4]
    );
    assert!(
        table.out[5].starts_with(&format!("carol{}1{}1  ", " ".repeat(18), " ".repeat(9))),
        "{}",
        table.out[5]
    );
}

#[test]
fn verify_says_intact_then_names_an_edit_a_removal_and_an_insertion() {
    let (dir, head) = session();
    let d = dir.path();
    let log = d.join("logs/chat.log");
    let ok = tracker_log(d, &["logs", "--verify", "--expect", &head]);
    assert_eq!(ok.code, 0, "{:?} {}", ok.out, ok.err);
    assert_eq!(
        ok.out,
        vec![
            format!("intact: 24 lines in 1 file, chain head {head}"),
            "the chain had the expected head after line 24 of logs/chat.log: everything up to there is as it was when that head was printed".to_string(),
        ]
    );
    let original = std::fs::read_to_string(&log).expect("chat.log");
    let with = |f: &dyn Fn(&mut Vec<&str>)| {
        let mut lines: Vec<&str> = original.lines().collect();
        f(&mut lines);
        std::fs::write(&log, lines.join("\n") + "\n").expect("write");
        let r = tracker_log(d, &["logs", "--verify"]);
        std::fs::write(&log, &original).expect("restore");
        r
    };
    let edited = with(&|l| {
        let changed = l[13].replace("exercise 4", "exercise 5");
        l[13] = Box::leak(changed.into_boxed_str());
    });
    assert_eq!(edited.code, 1);
    assert_eq!(
        edited.out,
        vec!["NOT INTACT: line 14 of logs/chat.log was changed"]
    );
    let removed = with(&|l| {
        l.remove(15);
    });
    assert_eq!(removed.code, 1);
    assert_eq!(
        removed.out,
        vec![
            "NOT INTACT: line 16 of logs/chat.log was removed (the line now at 16 was written after it)"
        ]
    );
    let inserted = with(&|l| {
        l.insert(
            4,
            "2026-12-02T09:00:00.000Z msg #general <bob> I was never here",
        );
    });
    assert_eq!(inserted.code, 1);
    assert_eq!(
        inserted.out,
        vec!["NOT INTACT: line 5 of logs/chat.log was inserted (the tracker never wrote it)"]
    );
    // The chain rewritten to match an edit no longer passes through the
    // head the operator kept.
    let other = tracker_log(d, &["logs", "--verify", "--expect", &"0".repeat(64)]);
    assert_eq!(other.code, 1);
    assert!(
        other.out[0].starts_with("NOT INTACT: the chain never had the head 0000"),
        "{:?}",
        other.out
    );
    // Lines after the last chain record: not tampering, said apart.
    std::fs::write(
        &log,
        format!("{original}2026-12-02T09:00:00.000Z msg #general <bob> late\n"),
    )
    .expect("append");
    let tail = tracker_log(d, &["logs", "--verify"]);
    assert_eq!(tail.code, 3, "{:?}", tail.out);
    assert_eq!(
        tail.out[1],
        "unchained tail, 1 line (the tracker stopped before recording them): lines 25-25 of logs/chat.log"
    );
    // The next start chains them, and --verify says how from then on.
    let mut again = Tracker::start_in(d, &[]);
    again.wait_log("restart previous run ended without a stop line (crash or kill); appending");
    signal(&again.child, "INT");
    assert!(wait_exit(&mut again.child, WAIT).success());
    let rechained = tracker_log(d, &["logs", "--verify", "--expect", &head]);
    assert_eq!(rechained.code, 0, "{:?}", rechained.out);
    // 25 and restart, repair (the added line has no msgid: it cannot go
    // into the store, and the start says so), start, stop.
    assert!(
        rechained.out[0].starts_with("intact: 29 lines in 1 file, chain head "),
        "{:?}",
        rechained.out
    );
    assert_eq!(
        rechained.out[2],
        "note: lines 25-25 of logs/chat.log were chained when a tracker started, not as they were written (written before the chain existed, or the tracker before it stopped before recording them)"
    );
}

#[test]
fn a_last_line_cut_by_a_crash_is_shown_as_such() {
    let (dir, _) = session();
    let d = dir.path();
    let log = d.join("logs/chat.log");
    let mut text = std::fs::read_to_string(&log).expect("chat.log");
    text.push_str("2026-12-02T09:00:00.000Z msg #general <bob> half a sen");
    std::fs::write(&log, text).expect("write");
    let r = tracker_log(d, &["logs", "--utc"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out.len(), 25);
    assert_eq!(
        r.out[24],
        "2026-12-02T09:00:00.000Z msg #general <bob> half a sen  [cut off: the tracker stopped while writing this line]"
    );
    assert_eq!(
        r.err,
        "read 1 file: logs/chat.log (25 lines)\nline 25 of logs/chat.log is cut off: the tracker stopped while writing it\n"
    );
    let j = tracker_log(d, &["logs", "--json", "--event", "msg", "--user", "bob"]);
    let last: serde_json::Value =
        serde_json::from_str(j.out.last().expect("a line")).expect("json");
    assert_eq!(last["cut"], true);
    assert_eq!(last["text"], "half a sen");
}

/// A chat line from a raw connection, waited for in chat.log.
fn say(tracker: &Tracker, who: &mut Raw, nick: &str, text: &str) -> String {
    who.send(&format!("PRIVMSG #general :{text}"));
    let line = format!("msg #general <{nick}> {text}");
    tracker.wait_log(&line);
    line
}

#[test]
fn follow_prints_a_live_trackers_new_line_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tracker = Tracker::start_in(
        dir.path(),
        &["--no-tls", "--stay", "--log-rotate", "size:400"],
    );
    let mut alice = Raw::register(tracker.port, "alice");
    tracker.wait_log("join #general alice (127.0.0.1)");
    let mut follow = Command::new(tracker_bin())
        .args([
            "log", "--follow", "--utc", "--user", "alice", "--event", "msg",
        ])
        .arg(dir.path().join("logs"))
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tracker log --follow");
    let mut out = Lines::spawn(follow.stdout.take().expect("stdout"));
    let mut err = Lines::spawn(follow.stderr.take().expect("stderr"));
    err.wait_for("following", |l| {
        l.starts_with("following ") && l.ends_with("chat.log (Ctrl+C ends)")
    });
    let mut bob = Raw::register(tracker.port, "bob");
    for i in 0..12 {
        let sent = Instant::now();
        let line = format!("msg #general <alice> line {i} of a class that goes on and on");
        alice.send(&format!(
            "PRIVMSG #general :line {i} of a class that goes on and on"
        ));
        let got = out.wait_for(&line, |l| l.ends_with(&line));
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "line {i} took {took:?}: {got}"
        );
        // Someone else's line is filtered out.
        say(&tracker, &mut bob, "bob", &format!("reply {i}"));
    }
    // It went on across rotations (400 bytes a file), nothing doubled.
    let rotated = std::fs::read_dir(dir.path().join("logs"))
        .expect("logs")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("chat.log.2"))
        })
        .count();
    assert!(rotated >= 3, "{rotated} rotations");
    let _ = follow.kill();
    let _ = follow.wait();
    out.drain();
    assert_eq!(out.seen.len(), 12, "{:?}", out.seen);
}

#[test]
fn rotated_files_are_read_in_order_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracker = Tracker::start_in(dir.path(), &["--no-tls", "--log-rotate", "size:400"]);
    let mut alice = Raw::register(tracker.port, "alice");
    let mut bob = Raw::register(tracker.port, "bob");
    tracker.wait_log("join #general bob (127.0.0.1)");
    let mut said = Vec::new();
    for i in 0..20 {
        said.push(say(&tracker, &mut alice, "alice", &format!("message {i}")));
        said.push(say(&tracker, &mut bob, "bob", &format!("answer {i}")));
    }
    // The lock still keeps a second tracker off the rotated log.
    let second = Command::new(tracker_bin())
        .args([
            "--no-tls",
            "--no-password",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ])
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("second tracker");
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("is using"));
    alice.send("QUIT :bye");
    bob.send("QUIT :bye");
    assert!(wait_exit(&mut tracker.child, WAIT).success());
    let logs = dir.path().join("logs");
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .expect("logs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chat.log."))
        .collect();
    names.sort();
    let rotated: Vec<&String> = names
        .iter()
        .filter(|n| !["chat.log.lock", "chat.log.chain"].contains(&n.as_str()))
        .collect();
    assert!(rotated.len() >= 5, "{names:?}");
    for n in &rotated {
        // chat.log.2026-12-02T10-00-00.000Z
        assert_eq!(n.len(), "chat.log.2026-12-02T10-00-00.000Z".len(), "{n}");
        assert!(n.ends_with('Z'), "{n}");
    }
    let r = tracker_log(dir.path(), &["logs", "--utc", "--event", "msg"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.events(), said, "every line once, in order");
    assert!(
        r.err.starts_with(&format!(
            "read {} files: logs/{}",
            rotated.len() + 1,
            rotated[0]
        )),
        "{}",
        r.err
    );
    // The whole log, file by file, is what the files hold, in name order.
    let mut joined = String::new();
    for n in rotated.iter().map(|n| n.as_str()).chain(["chat.log"]) {
        joined.push_str(&std::fs::read_to_string(logs.join(n)).expect("file"));
    }
    // (`tracker log` shows a message line without its tags.)
    let all = tracker_log(dir.path(), &["logs", "--utc"]);
    let untagged: String = joined
        .lines()
        .map(|l| match confab::tracker::review::format::parse_line(l) {
            Some(e) if !e.tags.is_empty() => format!("{} {} {}\n", e.stamp, e.event, e.detail),
            _ => format!("{l}\n"),
        })
        .collect();
    assert_eq!(all.out.join("\n") + "\n", untagged);
    // And the chain runs across the files.
    let v = tracker_log(dir.path(), &["logs", "--verify"]);
    assert_eq!(v.code, 0, "{:?}", v.out);
    assert!(
        v.out[0].starts_with(&format!(
            "intact: {} lines in {} files",
            joined.lines().count(),
            rotated.len() + 1
        )),
        "{:?}",
        v.out
    );
    // Removing a whole rotated file is named.
    std::fs::remove_file(logs.join(rotated[1])).expect("rm");
    let v = tracker_log(dir.path(), &["logs", "--verify"]);
    assert_eq!(v.code, 1);
    assert!(
        v.out[0].starts_with(&format!("NOT INTACT: logs/{} is missing", rotated[1])),
        "{:?}",
        v.out
    );
}
