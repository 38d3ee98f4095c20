//! The tracker: accept loop, TLS, connection tasks, the hub, the transcript.
//!
//! Shutdown sequence (Ctrl+C, SIGTERM, or the last member leaving):
//! 1. the `shutdown` token is cancelled; the accept loop stops accepting;
//! 2. every connection task writes what the hub queued for it, then
//!    `ERROR :Closing link: ... (tracker shutting down)`, and closes;
//! 3. the hub records the `stop` line, fsyncs `chat.log` and exits;
//! 4. `run` returns once all of that is done, or after a grace period.

pub mod conn;
pub mod hub;
pub mod password;
pub mod transcript;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::conn::{ConnContext, FloodPolicy, SendBudget};
use self::hub::{Hub, HubConfig, HubRequest};
use self::password::{GuessBudget, GuessLimits, PasswordGate};
use self::transcript::Transcript;

/// Requests queued for the hub before connection tasks wait: bounded so a
/// flood slows its sender instead of growing memory.
const HUB_INBOX: usize = 8192;
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections and the hub to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

pub struct Config {
    /// `None` runs an open tracker (`--no-password`).
    pub password: Option<PasswordGate>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub log_dir: PathBuf,
    pub idle_timeout: Duration,
    pub ping_interval: Duration,
    pub register_timeout: Duration,
    /// Keep running after the last member leaves.
    pub stay: bool,
    pub server_name: String,
    pub flood: FloodPolicy,
    /// Bytes that may wait for one slow client before it is dropped.
    pub sendq: usize,
    /// Bytes that may wait for all clients together; past it, the clients
    /// furthest behind are dropped.
    pub sendq_total: usize,
    /// Open connections at most, in all and from one address.
    pub max_connections: usize,
    pub max_per_address: usize,
    /// Wrong passwords checked per address and tracker-wide (built in).
    pub guess_limits: GuessLimits,
    /// When `chat.log` reaches the disk, relative to delivery.
    pub log_sync: transcript::LogSync,
}

impl Config {
    pub fn new(log_dir: PathBuf) -> Self {
        Config {
            password: None,
            tls: None,
            log_dir,
            idle_timeout: Duration::from_secs(300),
            ping_interval: Duration::from_secs(90),
            register_timeout: Duration::from_secs(30),
            stay: false,
            server_name: "confab".to_string(),
            flood: FloodPolicy::new(4.0, 20),
            sendq: 2 << 20,
            sendq_total: 256 << 20,
            max_connections: 2000,
            max_per_address: 50,
            guess_limits: GuessLimits::default(),
            log_sync: transcript::LogSync::Write,
        }
    }
}

#[derive(Debug, Error)]
pub enum TrackerError {
    #[error("cannot open the chat log in {dir}: {source}")]
    Transcript { dir: String, source: std::io::Error },
    #[error("cannot read the listening address: {0}")]
    Listener(std::io::Error),
}

/// Why `run` returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown future completed (Ctrl+C, SIGTERM, a test).
    Requested,
    /// The last registered member left and `stay` was off.
    LastMemberLeft,
}

/// Serves on `listener` until `shutdown` completes or the last member leaves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = String>,
) -> Result<Stopped, TrackerError> {
    let local = listener.local_addr().map_err(TrackerError::Listener)?;
    let transcript = Transcript::open(&config.log_dir, config.log_sync).map_err(|source| {
        TrackerError::Transcript {
            dir: config.log_dir.display().to_string(),
            source,
        }
    })?;
    let token = CancellationToken::new();
    let (hub_tx, hub_rx) = mpsc::channel(HUB_INBOX);
    let send_budget = Arc::new(SendBudget::new(config.sendq_total));
    let started = jiff::Timestamp::now();
    let hub = Hub::new(
        HubConfig {
            server_name: config.server_name.clone(),
            idle_timeout: config.idle_timeout,
            stay: config.stay,
            log_path_shown: transcript.path().display().to_string(),
            started,
            send_budget: send_budget.clone(),
        },
        transcript,
        token.clone(),
    );
    let start_line = format!(
        "tracker listening on {local} ({}, {})",
        if config.tls.is_some() {
            "TLS"
        } else {
            "plain TCP"
        },
        if config.password.is_some() {
            "password required"
        } else {
            "no password"
        }
    );
    // The hub owns blocking file I/O, so it gets its own thread.
    let hub_thread = tokio::task::spawn_blocking(move || hub.run(hub_rx, start_line));

    let ctx = Arc::new(ConnContext {
        hub: hub_tx.clone(),
        password: config.password.map(Arc::new),
        shutdown: token.clone(),
        server_name: config.server_name.clone(),
        ping_interval: config.ping_interval,
        register_timeout: config.register_timeout,
        flood: config.flood,
        sendq: config.sendq,
        send_budget,
        guesses: Arc::new(GuessBudget::new(
            config.guess_limits,
            std::time::Instant::now(),
        )),
    });
    let limits = Arc::new(ConnLimits::new(
        config.max_connections,
        config.max_per_address,
    ));
    // Refusals are answered (so a person sees why), but only this many at a
    // time: beyond that a connection storm is just closed.
    let refusals = Arc::new(tokio::sync::Semaphore::new(64));
    let tls = config.tls.map(TlsAcceptor::from);
    let tasks = TaskTracker::new();

    // Idle detection runs on the hub's clock: a tick, several per timeout.
    let tick_every =
        (config.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let ticker_tx = hub_tx.clone();
    let ticker_token = token.clone();
    tasks.spawn(async move {
        let mut interval = tokio::time::interval(tick_every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker_token.cancelled() => return,
                _ = interval.tick() => {
                    if ticker_tx.send(HubRequest::Tick).await.is_err() { return; }
                }
            }
        }
    });

    let next_id = AtomicU64::new(1);
    tokio::pin!(shutdown);
    let stop_reason;
    loop {
        tokio::select! {
            reason = &mut shutdown => { stop_reason = Some(reason); break; }
            _ = token.cancelled() => { stop_reason = None; break; }
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                let slot = match limits.acquire(peer.ip()) {
                    Ok(slot) => slot,
                    Err(why) => {
                        tracing::warn!(%peer, "connection refused: {why}");
                        if let Ok(permit) = refusals.clone().try_acquire_owned() {
                            let tls = tls.clone();
                            tasks.spawn(async move {
                                let _permit = permit;
                                refuse(socket, peer, tls, why).await;
                            });
                        }
                        continue;
                    }
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let ctx = ctx.clone();
                let tls = tls.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    accept_one(socket, peer, id, ctx, tls).await
                });
            }
        }
    }
    drop(listener);
    let outcome = match stop_reason {
        Some(reason) => {
            let _ = hub_tx.send(HubRequest::Shutdown { reason }).await;
            Stopped::Requested
        }
        None => Stopped::LastMemberLeft,
    };
    token.cancel();
    tasks.close();
    drop(hub_tx);
    drop(ctx);
    // Connections say goodbye; then the hub (whose inbox closes once every
    // task has dropped its sender) writes the stop line and fsyncs.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, hub_thread).await;
    Ok(outcome)
}

async fn accept_one(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    ctx: Arc<ConnContext>,
    tls: Option<TlsAcceptor>,
) {
    match tls {
        None => conn::serve(socket, peer, id, ctx).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                _ = ctx.shutdown.cancelled() => return,
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)) => r,
            };
            match handshake {
                Ok(Ok(stream)) => conn::serve(stream, peer, id, ctx).await,
                Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Why a connection was refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("Too many connections from your address")]
    PerAddress,
    #[error("The tracker is full")]
    Full,
}

/// What counts as one address for per-address limits: an IPv4 address, or
/// an IPv6 /64 (the block one machine or one home usually has, so moving
/// within it gains nothing). An IPv4 address seen as IPv6 (`::ffff:a.b.c.d`)
/// is the IPv4 address.
pub(crate) fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Counts open connections, in all and per address (`address_key`: IPv6
/// per /64, as the password allowance counts). A std mutex: one map update
/// per accept and per close, never held across an await.
struct ConnLimits {
    max: usize,
    per_address: usize,
    open: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

/// One open connection; dropping it frees the slot.
struct Slot {
    limits: Arc<ConnLimits>,
    ip: std::net::IpAddr,
}

impl ConnLimits {
    fn new(max: usize, per_address: usize) -> Self {
        ConnLimits {
            max,
            per_address,
            open: std::sync::Mutex::new((0, std::collections::HashMap::new())),
        }
    }

    fn acquire(self: &Arc<Self>, ip: std::net::IpAddr) -> Result<Slot, Refusal> {
        let ip = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_ip) = &mut *open;
        if *total >= self.max {
            return Err(Refusal::Full);
        }
        let n = by_ip.entry(ip).or_insert(0);
        if *n >= self.per_address {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        *total += 1;
        Ok(Slot {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_ip) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

/// Tells a refused client why (inside TLS when the tracker uses it), then
/// closes. Bounded in time: a refused peer gets no more than a few seconds.
async fn refuse(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    why: Refusal,
) {
    use tokio::io::AsyncWriteExt;
    let line = crate::proto::Message::new("ERROR")
        .param(format!("Closing link: {} ({why})", peer.ip()))
        .to_line();
    let _ = tokio::time::timeout(Duration::from_secs(5), async move {
        match tls {
            None => {
                let mut socket = socket;
                let _ = socket.write_all(line.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
            Some(acceptor) => {
                if let Ok(mut stream) = acceptor.accept(socket).await {
                    let _ = stream.write_all(line.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_count_ipv6_per_64() {
        let limits = Arc::new(ConnLimits::new(100, 2));
        let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
        let _a = limits.acquire(ip("2001:db8:1:2::1")).unwrap();
        let b = limits.acquire(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            limits.acquire(ip("2001:db8:1:2::77")).err(),
            Some(Refusal::PerAddress),
            "a third address in the same /64"
        );
        let _other = limits.acquire(ip("2001:db8:1:3::1")).unwrap();
        drop(b);
        let _again = limits.acquire(ip("2001:db8:1:2::77")).unwrap();
        // IPv4 and its IPv6-mapped form are one address.
        let _v4 = limits.acquire(ip("10.0.0.1")).unwrap();
        let _v4b = limits.acquire(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(
            limits.acquire(ip("10.0.0.1")).err(),
            Some(Refusal::PerAddress)
        );
        drop(limits.acquire(ip("10.0.0.2")).unwrap());
        let open = limits.open.lock().unwrap();
        assert_eq!(open.0, 5);
        assert_eq!(open.1.len(), 3);
    }
}
