//! Smoke runs of the load generator (`examples/loadgen.rs`) against the real
//! tracker binary, so the benchmark tool cannot rot: a few clients for about
//! a second each, nothing lost, latencies recorded.

#[path = "../examples/loadgen/engine.rs"]
#[allow(dead_code)]
mod engine;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A tracker on a free port, killed when dropped.
struct Tracker {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tracker(tls: bool, password: Option<&str>) -> Tracker {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracker"));
    cmd.args(["--port", "0", "--bind", "127.0.0.1", "--stay"])
        .args(["--flood-rate", "0"])
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !tls {
        cmd.arg("--no-tls");
    }
    match password {
        Some(pw) => cmd.env("CONFAB_PASSWORD", pw),
        None => cmd.arg("--no-password").env_remove("CONFAB_PASSWORD"),
    };
    let mut child = cmd.spawn().expect("start tracker");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(a) => a.parse().expect("listening address"),
        Err(_) => {
            let _ = child.kill();
            panic!("the tracker printed no listening address");
        }
    };
    Tracker {
        child,
        addr,
        _dir: dir,
    }
}

fn quick(cfg: &mut engine::Config, pid: u32) {
    cfg.warmup = Duration::from_millis(300);
    cfg.duration = Duration::from_millis(1000);
    cfg.drain = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.server_pid = Some(pid);
}

fn run(cfg: engine::Config) -> engine::Report {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(engine::run(cfg))
        .expect("load run")
}

fn assert_clean(r: &engine::Report) {
    let summary = r.summary();
    assert!(r.measured_messages > 0, "{summary}");
    assert!(r.expected > 0, "{summary}");
    assert_eq!(r.received, r.expected, "{summary}");
    assert_eq!(r.lost, 0, "{summary}");
    assert_eq!(r.duplicates, 0, "{summary}");
    assert_eq!(r.latency.count, r.expected, "{summary}");
    assert!(
        r.latency.p50 > 0 && r.latency.p99 >= r.latency.p50,
        "{summary}"
    );
    assert!(r.errors.is_empty(), "{summary}");
    assert!(r.server_cpu_secs.is_some() && r.server_rss_kib.unwrap_or(0) > 0);
    let json = r.json();
    assert!(json.starts_with('{') && json.ends_with('}') && !json.contains('\n'));
}

#[test]
fn room_over_plain_tcp() {
    let t = start_tracker(false, None);
    let mut cfg = engine::Config::new(t.addr);
    cfg.clients = 5;
    cfg.senders = 5;
    cfg.rate = 20.0;
    quick(&mut cfg, t.child.id());
    let r = run(cfg);
    assert_clean(&r);
    // 5 senders x 20/s x 1 s, each to 4 others.
    assert!((300..=500).contains(&r.expected), "{}", r.summary());
}

#[test]
fn direct_messages_over_tls_with_password() {
    let t = start_tracker(true, Some("smoke-secret"));
    let mut cfg = engine::Config::new(t.addr);
    cfg.tls = true;
    cfg.password = Some("smoke-secret".into());
    cfg.mode = engine::Mode::Dm;
    cfg.pairs = 2;
    cfg.rate = 20.0;
    quick(&mut cfg, t.child.id());
    let r = run(cfg);
    assert_clean(&r);
}

#[test]
fn idle_connections() {
    let t = start_tracker(false, None);
    let mut cfg = engine::Config::new(t.addr);
    cfg.mode = engine::Mode::Idle;
    cfg.clients = 20;
    cfg.settle = Duration::from_millis(200);
    quick(&mut cfg, t.child.id());
    let r = run(cfg);
    assert!(r.rss_per_conn_kib.is_some(), "{}", r.summary());
    assert!(
        r.connect_secs > 0.0 && r.errors.is_empty(),
        "{}",
        r.summary()
    );
}

/// B5 and B7 in miniature: a login storm (TLS, password, join) during the
/// window, and one member that stops reading. Neither is counted as a
/// recipient, so the others' deliveries must still be exact.
#[test]
fn login_storm_and_stalled_member() {
    let t = start_tracker(true, Some("smoke-secret"));
    let mut cfg = engine::Config::new(t.addr);
    cfg.tls = true;
    cfg.password = Some("smoke-secret".into());
    cfg.clients = 4;
    cfg.senders = 4;
    cfg.rate = 20.0;
    cfg.stall = 1;
    cfg.storm = 3;
    cfg.storm_concurrency = 2;
    quick(&mut cfg, t.child.id());
    let r = run(cfg);
    assert_clean(&r);
    assert_eq!(r.connections, 5, "{}", r.summary());
    assert_eq!(r.storm_logins, 3, "{}", r.summary());
    assert!(
        r.storm_login.count == 3 && r.storm_secs > 0.0,
        "{}",
        r.summary()
    );
    // Too little traffic to fill its send queue: it is never dropped.
    assert_eq!(r.stall_reason, None, "{}", r.summary());
}
