//! The tracker: accept loop, TLS, connection tasks, the hub, the transcript.
//!
//! Shutdown sequence (Ctrl+C, SIGTERM, or the room staying empty for
//! `exit_grace` after the last member left, see [`wait_until_abandoned`]):
//! 1. the `shutdown` token is cancelled; the accept loop stops accepting;
//! 2. every connection task writes what the hub queued for it, then
//!    `ERROR :Closing link: ... (tracker shutting down)`, and closes;
//! 3. the hub records the `stop` line, fsyncs `chat.log` and exits;
//! 4. `run` returns once all of that is done, or after a grace period.

pub mod accounts;
pub mod announce;
pub mod chain;
pub mod commands;
pub mod conn;
pub mod console;
pub mod hub;
pub mod memory;
pub mod open_files;
pub mod opers;
pub mod password;
pub mod policy;
pub mod repair;
pub mod replies;
pub mod review;
pub mod shared;
pub mod transcript;
pub mod write_side;
pub mod yielding;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::accounts::AccountGate;
use self::conn::{ConnContext, FloodPolicy};
use self::hub::{AccountRunner, HistorySink, Hub, HubConfig};
use self::password::{GuessBudget, GuessLimits, PasswordGate};
use self::shared::{HubRequest, SendBudget};
use self::transcript::{LockError, LogLock, Transcript};

/// Requests queued for the hub before connection tasks wait: bounded so a
/// flood slows its sender instead of growing memory.
const HUB_INBOX: usize = 8192;
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections and the hub to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// How long an emptied tracker waits for someone to come back: long enough
/// for a reconnect or the next person of a class to arrive.
pub const DEFAULT_EXIT_GRACE: Duration = Duration::from_secs(60);

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
    /// Without `stay`: how long the tracker waits, after the last member
    /// left, for someone to (re)join before it stops.
    pub exit_grace: Duration,
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
    /// What the tracker allows of direct sessions between clients.
    pub p2p: policy::P2pPolicy,
    /// When `chat.log` is renamed aside and started anew.
    pub log_rotate: transcript::LogRotate,
    /// Tracker operators (`OPER`), from the config file.
    pub opers: Vec<opers::OperBlock>,
    /// Unread lines sent per room or conversation at an account's login.
    pub replay_max: usize,
    /// The lock on `log_dir`'s `chat.log`, if the caller took it early (to
    /// refuse before asking questions); `run` takes it otherwise.
    pub log_lock: Option<LogLock>,
    /// The store (accounts, history); `None`: the tracker keeps no
    /// accounts and offers no SASL or `REGISTER`.
    pub store: Option<crate::store::StoreHandle>,
    /// Days history is kept in the store (`--history-days`); 0: all.
    pub history_days: u32,
    /// The operator's consoles: on the terminal, on a socket, both or none.
    pub console: ConsoleSetup,
    /// The tracker's announcement on the local network, started by the
    /// caller (which says so at start); `run` keeps its member count
    /// current and withdraws it on shutdown.
    pub announcer: Option<announce::Announcer>,
}

/// Which consoles `run` opens.
#[derive(Debug, Default, Clone)]
pub struct ConsoleSetup {
    /// A console on standard input, if it and standard output are a
    /// terminal.
    pub terminal: bool,
    /// Where to listen for `tracker console`.
    pub socket: Option<PathBuf>,
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
            exit_grace: DEFAULT_EXIT_GRACE,
            server_name: "confab".to_string(),
            flood: FloodPolicy::new(4.0, 20),
            sendq: 2 << 20,
            sendq_total: 256 << 20,
            max_connections: 2000,
            max_per_address: 50,
            guess_limits: GuessLimits::default(),
            log_sync: transcript::LogSync::Write,
            p2p: policy::P2pPolicy::default(),
            log_rotate: transcript::LogRotate::Never,
            opers: Vec::new(),
            replay_max: hub::REPLAY_MAX,
            log_lock: None,
            store: None,
            history_days: 0,
            console: ConsoleSetup::default(),
            announcer: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum TrackerError {
    #[error("cannot open the chat log in {dir}: {source}")]
    Transcript { dir: String, source: std::io::Error },
    #[error("cannot read the listening address: {0}")]
    Listener(std::io::Error),
    #[error("cannot start the hub's thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Opers(#[from] opers::OperError),
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("cannot read the accounts from the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot bring the store up to chat.log: {0}")]
    Repair(#[from] repair::RepairError),
    #[error("cannot write {path}: {source}")]
    LockOwner {
        path: String,
        source: std::io::Error,
    },
}

/// Why `run` returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown future completed (Ctrl+C, SIGTERM, a test).
    Requested,
    /// The last registered member left, nobody joined within `exit_grace`,
    /// and `stay` was off.
    LastMemberLeft,
}

/// Completes once the tracker has had a member, the last one left, and
/// the room stayed empty for `grace` after that; an arrival during the
/// wait starts the watch over. Never completes if the hub stops publishing.
///
/// The hub publishes the count only when someone joins or leaves, so any
/// change means there has been a member, even if a join and a leave both
/// happened between two looks (a value of 0 then is a room that emptied).
pub async fn wait_until_abandoned(mut members: watch::Receiver<usize>, grace: Duration) {
    loop {
        if members.changed().await.is_err() {
            return std::future::pending().await;
        }
        while *members.borrow_and_update() == 0 {
            if grace.is_zero() {
                return;
            }
            tracing::info!(
                "the last member left; the tracker stops in {} unless someone joins (--stay keeps it running)",
                seconds(grace)
            );
            match tokio::time::timeout(grace, members.changed()).await {
                Err(_elapsed) => {
                    tracing::info!("nobody joined within {}: stopping", seconds(grace));
                    return;
                }
                Ok(Err(_closed)) => return std::future::pending().await,
                // Someone joined (and may have left again: then the wait
                // starts over from now).
                Ok(Ok(())) => tracing::info!("someone joined: the tracker keeps running"),
            }
        }
    }
}

/// A duration as people read it in messages: `60 s`, `0.25 s`.
pub fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Serves on `listener` until `shutdown` completes or, without `stay`, the
/// room stays empty for `exit_grace` after the last member left.
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = String>,
) -> Result<Stopped, TrackerError> {
    let local = listener.local_addr().map_err(TrackerError::Listener)?;
    let opers = match config.opers.is_empty() {
        true => None,
        false => Some(Arc::new(opers::OperGate::new(
            config.opers.clone(),
            GuessBudget::new(config.guess_limits, std::time::Instant::now()),
        )?)),
    };
    let mut log_lock = match config.log_lock.take() {
        Some(lock) => lock,
        None => LogLock::acquire(&config.log_dir)?,
    };
    log_lock
        .record_owner(local)
        .map_err(|source| TrackerError::LockOwner {
            path: log_lock.path().display().to_string(),
            source,
        })?;
    let transcript = Transcript::open_rotating(&config.log_dir, config.log_sync, config.log_rotate)
        .map_err(|source| TrackerError::Transcript {
            dir: config.log_dir.display().to_string(),
            source,
        })?;
    crate::private::warn_if_open(&[&config.log_dir, transcript.path()]);
    let token = CancellationToken::new();
    let (hub_tx, hub_rx) = mpsc::channel(HUB_INBOX);
    let send_budget = Arc::new(SendBudget::new(config.sendq_total));
    let started = jiff::Timestamp::now();
    let (members_tx, members_rx) = watch::channel(0);
    let mut announcer = config.announcer.take();
    if let Some(announcer) = &mut announcer {
        announcer.follow(members_tx.subscribe());
    }
    let (stay, exit_grace) = (config.stay, config.exit_grace);
    let abandoned = async move {
        if stay {
            std::future::pending().await
        } else {
            wait_until_abandoned(members_rx, exit_grace).await
        }
    };
    let guesses = Arc::new(GuessBudget::new(
        config.guess_limits,
        std::time::Instant::now(),
    ));
    let mut repaired = None;
    let mut accounts = match config.store.take() {
        Some(store) => {
            // chat.log is the commit point: what a crash kept from the
            // store goes back in before the hub numbers anything.
            let log_dir = config.log_dir.clone();
            let refill = store.call(move |s| repair::refill(s, &log_dir)).await??;
            repaired = refill.describe();
            if let Some(note) = &repaired {
                tracing::info!("{note}");
            }
            let names = store.call(|s| s.account_names()).await??;
            let seqs = store.call(|s| s.last_seqs()).await??;
            // Registered rooms exist before anyone can connect.
            let rooms = store.call(|s| s.registered_rooms()).await??;
            Some((
                Arc::new(AccountGate::new(store, guesses.clone())),
                names,
                seqs,
                rooms,
            ))
        }
        None => None,
    };
    let mut hub = Hub::new(
        HubConfig {
            server_name: config.server_name.clone(),
            idle_timeout: config.idle_timeout,
            log_path_shown: transcript.path().display().to_string(),
            started,
            send_budget: send_budget.clone(),
            members: members_tx,
            p2p: config.p2p,
        },
        transcript,
    );
    if let Some((gate, names, seqs, rooms)) = &mut accounts {
        hub = hub
            .with_accounts(
                names.clone(),
                AccountRunner {
                    gate: gate.clone(),
                    runtime: tokio::runtime::Handle::current(),
                    inbox: hub_tx.downgrade(),
                },
            )
            .with_history(
                seqs.clone(),
                HistorySink {
                    store: gate.store().clone(),
                    inbox: hub_tx.downgrade(),
                },
                config.replay_max,
            )
            .with_rooms(std::mem::take(rooms))
            .with_retention(config.history_days)
            .with_repair_note(repaired);
    }
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
    let idle_store = accounts.as_ref().map(|(gate, ..)| gate.store().clone());
    let departures = hub.departures();
    // The hub owns blocking file I/O, so it gets its own thread, named so
    // that `top -H`, perf and the scheduler settings can tell it apart
    // from the runtime's workers. The receiver completes when it ends
    // (its sender dropped, also by a panic).
    let (hub_ended, hub_thread) = oneshot::channel::<()>();
    let hub_handle = std::thread::Builder::new()
        .name("confab-hub".into())
        .spawn(move || {
            hub.run(hub_rx, start_line);
            drop(hub_ended);
        })
        .map_err(TrackerError::Thread)?;

    let ctx = Arc::new(ConnContext {
        hub: hub_tx.clone(),
        password: config.password.map(Arc::new),
        opers,
        accounts: accounts.map(|(gate, ..)| gate),
        shutdown: token.clone(),
        server_name: config.server_name.clone(),
        ping_interval: config.ping_interval,
        register_timeout: config.register_timeout,
        flood: config.flood,
        sendq: config.sendq,
        send_budget,
        guesses,
        departures,
    });
    // A console's `stop` ends the loop below as Ctrl+C does.
    let (console_stop, mut console_stopped) = mpsc::channel::<String>(1);
    let executor = console::Executor::new(hub_tx.clone(), console_stop);
    let console_socket = config.console.socket.as_deref().and_then(|path| {
        console::socket::listen(path, executor.clone(), config.server_name.clone())
            .map_err(|e| tracing::warn!("{e}"))
            .ok()
    });
    if config.console.terminal {
        console::local::start(executor, tokio::runtime::Handle::current());
    }
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

    // While the hub is busy the runtime's workers yield to it.
    yielding::watch_hub(&hub_handle, &tasks, token.clone());
    drop(hub_handle);

    // Gives back what departed members' connections freed (memory.rs),
    // and once everyone has gone the store's page cache too.
    let leave_limits = limits.clone();
    let leave_token = token.clone();
    let leave_hub = hub_tx.clone();
    // The accept loop below runs on the thread that awaits `run` (the
    // binary's `block_on`: not a runtime worker, so the runtime's park
    // hook never empties its cache). It allocates every connection's
    // task; mimalloc (the static Linux build) keeps a block another
    // thread freed in the allocating thread's pages until that thread
    // collects (B4 on that build: 11.2 MiB after 10,000 left, 11.4 with
    // this thread never asked; BENCHMARKS.md). So it is asked too.
    let (accept_empty_tx, mut accept_empty_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
    tasks.spawn(async move {
        let mut watch = memory::LeaveWatch::default();
        let mut interval = tokio::time::interval(memory::LEAVE_CHECK_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = leave_token.cancelled() => return,
                _ = interval.tick() => {
                    let open = leave_limits.open_now();
                    if !watch.observe(open) {
                        continue;
                    }
                    // This task's worker empties its cache as it parks
                    // while waiting here; the other workers as they next
                    // park (until then their chunks wait for the next trim).
                    memory::ask_threads_to_empty_caches();
                    let (done, emptied) = oneshot::channel();
                    if leave_hub.send(HubRequest::EmptyAllocatorCache(done)).await.is_err() {
                        return;
                    }
                    let _ = emptied.await;
                    let (done, emptied) = oneshot::channel();
                    if accept_empty_tx.send(done).await.is_ok() {
                        let _ = emptied.await;
                    }
                    if let Some(store) = &idle_store {
                        let released = store.call(move |s| {
                            memory::empty_cache_if_asked();
                            (open == 0).then(|| s.release_memory())
                        });
                        match released.await {
                            Ok(Some(Ok(()))) => tracing::debug!("everyone has left: the store gave its page cache back"),
                            Ok(Some(Err(e))) => tracing::debug!("the store kept its page cache: {e}"),
                            Ok(None) | Err(_) => {}
                        }
                    }
                    let cached_chunks = tokio::task::spawn_blocking(memory::give_back).await.unwrap_or(0);
                    tracing::debug!(open_connections = open, cached_chunks, "free memory given back to the system");
                }
            }
        }
    });

    let next_id = AtomicU64::new(1);
    tokio::pin!(shutdown);
    tokio::pin!(abandoned);
    let stop_reason;
    loop {
        tokio::select! {
            reason = &mut shutdown => { stop_reason = Some(reason); break; }
            Some(reason) = console_stopped.recv() => { stop_reason = Some(reason); break; }
            () = &mut abandoned => { stop_reason = None; break; }
            Some(done) = accept_empty_rx.recv() => {
                memory::empty_cache_if_asked();
                let _ = done.send(());
            }
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
    // Attached consoles are told the tracker is stopping.
    drop(console_socket);
    // Nobody should pick a tracker that is going away: withdrawn at once,
    // alongside the connections' goodbyes.
    let withdrawn = announcer.map(|announcer| tokio::spawn(announcer.stop()));
    let (outcome, reason) = match stop_reason {
        Some(reason) => (Stopped::Requested, reason),
        None => (Stopped::LastMemberLeft, "last member left".to_string()),
    };
    let _ = hub_tx.send(HubRequest::Shutdown { reason }).await;
    token.cancel();
    tasks.close();
    drop(hub_tx);
    drop(ctx);
    // Connections say goodbye; then the hub (whose inbox closes once every
    // task has dropped its sender) writes the stop line and fsyncs.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, hub_thread).await;
    if let Some(withdrawn) = withdrawn {
        let _ = withdrawn.await;
    }
    // Released only now: a tracker started meanwhile must not append
    // while this one's stop line may still be on its way.
    drop(log_lock);
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
        None => conn::serve_tcp(socket, peer, id, ctx).await,
        // Boxed: a task's future is as large as its largest state, and a
        // TLS session (the handshake's, then the stream's) would make
        // every plain connection's task that large too.
        Some(acceptor) => Box::pin(accept_tls(socket, peer, id, ctx, acceptor)).await,
    }
}

async fn accept_tls(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    id: u64,
    ctx: Arc<ConnContext>,
    acceptor: TlsAcceptor,
) {
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

    fn open_now(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
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

    /// Every connection's task holds this future for as long as it lives,
    /// so its size is part of what each idle member costs (B4). The states
    /// needed only for a moment or only over TLS (the handshake, a password
    /// check, OPER) are boxed, paid for only while in use. That took a
    /// plain connection's from 7,544 bytes to 2,192 in a release build,
    /// and from 7,528 to 2,072 in this test's (6,968 with the TLS states
    /// alone unboxed).
    #[tokio::test]
    async fn a_plain_connections_task_is_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let socket = tokio::net::TcpStream::connect(peer).await.unwrap();
        let (hub, _inbox) = mpsc::channel(1);
        let ctx = Arc::new(ConnContext::new(hub, CancellationToken::new()));
        let task = accept_one(socket, peer, 1, ctx, None);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 3072, "a plain connection's task is {size} bytes");
    }

    /// Whether `abandoned` completes within `within` of virtual time.
    async fn done_within(
        abandoned: &mut std::pin::Pin<Box<impl std::future::Future<Output = ()>>>,
        within: Duration,
    ) -> bool {
        tokio::time::timeout(within, abandoned.as_mut())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn stops_only_after_the_room_stays_empty_for_the_grace() {
        let grace = Duration::from_secs(60);
        let (members, rx) = watch::channel(0);
        let mut abandoned = Box::pin(wait_until_abandoned(rx, grace));
        // Never had a member: an empty tracker waits for its first one.
        assert!(!done_within(&mut abandoned, grace * 10).await);
        members.send_replace(1);
        assert!(!done_within(&mut abandoned, grace * 2).await);
        members.send_replace(0);
        assert!(!done_within(&mut abandoned, Duration::from_secs(59)).await);
        // Someone arrives at 59 s: the wait is over, and starts again from
        // zero when they leave.
        members.send_replace(1);
        assert!(!done_within(&mut abandoned, grace * 2).await);
        members.send_replace(0);
        assert!(!done_within(&mut abandoned, Duration::from_secs(59)).await);
        assert!(done_within(&mut abandoned, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_join_and_leave_between_two_looks_still_count() {
        let grace = Duration::from_secs(60);
        let (members, rx) = watch::channel(0);
        let mut abandoned = Box::pin(wait_until_abandoned(rx, grace));
        // Someone came and went before the watcher ever looked.
        members.send_replace(1);
        members.send_replace(0);
        assert!(!done_within(&mut abandoned, Duration::from_secs(59)).await);
        // During the wait someone came and went again: it starts over.
        members.send_replace(1);
        members.send_replace(0);
        assert!(!done_within(&mut abandoned, Duration::from_secs(59)).await);
        assert!(done_within(&mut abandoned, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_grace_stops_at_once_and_a_gone_hub_never_stops_it() {
        let (members, rx) = watch::channel(0);
        let mut abandoned = Box::pin(wait_until_abandoned(rx, Duration::ZERO));
        members.send_replace(2);
        members.send_replace(1);
        assert!(!done_within(&mut abandoned, Duration::from_secs(1)).await);
        members.send_replace(0);
        assert!(done_within(&mut abandoned, Duration::from_millis(1)).await);

        let (members, rx) = watch::channel(1);
        let mut abandoned = Box::pin(wait_until_abandoned(rx, Duration::ZERO));
        drop(members);
        assert!(!done_within(&mut abandoned, Duration::from_secs(3600)).await);
    }

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
