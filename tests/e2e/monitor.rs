//! `client --monitor`: one monitor watching three real trackers, in
//! `--json` (parsed back, line by line) and full-screen in tmux: the right
//! tracker on every line, posting to one tracker only, and a tracker
//! stopped and restarted on its port while the others carry on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::*;
use crate::tmux::{Tmux, have, wait_until};

const LABELS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Starts a tracker in `dir` on `port` (0: any), so a restarted one can
/// take the port its predecessor had. It stays when everyone has left.
fn tracker_on(dir: &Path, port: u16) -> Tracker {
    let child = Command::new(tracker_bin())
        .args(["--bind", "127.0.0.1", "--exit-grace", "0", "--stay"])
        .args(["--port", &port.to_string()])
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("CONFAB_PASSWORD", PASSWORD)
        .env("XDG_CONFIG_HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracker");
    Tracker::from_child(child, dir)
}

/// Three trackers, each in its own folder under `root`, and the monitor's
/// files beside them: `servers.txt` (labels alpha, beta, gamma), its
/// passwords file (0600) and a known-trackers file trusting all three.
struct Three {
    trackers: Vec<Tracker>,
    servers: PathBuf,
    known: PathBuf,
}

fn three(root: &Path) -> Three {
    three_with(root, "")
}

/// [`three`], with `alpha_config` as alpha's configuration file.
fn three_with(root: &Path, alpha_config: &str) -> Three {
    let trackers: Vec<Tracker> = LABELS
        .iter()
        .map(|l| {
            let dir = root.join(l);
            std::fs::create_dir_all(dir.join("confab")).expect("mkdir");
            if *l == "alpha" && !alpha_config.is_empty() {
                // XDG_CONFIG_HOME is the tracker's folder.
                std::fs::write(dir.join("confab/tracker.toml"), alpha_config).expect("config");
            }
            tracker_on(&dir, 0)
        })
        .collect();
    let servers = root.join("servers.txt");
    let mut list = String::from("# the three test trackers\n\n");
    let mut passwords = String::new();
    let mut known = String::new();
    for (t, label) in trackers.iter().zip(LABELS) {
        list.push_str(&format!("127.0.0.1:{} {label}\n", t.port));
        passwords.push_str(&format!("{label} {PASSWORD}\n"));
        known.push_str(&format!("127.0.0.1:{} {}\n", t.port, t.fingerprint));
    }
    std::fs::write(&servers, list).expect("servers.txt");
    let pw = root.join("servers.txt.passwords");
    std::fs::write(&pw, passwords).expect("passwords");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let known_path = root.join("known_trackers");
    std::fs::write(&known_path, known).expect("known");
    Three {
        trackers,
        servers,
        known: known_path,
    }
}

/// The monitor's arguments for `three`.
fn monitor_args(t: &Three) -> Vec<String> {
    vec![
        "--monitor".into(),
        t.servers.display().to_string(),
        "--user".into(),
        "mon".into(),
        "--known-trackers".into(),
        t.known.display().to_string(),
    ]
}

/// `client --monitor ... --json` with piped standard input (a bot).
fn monitor_json(t: &Three) -> ClientProc {
    monitor_piped(t, &["--json"])
}

/// The monitor with standard input and output piped, `extra` added.
fn monitor_piped(t: &Three, extra: &[&str]) -> ClientProc {
    let mut cmd = Command::new(client_bin());
    cmd.args(monitor_args(t))
        .args(extra)
        .env_remove("CONFAB_PASSWORD")
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ClientProc::spawn(cmd, "monitor")
}

/// Waits for the JSON record satisfying `pred`; checks every line is one
/// object with exactly the documented fields.
fn wait_record(m: &mut ClientProc, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let line = m.out.wait_for(what, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| well_formed(&v) && pred(&v))
    });
    serde_json::from_str(&line).expect("json")
}

/// One object with exactly tracker, room, sender, text, time, kind; the
/// time RFC 3339 UTC with milliseconds.
fn well_formed(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort();
    let time_ok = o["time"]
        .as_str()
        .is_some_and(|t| t.len() == 24 && t.ends_with('Z') && t.parse::<jiff::Timestamp>().is_ok());
    keys == ["kind", "room", "sender", "text", "time", "tracker"] && time_ok
}

/// `v` without its time (checked by [`well_formed`]), to compare exactly.
fn untimed(mut v: Value) -> Value {
    v.as_object_mut().expect("object").remove("time");
    v
}

fn chat(tracker: &str, sender: &str, text: &str) -> Value {
    json!({"tracker": tracker, "room": "#general", "sender": sender, "text": text, "kind": "message"})
}

/// Waits until every tracker has said it is connected and the monitor is
/// in its #general (in whatever order the trackers answer).
fn connected(m: &mut ClientProc, t: &Three) {
    let mut connected = Vec::new();
    let mut joined = Vec::new();
    while connected.len() < 3 || joined.len() < 3 {
        let got = wait_record(m, "connected and joined everywhere", |v| {
            v["kind"] == "connected" || (v["kind"] == "join" && v["sender"] == "mon")
        });
        let label = got["tracker"].as_str().unwrap_or_default().to_string();
        if got["kind"] == "join" {
            joined.push(label);
            continue;
        }
        let port = t.trackers[LABELS.iter().position(|l| *l == label).expect("label")].port;
        let text = format!("connected to 127.0.0.1:{port} as mon");
        assert_eq!(
            untimed(got),
            json!({"tracker": label, "room": null, "sender": null, "text": text, "kind": "connected"})
        );
        connected.push(label);
    }
    connected.sort();
    joined.sort();
    assert_eq!(connected, LABELS);
    assert_eq!(joined, LABELS);
}

/// The same name on three trackers, one line each: every JSON line names
/// its tracker, so the three `bob`s are never mixed up.
#[test]
fn json_lines_from_three_trackers_name_their_tracker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = three(dir.path());
    let mut m = monitor_json(&t);
    connected(&mut m, &t);
    let mut bobs: Vec<ClientProc> = t
        .trackers
        .iter()
        .map(|tr| ClientProc::join(tr, "bob"))
        .collect();
    // The trackers' lines come in whatever order the network gives them.
    let mut sorted = |what: &str, kind: &str| {
        let mut got: Vec<Value> = (0..3)
            .map(|i| {
                let v = wait_record(&mut m, &format!("{what} {i}"), |v| {
                    v["kind"] == kind && v["sender"] == "bob"
                });
                untimed(v)
            })
            .collect();
        got.sort_by_key(|v| v["tracker"].as_str().unwrap_or_default().to_string());
        got
    };
    let joins = sorted("bob joined", "join");
    let want: Vec<Value> = LABELS
        .iter()
        .map(|l| json!({"tracker": l, "room": "#general", "sender": "bob", "text": "bob joined", "kind": "join"}))
        .collect();
    assert_eq!(joins, want);
    for (bob, label) in bobs.iter_mut().zip(LABELS) {
        bob.send(&format!("hello from {label}"));
    }
    // Each exactly once, and nothing said on one tracker shown as another's.
    let messages = sorted("hello", "message");
    assert_eq!(
        messages,
        LABELS
            .iter()
            .map(|l| chat(l, "bob", &format!("hello from {l}")))
            .collect::<Vec<_>>()
    );
    // A line to the monitor that is not a post is answered, not dropped.
    m.send("hello?");
    let refused = wait_record(&mut m, "bad line refused", |v| v["kind"] == "error");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .starts_with("cannot read that line"),
        "{refused}"
    );
}

/// A bot's post to beta's #general reaches beta's people and only them.
#[test]
fn json_post_reaches_one_tracker_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = three(dir.path());
    // beta's and gamma's passwords from --password-file (by label, by
    // address), alpha's from the companion file.
    let companion = dir.path().join("servers.txt.passwords");
    std::fs::write(&companion, format!("# only alpha here\nalpha {PASSWORD}\n")).unwrap();
    let beta_pw = dir.path().join("beta.pw");
    let gamma_pw = dir.path().join("gamma.pw");
    for f in [&beta_pw, &gamma_pw] {
        std::fs::write(f, format!("{PASSWORD}\n")).unwrap();
    }
    let beta_arg = format!("beta={}", beta_pw.display());
    let gamma_arg = format!("127.0.0.1:{}={}", t.trackers[2].port, gamma_pw.display());
    let mut m = monitor_piped(
        &t,
        &[
            "--json",
            "--password-file",
            &beta_arg,
            "--password-file",
            &gamma_arg,
        ],
    );
    connected(&mut m, &t);
    let mut bobs: Vec<ClientProc> = t
        .trackers
        .iter()
        .map(|tr| ClientProc::join(tr, "bob"))
        .collect();
    m.send(r##"{"tracker":"beta","room":"#general","text":"only for beta"}"##);
    bobs[1].expect("#general <mon> only for beta");
    let echo = wait_record(&mut m, "the post's echo", |v| v["kind"] == "message");
    assert_eq!(untimed(echo), chat("beta", "mon", "only for beta"));
    t.trackers[1].wait_log("msg #general <mon> only for beta");
    // A later post on each other tracker: when it has arrived, anything
    // the monitor had sent there before it has too.
    for i in [0, 2] {
        let label = LABELS[i];
        m.send(&format!(
            r##"{{"tracker":"127.0.0.1:{}","room":"#general","text":"after, on {label}"}}"##,
            t.trackers[i].port
        ));
        bobs[i].expect(&format!("#general <mon> after, on {label}"));
        assert!(
            !bobs[i].bodies().iter().any(|l| l.contains("only for beta")),
            "{label} got beta's post: {:?}",
            bobs[i].bodies()
        );
        assert!(
            !t.trackers[i].log().contains("only for beta"),
            "{label}'s chat.log"
        );
    }
    m.send(r##"{"tracker":"delta","room":"#general","text":"x"}"##);
    let refused = wait_record(&mut m, "unknown tracker", |v| v["kind"] == "error");
    assert_eq!(
        untimed(refused),
        json!({"tracker": "delta", "room": null, "sender": null, "text": "no tracker named \"delta\"", "kind": "error"})
    );
}

/// beta stops and comes back on the same port: the monitor says so, the
/// others carry on meanwhile, and it logs in again by itself.
#[test]
fn json_tracker_restarted_is_reconnected_while_the_others_carry_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut t = three(root.path());
    // No --json: standard output is a pipe, so JSON lines all the same.
    let mut m = monitor_piped(&t, &[]);
    connected(&mut m, &t);
    let beta_port = t.trackers[1].port;
    signal(&t.trackers[1].child, "TERM");
    wait_exit(&mut t.trackers[1].child, WAIT);
    let lost = wait_record(&mut m, "beta disconnected", |v| {
        v["tracker"] == "beta" && v["kind"] == "disconnected"
    });
    let text = lost["text"].as_str().unwrap();
    let want =
        format!("disconnected from 127.0.0.1:{beta_port}: tracker shutting down; trying again in ");
    assert!(text.starts_with(&want), "{text}");
    // alpha and gamma carry on.
    let mut alice = ClientProc::join(&t.trackers[0], "alice");
    alice.send("alpha carries on");
    let got = wait_record(&mut m, "alpha's line", |v| v["kind"] == "message");
    assert_eq!(untimed(got), chat("alpha", "alice", "alpha carries on"));
    // beta again, on its port, with its certificate (the same data folder).
    let beta = tracker_on(&root.path().join("beta"), beta_port);
    assert_eq!(beta.port, beta_port);
    t.trackers[1] = beta;
    let back = wait_record(&mut m, "beta connected again", |v| {
        v["tracker"] == "beta" && v["kind"] == "connected"
    });
    assert_eq!(
        untimed(back),
        json!({"tracker": "beta", "room": null, "sender": null,
               "text": format!("connected again to 127.0.0.1:{beta_port} as mon"), "kind": "connected"})
    );
    let mut carol = ClientProc::join(&t.trackers[1], "carol");
    carol.send("beta is back");
    let got = wait_record(&mut m, "beta's line", |v| {
        v["kind"] == "message" && v["tracker"] == "beta"
    });
    assert_eq!(untimed(got), chat("beta", "carol", "beta is back"));
    // The monitor is still there for gamma too.
    let mut dave = ClientProc::join(&t.trackers[2], "dave");
    dave.send("gamma too");
    let got = wait_record(&mut m, "gamma's line", |v| {
        v["kind"] == "message" && v["tracker"] == "gamma"
    });
    assert_eq!(untimed(got), chat("gamma", "dave", "gamma too"));
}

/// Without a terminal, a tracker whose fingerprint is not known is not
/// trusted: the monitor says how to trust it and watches the others.
#[test]
fn unknown_fingerprint_refused_without_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = three(dir.path());
    // gamma is not in the known-trackers file.
    let known: String = std::fs::read_to_string(&t.known)
        .unwrap()
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&t.known, known).unwrap();
    // A passwords file others can read still works, with a warning.
    let pw = dir.path().join("servers.txt.passwords");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut m = monitor_json(&t);
    let warning = m
        .err
        .wait_for("open passwords file", |l| l.starts_with("WARNING: "));
    assert_eq!(
        warning,
        format!(
            "WARNING: {} (file, mode 0644) is open to other users of this machine; to fix: chmod 600 {}",
            pw.display(),
            pw.display()
        )
    );
    let refused = m
        .err
        .wait_for("gamma refused", |l| l.starts_with("[gamma] not watched: "));
    assert!(
        refused.contains(&format!(
            "unknown fingerprint {}; not trusted",
            t.trackers[2].fingerprint
        )) && refused.contains(&format!(
            "connect once with `client 127.0.0.1:{}`",
            t.trackers[2].port
        )) && refused.contains("--accept-new"),
        "{refused}"
    );
    let given_up = wait_record(&mut m, "gamma given up", |v| v["tracker"] == "gamma");
    assert_eq!(given_up["kind"], "given_up");
    for label in ["alpha", "beta"] {
        wait_record(&mut m, &format!("{label} connected"), |v| {
            v["tracker"] == label && v["kind"] == "connected"
        });
    }
    // Nothing left to watch at all: exit 3.
    std::fs::write(&t.known, "").unwrap();
    let mut none = monitor_json(&t);
    assert_eq!(none.wait_exit().code(), Some(3));
    none.err.wait_for("nothing to watch", |l| {
        l.contains("no tracker left to watch")
    });
}

/// A servers file with a mistake is refused with its line, before any
/// connection.
#[test]
fn bad_servers_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers = dir.path().join("servers.txt");
    std::fs::write(&servers, "# lab\nlab.example:6697 lab\nhall:x\n").unwrap();
    let out = Command::new(client_bin())
        .args(["--monitor", &servers.display().to_string(), "--user", "mon"])
        .stdin(Stdio::null())
        .output()
        .expect("client");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "client: {} line 3: cannot read the port in \"hall:x\"",
            servers.display()
        )
    );
}

/// The full screen in a real terminal: lines from all three trackers in
/// the merged view, each marked with its tracker; a line typed in beta's
/// #general window reaches beta only; gamma stopped shows as down in its
/// windows, the merged view and the status bar, and comes back.
#[test]
fn full_screen_merged_view_of_three_trackers() {
    if !have(&["tmux"]) {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let mut t = three(root.path());
    let args = monitor_args(&t);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let term = Tmux::start(
        "monitor",
        &crate::terminal::wrapped(root.path(), client_bin(), &args),
        &[],
        &["CONFAB_PASSWORD"],
    );
    wait_until(&term, "all three up", |s| {
        s.contains("monitor │ alpha up │ beta up │ gamma up │ all (TLS)")
    });
    assert_eq!(term.pane_format("#{alternate_on}"), "1", "not full-screen");
    let mut bobs: Vec<ClientProc> = t
        .trackers
        .iter()
        .map(|tr| ClientProc::join(tr, "bob"))
        .collect();
    for (bob, label) in bobs.iter_mut().zip(LABELS) {
        bob.send(&format!("hello from {label}"));
    }
    let screen = wait_until(&term, "three lines marked with their tracker", |s| {
        LABELS
            .iter()
            .all(|l| s.contains(&format!("{l} #general <bob> hello from {l}")))
    });
    for l in LABELS {
        assert!(
            screen.lines().any(
                |row| row.contains(&format!("{l} #general <bob> hello from {l}"))
                    && row.contains(':')
            ),
            "{screen}"
        );
    }
    // Write in beta's room window.
    term.type_line("/w beta/#general");
    wait_until(&term, "beta's room in view", |s| {
        s.contains("[beta/#general]")
    });
    term.type_line("hi from the monitor");
    bobs[1].expect("#general <mon> hi from the monitor");
    for i in [0, 2] {
        bobs[i].send("barrier");
        bobs[i].expect("#general <bob> barrier");
        assert!(
            !bobs[i]
                .bodies()
                .iter()
                .any(|l| l.contains("hi from the monitor"))
        );
    }
    // gamma goes away: said in the merged view and the status bar.
    let gamma_port = t.trackers[2].port;
    signal(&t.trackers[2].child, "TERM");
    wait_exit(&mut t.trackers[2].child, WAIT);
    term.type_line("/w all");
    let down = format!("gamma !!! disconnected from 127.0.0.1:{gamma_port}: tracker shutting down");
    wait_until(&term, "gamma down", |s| {
        s.contains(&down) && s.contains("│ gamma down │")
    });
    // The others carry on meanwhile.
    bobs[0].send("alpha still here");
    term.wait_screen("alpha #general <bob> alpha still here");
    t.trackers[2] = tracker_on(&root.path().join("gamma"), gamma_port);
    let again = format!("gamma *** connected again to 127.0.0.1:{gamma_port} as mon");
    wait_until(&term, "gamma back", |s| {
        s.contains(&again) && s.contains("│ gamma up │")
    });
    let mut erin = ClientProc::join(&t.trackers[2], "erin");
    erin.send("gamma is back");
    term.wait_screen("gamma #general <erin> gamma is back");
    term.type_line("/exit");
    let screen = term.wait_screen("EXIT=");
    assert!(screen.contains("*** you left the trackers"), "{screen}");
    assert_eq!(crate::terminal::screen_value(&screen, "EXIT="), "0");
    for (i, bob) in bobs.iter_mut().enumerate().take(2) {
        bob.expect_matching(&format!("mon left {}", LABELS[i]), |l| {
            l.starts_with("<-- mon left")
        });
    }
}

/// At a terminal, each tracker seen for the first time is asked about,
/// by name, and so is its password (hidden); the username once for all.
#[test]
fn trust_and_password_asked_per_tracker_at_the_terminal() {
    if !have(&["tmux"]) {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let t = three(root.path());
    std::fs::remove_file(root.path().join("servers.txt.passwords")).expect("rm");
    std::fs::write(&t.known, "").expect("empty known");
    // On beta the name is taken: asked again there, for beta only.
    let _other_mon = ClientProc::join(&t.trackers[1], "mon");
    let servers = t.servers.display().to_string();
    let known = t.known.display().to_string();
    let args = ["--monitor", &servers, "--known-trackers", &known];
    let term = Tmux::start(
        "monitor-ask",
        &crate::terminal::wrapped(root.path(), client_bin(), &args),
        &[],
        &["CONFAB_PASSWORD"],
    );
    for (i, (tr, label)) in t.trackers.iter().zip(LABELS).enumerate() {
        let screen = term.wait_screen(&format!("[{label}] Trust it and continue (yes/no)?"));
        assert!(
            screen.contains(&format!(
                "[{label}] The authenticity of tracker 127.0.0.1:{} can't be established.",
                tr.port
            )) && screen.contains(&format!("[{label}] Its fingerprint is {}", tr.fingerprint)),
            "{screen}"
        );
        term.type_line("yes");
        term.wait_screen(&format!(
            "[{label}] The tracker needs a password. Password:"
        ));
        term.type_line(PASSWORD);
        if i == 0 {
            term.wait_screen("[alpha] Username:");
            term.type_line("mon");
        }
        if i == 1 {
            term.wait_screen("[beta] That username is taken: mon");
            term.wait_screen("[beta] Username:");
            term.type_line("mon2");
        }
    }
    let screen = wait_until(&term, "all three up", |s| {
        s.contains("monitor │ alpha up │ beta up │ gamma up")
    });
    assert!(
        !screen.contains(PASSWORD),
        "a password was shown:\n{screen}"
    );
    for (tr, (label, nick)) in t
        .trackers
        .iter()
        .zip(LABELS.iter().zip(["mon", "mon2", "mon"]))
    {
        let line = format!("{label} *** connected to 127.0.0.1:{} as {nick}", tr.port);
        assert!(screen.contains(&line), "{line}\n{screen}");
    }
    // Trusted once, remembered: the next start asks nothing.
    let remembered = std::fs::read_to_string(&t.known).expect("known");
    for tr in &t.trackers {
        let line = format!("127.0.0.1:{} {}", tr.port, tr.fingerprint);
        assert!(remembered.lines().any(|l| l == line), "{remembered}");
    }
    term.press("C-c");
    let screen = term.wait_screen("EXIT=");
    assert_eq!(
        crate::terminal::screen_value(&screen, "EXIT="),
        "0",
        "{screen}"
    );
}

/// A tracker that comes back with another certificate is not logged in
/// to again: the monitor says the fingerprint changed and how to forget
/// the old one, and watches the others.
#[test]
fn json_tracker_back_with_another_certificate_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut t = three(root.path());
    let mut m = monitor_json(&t);
    connected(&mut m, &t);
    let port = t.trackers[2].port;
    let old = t.trackers[2].fingerprint.clone();
    signal(&t.trackers[2].child, "TERM");
    wait_exit(&mut t.trackers[2].child, WAIT);
    wait_record(&mut m, "gamma disconnected", |v| {
        v["tracker"] == "gamma" && v["kind"] == "disconnected"
    });
    let other = root.path().join("gamma-new");
    std::fs::create_dir_all(&other).expect("mkdir");
    t.trackers[2] = tracker_on(&other, port);
    let new = t.trackers[2].fingerprint.clone();
    assert_ne!(old, new);
    let refused = wait_record(&mut m, "gamma refused", |v| {
        v["tracker"] == "gamma" && v["kind"] == "given_up"
    });
    let text = refused["text"].as_str().expect("text");
    let want = format!(
        "not connecting to 127.0.0.1:{port} (not tried again): THE TRACKER'S FINGERPRINT HAS CHANGED (expected {old}, received {new})"
    );
    assert!(text.starts_with(&want), "{text}");
    assert!(
        text.contains(&format!(
            "client --forget 127.0.0.1:{port} --known-trackers"
        )),
        "{text}"
    );
    assert!(
        !t.trackers[2].log().contains("join #general mon "),
        "logged in anyway:\n{}",
        t.trackers[2].log()
    );
    let mut bob = ClientProc::join(&t.trackers[0], "bob");
    bob.send("alpha goes on");
    let got = wait_record(&mut m, "alpha's line", |v| v["kind"] == "message");
    assert_eq!(untimed(got), chat("alpha", "bob", "alpha goes on"));
}

/// A tracker operator's KILL is respected: the monitor does not come back
/// to that tracker, says why, and watches the others.
#[test]
fn json_killed_by_an_operator_is_not_tried_again() {
    let root = tempfile::tempdir().expect("tempdir");
    let hash = operator_hash("chalk dust");
    let t = three_with(
        root.path(),
        &format!("[[oper]]\nname = \"teacher\"\npassword-hash = \"{hash}\"\n"),
    );
    let mut m = monitor_json(&t);
    connected(&mut m, &t);
    let mut teacher = ClientProc::join(&t.trackers[0], "teacher");
    teacher.send("/oper teacher chalk dust");
    teacher.expect_matching("oper", |l| l.contains("you are now a tracker operator"));
    teacher.send("/kill mon spam");
    let off = wait_record(&mut m, "alpha given up", |v| {
        v["tracker"] == "alpha" && (v["kind"] == "given_up" || v["kind"] == "disconnected")
    });
    assert_eq!(
        untimed(off),
        json!({"tracker": "alpha", "room": null, "sender": null, "kind": "given_up",
               "text": format!("not connecting to 127.0.0.1:{} (not tried again): removed by a tracker operator (Killed by teacher (spam)); start the monitor again to come back", t.trackers[0].port)})
    );
    // beta carries on; alpha sees no new login from the monitor.
    let mut bob = ClientProc::join(&t.trackers[1], "bob");
    bob.send("beta goes on");
    let got = wait_record(&mut m, "beta's line", |v| v["kind"] == "message");
    assert_eq!(untimed(got), chat("beta", "bob", "beta goes on"));
    let joins = t.trackers[0]
        .log_events()
        .iter()
        .filter(|l| l.starts_with("join #general mon "))
        .count();
    assert_eq!(joins, 1, "{}", t.trackers[0].log());
}

/// A tracker not up yet when the monitor starts is tried in the
/// background and joined when it comes, with the name asked at another
/// tracker's login.
#[test]
fn a_tracker_down_at_start_is_joined_when_it_comes() {
    if !have(&["tmux"]) {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let t = three(root.path());
    // A port nothing listens on yet, listed first in place of alpha's.
    let late_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let list = std::fs::read_to_string(&t.servers).expect("servers");
    let list = list.replace(
        &format!(":{} alpha", t.trackers[0].port),
        &format!(":{late_port} alpha"),
    );
    std::fs::write(&t.servers, list).expect("servers");
    let servers = t.servers.display().to_string();
    let known = t.known.display().to_string();
    let args = [
        "--monitor",
        &servers,
        "--known-trackers",
        &known,
        "--accept-new",
    ];
    let term = Tmux::start(
        "monitor-late",
        &crate::terminal::wrapped(root.path(), client_bin(), &args),
        &[],
        &["CONFAB_PASSWORD"],
    );
    term.wait_screen("[alpha] Connection refused");
    term.wait_screen("[beta] Username:");
    term.type_line("mon");
    wait_until(&term, "alpha down, the others up", |s| {
        s.contains("monitor │ alpha down │ beta up │ gamma up")
    });
    let late_dir = root.path().join("alpha-late");
    std::fs::create_dir_all(&late_dir).expect("mkdir");
    let late = tracker_on(&late_dir, late_port);
    let line = format!("alpha *** connected to 127.0.0.1:{late_port} as mon");
    wait_until(&term, "alpha up", |s| {
        s.contains(&line) && s.contains("monitor │ alpha up │ beta up │ gamma up")
    });
    late.wait_log("join #general mon (127.0.0.1)");
    let remembered = std::fs::read_to_string(&t.known).expect("known");
    assert!(
        remembered.contains(&format!("127.0.0.1:{late_port} {}", late.fingerprint)),
        "{remembered}"
    );
}
