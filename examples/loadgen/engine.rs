//! The load generator's engine: connects IRC clients, paces the senders,
//! receives, measures. Shared by the command (`examples/loadgen.rs`) and the
//! smoke test (`tests/loadgen_smoke.rs`), so both run the same code.
//!
//! Timing is open loop. A ticker thread (nanosleep, so tens of microseconds
//! rather than tokio's millisecond timer) walks one merged schedule: message
//! `k` of sender `s` (of `S`, each at `R` a second) is due at
//! `start + (k*S + s) / (S*R)` seconds, so the senders are evenly spread.
//! Each message carries that intended time (microseconds since the engine
//! started, on the monotonic clock) in its text, and latency is receipt
//! minus intended time: a server that stalls, or pushes back on the
//! sender's socket, cannot hide the delay. How late the generator itself
//! was in writing (send lag) is reported apart.
//!
//! The text of a message is `LG <sender> <seq> <intended µs> xxx...`, padded
//! to `size` bytes. Every receipt is counted per message id, so losses
//! (and duplicates) are exact: a message whose intended time falls in the
//! measured window is expected once at each other member of the room (room
//! mode) or at the partner (direct-message mode).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// A generator using this share of its core or more is the bottleneck.
const GENERATOR_SATURATED: f64 = 0.95;

/// What the run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `clients` members in one room, the first `senders` of them sending.
    Room,
    /// `pairs` sender/receiver pairs, each sender writing to its partner.
    Dm,
    /// `clients` registered idle members: time to connect, memory each.
    Idle,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Room => "room",
            Mode::Dm => "dm",
            Mode::Idle => "idle",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub tls: bool,
    pub password: Option<String>,
    pub mode: Mode,
    /// Members (room, idle).
    pub clients: usize,
    /// Members that send (room).
    pub senders: usize,
    /// Sender/receiver pairs (dm).
    pub pairs: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Bytes of message text.
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Longest wait after the window for the last deliveries.
    pub drain: Duration,
    /// Send `JOIN <room>` after 001 (needed by ordinary IRC servers; the
    /// tracker has already joined everyone to #general and ignores it).
    pub send_join: bool,
    pub room: String,
    pub nick_prefix: String,
    /// Process whose CPU time and memory to report.
    pub server_pid: Option<u32>,
    /// Connections being set up at once.
    pub concurrency: usize,
    /// Limit for connecting and registering everyone.
    pub connect_timeout: Duration,
    /// Idle mode: how long to wait after the last login before reading memory.
    pub settle: Duration,
    /// Idle mode: how long to wait, once everyone has left and the server
    /// closed their connections, before reading its memory again.
    pub leave_settle: Duration,
    /// Free text carried into the report (e.g. "tracker", "ngircd").
    pub label: String,
    /// Room mode: this many more members that stop reading when the window
    /// starts (B7, a slow consumer). Not counted as recipients.
    pub stall: usize,
    /// Room mode: this many more clients log in (TLS if on, password, join)
    /// from the start of the window (B5, a login storm), `storm_concurrency`
    /// at a time, then stay connected reading. Not counted as recipients.
    pub storm: usize,
    pub storm_concurrency: usize,
    /// Room mode with more than one room (B9): `rooms` rooms of
    /// `room_size` members each, every member in `rooms_per_member` of them
    /// (seat `s` of `rooms * room_size` is in room `s % rooms` and belongs
    /// to member `s / rooms_per_member`), so there are
    /// `ceil(rooms * room_size / rooms_per_member)` members. Room `j` is
    /// `room` followed by `j`. Each sender sends to its rooms in turn.
    pub rooms: usize,
    pub room_size: usize,
    pub rooms_per_member: usize,
    /// Room mode: this many more members, logged in before the window, drop
    /// their connections at once `reconnect_at` into the window and log in
    /// again (new nicks, `storm_concurrency` at a time): the reconnect
    /// storm. The others' latency is reported before and after the drop.
    pub reconnect: usize,
    pub reconnect_at: Duration,
    /// Room mode: sample the server's memory this often during the window
    /// (the soak) and report the slope after `rss_skip`.
    pub rss_every: Option<Duration>,
    pub rss_skip: Duration,
}

impl Config {
    pub fn new(addr: SocketAddr) -> Config {
        Config {
            addr,
            tls: false,
            password: None,
            mode: Mode::Room,
            clients: 100,
            senders: 100,
            pairs: 50,
            rate: 1.0,
            size: 128,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(3),
            send_join: true,
            room: "#general".into(),
            nick_prefix: "lg".into(),
            server_pid: None,
            concurrency: 64,
            connect_timeout: Duration::from_secs(60),
            settle: Duration::from_secs(1),
            leave_settle: Duration::from_secs(3),
            label: String::new(),
            stall: 0,
            storm: 0,
            storm_concurrency: 32,
            rooms: 1,
            room_size: 0,
            rooms_per_member: 1,
            reconnect: 0,
            reconnect_at: Duration::from_secs(5),
            rss_every: None,
            rss_skip: Duration::from_secs(300),
        }
    }

    /// Connections the run opens.
    pub fn connections(&self) -> usize {
        match self.mode {
            Mode::Dm => self.pairs * 2,
            Mode::Room => self.members() + self.stall + self.reconnect,
            Mode::Idle => self.clients,
        }
    }

    fn many_rooms(&self) -> bool {
        self.mode == Mode::Room && self.rooms > 1
    }

    /// Members that receive (and may send): in many rooms, as many as the
    /// seats need.
    pub fn members(&self) -> usize {
        if self.many_rooms() {
            (self.rooms * self.room_size).div_ceil(self.rooms_per_member.max(1))
        } else {
            self.clients
        }
    }

    /// The rooms connection `i` joins.
    pub fn rooms_of(&self, i: usize) -> Vec<String> {
        if !self.many_rooms() || i >= self.members() {
            return vec![self.room.clone()];
        }
        let per = self.rooms_per_member.max(1);
        let seats = self.rooms * self.room_size;
        (i * per..((i + 1) * per).min(seats))
            .map(|seat| format!("{}{}", self.room, seat % self.rooms))
            .collect()
    }

    /// Clients that send.
    pub fn sender_count(&self) -> usize {
        match self.mode {
            Mode::Room => self.senders.min(self.members()),
            Mode::Dm => self.pairs,
            Mode::Idle => 0,
        }
    }

    /// Deliveries expected per message.
    pub fn recipients(&self) -> u64 {
        match self.mode {
            Mode::Room if self.many_rooms() => self.room_size.saturating_sub(1) as u64,
            Mode::Room => self.clients.saturating_sub(1) as u64,
            Mode::Dm => 1,
            Mode::Idle => 0,
        }
    }

    /// Deliveries per second asked of the server.
    pub fn offered_deliveries(&self) -> f64 {
        self.sender_count() as f64 * self.rate * self.recipients() as f64
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// CPU seconds and memory of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// utime + stime of a process ("self" or a pid), in seconds, and its
/// VmRSS / VmHWM. Clock ticks are USER_HZ, which Linux fixes at 100 for
/// user space on every architecture this runs on.
pub fn proc_sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) sit
    // at 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_secs: (utime + stime) as f64 / 100.0,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// The tokio instant of `us` on the shared clock.
fn at_us(shared: &Shared, us: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(shared.base + Duration::from_micros(us))
}

/// Least-squares slope of (seconds, KiB) samples taken at `skip` seconds
/// or later, in KiB a minute (`None` with fewer than 3 such samples).
pub fn slope_per_min(samples: &[(f64, u64)], skip: f64) -> Option<f64> {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= skip)
        .map(|&(t, k)| (t / 60.0, k as f64))
        .collect();
    if pts.len() < 3 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Files a server may open beyond those it had at the start of a run
/// without a connection among them.
const SERVER_OWN_FILES: usize = 16;

/// How many files a process has open (its connections among them).
pub fn open_files(pid: &str) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub label: String,
    pub mode: String,
    pub tls: bool,
    pub connections: usize,
    pub senders: usize,
    pub rate: f64,
    pub size: usize,
    pub warmup_secs: f64,
    pub window_secs: f64,
    /// Time to connect, register and join everyone.
    pub connect_secs: f64,
    pub offered_per_sec: f64,
    /// Deliveries received during the window, per second.
    pub delivered_per_sec: f64,
    /// Messages whose intended time fell in the window.
    pub measured_messages: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Receipt minus intended send time, measured messages only.
    pub latency: Percentiles,
    /// How late the generator wrote, behind the intended time.
    pub send_lag: Percentiles,
    /// Per client, from starting to connect to seeing its JOIN.
    pub login: Percentiles,
    /// Our messages received per read() while sending, and bytes per read:
    /// how much the server batched its writes.
    pub deliveries_per_read: f64,
    pub bytes_per_read: f64,
    /// Server: CPU seconds used in the window (or while connecting, idle mode).
    pub server_cpu_secs: Option<f64>,
    pub server_rss_kib: Option<u64>,
    pub server_hwm_kib: Option<u64>,
    /// Idle mode: server memory before connecting anyone.
    pub server_rss_before_kib: Option<u64>,
    pub rss_per_conn_kib: Option<f64>,
    /// Idle mode: seconds until the server had closed every connection
    /// after all left at once, and its memory `leave_settle` later.
    pub left_secs: Option<f64>,
    pub server_rss_left_kib: Option<u64>,
    pub gen_cpu_secs: f64,
    /// Slow consumer (B7): seconds from the window's start until the others
    /// saw the first stalled member leave, and the reason they were shown.
    pub stall_dropped_secs: Option<f64>,
    pub stall_reason: Option<String>,
    /// Login storm (B5): logins done, seconds from the window's start to the
    /// last one, and each login's time.
    pub storm_logins: u64,
    pub storm_secs: f64,
    pub storm_login: Percentiles,
    /// Reconnect storm: the others' latency before and from the drop, how
    /// many came back, when the last did (seconds from the drop), and each
    /// login's time.
    pub latency_calm: Option<Percentiles>,
    pub latency_storm: Option<Percentiles>,
    pub reconnected: u64,
    pub reconnect_secs: f64,
    pub reconnect_login: Percentiles,
    /// Reconnect storm: the generator's CPU from the drop until the last
    /// was back, as a share of one core. Its share over the whole window
    /// hides a storm of half a second that took all of its core (its
    /// readers then fall behind, and the others' latency is its own).
    pub storm_gen_cpu_share: Option<f64>,
    /// Reconnect storm: the others' deliveries in the first
    /// [`TIMELINE_SECS`] from the drop, by when the message was sent.
    pub storm_timeline: Vec<StormBin>,
    /// Soak: (seconds into the window, server RSS KiB) samples and the
    /// slope after `rss_skip_secs`.
    pub rss_series_kib: Vec<(f64, u64)>,
    pub rss_skip_secs: f64,
    pub rss_slope_kib_per_min: Option<f64>,
    pub errors: Vec<String>,
}

/// How far after the drop the storm timeline looks, and its step.
const TIMELINE_SECS: u32 = 10;
const TIMELINE_BIN_MS: u32 = 100;

/// The others' deliveries of messages sent in one step after the drop.
#[derive(Clone, Debug, Default)]
pub struct StormBin {
    /// Milliseconds from the drop to the step's start.
    pub from_ms: u32,
    pub deliveries: u64,
    /// Those slower than twice the calm p99 (the target's bound).
    pub slow: u64,
    pub max_us: u64,
}

/// Bins `(sent µs after the drop, latency µs)` samples by when they were
/// sent, counting those slower than `slow_us`.
fn storm_timeline(samples: &[(u32, u32)], slow_us: u64) -> Vec<StormBin> {
    let bins = (TIMELINE_SECS * 1000 / TIMELINE_BIN_MS) as usize;
    let mut out: Vec<StormBin> = (0..bins)
        .map(|i| StormBin {
            from_ms: i as u32 * TIMELINE_BIN_MS,
            ..StormBin::default()
        })
        .collect();
    for &(at_us, took_us) in samples {
        if let Some(b) = out.get_mut((at_us / 1000 / TIMELINE_BIN_MS) as usize) {
            b.deliveries += 1;
            b.max_us = b.max_us.max(u64::from(took_us));
            if u64::from(took_us) > slow_us {
                b.slow += 1;
            }
        }
    }
    out
}

impl Report {
    fn cpu_share(&self, secs: f64) -> f64 {
        let span = if self.mode == "idle" {
            self.connect_secs
        } else {
            self.window_secs
        };
        if span > 0.0 { secs / span } else { 0.0 }
    }

    /// The human-readable summary (several lines).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let tls = if self.tls { "TLS" } else { "plain TCP" };
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!("[{}] ", self.label)
        };
        let ms = |us: u64| us as f64 / 1000.0;
        s += &format!(
            "{label}{} mode, {tls}, {} connections, connected in {:.2} s\n",
            self.mode, self.connections, self.connect_secs
        );
        s += &format!(
            "  login (connect to JOIN) ms: p50 {:.3}  p99 {:.3}  max {:.3}\n",
            ms(self.login.p50),
            ms(self.login.p99),
            ms(self.login.max)
        );
        if self.mode != "idle" {
            s += &format!(
                "  {} senders x {:.2}/s x {} B; warm-up {:.1} s, window {:.1} s\n",
                self.senders, self.rate, self.size, self.warmup_secs, self.window_secs
            );
            s += &format!(
                "  deliveries/s: offered {:.0}, delivered {:.0}\n",
                self.offered_per_sec, self.delivered_per_sec
            );
            s += &format!(
                "  messages in window {}, deliveries expected {}, received {}, lost {}, duplicates {}\n",
                self.measured_messages, self.expected, self.received, self.lost, self.duplicates
            );
            let l = &self.latency;
            s += &format!(
                "  latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}  (n={})\n",
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                ms(l.max),
                l.mean / 1000.0,
                l.count
            );
            let g = &self.send_lag;
            s += &format!(
                "  generator send lag ms: p50 {:.3}  p99 {:.3}  max {:.3}\n",
                ms(g.p50),
                ms(g.p99),
                ms(g.max)
            );
            s += &format!(
                "  per read(): {:.1} messages, {:.0} bytes\n",
                self.deliveries_per_read, self.bytes_per_read
            );
        }
        if let Some(cpu) = self.server_cpu_secs {
            s += &format!(
                "  server: CPU {:.2} s ({:.0}% of one core), RSS {} KiB (peak {} KiB)\n",
                cpu,
                100.0 * self.cpu_share(cpu),
                self.server_rss_kib.unwrap_or(0),
                self.server_hwm_kib.unwrap_or(0)
            );
        }
        if let Some(per) = self.rss_per_conn_kib {
            s += &format!(
                "  server RSS {} KiB before, {} KiB after: {:.1} KiB per connection\n",
                self.server_rss_before_kib.unwrap_or(0),
                self.server_rss_kib.unwrap_or(0),
                per
            );
        }
        if let Some(left) = self.server_rss_left_kib {
            let before = self.server_rss_before_kib.unwrap_or(0);
            s += &format!(
                "  after all left (closed in {:.2} s): server RSS {left} KiB, {:+.1}% of before\n",
                self.left_secs.unwrap_or(0.0),
                100.0 * (left as f64 - before as f64) / (before.max(1) as f64)
            );
        }
        if self.mode == "room" && self.server_rss_before_kib.is_some() {
            s += &format!(
                "  server RSS at window start {} KiB, at end {} KiB\n",
                self.server_rss_before_kib.unwrap_or(0),
                self.server_rss_kib.unwrap_or(0)
            );
        }
        if let Some(reason) = &self.stall_reason {
            s += &format!(
                "  slow consumer dropped {:.2} s into the window: {reason}\n",
                self.stall_dropped_secs.unwrap_or(f64::NAN)
            );
        }
        if self.storm_logins > 0 {
            s += &format!(
                "  login storm: {} logins in {:.2} s ({:.1}/s); login ms p50 {:.1}  p99 {:.1}  max {:.1}\n",
                self.storm_logins,
                self.storm_secs,
                self.storm_logins as f64 / self.storm_secs.max(1e-9),
                ms(self.storm_login.p50),
                ms(self.storm_login.p99),
                ms(self.storm_login.max)
            );
        }
        if let (Some(calm), Some(storm)) = (&self.latency_calm, &self.latency_storm) {
            s += &format!(
                "  reconnect storm: {} back in {:.2} s after the drop; login ms p50 {:.1}  p99 {:.1}  max {:.1}\n",
                self.reconnected,
                self.reconnect_secs,
                ms(self.reconnect_login.p50),
                ms(self.reconnect_login.p99),
                ms(self.reconnect_login.max)
            );
            s += &format!(
                "  the others' latency ms: before the drop p50 {:.3}  p99 {:.3}; from it p50 {:.3}  p99 {:.3} ({:.2}x)\n",
                ms(calm.p50),
                ms(calm.p99),
                ms(storm.p50),
                ms(storm.p99),
                storm.p99 as f64 / calm.p99.max(1) as f64
            );
            if let Some(share) = self.storm_gen_cpu_share {
                s += &format!(
                    "  generator during the storm (drop to the last back): {:.0}% of one core\n",
                    100.0 * share
                );
                if share >= GENERATOR_SATURATED {
                    s += "  WARNING: the generator was saturated during the storm; the others' latency from the drop is bounded by it, not the server\n";
                }
            }
            let slow: u64 = self.storm_timeline.iter().map(|b| b.slow).sum();
            s += &format!(
                "  the others' deliveries slower than 2x the calm p99 ({:.3} ms) in the {TIMELINE_SECS} s from the drop: {slow} of {} from it ({:.2}%; the p99 holds while under 1%)\n",
                ms(calm.p99 * 2),
                storm.count,
                100.0 * slow as f64 / storm.count.max(1) as f64
            );
            // The steps up to the last one with a slow delivery.
            let last = self.storm_timeline.iter().rposition(|b| b.slow > 0);
            if let Some(last) = last {
                s += &format!(
                    "  {:>8} {:>10} {:>6} {:>9}\n",
                    "from ms", "deliveries", "slow", "max ms"
                );
                for b in &self.storm_timeline[..=last] {
                    s += &format!(
                        "  {:>8} {:>10} {:>6} {:>9.3}\n",
                        b.from_ms,
                        b.deliveries,
                        b.slow,
                        ms(b.max_us)
                    );
                }
            }
        }
        if !self.rss_series_kib.is_empty() {
            let first = self.rss_series_kib.first().map_or(0, |x| x.1);
            let last = self.rss_series_kib.last().map_or(0, |x| x.1);
            s += &format!(
                "  server RSS over the window: {first} KiB first, {last} KiB last, slope after {:.0} s: {}\n",
                self.rss_skip_secs,
                self.rss_slope_kib_per_min.map_or("-".into(), |v| format!(
                    "{:.1} KiB/min ({:.3} MB/min)",
                    v,
                    v / 1024.0
                ))
            );
        }
        s += &format!(
            "  generator: CPU {:.2} s ({:.0}% of one core)\n",
            self.gen_cpu_secs,
            100.0 * self.cpu_share(self.gen_cpu_secs)
        );
        // Past this share its readers fall behind (receipt times late,
        // losses counted when the drain ends): the server is not measured.
        if self.mode != "idle" && self.cpu_share(self.gen_cpu_secs) >= GENERATOR_SATURATED {
            s += "  WARNING: the generator was saturated; latency and losses are bounded by it, not the server\n";
        }
        for e in self.errors.iter().take(5) {
            s += &format!("  error: {e}\n");
        }
        if self.errors.len() > 5 {
            s += &format!("  ... {} errors in all\n", self.errors.len());
        }
        s
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        fn esc(s: &str) -> String {
            let mut o = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => o += "\\\"",
                    '\\' => o += "\\\\",
                    c if (c as u32) < 0x20 => o += &format!("\\u{:04x}", c as u32),
                    c => o.push(c),
                }
            }
            o + "\""
        }
        fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or("null".into(), |v| v.to_string())
        }
        fn num(v: f64) -> String {
            if v.is_finite() {
                format!("{v:.3}")
            } else {
                "null".into()
            }
        }
        let pct = |p: &Percentiles| {
            format!(
                "{{\"n\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{}}}",
                p.count,
                p.p50,
                p.p99,
                p.p999,
                p.max,
                num(p.mean)
            )
        };
        let errors: Vec<String> = self.errors.iter().take(20).map(|e| esc(e)).collect();
        format!(
            concat!(
                "{{\"label\":{},\"mode\":{},\"tls\":{},\"connections\":{},\"senders\":{},",
                "\"rate\":{},\"size\":{},\"warmup_s\":{},\"window_s\":{},\"connect_s\":{},",
                "\"offered_per_s\":{},\"delivered_per_s\":{},\"messages\":{},\"expected\":{},",
                "\"received\":{},\"lost\":{},\"duplicates\":{},\"latency\":{},\"send_lag\":{},",
                "\"deliveries_per_read\":{},\"bytes_per_read\":{},\"login\":{},",
                "\"server_cpu_s\":{},\"server_rss_kib\":{},\"server_hwm_kib\":{},",
                "\"server_rss_before_kib\":{},\"rss_per_conn_kib\":{},",
                "\"left_s\":{},\"server_rss_left_kib\":{},\"gen_cpu_s\":{},",
                "\"stall_dropped_s\":{},\"stall_reason\":{},\"storm_logins\":{},",
                "\"storm_s\":{},\"storm_login\":{},",
                "\"latency_calm\":{},\"latency_storm\":{},\"reconnected\":{},",
                "\"reconnect_s\":{},\"reconnect_login\":{},\"storm_gen_cpu_share\":{},",
                "\"rss_series_kib\":[{}],\"rss_skip_s\":{},\"rss_slope_kib_per_min\":{},",
                "\"errors\":[{}]}}"
            ),
            esc(&self.label),
            esc(&self.mode),
            self.tls,
            self.connections,
            self.senders,
            num(self.rate),
            self.size,
            num(self.warmup_secs),
            num(self.window_secs),
            num(self.connect_secs),
            num(self.offered_per_sec),
            num(self.delivered_per_sec),
            self.measured_messages,
            self.expected,
            self.received,
            self.lost,
            self.duplicates,
            pct(&self.latency),
            pct(&self.send_lag),
            num(self.deliveries_per_read),
            num(self.bytes_per_read),
            pct(&self.login),
            opt(self.server_cpu_secs.map(num)),
            opt(self.server_rss_kib),
            opt(self.server_hwm_kib),
            opt(self.server_rss_before_kib),
            opt(self.rss_per_conn_kib.map(num)),
            opt(self.left_secs.map(num)),
            opt(self.server_rss_left_kib),
            num(self.gen_cpu_secs),
            opt(self.stall_dropped_secs.map(num)),
            self.stall_reason.as_deref().map_or("null".into(), esc),
            self.storm_logins,
            num(self.storm_secs),
            pct(&self.storm_login),
            self.latency_calm.as_ref().map_or("null".into(), pct),
            self.latency_storm.as_ref().map_or("null".into(), pct),
            self.reconnected,
            num(self.reconnect_secs),
            pct(&self.reconnect_login),
            opt(self.storm_gen_cpu_share.map(num)),
            self.rss_series_kib
                .iter()
                .map(|(t, k)| format!("[{},{k}]", num(*t)))
                .collect::<Vec<_>>()
                .join(","),
            num(self.rss_skip_secs),
            opt(self.rss_slope_kib_per_min.map(num)),
            errors.join(",")
        )
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// The sending schedule, fixed once everyone has joined.
struct Schedule {
    start_us: u64,
    w0_us: u64,
    w1_us: u64,
    senders: u64,
    /// Microseconds between two slots of the merged schedule.
    slot_us: f64,
    /// Per sender, the most messages it can send (size of its count row).
    max_seq: u64,
    /// Receipts per message id (`sender * max_seq + seq`).
    counts: Vec<AtomicU32>,
    /// When the reconnect storm drops its members (`u64::MAX`: none).
    drop_us: u64,
}

impl Schedule {
    fn slot_time(&self, slot: u64) -> u64 {
        self.start_us + (slot as f64 * self.slot_us) as u64
    }

    fn intended(&self, sender: u64, seq: u64) -> u64 {
        self.slot_time(seq * self.senders + sender)
    }

    fn measured(&self, t_us: u64) -> bool {
        t_us >= self.w0_us && t_us < self.w1_us
    }
}

/// State every task shares.
struct Shared {
    base: Instant,
    schedule: OnceLock<Schedule>,
    /// Deliveries of our messages received, any time.
    received: AtomicU64,
    /// Deliveries of messages in the window received.
    received_measured: AtomicU64,
    /// Reads (and bytes read) while messages flowed: how much the server
    /// batches its writes to each client.
    reads: AtomicU64,
    read_bytes: AtomicU64,
    stop: CancellationToken,
    errors: std::sync::Mutex<Vec<String>>,
    /// Nicks from index `stall_from` on are the stalled members; when the
    /// others first saw one quit (µs), and why.
    nick_prefix: String,
    stall_from: usize,
    stall_to: usize,
    stall_quit_us: AtomicU64,
    /// Cancelled when the reconnect storm's members drop.
    drop_now: CancellationToken,
    stall_reason: std::sync::Mutex<Option<String>>,
    /// Every member's latencies, in one set of histograms: one set per
    /// connection put each record in its own 160 KiB array, a cache miss
    /// each, and recording was 14% of the generator's CPU in B9 (1,667
    /// members), which saturated it. Recorded once per read, under a lock
    /// nobody holds long.
    recorded: std::sync::Mutex<Recorded>,
}

/// Latencies of the messages in the window (µs).
struct Recorded {
    latency: Histogram<u64>,
    /// With a reconnect storm: the same, before and from the drop.
    calm: Histogram<u64>,
    storm: Histogram<u64>,
}

/// Which histograms a latency goes to besides `latency`.
#[derive(Clone, Copy)]
enum Phase {
    NoStorm,
    Calm,
    Storm,
}

impl Recorded {
    fn new() -> Recorded {
        Recorded {
            latency: new_histogram(),
            calm: new_histogram(),
            storm: new_histogram(),
        }
    }

    fn record(&mut self, took: u64, phase: Phase) {
        self.latency.saturating_record(took);
        match phase {
            Phase::NoStorm => {}
            Phase::Calm => self.calm.saturating_record(took),
            Phase::Storm => self.storm.saturating_record(took),
        }
    }
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn is_stalled(&self, nick: &[u8]) -> bool {
        nick.strip_prefix(self.nick_prefix.as_bytes())
            .and_then(parse_u64)
            .is_some_and(|i| i as usize >= self.stall_from && (i as usize) < self.stall_to)
    }

    fn error(&self, e: String) {
        if let Ok(mut v) = self.errors.lock() {
            v.push(e);
        }
    }
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Arc<Mutex<Box<dyn AsyncWrite + Unpin + Send>>>;

/// How far a busy connection's read buffer grows (it starts at 16 KiB).
const READ_BUF_MAX: usize = 256 * 1024;

/// A read buffer that hands out whole lines.
struct LineBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    scanned: usize,
}

/// Position of the first `\n`, eight bytes at a time.
fn find_newline(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut i = 0;
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes")) ^ NL;
        let z = w.wrapping_sub(LO) & !w & HI;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

impl LineBuf {
    fn new() -> LineBuf {
        LineBuf {
            data: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            scanned: 0,
        }
    }

    async fn fill(&mut self, r: &mut Reader) -> io::Result<usize> {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() {
            if self.data.len() >= 1 << 20 {
                return Err(io::Error::other("line longer than 1 MiB"));
            }
            self.data.resize(self.data.len() * 2, 0);
        }
        let free = self.data.len() - self.end;
        let n = r.read(&mut self.data[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.end += n;
        // A read that filled the buffer means more was waiting: a busy
        // connection gets a bigger buffer, so at high rates one read()
        // takes hundreds of messages (reads are most of the generator's
        // cost), while idle connections keep the small one.
        if n == free && self.data.len() < READ_BUF_MAX {
            self.data.resize(self.data.len() * 2, 0);
        }
        Ok(n)
    }

    /// The next whole line, without its line ending.
    fn next_line(&mut self) -> Option<&[u8]> {
        match find_newline(&self.data[self.scanned..self.end]) {
            Some(p) => {
                let nl = self.scanned + p;
                let mut line_end = nl;
                if line_end > self.start && self.data[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                let line = self.start..line_end;
                self.start = nl + 1;
                self.scanned = self.start;
                Some(&self.data[line])
            }
            None => {
                self.scanned = self.end;
                None
            }
        }
    }
}

/// A line split into source, command and the rest.
struct Parts<'a> {
    source: &'a [u8],
    command: &'a [u8],
    rest: &'a [u8],
}

fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(p) => (&s[..p], &s[p + 1..]),
        None => (s, &[]),
    }
}

fn parts(mut line: &[u8]) -> Parts<'_> {
    if line.first() == Some(&b'@') {
        line = split_word(line).1;
    }
    let mut source: &[u8] = &[];
    if line.first() == Some(&b':') {
        let (s, r) = split_word(line);
        source = &s[1..];
        line = r;
    }
    let (command, rest) = split_word(line);
    Parts {
        source,
        command,
        rest,
    }
}

/// The nick in a `nick!user@host` source.
fn source_nick(source: &[u8]) -> &[u8] {
    let end = source
        .iter()
        .position(|&b| b == b'!')
        .unwrap_or(source.len());
    &source[..end]
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u64;
    }
    Some(v)
}

/// `LG <sender> <seq> <intended>` from the text of a PRIVMSG.
fn parse_probe(rest: &[u8]) -> Option<(u64, u64, u64)> {
    // rest = "<target> :LG ..."
    let colon = rest.windows(2).position(|w| w == b" :")?;
    let text = rest[colon + 2..].strip_prefix(b"LG ")?;
    let (s, text) = split_word(text);
    let (k, text) = split_word(text);
    let (t, _) = split_word(text);
    Some((parse_u64(s)?, parse_u64(k)?, parse_u64(t)?))
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    // The client's own settings: any certificate, handshake signatures
    // still checked (benchmark servers use throwaway certificates).
    let config = confab::client::connection::client_config().expect("TLS settings");
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A registered client that has joined the room.
struct Client {
    reader: Reader,
    writer: Writer,
    buf: LineBuf,
    nick: String,
}

async fn connect(
    cfg: &Config,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> anyhow::Result<(Reader, Writer)> {
    let tcp = TcpStream::connect(cfg.addr)
        .await
        .with_context(|| format!("connect to {}", cfg.addr))?;
    tcp.set_nodelay(true)?;
    Ok(match tls {
        Some(connector) => {
            let name = ServerName::IpAddress(cfg.addr.ip().into());
            let stream = connector
                .connect(name, tcp)
                .await
                .context("TLS handshake")?;
            let (r, w) = tokio::io::split(stream);
            (Box::new(r), Arc::new(Mutex::new(Box::new(w))))
        }
        None => {
            let (r, w) = tcp.into_split();
            (Box::new(r), Arc::new(Mutex::new(Box::new(w))))
        }
    })
}

async fn send(writer: &Writer, bytes: &[u8]) -> io::Result<()> {
    writer.lock().await.write_all(bytes).await
}

/// Connects, registers (PASS/NICK/USER), waits for 001, joins `rooms` and
/// waits for the server's JOIN of this nick to each.
async fn register(
    cfg: &Config,
    tls: Option<&tokio_rustls::TlsConnector>,
    nick: String,
    rooms: &[String],
) -> anyhow::Result<Client> {
    let (mut reader, writer) = connect(cfg, tls).await?;
    let mut hello = String::new();
    if let Some(pw) = &cfg.password {
        hello += &format!("PASS :{pw}\r\n");
    }
    hello += &format!("NICK {nick}\r\nUSER {nick} 0 * :loadgen\r\n");
    send(&writer, hello.as_bytes()).await?;
    let mut buf = LineBuf::new();
    let mut welcomed = false;
    let mut joined = vec![false; rooms.len()];
    loop {
        buf.fill(&mut reader).await.context("during registration")?;
        let mut replies = Vec::new();
        while let Some(line) = buf.next_line() {
            let p = parts(line);
            match p.command {
                b"PING" => {
                    replies.extend_from_slice(b"PONG ");
                    replies.extend_from_slice(p.rest);
                    replies.extend_from_slice(b"\r\n");
                }
                b"001" => {
                    welcomed = true;
                    if cfg.send_join {
                        replies
                            .extend_from_slice(format!("JOIN {}\r\n", rooms.join(",")).as_bytes());
                    }
                }
                b"JOIN" if welcomed => {
                    let chan = p.rest.strip_prefix(b":").unwrap_or(p.rest);
                    let chan = split_word(chan).0;
                    if source_nick(p.source).eq_ignore_ascii_case(nick.as_bytes())
                        && let Some(k) = rooms
                            .iter()
                            .position(|r| chan.eq_ignore_ascii_case(r.as_bytes()))
                    {
                        joined[k] = true;
                    }
                }
                // Nick in use or invalid, bad password, banned, join refused.
                b"432" | b"433" | b"436" | b"464" | b"465" | b"471" | b"473" | b"474" | b"475"
                | b"ERROR" | b"FAIL" => {
                    bail!("{nick}: {}", String::from_utf8_lossy(line));
                }
                _ => {}
            }
        }
        if !replies.is_empty() {
            send(&writer, &replies).await?;
        }
        if joined.iter().all(|&j| j) {
            return Ok(Client {
                reader,
                writer,
                buf,
                nick,
            });
        }
    }
}

/// What one receiving connection measured (its latencies go to
/// `Shared::recorded`).
struct ReaderResult {
    /// The storm's first [`TIMELINE_SECS`]: (sent µs after the drop,
    /// latency µs) of each delivery.
    storm_samples: Vec<(u32, u32)>,
}

/// What a connection does with what it receives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Counts and times every `LG` message.
    Member,
    /// Reads (uncounted) until the window starts, then stops reading (B7).
    Stalled,
    /// Reads and answers PING, counts nothing (B5's storm clients).
    Extra,
    /// As `Extra` until the reconnect storm, then closes its connection.
    Dropping,
}

/// Reads until stopped: answers PING, records every `LG` message.
async fn receive(mut c: Client, shared: Arc<Shared>, role: Role) -> ReaderResult {
    // This read's latencies, recorded together after it.
    let mut took_now: Vec<(u64, Phase)> = Vec::new();
    let mut storm_samples = Vec::new();
    let stop = shared.stop.clone();
    let drop_now = shared.drop_now.clone();
    let (mut reads, mut read_bytes) = (0u64, 0u64);
    loop {
        if role == Role::Stalled
            && let Some(sched) = shared.schedule.get()
            && shared.now_us() >= sched.w0_us
        {
            // Keep the socket open and never read again.
            stop.cancelled().await;
            break;
        }
        let filled = tokio::select! {
            r = c.buf.fill(&mut c.reader) => r,
            _ = stop.cancelled() => break,
            // Closes the socket (the client is dropped on return).
            _ = drop_now.cancelled(), if role == Role::Dropping => break,
        };
        let n = match filled {
            Ok(n) => n,
            Err(e) => {
                if !stop.is_cancelled() {
                    shared.error(format!("{}: {e}", c.nick));
                }
                break;
            }
        };
        let now = shared.now_us();
        let sched = shared.schedule.get().filter(|_| role == Role::Member);
        if sched.is_some() {
            reads += 1;
            read_bytes += n as u64;
        }
        let (mut got, mut got_measured) = (0u64, 0u64);
        let mut pong = Vec::new();
        while let Some(line) = c.buf.next_line() {
            let p = parts(line);
            match p.command {
                b"PRIVMSG" => {
                    let (Some(sched), Some((s, k, t))) = (sched, parse_probe(p.rest)) else {
                        continue;
                    };
                    got += 1;
                    if s < sched.senders
                        && k < sched.max_seq
                        && let Some(n) = sched.counts.get((s * sched.max_seq + k) as usize)
                    {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    if sched.measured(t) {
                        got_measured += 1;
                        let took = now.saturating_sub(t).max(1);
                        if sched.drop_us == u64::MAX {
                            took_now.push((took, Phase::NoStorm));
                        } else if t < sched.drop_us {
                            took_now.push((took, Phase::Calm));
                        } else {
                            took_now.push((took, Phase::Storm));
                            let after = t - sched.drop_us;
                            if after < u64::from(TIMELINE_SECS) * 1_000_000 {
                                storm_samples
                                    .push((after as u32, u32::try_from(took).unwrap_or(u32::MAX)));
                            }
                        }
                    }
                }
                b"PING" => {
                    pong.extend_from_slice(b"PONG ");
                    pong.extend_from_slice(p.rest);
                    pong.extend_from_slice(b"\r\n");
                }
                b"QUIT" if role == Role::Member && shared.is_stalled(source_nick(p.source)) => {
                    let before = shared.stall_quit_us.fetch_min(now, Ordering::Relaxed);
                    if before == u64::MAX
                        && let Ok(mut r) = shared.stall_reason.lock()
                    {
                        let reason = p.rest.strip_prefix(b":").unwrap_or(p.rest);
                        *r = Some(String::from_utf8_lossy(reason).into_owned());
                    }
                }
                b"ERROR" => shared.error(format!(
                    "{}: server said {}",
                    c.nick,
                    String::from_utf8_lossy(line)
                )),
                _ => {}
            }
        }
        if !took_now.is_empty()
            && let Ok(mut recorded) = shared.recorded.lock()
        {
            for (took, phase) in took_now.drain(..) {
                recorded.record(took, phase);
            }
        }
        if got > 0 {
            shared.received.fetch_add(got, Ordering::Relaxed);
            shared
                .received_measured
                .fetch_add(got_measured, Ordering::Relaxed);
        }
        if !pong.is_empty() && send(&c.writer, &pong).await.is_err() {
            break;
        }
    }
    shared.reads.fetch_add(reads, Ordering::Relaxed);
    shared.read_bytes.fetch_add(read_bytes, Ordering::Relaxed);
    ReaderResult { storm_samples }
}

/// What one sender did.
struct SenderResult {
    measured: u64,
    lag: Histogram<u64>,
}

/// Sends, when the ticker says so, every message that is due.
async fn send_loop(
    s: u64,
    writer: Writer,
    targets: Vec<String>,
    size: usize,
    wake: Arc<Notify>,
    shared: Arc<Shared>,
) -> SenderResult {
    let sched = shared.schedule.get().expect("schedule set before senders");
    let mut lag = new_histogram();
    let mut measured = 0;
    let mut k = 0u64;
    let mut buf = Vec::with_capacity(4096);
    // Message k goes to target k % len: a member of many rooms sends to
    // each in turn.
    let prefixes: Vec<(usize, String)> = targets
        .iter()
        .map(|target| {
            let header = format!("PRIVMSG {target} :");
            (header.len(), format!("{header}LG {s} "))
        })
        .collect();
    let stop = shared.stop.clone();
    'run: loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = stop.cancelled() => break,
        }
        let now = shared.now_us();
        buf.clear();
        let mut done = false;
        loop {
            let t = sched.intended(s, k);
            if t >= sched.w1_us || k >= sched.max_seq {
                done = true;
                break;
            }
            if t > now {
                break;
            }
            let start = buf.len();
            let (header_len, prefix) = &prefixes[(k % prefixes.len() as u64) as usize];
            buf.extend_from_slice(prefix.as_bytes());
            buf.extend_from_slice(format!("{k} {t} ").as_bytes());
            let text_len = buf.len() - start - header_len;
            let pad = size.saturating_sub(text_len).max(1);
            buf.resize(buf.len() + pad, b'x');
            buf.extend_from_slice(b"\r\n");
            lag.saturating_record(now.saturating_sub(t).max(1));
            if sched.measured(t) {
                measured += 1;
            }
            k += 1;
        }
        if !buf.is_empty() {
            let written = tokio::select! {
                r = send(&writer, &buf) => r,
                _ = stop.cancelled() => break 'run,
            };
            if let Err(e) = written {
                shared.error(format!("sender {s}: {e}"));
                break;
            }
        }
        if done {
            break;
        }
    }
    SenderResult { measured, lag }
}

/// Runs the senders on a thread and runtime of their own; the receiver
/// resolves with their results once all have finished.
///
/// Why not the readers' runtime: on the generator's one core, a woken
/// sender queued behind a hundred readers each parsing a big read writes
/// milliseconds late, and open-loop latency charges that to the server. A
/// thread that mostly sleeps is run soon after it is woken (the kernel
/// favours it over the busy readers' thread), so messages leave on time.
/// The sockets stay registered with the readers' runtime, which keeps
/// driving their readiness; a write that would block waits on it.
fn spawn_senders<F>(
    send_loops: Vec<F>,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<Vec<SenderResult>>>
where
    F: std::future::Future<Output = SenderResult> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the senders' runtime")?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("loadgen senders".into())
        .spawn(move || {
            let results = runtime.block_on(async move {
                let tasks: Vec<_> = send_loops.into_iter().map(tokio::spawn).collect();
                let mut results = Vec::with_capacity(tasks.len());
                for t in tasks {
                    if let Ok(r) = t.await {
                        results.push(r);
                    }
                }
                results
            });
            let _ = done_tx.send(results);
        })
        .context("starting the senders' thread")?;
    Ok(done_rx)
}

/// The pacing thread: walks the merged schedule with nanosleep and wakes
/// each sender when its slot is due.
fn ticker(shared: Arc<Shared>, wakes: Vec<Arc<Notify>>) {
    // Sleep as exactly as asked: the default timer slack adds ~50 µs to
    // every nanosleep. Best effort (Linux 4.6+).
    let _ = std::fs::write("/proc/thread-self/timerslack_ns", "1");
    let sched = shared.schedule.get().expect("schedule set before ticker");
    let n = wakes.len() as u64;
    let mut slot = 0u64;
    while !shared.stop.is_cancelled() {
        let due = sched.slot_time(slot);
        if due >= sched.w1_us {
            break;
        }
        let now = shared.now_us();
        if due > now {
            std::thread::sleep(Duration::from_micros(due - now));
        }
        let now = shared.now_us();
        while sched.slot_time(slot) <= now && sched.slot_time(slot) < sched.w1_us {
            wakes[(slot % n) as usize].notify_one();
            slot += 1;
        }
    }
    let now = shared.now_us();
    if sched.w1_us > now {
        std::thread::sleep(Duration::from_micros(sched.w1_us - now));
    }
    for w in &wakes {
        w.notify_one();
    }
}

/// Runs one load test. Call inside a tokio runtime.
pub async fn run(cfg: Config) -> anyhow::Result<Report> {
    if cfg.mode != Mode::Idle && (cfg.rate <= 0.0 || cfg.sender_count() == 0) {
        bail!("need at least one sender and a rate above 0");
    }
    if cfg.mode == Mode::Room && cfg.members() < 2 {
        bail!("a room needs at least 2 clients");
    }
    if cfg.many_rooms() && (cfg.room_size < 2 || !(1..=cfg.rooms).contains(&cfg.rooms_per_member)) {
        bail!("many rooms need --room-size of 2 or more and --rooms-per-member from 1 to --rooms");
    }
    let shared = Arc::new(Shared {
        base: Instant::now(),
        schedule: OnceLock::new(),
        received: AtomicU64::new(0),
        received_measured: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        read_bytes: AtomicU64::new(0),
        stop: CancellationToken::new(),
        errors: std::sync::Mutex::new(Vec::new()),
        nick_prefix: cfg.nick_prefix.clone(),
        stall_from: match cfg.mode {
            Mode::Room => cfg.members(),
            _ => usize::MAX,
        },
        stall_to: match cfg.mode {
            Mode::Room => cfg.members() + cfg.stall,
            _ => usize::MAX,
        },
        stall_quit_us: AtomicU64::new(u64::MAX),
        drop_now: CancellationToken::new(),
        stall_reason: std::sync::Mutex::new(None),
        recorded: std::sync::Mutex::new(Recorded::new()),
    });
    let server = |pid: Option<u32>| pid.and_then(|p| proc_sample(&p.to_string()));
    let gen_cpu = || proc_sample("self").map_or(0.0, |s| s.cpu_secs);
    let mut report = Report {
        label: cfg.label.clone(),
        mode: cfg.mode.name().into(),
        tls: cfg.tls,
        connections: cfg.connections(),
        senders: cfg.sender_count(),
        rate: cfg.rate,
        size: cfg.size,
        ..Report::default()
    };

    // Connect and register everyone, `concurrency` at a time.
    let tls = cfg.tls.then(tls_connector);
    let cfg = Arc::new(cfg);
    let before = server(cfg.server_pid);
    let fds_before = cfg.server_pid.and_then(|p| open_files(&p.to_string()));
    let gen_before = gen_cpu();
    let connect_start = Instant::now();
    let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let (joined_tx, mut joined_rx) = mpsc::unbounded_channel();
    let mut readers = Vec::new();
    for i in 0..cfg.connections() {
        let (cfg, tls, shared, permits) =
            (cfg.clone(), tls.clone(), shared.clone(), permits.clone());
        let joined_tx = joined_tx.clone();
        readers.push(tokio::spawn(async move {
            let nick = format!("{}{i}", cfg.nick_prefix);
            let rooms = cfg.rooms_of(i);
            let (client, took) = {
                let Ok(_permit) = permits.acquire().await else {
                    return None;
                };
                let started = Instant::now();
                let c = tokio::select! {
                    c = register(&cfg, tls.as_ref(), nick, &rooms) => c,
                    _ = shared.stop.cancelled() => return None,
                };
                (c, started.elapsed().as_micros() as u64)
            };
            match client {
                Ok(c) => {
                    let _ = joined_tx.send(Ok((i, c.writer.clone(), c.nick.clone(), took)));
                    let role = if i >= shared.stall_to {
                        Role::Dropping
                    } else if i >= shared.stall_from {
                        Role::Stalled
                    } else {
                        Role::Member
                    };
                    Some(receive(c, shared, role).await)
                }
                Err(e) => {
                    let _ = joined_tx.send(Err(format!("{e:#}")));
                    None
                }
            }
        }));
    }
    drop(joined_tx);
    let mut writers: Vec<Option<(Writer, String)>> = vec![None; cfg.connections()];
    let mut joined = 0;
    let mut logins = new_histogram();
    let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
    let mut failure = None;
    while joined < cfg.connections() {
        match tokio::time::timeout_at(deadline, joined_rx.recv()).await {
            Ok(Some(Ok((i, w, nick, took)))) => {
                logins.saturating_record(took.max(1));
                writers[i] = Some((w, nick));
                joined += 1;
            }
            Ok(Some(Err(e))) => {
                failure = Some(anyhow!("a client could not log in: {e}"));
                break;
            }
            Ok(None) => {
                failure = Some(anyhow!("clients ended before logging in"));
                break;
            }
            Err(_) => {
                failure = Some(anyhow!(
                    "only {joined} of {} clients logged in within {:?}",
                    cfg.connections(),
                    cfg.connect_timeout
                ));
                break;
            }
        }
    }
    if let Some(e) = failure {
        shared.stop.cancel();
        return Err(e);
    }
    report.connect_secs = connect_start.elapsed().as_secs_f64();

    report.login = Percentiles::of(&logins);

    if cfg.mode == Mode::Idle {
        let at_join = server(cfg.server_pid);
        report.gen_cpu_secs = gen_cpu() - gen_before;
        tokio::time::sleep(cfg.settle).await;
        let after = server(cfg.server_pid);
        if let (Some(b), Some(j), Some(a)) = (before, at_join, after) {
            report.server_cpu_secs = Some(j.cpu_secs - b.cpu_secs);
            report.server_rss_before_kib = Some(b.rss_kib);
            report.server_rss_kib = Some(a.rss_kib);
            report.server_hwm_kib = Some(a.hwm_kib);
            report.rss_per_conn_kib =
                Some((a.rss_kib as f64 - b.rss_kib as f64) / cfg.connections() as f64);
        }
        shared.stop.cancel();
        for r in readers {
            let _ = r.await;
        }
        // The write halves close the sockets (a read half alone does not).
        drop(writers);
        // Everyone leaves at once (the sockets closed above): memory once
        // the server has closed them all and had `leave_settle` to give
        // back what it kept for them.
        if let (Some(pid), Some(fds)) = (cfg.server_pid, fds_before) {
            let left_start = Instant::now();
            let deadline = left_start + cfg.connect_timeout;
            let mut previous = usize::MAX;
            loop {
                match open_files(&pid.to_string()) {
                    // Servers open a few files of their own as they go (a
                    // database's journal, a log): done once the count is
                    // within those of the start and holds still.
                    Some(n) if n > fds + SERVER_OWN_FILES || n != previous => {
                        previous = n;
                        if Instant::now() >= deadline {
                            shared.error(format!(
                                "the server still had {n} files open ({fds} before) {:?} after everyone left",
                                cfg.connect_timeout
                            ));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => break,
                }
            }
            report.left_secs = Some(left_start.elapsed().as_secs_f64());
            tokio::time::sleep(cfg.leave_settle).await;
            report.server_rss_left_kib = server(Some(pid)).map(|s| s.rss_kib);
        }
        report.errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
        return Ok(report);
    }

    // The reconnect storm's members never send: without their write halves
    // here, a reader that stops closes its socket.
    for w in writers.iter_mut().skip(cfg.members() + cfg.stall) {
        *w = None;
    }

    // The schedule: a short pause so the last JOINs settle, then warm-up,
    // then the window.
    let senders = cfg.sender_count() as u64;
    let start_us = shared.now_us() + 200_000;
    let w0_us = start_us + cfg.warmup.as_micros() as u64;
    let w1_us = w0_us + cfg.duration.as_micros() as u64;
    let max_seq = ((w1_us - start_us) as f64 / 1e6 * cfg.rate).ceil() as u64 + 2;
    let counts = (0..senders * max_seq).map(|_| AtomicU32::new(0)).collect();
    let _ = shared.schedule.set(Schedule {
        start_us,
        w0_us,
        w1_us,
        senders,
        slot_us: 1e6 / (senders as f64 * cfg.rate),
        max_seq,
        counts,
        drop_us: if cfg.reconnect > 0 {
            w0_us + cfg.reconnect_at.as_micros() as u64
        } else {
            u64::MAX
        },
    });
    let mut wakes = Vec::new();
    let mut send_loops = Vec::new();
    for s in 0..senders as usize {
        let (writer, target) = match cfg.mode {
            Mode::Room => (
                writers[s].as_ref().expect("joined").0.clone(),
                cfg.rooms_of(s),
            ),
            _ => {
                let w = writers[2 * s].as_ref().expect("joined").0.clone();
                (
                    w,
                    vec![writers[2 * s + 1].as_ref().expect("joined").1.clone()],
                )
            }
        };
        let wake = Arc::new(Notify::new());
        wakes.push(wake.clone());
        send_loops.push(send_loop(
            s as u64,
            writer,
            target,
            cfg.size,
            wake,
            shared.clone(),
        ));
    }
    let senders_done = spawn_senders(send_loops)?;
    let ticker_shared = shared.clone();
    let ticker_thread = std::thread::spawn(move || ticker(ticker_shared, wakes));

    // The window: samples at its edges.
    let at = |us: u64| tokio::time::Instant::from_std(shared.base + Duration::from_micros(us));
    tokio::time::sleep_until(at(w0_us)).await;
    let t0 = Instant::now();
    let recv0 = shared.received.load(Ordering::Relaxed);
    let srv0 = server(cfg.server_pid);
    let gen0 = gen_cpu();
    let storm = (cfg.storm > 0).then(|| {
        tokio::spawn(login_storm(
            cfg.clone(),
            tls.clone(),
            shared.clone(),
            w0_us,
            cfg.storm,
            "x",
        ))
    });
    let drop_us = shared.schedule.get().map_or(u64::MAX, |s| s.drop_us);
    let reconnect = (cfg.reconnect > 0).then(|| {
        let (cfg, tls, shared) = (cfg.clone(), tls.clone(), shared.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(at_us(&shared, drop_us)).await;
            shared.drop_now.cancel();
            let (cpu0, t0) = (gen_cpu(), Instant::now());
            let r = login_storm(cfg.clone(), tls, shared, drop_us, cfg.reconnect, "re").await;
            let share = (gen_cpu() - cpu0) / t0.elapsed().as_secs_f64().max(1e-6);
            (r, share)
        })
    });
    let rss_samples = cfg.rss_every.zip(cfg.server_pid).map(|(every, pid)| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut next = tokio::time::Instant::now();
            while shared.now_us() < w1_us {
                if let Some(p) = proc_sample(&pid.to_string()) {
                    let secs = shared.now_us().saturating_sub(w0_us) as f64 / 1e6;
                    samples.push((secs, p.rss_kib));
                }
                next += every;
                tokio::time::sleep_until(next.min(at_us(&shared, w1_us))).await;
            }
            samples
        })
    });
    tokio::time::sleep_until(at(w1_us)).await;
    let t1 = Instant::now();
    let recv1 = shared.received.load(Ordering::Relaxed);
    let srv1 = server(cfg.server_pid);
    let gen1 = gen_cpu();
    report.warmup_secs = cfg.warmup.as_secs_f64();
    report.window_secs = (t1 - t0).as_secs_f64();
    report.offered_per_sec = cfg.offered_deliveries();
    report.delivered_per_sec = (recv1 - recv0) as f64 / report.window_secs;
    report.gen_cpu_secs = gen1 - gen0;
    if let (Some(a), Some(b)) = (srv0, srv1) {
        report.server_cpu_secs = Some(b.cpu_secs - a.cpu_secs);
        report.server_rss_before_kib = Some(a.rss_kib);
        report.server_rss_kib = Some(b.rss_kib);
        report.server_hwm_kib = Some(b.hwm_kib);
    }

    // Senders finish the messages due in the window (late ones too).
    let mut lag = new_histogram();
    let mut measured = 0;
    for r in senders_done.await.unwrap_or_default() {
        measured += r.measured;
        let _ = lag.add(&r.lag);
    }
    let _ = ticker_thread.join();
    report.measured_messages = measured;
    report.expected = measured * cfg.recipients();

    if let Some(samples) = rss_samples
        && let Ok(samples) = samples.await
    {
        let skip = cfg
            .rss_skip
            .as_secs_f64()
            .min(cfg.duration.as_secs_f64() / 3.0);
        report.rss_skip_secs = skip;
        report.rss_slope_kib_per_min = slope_per_min(&samples, skip);
        report.rss_series_kib = samples;
    }
    if let Some(reconnect) = reconnect {
        match tokio::time::timeout(cfg.connect_timeout, reconnect).await {
            Ok(Ok((r, share))) => {
                report.storm_gen_cpu_share = Some(share);
                report.reconnected = r.logins;
                report.reconnect_secs = r.last_us.saturating_sub(drop_us) as f64 / 1e6;
                report.reconnect_login = Percentiles::of(&r.login);
            }
            _ => shared.error(format!(
                "the reconnect storm did not finish within {:?}",
                cfg.connect_timeout
            )),
        }
    }
    if let Some(storm) = storm {
        match tokio::time::timeout(cfg.connect_timeout, storm).await {
            Ok(Ok(r)) => {
                report.storm_logins = r.logins;
                report.storm_secs = r.last_us.saturating_sub(w0_us) as f64 / 1e6;
                report.storm_login = Percentiles::of(&r.login);
            }
            _ => shared.error(format!(
                "the login storm did not finish within {:?}",
                cfg.connect_timeout
            )),
        }
    }

    // Drain: wait for the last deliveries, or give up after `drain`.
    let drain_end = Instant::now() + cfg.drain;
    while shared.received_measured.load(Ordering::Relaxed) < report.expected
        && Instant::now() < drain_end
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shared.stop.cancel();
    let mut storm_samples = Vec::new();
    for r in readers {
        if let Ok(Some(r)) = r.await {
            storm_samples.extend(r.storm_samples);
        }
    }
    let Recorded {
        latency,
        calm,
        storm,
    } = match shared.recorded.lock() {
        Ok(mut r) => std::mem::replace(&mut *r, Recorded::new()),
        Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), Recorded::new()),
    };
    if cfg.reconnect > 0 {
        let calm = Percentiles::of(&calm);
        report.storm_timeline = storm_timeline(&storm_samples, calm.p99 * 2);
        report.latency_calm = Some(calm);
        report.latency_storm = Some(Percentiles::of(&storm));
    }

    // Losses per message id.
    let sched = shared.schedule.get().expect("schedule");
    let want = cfg.recipients();
    let (mut received, mut lost, mut dups) = (0, 0, 0);
    for s in 0..senders {
        for k in 0..max_seq {
            let t = sched.intended(s, k);
            if !sched.measured(t) {
                continue;
            }
            let got = sched.counts[(s * max_seq + k) as usize].load(Ordering::Relaxed) as u64;
            received += got.min(want);
            lost += want.saturating_sub(got);
            dups += got.saturating_sub(want);
        }
    }
    report.received = received;
    report.lost = lost;
    report.duplicates = dups;
    report.latency = Percentiles::of(&latency);
    report.send_lag = Percentiles::of(&lag);
    let reads = shared.reads.load(Ordering::Relaxed).max(1) as f64;
    report.deliveries_per_read = shared.received.load(Ordering::Relaxed) as f64 / reads;
    report.bytes_per_read = shared.read_bytes.load(Ordering::Relaxed) as f64 / reads;
    let quit = shared.stall_quit_us.load(Ordering::Relaxed);
    if quit != u64::MAX {
        report.stall_dropped_secs = Some(quit.saturating_sub(w0_us) as f64 / 1e6);
        report.stall_reason = shared.stall_reason.lock().ok().and_then(|r| r.clone());
    }
    report.errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(report)
}

/// What the login storm measured.
struct StormResult {
    logins: u64,
    /// When the last login finished (µs on the shared clock).
    last_us: u64,
    login: Histogram<u64>,
}

/// B5: `storm` clients log in from `start_us` on, `storm_concurrency` at a
/// time, and stay connected (reading, uncounted) until the run stops.
async fn login_storm(
    cfg: Arc<Config>,
    tls: Option<tokio_rustls::TlsConnector>,
    shared: Arc<Shared>,
    start_us: u64,
    count: usize,
    infix: &'static str,
) -> StormResult {
    let permits = Arc::new(Semaphore::new(cfg.storm_concurrency.max(1)));
    let mut logins = Vec::new();
    let rooms = vec![cfg.room.clone()];
    for j in 0..count {
        let (cfg, tls, shared, permits, rooms) = (
            cfg.clone(),
            tls.clone(),
            shared.clone(),
            permits.clone(),
            rooms.clone(),
        );
        logins.push(tokio::spawn(async move {
            let nick = format!("{}{infix}{j}", cfg.nick_prefix);
            let permit = permits.acquire().await.ok()?;
            let started = Instant::now();
            let c = tokio::select! {
                c = register(&cfg, tls.as_ref(), nick, &rooms) => c,
                _ = shared.stop.cancelled() => return None,
            };
            let took = started.elapsed().as_micros() as u64;
            let done = shared.now_us();
            drop(permit);
            match c {
                Ok(c) => {
                    tokio::spawn(receive(c, shared, Role::Extra));
                    Some((took, done))
                }
                Err(e) => {
                    shared.error(format!("{infix} login: {e:#}"));
                    None
                }
            }
        }));
    }
    let mut result = StormResult {
        logins: 0,
        last_us: start_us,
        login: new_histogram(),
    };
    for l in logins {
        if let Ok(Some((took, done))) = l.await {
            result.logins += 1;
            result.last_us = result.last_us.max(done);
            result.login.saturating_record(took.max(1));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_search() {
        for len in 0..40 {
            for at in 0..len {
                let mut v = vec![b'a'; len];
                v[at] = b'\n';
                assert_eq!(find_newline(&v), Some(at));
            }
            assert_eq!(find_newline(&vec![b'\r'; len]), None);
        }
    }

    #[test]
    fn storm_timeline_bins_by_send_time_and_counts_the_slow() {
        // (sent µs after the drop, latency µs); slow means over 2,000 µs.
        let samples = [
            (0, 500),
            (99_999, 2_001),
            (100_000, 2_000),
            (250_000, 60_000),
            (9_999_999, 3_000),
            (10_000_000, 9_000),
        ];
        let bins = storm_timeline(&samples, 2_000);
        assert_eq!(bins.len(), 100);
        let seen: Vec<(u32, u64, u64, u64)> = bins
            .iter()
            .filter(|b| b.deliveries > 0)
            .map(|b| (b.from_ms, b.deliveries, b.slow, b.max_us))
            .collect();
        assert_eq!(
            seen,
            [
                (0, 2, 1, 2_001),
                (100, 1, 0, 2_000),
                (200, 1, 1, 60_000),
                (9_900, 1, 1, 3_000)
            ]
        );
    }

    #[test]
    fn probe_parses() {
        let p = parts(b":lg1!lg1@127.0.0.1 PRIVMSG #general :LG 3 17 123456 xxxx");
        assert_eq!(p.command, b"PRIVMSG");
        assert_eq!(source_nick(p.source), b"lg1");
        assert_eq!(parse_probe(p.rest), Some((3, 17, 123456)));
        assert_eq!(parse_probe(b"#general :hello"), None);
    }
}
