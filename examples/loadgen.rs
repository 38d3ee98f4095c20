//! Load generator for IRC servers: the tracker, or any other (ngircd for the
//! comparisons in BENCHMARKS.md). Not part of `cargo test` (a one-second
//! smoke run of the same engine is, in `tests/loadgen_smoke.rs`).
//!
//! ```sh
//! cargo run --release --example loadgen -- --addr 127.0.0.1:6667 \
//!     --clients 100 --senders 100 --offered 100000 --server-pid PID
//! cargo run --release --example loadgen -- --addr 127.0.0.1:6667 --dm-pairs 50 --rate 100
//! cargo run --release --example loadgen -- --addr 127.0.0.1:6667 --idle --clients 2000
//! ```
//!
//! Room mode (the default): `--clients` members join `--room`, the first
//! `--senders` of them each send `--rate` messages a second of `--size`
//! bytes (or `--offered` deliveries a second in all), open loop, for
//! `--warmup` then `--duration` seconds. `--dm-pairs N`: N senders each
//! writing to its own receiver. `--idle`: connect `--clients` and report the
//! time it took and the server's memory per connection.
//!
//! Prints a summary, then the same figures as one JSON line (the last line).
//! `bench/compare.py` runs a workload against the tracker and ngircd.

#[path = "loadgen/engine.rs"]
mod engine;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// IRC load generator: open-loop senders, latency from intended send time.
#[derive(Parser, Debug)]
#[command(name = "loadgen")]
struct Args {
    /// Server address, HOST:PORT.
    #[arg(long)]
    addr: String,
    /// Connect with TLS (any certificate is accepted).
    #[arg(long)]
    tls: bool,
    /// Server password (PASS); also read from LOADGEN_PASSWORD.
    #[arg(long, env = "LOADGEN_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Members of the room (room and idle modes).
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Members that send (room mode); default all.
    #[arg(long)]
    senders: Option<usize>,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Deliveries per second in all; sets --rate from it.
    #[arg(long, conflicts_with = "rate")]
    offered: Option<f64>,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Seconds of warm-up before the measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait after the window for late deliveries.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Direct-message mode: this many sender/receiver pairs.
    #[arg(long, conflicts_with = "idle")]
    dm_pairs: Option<usize>,
    /// Idle mode: connect --clients, report time and server memory.
    #[arg(long)]
    idle: bool,
    /// Do not send JOIN after logging in (the server joins clients itself).
    #[arg(long)]
    no_join: bool,
    /// Room to join and send to.
    #[arg(long, default_value = "#general")]
    room: String,
    /// Nicks are this prefix and a number.
    #[arg(long, default_value = "lg")]
    nick_prefix: String,
    /// Server process to read CPU time and memory of (/proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Connections set up at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds allowed for connecting and logging everyone in.
    #[arg(long, default_value_t = 60.0)]
    connect_timeout: f64,
    /// Idle mode: seconds to wait after the last login before reading memory.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Idle mode: seconds to wait, once all have left and the server closed
    /// their connections, before reading its memory again.
    #[arg(long, default_value_t = 3.0)]
    leave_settle: f64,
    /// Name carried into the report (e.g. tracker, ngircd).
    #[arg(long, default_value = "")]
    label: String,
    /// Room mode: this many more members stop reading when the window starts
    /// (a slow consumer, B7); reports when the others saw them dropped.
    #[arg(long, default_value_t = 0)]
    stall: usize,
    /// Room mode: this many more clients log in during the window (a login
    /// storm, B5), --storm-concurrency at a time; reports logins per second.
    #[arg(long, default_value_t = 0)]
    storm: usize,
    /// Storm logins in flight at once.
    #[arg(long, default_value_t = 32)]
    storm_concurrency: usize,
    /// Many rooms (B9): this many rooms of --room-size members, each member
    /// in --rooms-per-member of them (--clients is then derived); rooms are
    /// named --room followed by their number.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    #[arg(long, default_value_t = 25)]
    room_size: usize,
    #[arg(long, default_value_t = 1)]
    rooms_per_member: usize,
    /// Room mode: this many more members drop their connections at once
    /// --reconnect-at seconds into the window and log in again,
    /// --storm-concurrency at a time (the reconnect storm).
    #[arg(long, default_value_t = 0)]
    reconnect: usize,
    #[arg(long, default_value_t = 5.0)]
    reconnect_at: f64,
    /// Room mode: sample the server's RSS this often (seconds) during the
    /// window and report its slope after --rss-skip seconds (the soak).
    #[arg(long)]
    rss_every: Option<f64>,
    #[arg(long, default_value_t = 300.0)]
    rss_skip: f64,
    /// Threads for the readers and logins (the senders and the ticker always have one each); 1 runs them on one thread.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn config(a: &Args) -> anyhow::Result<engine::Config> {
    let addr: SocketAddr = a
        .addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} resolves to nothing", a.addr))?;
    let mut c = engine::Config::new(addr);
    c.tls = a.tls;
    c.password = a.password.clone();
    c.clients = a.clients;
    c.senders = a.senders.unwrap_or(a.clients);
    c.rate = a.rate;
    c.size = a.size;
    c.warmup = Duration::from_secs_f64(a.warmup);
    c.duration = Duration::from_secs_f64(a.duration);
    c.drain = Duration::from_secs_f64(a.drain);
    c.send_join = !a.no_join;
    c.room = a.room.clone();
    c.nick_prefix = a.nick_prefix.clone();
    c.server_pid = a.server_pid;
    c.concurrency = a.concurrency;
    c.connect_timeout = Duration::from_secs_f64(a.connect_timeout);
    c.settle = Duration::from_secs_f64(a.settle);
    c.leave_settle = Duration::from_secs_f64(a.leave_settle);
    c.label = a.label.clone();
    c.stall = a.stall;
    c.storm = a.storm;
    c.storm_concurrency = a.storm_concurrency;
    c.rooms = a.rooms;
    c.room_size = a.room_size;
    c.rooms_per_member = a.rooms_per_member;
    c.reconnect = a.reconnect;
    c.reconnect_at = Duration::from_secs_f64(a.reconnect_at);
    c.rss_every = a.rss_every.map(Duration::from_secs_f64);
    c.rss_skip = Duration::from_secs_f64(a.rss_skip);
    if let Some(p) = a.dm_pairs {
        c.mode = engine::Mode::Dm;
        c.pairs = p;
    } else if a.idle {
        c.mode = engine::Mode::Idle;
    }
    if let Some(d) = a.offered {
        let per_message = c.sender_count() as f64 * c.recipients() as f64;
        if per_message == 0.0 {
            anyhow::bail!("--offered needs senders and recipients");
        }
        c.rate = d / per_message;
    }
    Ok(c)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(engine::run(cfg)) {
        Ok(report) => {
            print!("{}", report.summary());
            println!("{}", report.json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
