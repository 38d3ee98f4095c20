//! Finding trackers on the local network (mDNS / DNS-SD), across two
//! network namespaces joined by a veth pair that each test makes for
//! itself: the tracker (or a fake announcement) in one, the client in the
//! other, so what the client finds crossed a real link. Needs root and
//! `ip netns`; skipped with a message otherwise (as root with `ip` there,
//! under CI, a namespace that cannot be made fails the test instead).
//! The addresses exist only inside the namespaces, which are deleted when
//! the test ends, however it ends.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use confab::discovery::{Announcement, SERVICE_TYPE};
use confab::tls::Fingerprint;

use crate::harness::*;
use crate::terminal::wrapped;
use crate::tmux::{Tmux, have, on_path, poll};

/// Namespaces of this test run are called `cfd<pid>x<n>a` / `...b`.
const PREFIX: &str = "cfd";
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Two network namespaces, `a` and `b`, joined by a veth pair with
/// `10.77.<n>.1` in `a` and `10.77.<n>.2` in `b`.
struct NetPair {
    a: String,
    b: String,
    a_ip: String,
    b_ip: String,
    veth: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Skips the test with a message saying why.
fn skip(why: &str) -> Option<NetPair> {
    eprintln!("skipped: {why}");
    None
}

/// Deletes namespaces left by earlier runs that were killed before they
/// could clean up (their process is gone).
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

impl NetPair {
    fn create() -> Option<NetPair> {
        if !rustix::process::geteuid().is_root() {
            return skip("network namespaces need root");
        }
        if !on_path("ip") {
            return skip("`ip` (iproute2) is not installed (apt-get install iproute2)");
        }
        sweep_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}x{n}", std::process::id());
        let pair = NetPair {
            a: format!("{PREFIX}{tag}a"),
            b: format!("{PREFIX}{tag}b"),
            a_ip: format!("10.77.{n}.1"),
            b_ip: format!("10.77.{n}.2"),
            // Interface names are at most 15 bytes.
            veth: format!("cv{tag}"),
        };
        let (va, vb) = (format!("{}a", pair.veth), format!("{}b", pair.veth));
        let a_cidr = format!("{}/24", pair.a_ip);
        let b_cidr = format!("{}/24", pair.b_ip);
        let steps: [&[&str]; 11] = [
            &["netns", "add", &pair.a],
            &["netns", "add", &pair.b],
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
            &["link", "set", &va, "netns", &pair.a],
            &["link", "set", &vb, "netns", &pair.b],
            &["-n", &pair.a, "addr", "add", &a_cidr, "dev", &va],
            &["-n", &pair.b, "addr", "add", &b_cidr, "dev", &vb],
            &["-n", &pair.a, "link", "set", &va, "up", "multicast", "on"],
            &["-n", &pair.b, "link", "set", &vb, "up", "multicast", "on"],
            &["-n", &pair.a, "link", "set", "lo", "up"],
            &["-n", &pair.b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                // `pair` is dropped here: whatever was made is removed.
                // Root with `ip` and no namespaces under CI (`.ci/run`
                // runs as root) is a broken setup, not a reason to skip.
                if std::env::var_os("CI").is_some() {
                    panic!("cannot set up network namespaces: {e}");
                }
                return skip(&format!("cannot set up network namespaces: {e}"));
            }
        }
        Some(pair)
    }

    /// `program` run inside namespace `ns`.
    fn exec(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it
        // the pair; the link is deleted by name in case setup stopped
        // before it moved.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
        let _ = ip(&["link", "del", &format!("{}a", self.veth)]);
    }
}

/// A tracker called `name` in namespace `a`, listening on its veth
/// address unless `extra` has a `--bind`.
fn tracker_in(pair: &NetPair, dir: &Path, name: &str, extra: &[&str]) -> Tracker {
    let mut command = pair.exec(&pair.a, tracker_bin());
    if !extra.contains(&"--bind") {
        command.args(["--bind", &pair.a_ip]);
    }
    let child = command
        .args(["--port", "0", "--stay"])
        .args(["--server-name", name])
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .env("CONFAB_PASSWORD", PASSWORD)
        .env("XDG_CONFIG_HOME", dir)
        .env("RUST_LOG", "confab=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracker in its namespace");
    let mut tracker = Tracker::from_child(child, dir);
    let expected = if extra.contains(&"--no-announce") {
        "not announced on the local network (--no-announce)".to_string()
    } else {
        format!("announced on the local network as {name} (mDNS); --no-announce turns it off")
    };
    tracker.stdout.wait_for(&expected, |l| {
        l.starts_with("announced") || l.starts_with("not announced")
    });
    assert_eq!(tracker.stdout.seen.last(), Some(&expected));
    tracker
}

/// `client --list` in namespace `b`.
fn list(pair: &NetPair, extra: &[&str]) -> Output {
    list_in(pair, &pair.b, extra)
}

/// `client --list` in namespace `ns`.
fn list_in(pair: &NetPair, ns: &str, extra: &[&str]) -> Output {
    pair.exec(ns, client_bin())
        .args(["--list", "--browse-time", "1.5"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run client --list")
}

/// `client --list --json` in `b`, parsed, once it shows a tracker that
/// satisfies `ready` (announcements take up to a second to be answered
/// after a tracker starts, and member counts follow within two).
fn json_once(
    pair: &NetPair,
    what: &str,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    json_once_in(pair, &pair.b, what, ready)
}

/// [`json_once`] in namespace `ns`.
fn json_once_in(
    pair: &NetPair,
    ns: &str,
    what: &str,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let last = std::cell::RefCell::new(String::new());
    poll(
        what,
        || {
            let out = list_in(pair, ns, &["--json"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            *last.borrow_mut() = format!(
                "exit {:?}\n{text}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
            let objects: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
                .collect();
            ready(&objects).then_some(objects)
        },
        || last.borrow().clone(),
    )
}

fn version() -> String {
    let out = Command::new(tracker_bin())
        .arg("--version")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("tracker ")
        .unwrap()
        .to_string()
}

#[test]
fn announced_trackers_are_listed_and_a_no_announce_one_is_not() {
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lab = tracker_in(&pair, &dir.path().join("lab"), "lab", &[]);
    let open = tracker_in(
        &pair,
        &dir.path().join("open"),
        "open-house",
        &["--no-tls", "--no-password"],
    );
    let hidden = tracker_in(
        &pair,
        &dir.path().join("hidden"),
        "hidden",
        &["--no-announce"],
    );

    let found = json_once(&pair, "both announced trackers", |o| o.len() >= 2);
    assert_eq!(
        found,
        vec![
            serde_json::json!({
                "name": "lab", "address": pair.a_ip, "port": lab.port,
                "addresses": [pair.a_ip], "tls": true, "password": true,
                "fingerprint": lab.fingerprint, "members": 0, "version": version(),
            }),
            serde_json::json!({
                "name": "open-house", "address": pair.a_ip, "port": open.port,
                "addresses": [pair.a_ip], "tls": false, "password": false,
                "fingerprint": null, "members": 0, "version": version(),
            }),
        ],
        "the --no-announce tracker (port {}) is not among them",
        hidden.port
    );

    // For people: the same, numbered.
    let out = list(&pair, &[]);
    assert_eq!(out.status.code(), Some(0));
    let lab_at = format!("{}:{}", pair.a_ip, lab.port);
    let open_at = format!("{}:{}", pair.a_ip, open.port);
    let w = lab_at.len().max(open_at.len());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "  1. lab         {lab_at:w$}  0 members  TLS, password\n     fingerprint {}\n\
             \x20 2. open-house  {open_at:w$}  0 members  no TLS, no password\n     \
             no fingerprint: without TLS anyone on the network can read and change the traffic\n",
            lab.fingerprint
        )
    );

    // With no terminal to ask on, nothing is picked for the user.
    let out = pair
        .exec(&pair.b, client_bin())
        .args(["--plain", "--user", "bot", "--browse-time", "1.5"])
        .env("CONFAB_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("run client");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "No address given: looking for trackers on the local network (1.5 s)...\n\
             Found 2 trackers on the local network:\n{}\
             client: no terminal to ask which tracker to join: give its address (client ADDRESS), see them with client --list\n",
            String::from_utf8_lossy(&list(&pair, &[]).stdout)
        )
    );
    assert_eq!(lab.log_events().len(), 1, "{}", lab.log());

    // A member joins lab: the announcement follows.
    let mut bob = ClientProc::spawn(
        {
            let mut c = pair.exec(&pair.b, client_bin());
            c.arg(&lab_at)
                .args([
                    "--plain",
                    "--user",
                    "bob",
                    "--fingerprint",
                    &lab.fingerprint,
                ])
                .arg("--known-trackers")
                .arg(dir.path().join("known_trackers"))
                .env("CONFAB_PASSWORD", PASSWORD)
                .env("TZ", "UTC")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c
        },
        "bob",
    );
    bob.expect("#general --> you joined");
    lab.wait_log(&format!("join #general bob ({})", pair.b_ip));
    json_once(&pair, "lab announcing 1 member", |o| {
        o.iter().any(|t| t["name"] == "lab" && t["members"] == 1)
    });
    bob.send("/exit");
    assert_eq!(bob.wait_exit().code(), Some(0));
    json_once(&pair, "lab announcing 0 members again", |o| {
        o.iter().any(|t| t["name"] == "lab" && t["members"] == 0)
    });
    drop(hidden);
}

#[test]
fn a_tracker_started_with_no_announce_is_not_found() {
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hidden = tracker_in(
        &pair,
        &dir.path().join("hidden"),
        "hidden",
        &["--no-announce"],
    );
    // A tracker started after it is found; by then the first would have
    // been too, had it been announced.
    let mut shown = tracker_in(&pair, &dir.path().join("shown"), "shown", &[]);
    let found = json_once(&pair, "the announced tracker", |o| !o.is_empty());
    assert_eq!(
        found
            .iter()
            .map(|o| (o["name"].clone(), o["port"].clone()))
            .collect::<Vec<_>>(),
        [("shown".into(), shown.port.into())],
        "hidden listens on port {}",
        hidden.port
    );
    signal(&shown.child, "TERM");
    assert_eq!(wait_exit(&mut shown.child, WAIT).code(), Some(0));
    // Nothing announced: exit 4 and what to do.
    let out = list(&pair, &[]);
    assert_eq!(out.status.code(), Some(4), "exit 4: none found");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No tracker found on the local network in 1.5 s.\n\
         Give the tracker's address instead, as it printed it (`clients join with: ...`): client 192.168.1.20\n\
         (a tracker started with --no-announce, on another network, or behind a firewall that drops mDNS is not found; --browse-time SECS listens longer)\n"
    );
}

/// The client with no address in a terminal in namespace `b`.
fn client_with_no_address(pair: &NetPair, dir: &Path, session: &str) -> Tmux {
    let known = dir.join("known_trackers").display().to_string();
    let args = [
        "netns",
        "exec",
        &pair.b,
        client_bin(),
        "--plain",
        "--user",
        "bob",
        "--known-trackers",
        &known,
        "--browse-time",
        "1.5",
    ];
    Tmux::start(
        session,
        &wrapped(dir, "ip", &args),
        &[("CONFAB_PASSWORD", Path::new(PASSWORD))],
        &[],
    )
}

/// The screen's non-empty lines.
fn lines(screen: &str) -> Vec<String> {
    screen
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_client_with_no_address_finds_the_tracker_asks_and_joins() {
    if !have(&["tmux"]) {
        return;
    }
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lab = tracker_in(&pair, &dir.path().join("lab"), "lab", &[]);
    json_once(&pair, "lab announced", |o| o.len() == 1);

    let term = client_with_no_address(&pair, dir.path(), "discovery-join");
    let at = format!("{}:{}", pair.a_ip, lab.port);
    let screen = term.wait_screen("[Y/n]");
    assert_eq!(
        lines(&screen),
        [
            "No address given: looking for trackers on the local network (1.5 s)...".to_string(),
            "Found 1 tracker on the local network:".into(),
            format!("  1. lab  {at}  0 members  TLS, password"),
            format!("     fingerprint {}", lab.fingerprint),
            format!("Join lab at {at}? [Y/n]"),
        ]
    );
    term.type_line("y");
    // Discovery never replaces trust: a tracker seen for the first time
    // is asked about as when its address is typed.
    let screen = term.wait_screen("Trust it and continue (yes/no)?");
    assert_eq!(
        lines(&screen)[4..],
        [
            format!("Join lab at {at}? [Y/n] y"),
            format!("The authenticity of tracker {at} can't be established."),
            format!("Its fingerprint is {}", lab.fingerprint),
            "Compare it with the one the tracker printed when it started.".into(),
            "Trust it and continue (yes/no)?".into(),
        ]
    );
    term.type_line("yes");
    term.wait_screen("#general --> you joined");
    lab.wait_log(&format!("join #general bob ({})", pair.b_ip));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("known_trackers")).unwrap(),
        format!("{at} {}\n", lab.fingerprint)
    );
    term.type_line("/exit");
    term.wait_screen("EXIT=0");
}

/// Runs `f` on a thread moved into namespace `ns`; threads it starts (an
/// mDNS daemon's) are in the namespace too.
fn in_namespace<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let netns = std::fs::File::open(format!("/run/netns/{ns}")).expect("open the namespace");
        rustix::thread::move_into_link_name_space(
            netns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("enter the namespace");
        f()
    })
    .join()
    .expect("thread in the namespace")
}

/// Announces, from namespace `ns`, a tracker that is not there: `name` at
/// `ip:port` with `fingerprint`, as a real mDNS announcement (mdns-sd).
fn fake_announcement(
    ns: &str,
    name: &str,
    ip: &str,
    port: u16,
    fingerprint: Fingerprint,
) -> mdns_sd::ServiceDaemon {
    let (name, ip) = (name.to_string(), ip.to_string());
    in_namespace(ns, move || {
        let daemon = mdns_sd::ServiceDaemon::new().expect("mdns daemon");
        let txt: Vec<mdns_sd::TxtProperty> = Announcement {
            tls: true,
            password: true,
            fingerprint: Some(fingerprint),
            members: 30,
            version: "0.1.0".into(),
        }
        .to_txt()
        .into_iter()
        .map(mdns_sd::TxtProperty::from)
        .collect();
        let ip: std::net::IpAddr = ip.parse().unwrap();
        daemon
            .disable_interface(mdns_sd::IfKind::All)
            .and_then(|()| daemon.enable_interface(mdns_sd::IfKind::Addr(ip)))
            .expect("choose the interface");
        let info = mdns_sd::ServiceInfo::new(SERVICE_TYPE, &name, "impostor.local.", ip, port, txt)
            .expect("service info");
        daemon.register(info).expect("register");
        daemon
    })
}

#[test]
fn an_announcement_whose_fingerprint_the_tracker_does_not_present_is_refused() {
    if !have(&["tmux"]) {
        return;
    }
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The real tracker, announced as "lab".
    let lab = tracker_in(&pair, &dir.path().join("lab"), "lab", &[]);
    // Someone else's tracker (another certificate), not announced...
    let other = tracker_in(
        &pair,
        &dir.path().join("other"),
        "other",
        &["--no-announce"],
    );
    // ...announced by them under a name of their choosing with lab's
    // fingerprint, copied from lab's announcement.
    let real = Fingerprint::parse(&lab.fingerprint).unwrap();
    let fake = fake_announcement(&pair.a, "lab-official", &pair.a_ip, other.port, real);
    json_once(&pair, "lab and the fake announced", |o| o.len() == 2);

    let term = client_with_no_address(&pair, dir.path(), "discovery-spoof");
    let screen = term.wait_screen("Join which one? [1-2, Enter to cancel]");
    let lab_at = format!("{}:{}", pair.a_ip, lab.port);
    let other_at = format!("{}:{}", pair.a_ip, other.port);
    let w = lab_at.len().max(other_at.len());
    assert_eq!(
        lines(&screen)[1..],
        [
            "Found 2 trackers on the local network:".to_string(),
            format!("  1. lab           {lab_at:w$}  0 members   TLS, password"),
            format!("     fingerprint {}", lab.fingerprint),
            format!("  2. lab-official  {other_at:w$}  30 members  TLS, password"),
            format!("     fingerprint {}", lab.fingerprint),
            "Join which one? [1-2, Enter to cancel]".into(),
        ]
    );
    term.type_line("2");
    let screen = term.wait_screen("EXIT=3");
    let text = lines(&screen).join("\n");
    assert!(
        text.contains(&format!(
            "@  WARNING: NOT THE TRACKER THAT WAS ANNOUNCED!           @\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             lab-official was announced on the local network with the fingerprint\n    {}\n\
             but {other_at} presented\n    {}\n\
             Someone on the network may be announcing a tracker that is not theirs. Refusing to connect.",
            lab.fingerprint, other.fingerprint
        )),
        "{screen}"
    );
    // Refused before anything was asked or sent: no trust question, no
    // fingerprint remembered, no login.
    assert!(!text.contains("authenticity"), "{screen}");
    assert!(!dir.path().join("known_trackers").exists());
    assert!(!other.log().contains("join"), "{}", other.log());
    let _ = fake.shutdown();
}

#[test]
fn a_tracker_is_announced_on_the_addresses_it_listens_on() {
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let only_here = tracker_in(
        &pair,
        &dir.path().join("loop"),
        "loopback-only",
        &["--bind", "127.0.0.1"],
    );
    let everywhere = tracker_in(
        &pair,
        &dir.path().join("all"),
        "everywhere",
        &["--bind", "0.0.0.0"],
    );
    let at = |o: &serde_json::Value| (o["name"].clone(), o["addresses"].clone(), o["port"].clone());
    // On its own machine (namespace) both are found, each at the address
    // it listens on; the wildcard one on the network's interface, never
    // as 127.0.0.1.
    let here = json_once_in(&pair, &pair.a, "both, from their machine", |o| o.len() == 2);
    assert_eq!(
        here.iter().map(at).collect::<Vec<_>>(),
        [
            (
                "everywhere".into(),
                serde_json::json!([pair.a_ip]),
                everywhere.port.into()
            ),
            (
                "loopback-only".into(),
                serde_json::json!(["127.0.0.1"]),
                only_here.port.into()
            ),
        ]
    );
    // From the other machine, only the one it can reach.
    let there = json_once(&pair, "the wildcard one from the other machine", |o| {
        !o.is_empty()
    });
    assert_eq!(
        there.iter().map(at).collect::<Vec<_>>(),
        [(
            "everywhere".into(),
            serde_json::json!([pair.a_ip]),
            everywhere.port.into()
        )]
    );
}

#[test]
fn a_stopping_tracker_withdraws_its_announcement_at_once() {
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut lab = tracker_in(&pair, dir.path(), "lab", &[]);
    // Someone browsing all along, from the other namespace.
    let (daemon, events) = in_namespace(&pair.b, || {
        let daemon = mdns_sd::ServiceDaemon::new().expect("mdns daemon");
        let events = daemon.browse(SERVICE_TYPE).expect("browse");
        (daemon, events)
    });
    let fullname = format!("lab.{SERVICE_TYPE}");
    // The next event about lab: true when it is there, false when removed.
    let next = |what: &str| -> bool {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match events.recv_timeout(left) {
                Ok(mdns_sd::ServiceEvent::ServiceResolved(s)) if s.fullname == fullname => {
                    return true;
                }
                Ok(mdns_sd::ServiceEvent::ServiceRemoved(_, name)) if name == fullname => {
                    return false;
                }
                Ok(_) => {}
                Err(e) => panic!("no {what} of {fullname} within {WAIT:?}: {e}"),
            }
        }
    };
    let started = std::time::Instant::now();
    assert!(next("announcement"));
    eprintln!(
        "announcement seen {:?} after the tracker said it was announced",
        started.elapsed()
    );
    signal(&lab.child, "TERM");
    let stopped = std::time::Instant::now();
    while next("withdrawal") {}
    // Its records would stay in a browser's cache for 75 minutes; the
    // goodbye (the records again with a lifetime of 0) removes them now.
    let took = stopped.elapsed();
    eprintln!("announcement withdrawn {took:?} after SIGTERM");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    assert_eq!(wait_exit(&mut lab.child, WAIT).code(), Some(0));
    let _ = daemon.shutdown();
}

#[test]
fn joining_a_tracker_announced_without_tls_warns() {
    if !have(&["tmux"]) {
        return;
    }
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let open = tracker_in(
        &pair,
        &dir.path().join("open"),
        "open-house",
        &["--no-tls", "--no-password"],
    );
    json_once(&pair, "open-house announced", |o| o.len() == 1);
    let term = client_with_no_address(&pair, dir.path(), "discovery-plain");
    let at = format!("{}:{}", pair.a_ip, open.port);
    term.wait_screen("[Y/n]");
    // Enter is yes.
    term.type_line("");
    let screen = term.wait_screen("#general --> you joined");
    assert_eq!(
        lines(&screen)[1..6],
        [
            "Found 1 tracker on the local network:".to_string(),
            format!("  1. open-house  {at}  0 members  no TLS, no password"),
            "     no fingerprint: without TLS anyone on the network can read and change the traffic"
                .into(),
            format!("Join open-house at {at}? [Y/n]"),
            "WARNING: open-house is announced without TLS: your password and messages can be read on the network."
                .into(),
        ]
    );
    open.wait_log(&format!("join #general bob ({})", pair.b_ip));
    term.type_line("/exit");
    term.wait_screen("EXIT=0");
}

/// mDNS packets that reach namespace `ns` from `from` within `window`.
fn mdns_packets_from(ns: &str, from: &str, on: &str, window: std::time::Duration) -> usize {
    let (from, on) = (from.to_string(), on.to_string());
    in_namespace(ns, move || {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
        let any: std::net::SocketAddr = "0.0.0.0:5353".parse().unwrap();
        socket.bind(&any.into()).expect("bind 5353");
        socket
            .join_multicast_v4(&"224.0.0.251".parse().unwrap(), &on.parse().unwrap())
            .expect("join the mDNS group");
        let socket: std::net::UdpSocket = socket.into();
        let from: std::net::IpAddr = from.parse().unwrap();
        let end = std::time::Instant::now() + window;
        let mut count = 0;
        let mut buf = [0u8; 9000];
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return count;
            }
            socket.set_read_timeout(Some(left)).expect("timeout");
            match socket.recv_from(&mut buf) {
                Ok((_, peer)) if peer.ip() == from => count += 1,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("receiving mDNS: {e}"),
            }
        }
    })
}

#[test]
fn a_class_joining_as_the_tracker_starts_leaves_its_name_and_the_network_alone() {
    let Some(pair) = NetPair::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lab = tracker_in(&pair, dir.path(), "lab", &["--no-tls", "--no-password"]);
    // Members arrive while the tracker is still probing its name on the
    // network (the first ~second): the member count changes under it.
    let (ip, port) = (pair.a_ip.clone(), lab.port);
    let class: Vec<Raw> = in_namespace(&pair.b, move || {
        (0..6)
            .map(|i| {
                let stream = std::net::TcpStream::connect((ip.as_str(), port)).expect("connect");
                let mut member = Raw::from_stream(stream);
                member.send(&format!("NICK m{i}"));
                member.send(&format!("USER m{i} 0 * :m{i}"));
                member.expect(" 366 ");
                member
            })
            .collect()
    });
    // Found under its own name, with the whole class counted.
    let found = json_once(&pair, "lab with 6 members", |o| {
        o.iter().any(|t| t["name"] == "lab" && t["members"] == 6)
    });
    assert_eq!(
        found
            .iter()
            .map(|t| t["name"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>(),
        ["lab"]
    );
    // Then the network is left alone: nothing but the last update's
    // repeat (a second after it) and perhaps a late answer to the
    // listing's queries; 1 here, against about 90 before. mdns-sd, asked to update the record
    // while it probed the name, took its own records for another
    // tracker's and renamed itself ("lab (2)", "lab (3)", ...) about 30
    // times a second, for good.
    let packets = mdns_packets_from(
        &pair.b,
        &pair.a_ip,
        &pair.b_ip,
        std::time::Duration::from_secs(3),
    );
    eprintln!("{packets} mDNS packets from the settled tracker in 3 s");
    assert!(
        packets <= 4,
        "{packets} mDNS packets from a settled tracker in 3 s"
    );
    let err = lab.stderr_text();
    assert!(
        !err.contains("another tracker on the local network"),
        "{err}"
    );
    drop(class);
}
