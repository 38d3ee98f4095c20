//! Soak test: many connected clients and a steady message rate for minutes,
//! watching the tracker's memory. Not part of `cargo test`; run it with
//!
//! ```sh
//! cargo build --release --bins --examples
//! ./target/release/examples/soak --clients 1000 --senders 50 --rate 2 --minutes 3
//! ```
//!
//! It starts `tracker` (from the same target folder) on a free port with a
//! fresh temporary log folder, connects `--clients` plain-TCP clients to
//! #general, has `--senders` of them each send `--rate` messages a second,
//! and every 10 s prints the tracker's resident memory (VmRSS from /proc)
//! and the messages delivered so far. At the end it reports memory per
//! connection (after connecting, over the idle baseline) and the growth
//! from the first to the last minute; it exits 1 if any message was lost or
//! memory grew by more than 10%.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    clients: usize,
    senders: usize,
    rate: f64,
    minutes: f64,
}

fn parse_args() -> Args {
    let mut a = Args {
        clients: 1000,
        senders: 50,
        rate: 2.0,
        minutes: 3.0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < argv.len() {
        let v = &argv[i + 1];
        match argv[i].as_str() {
            "--clients" => a.clients = v.parse().expect("--clients N"),
            "--senders" => a.senders = v.parse().expect("--senders N"),
            "--rate" => a.rate = v.parse().expect("--rate PER_SECOND"),
            "--minutes" => a.minutes = v.parse().expect("--minutes M"),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    a.senders = a.senders.min(a.clients);
    a
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A client's write half, shared by its reader (which answers PINGs, as
/// every real client does) and, for senders, the sending task.
type Writer = Arc<tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>>;

async fn connect(
    port: u16,
    nick: String,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (r, mut w) = stream.into_split();
    w.write_all(format!("NICK {nick}\r\nUSER {nick} 0 * :soak\r\n").as_bytes())
        .await
        .expect("register");
    (r, w)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let exe = std::env::current_exe().expect("current_exe");
    let tracker_bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("tracker"))
        .expect("target folder");
    let dir = std::env::temp_dir().join(format!("confab-soak-{}", std::process::id()));
    let mut tracker = Command::new(&tracker_bin)
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--no-tls",
            "--no-password",
            "--stay",
        ])
        .args(["--flood-rate", "0"])
        .args(["--max-connections", &(args.clients + 10).to_string()])
        .args(["--max-per-address", &(args.clients + 10).to_string()])
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (build with --bins first)",
                tracker_bin.display()
            )
        });
    let pid = tracker.id();
    let mut out = std::io::BufReader::new(tracker.stdout.take().expect("stdout"));
    let mut line = String::new();
    let port: u16 = loop {
        line.clear();
        std::io::BufRead::read_line(&mut out, &mut line).expect("tracker stdout");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = rss_kib(pid);

    // Connect everyone; each reader counts the PRIVMSGs it gets.
    let delivered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut writers = Vec::new();
    let mut joined = Vec::new();
    for i in 0..args.clients {
        let (r, w) = connect(port, format!("s{i}")).await;
        let w: Writer = Arc::new(tokio::sync::Mutex::new(w));
        let pong = w.clone();
        let delivered = delivered.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        joined.push(rx);
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            let mut tx = Some(tx);
            while let Ok(Some(l)) = lines.next_line().await {
                if l.contains(" PRIVMSG ") {
                    delivered.fetch_add(1, Ordering::Relaxed);
                } else if let Some(token) = l.strip_prefix("PING ") {
                    let reply = format!("PONG {token}\r\n");
                    let _ = pong.lock().await.write_all(reply.as_bytes()).await;
                } else if l.contains(" 366 ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        writers.push(w);
    }
    for rx in joined {
        rx.await.expect("client joined");
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = rss_kib(pid);
    println!(
        "{} clients connected in {:.2} s; tracker RSS {} KiB idle, {} KiB connected: {:.1} KiB per connection",
        args.clients,
        connect_time.as_secs_f64(),
        baseline,
        connected,
        (connected.saturating_sub(baseline)) as f64 / args.clients as f64
    );

    // Steady traffic.
    let sent = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut senders = Vec::new();
    for (k, w) in writers.drain(..args.senders).enumerate() {
        let sent = sent.clone();
        senders.push(tokio::spawn(async move {
            let begin = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(period);
            let mut n = 0u64;
            while begin.elapsed() < duration {
                tick.tick().await;
                let msg = format!("PRIVMSG #general :soak {k} {n} {}\r\n", "z".repeat(80));
                if w.lock().await.write_all(msg.as_bytes()).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            w
        }));
    }
    let mut samples = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < duration {
        tokio::time::sleep(
            Duration::from_secs(10)
                .min(duration.saturating_sub(t0.elapsed()) + Duration::from_millis(1)),
        )
        .await;
        let rss = rss_kib(pid);
        samples.push((t0.elapsed(), rss));
        println!(
            "t={:>4.0}s rss={rss} KiB sent={} delivered={}",
            t0.elapsed().as_secs_f64(),
            sent.load(Ordering::Relaxed),
            delivered.load(Ordering::Relaxed)
        );
    }
    // Keep the senders' write halves: dropping one closes that connection,
    // and it would miss the others' last messages.
    let mut done = Vec::new();
    for s in senders {
        if let Ok(w) = s.await {
            done.push(w);
        }
    }
    // Wait for the last deliveries: until the count stops moving.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = delivered.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let sent = sent.load(Ordering::Relaxed);
    let delivered = delivered.load(Ordering::Relaxed);
    // Everyone in the room gets every message (senders too: no echo
    // capability was asked for, so senders get the others' only).
    let expected = sent * (args.clients as u64 - 1);
    let first_minute: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 <= Duration::from_secs(60))
        .map(|s| s.1)
        .collect();
    let last_minute: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 + Duration::from_secs(60) >= t0.elapsed())
        .map(|s| s.1)
        .collect();
    let avg = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let growth = avg(&last_minute) / avg(&first_minute).max(1.0) - 1.0;
    println!(
        "sent {sent}, delivered {delivered} of {expected} expected; RSS first minute {:.0} KiB, last minute {:.0} KiB ({:+.1}%)",
        avg(&first_minute),
        avg(&last_minute),
        growth * 100.0
    );
    let log = std::fs::read_to_string(dir.join("logs").join("chat.log")).unwrap_or_default();
    let logged = log.lines().filter(|l| l.contains(" msg #general ")).count();
    let leaves: Vec<&str> = log.lines().filter(|l| l.contains(" leave ")).collect();
    println!("chat.log holds {logged} messages, {} leaves", leaves.len());
    for l in leaves.iter().take(5) {
        println!("  {l}");
    }
    let _ = tracker.kill();
    let _ = tracker.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if delivered != expected || growth > 0.10 || !leaves.is_empty() {
        println!("FAIL");
        std::process::exit(1);
    }
    println!("OK");
}
