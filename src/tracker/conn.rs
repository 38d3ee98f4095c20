//! One task per connection: registration, then relaying lines to the hub and
//! the hub's output to the socket.
//!
//! The task waits on the socket, its outbox, its kill switch, global shutdown
//! and its timers in one `select!`, so there is exactly one place where the
//! connection can end and the socket is owned by one task (no split halves,
//! no lock around a TLS stream).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::hub::{BadLine, ConnHandle, ConnId, HubRequest, RegisterOutcome, Registration};
use super::password::{GuessBudget, PasswordGate, WaitCause};
use crate::proto::caps::{self, Caps};
use crate::proto::nick::validate_nick;
use crate::proto::numeric::*;
use crate::proto::sanitize;
use crate::proto::{Frame, LineCodec, Message, ParseError};

/// A write that makes no progress for this long means the peer is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// First read buffer of a connection (it grows for longer input).
const READ_BUF: usize = 2048;
/// Stop taking from the outbox once this much waits to be written.
const WRITE_CHUNK: usize = 256 * 1024;
/// A write buffer grown past this is let go once written out (the NAMES
/// burst at login alone grows it to tens of KiB in a big room).
const KEEP_WBUF: usize = 4096;
/// How long shutdown waits for the goodbye to be written.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(500);

/// Bytes queued in all outboxes together, and the most they may be before
/// the slowest readers are dropped (`--sendq-total`).
///
/// Each connection's own limit (`--sendq`) alone would let N slow readers
/// hold N times that: when the readers fall behind together (a burst of
/// JOINs and NAMES while thousands log in, a congested network), memory
/// grew with no bound but the per-connection one (779 MiB seen mid-login in
/// B4 at 10,000 clients). An atomic shared by every `ConnControl`, not a
/// lock: it is touched once per recipient per hub batch.
#[derive(Debug)]
pub struct SendBudget {
    total: AtomicUsize,
    limit: usize,
}

impl SendBudget {
    pub fn new(limit: usize) -> Self {
        SendBudget {
            total: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes queued in all outboxes now.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Why an outbox refused more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Past this connection's own limit.
    Own,
    /// All outboxes together are past the shared budget, and this one holds
    /// more than its share of it.
    Shared,
}

/// What the hub shares with one connection task besides its outbox: the
/// bytes queued for the client (the send queue, bounded) and a kill switch.
pub struct ConnControl {
    token: CancellationToken,
    // A plain mutex: written once by the hub, read once by the task, never
    // held across an await.
    reason: Mutex<Option<String>>,
    /// Bytes in the outbox not yet taken by the task. An atomic, not a
    /// bounded channel, so the bound is in bytes (memory) rather than in
    /// messages of any size.
    queued: AtomicUsize,
    sendq: usize,
    budget: Arc<SendBudget>,
}

impl ConnControl {
    pub fn new(sendq: usize, budget: Arc<SendBudget>) -> Self {
        ConnControl {
            token: CancellationToken::new(),
            reason: Mutex::new(None),
            queued: AtomicUsize::new(0),
            sendq,
            budget,
        }
    }

    /// Accounts `len` more bytes for the outbox, or refuses them (and
    /// accounts nothing) when that would pass the connection's own limit,
    /// or when all outboxes together are past the shared budget and this
    /// one would hold more than its share of the budget (split evenly over
    /// `connections`). While the total is over, only the readers furthest
    /// behind are refused, so memory stays under about twice the budget and
    /// readers that keep up are never dropped for someone else's backlog.
    pub fn reserve(&self, len: usize, connections: usize) -> Result<(), Overflow> {
        let fair_share = self.budget.limit / connections.max(1);
        let mine = self.queued.fetch_add(len, Ordering::Relaxed) + len;
        let total = self.budget.total.fetch_add(len, Ordering::Relaxed) + len;
        let refused = if mine > self.sendq {
            Some(Overflow::Own)
        } else if total > self.budget.limit && mine > fair_share {
            Some(Overflow::Shared)
        } else {
            None
        };
        match refused {
            Some(why) => {
                self.release(len);
                Err(why)
            }
            None => Ok(()),
        }
    }

    fn release(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::Relaxed);
        self.budget.total.fetch_sub(len, Ordering::Relaxed);
    }

    pub fn kill(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert_with(|| reason.to_string());
        }
        self.token.cancel();
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "Killed".into())
    }
}

impl Drop for ConnControl {
    /// What a killed connection never took from its outbox leaves the
    /// shared count with it.
    fn drop(&mut self) {
        let left = *self.queued.get_mut();
        self.budget.total.fetch_sub(left, Ordering::Relaxed);
    }
}

/// What every connection task shares.
pub struct ConnContext {
    pub hub: mpsc::Sender<HubRequest>,
    pub password: Option<Arc<PasswordGate>>,
    pub guesses: Arc<GuessBudget>,
    pub shutdown: CancellationToken,
    pub server_name: String,
    pub ping_interval: Duration,
    pub register_timeout: Duration,
    pub flood: FloodPolicy,
    /// Send-queue limit per connection, in bytes.
    pub sendq: usize,
    /// All send queues together (`--sendq-total`).
    pub send_budget: Arc<SendBudget>,
}

/// Flood control ("fakelag", as IRC servers do it): every line a client
/// sends moves its clock `per_line` ahead. Lines are handled at once while
/// the clock is at most `burst` lines ahead of real time, then held back
/// and released at the sustained rate; a client whose clock runs more than
/// `burst + max_held` lines ahead is disconnected with "Excess Flood".
/// Holding a flooder's lines in its own task means the hub, and everyone
/// else, never sees more than the sustained rate from it.
#[derive(Debug, Clone, Copy)]
pub struct FloodPolicy {
    /// Zero turns flood control off (benchmarks).
    pub per_line: Duration,
    pub burst: u32,
    pub max_held: u32,
}

impl FloodPolicy {
    pub const OFF: FloodPolicy = FloodPolicy {
        per_line: Duration::ZERO,
        burst: 0,
        max_held: 0,
    };

    /// `rate` lines per second sustained, `burst` at once; 0 = off.
    pub fn new(rate: f64, burst: u32) -> FloodPolicy {
        if rate <= 0.0 {
            return FloodPolicy::OFF;
        }
        FloodPolicy {
            per_line: Duration::from_secs_f64(1.0 / rate),
            burst: burst.max(1),
            max_held: 200,
        }
    }
}

/// A line waiting for its turn under flood control.
enum Held {
    Line(Message),
    Bad(BadLine),
}

enum Admit {
    Now,
    /// Handle at this instant.
    At(Instant),
    ExcessFlood,
}

#[derive(Default)]
struct Pending {
    pass: Option<String>,
    nick: Option<String>,
    user: Option<(String, String)>,
    /// CAP LS/REQ seen and no CAP END yet: registration waits.
    negotiating: bool,
    password_ok: bool,
}

enum Phase {
    Registering(Pending),
    Registered,
    /// QUIT sent to the hub; waiting for it to close our outbox.
    Leaving,
}

/// How the task ended, for the diagnostics log.
enum End {
    Closed,
    Goodbye,
}

struct Conn<S> {
    id: ConnId,
    peer: SocketAddr,
    ctx: Arc<ConnContext>,
    stream: FramedRead<S, LineCodec>,
    outbox_rx: mpsc::UnboundedReceiver<Bytes>,
    outbox_tx: Option<mpsc::UnboundedSender<Bytes>>,
    control: Arc<ConnControl>,
    caps: Caps,
    phase: Phase,
    wbuf: BytesMut,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    /// When a connection that has not logged in is closed.
    register_deadline: Instant,
    /// The flood-control clock and the lines it holds back, in order.
    flood_clock: Instant,
    held: VecDeque<(Instant, Held)>,
}

pub async fn serve<S>(stream: S, peer: SocketAddr, id: ConnId, ctx: Arc<ConnContext>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let control = Arc::new(ConnControl::new(ctx.sendq, ctx.send_budget.clone()));
    let register_deadline = Instant::now() + ctx.register_timeout;
    let mut conn = Conn {
        id,
        peer,
        ctx,
        // Small buffers to start with, grown only by traffic: most
        // connections are idle, and memory per connection is what a big
        // room pays for (tokio-util's default read buffer is 8 KiB).
        stream: FramedRead::with_capacity(stream, LineCodec::new(), READ_BUF),
        outbox_rx: rx,
        outbox_tx: Some(tx),
        control,
        caps: Caps::default(),
        phase: Phase::Registering(Pending::default()),
        wbuf: BytesMut::new(),
        last_rx: Instant::now(),
        ping_sent: None,
        register_deadline,
        flood_clock: Instant::now(),
        held: VecDeque::new(),
    };
    let end = conn.run().await;
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        let _ = conn.write_out().await;
        let _ = conn.stream.get_mut().shutdown().await;
    })
    .await;
    match end {
        End::Closed => tracing::debug!(peer = %conn.peer, "connection closed"),
        End::Goodbye => tracing::debug!(peer = %conn.peer, "connection ended by tracker"),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn registered(&self) -> bool {
        !matches!(self.phase, Phase::Registering(_))
    }

    fn push(&mut self, msg: Message) {
        self.wbuf.extend_from_slice(msg.to_line().as_bytes());
    }

    /// A numeric sent before registration, addressed to `*`.
    fn push_numeric(&mut self, code: &str, params: &[&str]) {
        let nick = match &self.phase {
            Phase::Registering(p) => p.nick.clone().unwrap_or_else(|| "*".into()),
            _ => "*".into(),
        };
        let m = Message::new(code)
            .with_source(self.ctx.server_name.clone())
            .param(nick);
        let m = sanitize::reply_params(m, params);
        self.push(m);
    }

    fn push_error(&mut self, reason: &str) {
        self.push(
            Message::new("ERROR").param(format!("Closing link: {} ({reason})", self.peer.ip())),
        );
    }

    /// Writes `wbuf` out. Cancel-safe: what is not written yet stays in
    /// `wbuf` (it is advanced write by write), so a goodbye that interrupts
    /// this can still finish the line in flight before its `ERROR`.
    async fn write_out(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let Conn { stream, wbuf, .. } = self;
        let io = stream.get_mut();
        match tokio::time::timeout(WRITE_TIMEOUT, async {
            while !wbuf.is_empty() {
                let n = io.write(wbuf).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                wbuf.advance(n);
            }
            io.flush().await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "write timed out",
            )),
        }
    }

    /// Tells the hub we are gone (once, only if registered).
    async fn leave(&mut self, reason: String) {
        if matches!(self.phase, Phase::Registered) {
            self.phase = Phase::Leaving;
            let _ = self
                .ctx
                .hub
                .send(HubRequest::Leave {
                    conn: self.id,
                    reason,
                })
                .await;
        }
    }

    async fn run(&mut self) -> End {
        let register_deadline = self.register_deadline;
        let shutdown = self.ctx.shutdown.clone();
        let control = self.control.clone();
        loop {
            let timer = self.next_deadline(register_deadline);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // Whatever the hub queued for us still goes out first.
                    while let Ok(b) = self.outbox_rx.try_recv() {
                        self.control.release(b.len());
                        self.wbuf.extend_from_slice(&b);
                    }
                    self.push_error("tracker shutting down");
                    return End::Goodbye;
                }
                _ = control.token.cancelled() => {
                    let reason = control.reason();
                    // Drop what is queued, but finish the line a cut-off
                    // write may have started, so ERROR starts a line.
                    let keep = self.wbuf.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
                    self.wbuf.truncate(keep);
                    self.push_error(&reason);
                    return End::Goodbye;
                }
                first = self.outbox_rx.recv(), if self.registered() => {
                    let Some(first) = first else {
                        // The hub let go of us (QUIT done): close.
                        return End::Goodbye;
                    };
                    // Everything already queued goes out in one write. No
                    // Vec to receive into: it would be 8 KiB kept by every
                    // idle connection.
                    let mut taken = first.len();
                    // A buffer the hub joined for us alone becomes the write
                    // buffer as it is (no copy); a message shared with other
                    // recipients is copied.
                    if self.wbuf.is_empty() {
                        match first.try_into_mut() {
                            Ok(own) => self.wbuf = own,
                            Err(shared) => self.wbuf.extend_from_slice(&shared),
                        }
                    } else {
                        self.wbuf.extend_from_slice(&first);
                    }
                    while self.wbuf.len() < WRITE_CHUNK {
                        let Ok(b) = self.outbox_rx.try_recv() else { break };
                        taken += b.len();
                        self.wbuf.extend_from_slice(&b);
                    }
                    self.control.release(taken);
                }
                frame = self.stream.next() => {
                    match frame {
                        None => {
                            self.leave("Connection closed".into()).await;
                            return End::Closed;
                        }
                        Some(Err(e)) => {
                            self.leave(format!("Read error: {e}")).await;
                            return End::Closed;
                        }
                        Some(Ok(frame)) => {
                            self.last_rx = Instant::now();
                            self.ping_sent = None;
                            if let Some(end) = self.on_frame(frame).await {
                                return end;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(timer) => {
                    if let Some(end) = self.on_timer(register_deadline).await {
                        return end;
                    }
                }
                _ = tokio::time::sleep_until(self.held.front().map_or(timer, |h| h.0)), if !self.held.is_empty() => {
                    if let Some(end) = self.release_held().await {
                        return end;
                    }
                }
            }
            // A client that stops reading blocks this write; the hub's kill
            // (send queue full) or shutdown must still get through, so the
            // write races them. The loop's first branches then say goodbye.
            tokio::select! {
                biased;
                _ = control.token.cancelled() => {}
                _ = shutdown.cancelled() => {}
                written = self.write_out() => {
                    if let Err(e) = written {
                        self.leave(format!("Write error: {e}")).await;
                        return End::Closed;
                    }
                    // A burst's buffer is not kept by a connection that
                    // went quiet again.
                    if self.wbuf.capacity() > KEEP_WBUF {
                        self.wbuf = BytesMut::new();
                    }
                }
            }
        }
    }

    /// Where a new line stands under flood control.
    fn admit(&mut self, now: Instant) -> Admit {
        let policy = self.ctx.flood;
        if policy.per_line.is_zero() {
            return Admit::Now;
        }
        self.flood_clock = self.flood_clock.max(now) + policy.per_line;
        let ahead = self.flood_clock - now;
        if ahead > policy.per_line * (policy.burst + policy.max_held) {
            return Admit::ExcessFlood;
        }
        let window = policy.per_line * policy.burst;
        if self.held.is_empty() && ahead <= window {
            Admit::Now
        } else {
            Admit::At(self.flood_clock - window)
        }
    }

    /// Handles the held lines whose time has come, in order.
    async fn release_held(&mut self) -> Option<End> {
        let now = Instant::now();
        while self.held.front().is_some_and(|h| h.0 <= now) {
            let Some((_, item)) = self.held.pop_front() else {
                break;
            };
            if let Some(end) = self.dispatch(item).await {
                return Some(end);
            }
        }
        None
    }

    fn next_deadline(&self, register_deadline: Instant) -> Instant {
        let ping = match self.ping_sent {
            Some(sent) => sent + self.ctx.ping_interval,
            None => self.last_rx + self.ctx.ping_interval,
        };
        if self.registered() {
            ping
        } else {
            ping.min(register_deadline)
        }
    }

    async fn on_timer(&mut self, register_deadline: Instant) -> Option<End> {
        let now = Instant::now();
        if !self.registered() && now >= register_deadline {
            self.push_error("Registration timed out");
            return Some(End::Goodbye);
        }
        match self.ping_sent {
            Some(sent) if now >= sent + self.ctx.ping_interval => {
                let secs = (now - self.last_rx).as_secs();
                let reason = format!("Ping timeout: {secs} seconds");
                self.leave(reason.clone()).await;
                self.push_error(&reason);
                Some(End::Goodbye)
            }
            None if now >= self.last_rx + self.ctx.ping_interval => {
                self.ping_sent = Some(now);
                self.push(Message::new("PING").param(self.ctx.server_name.clone()));
                None
            }
            _ => None,
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Option<End> {
        let item = match frame {
            Frame::Line(line) => match Message::parse(&line) {
                Ok(m) => Held::Line(m),
                Err(ParseError::Empty) => return None,
                Err(ParseError::InvalidCommand(c)) => Held::Bad(BadLine::UnknownCommand(c)),
                Err(e) => Held::Bad(BadLine::Malformed(e.to_string())),
            },
            Frame::TooLong => Held::Bad(BadLine::TooLong),
            Frame::InvalidUtf8 => Held::Bad(BadLine::InvalidUtf8),
        };
        // Keep-alives answer at once and cost nothing: a client held back
        // by flood control must not also time out.
        if let Held::Line(m) = &item
            && matches!(m.command.as_str(), "PING" | "PONG")
        {
            return self.dispatch(item).await;
        }
        match self.admit(Instant::now()) {
            Admit::Now => self.dispatch(item).await,
            Admit::At(at) => {
                self.held.push_back((at, item));
                None
            }
            Admit::ExcessFlood => {
                self.held.clear();
                tracing::info!(peer = %self.peer, "disconnected: excess flood");
                self.leave("Excess Flood".into()).await;
                self.push_error("Excess Flood");
                Some(End::Goodbye)
            }
        }
    }

    async fn dispatch(&mut self, item: Held) -> Option<End> {
        let msg = match item {
            Held::Line(m) => m,
            Held::Bad(e) => return self.bad(e).await,
        };
        match msg.command.as_str() {
            "PING" => {
                // Echoed whole unless absurdly long (the reply must fit
                // in 512 bytes).
                let token = sanitize::clip(msg.param_at(0).unwrap_or(""), 400).to_string();
                let server = self.ctx.server_name.clone();
                self.push(
                    Message::new("PONG")
                        .with_source(server.clone())
                        .param(server)
                        .param(token),
                );
                return None;
            }
            "PONG" => return None,
            "QUIT" => {
                // Cut so that `:nick!user@host QUIT :Quit: ...` and the
                // `ERROR :Closing link: ...` both fit in 512 bytes.
                let reason = match msg.param_at(0).filter(|r| !r.is_empty()) {
                    Some(r) => format!("Quit: {}", sanitize::clip(r, 300)),
                    None => "Quit".to_string(),
                };
                if self.registered() {
                    // The hub announces it, sends ERROR and closes our outbox.
                    self.leave(reason).await;
                    return None;
                }
                self.push_error(&reason);
                return Some(End::Goodbye);
            }
            _ => {}
        }
        match self.phase {
            Phase::Registered => {
                let _ = self
                    .ctx
                    .hub
                    .send(HubRequest::Line { conn: self.id, msg })
                    .await;
                None
            }
            Phase::Leaving => None,
            Phase::Registering(_) => self.registration_line(msg).await,
        }
    }

    async fn bad(&mut self, error: BadLine) -> Option<End> {
        if matches!(self.phase, Phase::Registered) {
            let _ = self
                .ctx
                .hub
                .send(HubRequest::BadLine {
                    conn: self.id,
                    error,
                })
                .await;
            return None;
        }
        match error {
            BadLine::TooLong => self.push_numeric(ERR_INPUTTOOLONG, &["Input line was too long"]),
            BadLine::UnknownCommand(c) => {
                self.push_numeric(ERR_UNKNOWNCOMMAND, &[&c, "Unknown command"])
            }
            BadLine::InvalidUtf8 => {
                let server = self.ctx.server_name.clone();
                self.push(
                    Message::new("FAIL")
                        .with_source(server)
                        .param("*")
                        .param("INVALID_UTF8")
                        .param("Line was not valid UTF-8 and was ignored"),
                );
            }
            BadLine::Malformed(why) => {
                let server = self.ctx.server_name.clone();
                self.push(
                    Message::new("FAIL")
                        .with_source(server)
                        .param("*")
                        .param("INVALID_MESSAGE")
                        .param(format!("Line ignored: {why}")),
                );
            }
        }
        None
    }

    async fn registration_line(&mut self, msg: Message) -> Option<End> {
        let Phase::Registering(pending) = &mut self.phase else {
            return None;
        };
        match msg.command.as_str() {
            "CAP" => {
                let sub = msg.param_at(0).unwrap_or("").to_ascii_uppercase();
                let server = self.ctx.server_name.clone();
                let nick = pending.nick.clone().unwrap_or_else(|| "*".into());
                match sub.as_str() {
                    "LS" => {
                        pending.negotiating = true;
                        self.push(
                            Message::new("CAP")
                                .with_source(server)
                                .param(nick)
                                .param("LS")
                                .param(caps::SUPPORTED.join(" ")),
                        );
                    }
                    "REQ" => {
                        pending.negotiating = true;
                        let asked = msg.param_at(1).unwrap_or("");
                        let verdict = if self.caps.request(asked) {
                            "ACK"
                        } else {
                            "NAK"
                        };
                        self.push(
                            Message::new("CAP")
                                .with_source(server)
                                .param(nick)
                                .param(verdict)
                                .param(sanitize::clip(asked, 400).to_string()),
                        );
                    }
                    "LIST" => {
                        let enabled = self.caps.enabled().join(" ");
                        self.push(
                            Message::new("CAP")
                                .with_source(server)
                                .param(nick)
                                .param("LIST")
                                .param(enabled),
                        );
                    }
                    "END" => {
                        pending.negotiating = false;
                        return self.try_register().await;
                    }
                    _ => self.push_numeric("410", &[&sub, "Invalid CAP command"]),
                }
                None
            }
            "PASS" => {
                // Some clients (irssi 1.4 among them) send `PASS two words`
                // without the `:` that would make it one parameter, so a
                // password with spaces arrives split; rejoin it rather than
                // refuse a password the user typed correctly.
                match msg.params.is_empty() {
                    false => pending.pass = Some(msg.params.join(" ")),
                    true => {
                        self.push_numeric(ERR_NEEDMOREPARAMS, &["PASS", "Not enough parameters"])
                    }
                }
                None
            }
            "NICK" => {
                let Some(nick) = msg.param_at(0).filter(|n| !n.is_empty()) else {
                    self.push_numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
                    return None;
                };
                if let Err(e) = validate_nick(nick) {
                    let nick = nick.to_string();
                    self.push_numeric(
                        ERR_ERRONEUSNICKNAME,
                        &[&nick, &format!("Erroneous nickname: {e}")],
                    );
                    return None;
                }
                pending.nick = Some(nick.to_string());
                self.try_register().await
            }
            "USER" => {
                if msg.params.len() < 4 {
                    self.push_numeric(ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"]);
                    return None;
                }
                let user: String = msg.params[0]
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .take(16)
                    .collect();
                let user = if user.is_empty() {
                    "user".to_string()
                } else {
                    user
                };
                let realname = crate::proto::sanitize::for_display(&msg.params[3])
                    .chars()
                    .take(64)
                    .collect();
                pending.user = Some((user, realname));
                self.try_register().await
            }
            other => {
                let other = other.to_string();
                self.push_numeric(ERR_NOTREGISTERED, &[&other, "You have not registered"]);
                None
            }
        }
    }

    /// Checks a password once the allowance of guesses (`GuessBudget`) has
    /// one for it. Until then it waits, in its address's queue, telling the
    /// client once why and for about how long, up to the end of its time to
    /// log in. Lines the client sends meanwhile are read after the check.
    /// `Err` ends the connection.
    async fn check_password(
        &mut self,
        gate: &PasswordGate,
        mut given: zeroize::Zeroizing<String>,
    ) -> Result<bool, End> {
        // Knowing that an empty password is wrong tells nobody anything.
        if given.is_empty() {
            return Ok(false);
        }
        let budget = self.ctx.guesses.clone();
        let mut queued = budget.queue(self.peer.ip(), Instant::now().into_std());
        let mut told = false;
        let running = loop {
            // Armed before looking, so a guess given back in between wakes us.
            let freed = budget.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let wait = match queued.try_start(Instant::now().into_std()) {
                Ok(running) => break running,
                Err(wait) => wait,
            };
            let secs = wait.retry_in.as_secs() + u64::from(wait.retry_in.subsec_nanos() > 0);
            let whose = match wait.cause {
                WaitCause::ChecksRunning => None,
                WaitCause::AddressSpent => Some("from your address"),
                WaitCause::TrackerSpent => Some("sent to this tracker"),
            };
            if let (false, Some(whose)) = (told, whose) {
                told = true;
                tracing::warn!(peer = %self.peer, "login waits about {secs} s: too many wrong passwords {whose}");
                let text = format!(
                    "Too many wrong passwords {whose} in the last minute: your password will be checked in about {secs} s"
                );
                let nick = match &self.phase {
                    Phase::Registering(p) => p.nick.clone().unwrap_or_else(|| "*".into()),
                    _ => "*".into(),
                };
                self.push(
                    Message::new("NOTICE")
                        .with_source(self.ctx.server_name.clone())
                        .param(nick)
                        .param(text),
                );
                if self.write_out().await.is_err() {
                    return Err(End::Closed);
                }
            }
            tokio::select! {
                _ = &mut freed => {}
                _ = tokio::time::sleep(wait.retry_in.max(Duration::from_millis(10))) => {}
                _ = tokio::time::sleep_until(self.register_deadline) => {
                    let reason = match whose {
                        Some(whose) => format!("Registration timed out waiting for the password check: too many wrong passwords {whose}; try again in {secs} s"),
                        None => "Registration timed out".to_string(),
                    };
                    tracing::warn!(peer = %self.peer, "login timed out waiting for the password check");
                    self.push_error(&reason);
                    return Err(End::Goodbye);
                }
                _ = self.ctx.shutdown.cancelled() => {
                    self.push_error("tracker shutting down");
                    return Err(End::Goodbye);
                }
            }
        };
        drop(queued);
        let right = gate.verify(std::mem::take(&mut *given)).await;
        running.settle(right, Instant::now().into_std());
        Ok(right)
    }

    async fn try_register(&mut self) -> Option<End> {
        let Phase::Registering(pending) = &mut self.phase else {
            return None;
        };
        if pending.negotiating || pending.nick.is_none() || pending.user.is_none() {
            return None;
        }
        if !pending.password_ok {
            if let Some(gate) = self.ctx.password.clone() {
                let given = zeroize::Zeroizing::new(pending.pass.take().unwrap_or_default());
                match self.check_password(&gate, given).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(peer = %self.peer, "wrong server password");
                        self.push_numeric(ERR_PASSWDMISMATCH, &["Password incorrect"]);
                        self.push_error("Bad password");
                        return Some(End::Goodbye);
                    }
                    Err(end) => return Some(end),
                }
            }
            let Phase::Registering(pending) = &mut self.phase else {
                return None;
            };
            pending.password_ok = true;
        }
        let Phase::Registering(pending) = &mut self.phase else {
            return None;
        };
        let nick = pending.nick.clone().unwrap_or_default();
        let (user, realname) = pending.user.clone().unwrap_or_default();
        let outbox = match self.outbox_tx.take() {
            Some(tx) => tx,
            None => {
                // A previous attempt's sender went to the hub and was dropped.
                let (tx, rx) = mpsc::unbounded_channel();
                self.outbox_rx = rx;
                tx
            }
        };
        let registration = Registration {
            conn: self.id,
            nick: nick.clone(),
            user,
            realname,
            ip: self.peer.ip(),
            caps: self.caps,
            handle: ConnHandle {
                outbox,
                control: self.control.clone(),
            },
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        if self
            .ctx
            .hub
            .send(HubRequest::Register(Box::new(registration), reply_tx))
            .await
            .is_err()
        {
            self.push_error("tracker shutting down");
            return Some(End::Goodbye);
        }
        match reply_rx.await {
            Ok(RegisterOutcome::Welcome) => {
                self.phase = Phase::Registered;
                tracing::info!(peer = %self.peer, %nick, "registered");
                None
            }
            Ok(RegisterOutcome::NickInUse) => {
                if let Phase::Registering(p) = &mut self.phase {
                    p.nick = None;
                }
                self.push_numeric(ERR_NICKNAMEINUSE, &[&nick, "Nickname is already in use"]);
                None
            }
            Ok(RegisterOutcome::ShuttingDown) | Err(_) => {
                self.push_error("tracker shutting down");
                Some(End::Goodbye)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_limit_then_shared_budget_refuse_only_the_reader_behind() {
        let budget = Arc::new(SendBudget::new(1000));
        let slow = ConnControl::new(600, budget.clone());
        let keeping_up = ConnControl::new(600, budget.clone());
        // Its own limit first: 600 bytes each, whatever the budget.
        assert_eq!(slow.reserve(500, 2), Ok(()));
        assert_eq!(slow.reserve(101, 2), Err(Overflow::Own));
        assert_eq!(budget.total(), 500, "a refusal accounts nothing");
        // Total 500 + 450 = 950, under the budget of 1000: both fine.
        assert_eq!(keeping_up.reserve(450, 2), Ok(()));
        // Past the budget (1050), and the slow one holds more than its
        // share (500 of 1000 over 2): refused.
        assert_eq!(slow.reserve(100, 2), Err(Overflow::Shared));
        assert_eq!(budget.total(), 950);
        // The reader that wrote out its queue gets the same bytes.
        keeping_up.release(450);
        assert_eq!(keeping_up.reserve(100, 2), Ok(()));
        // Over the budget again, but within its share: still accepted.
        assert_eq!(keeping_up.reserve(400, 2), Ok(()));
        assert_eq!(budget.total(), 1000);
        assert_eq!(keeping_up.reserve(1, 2), Err(Overflow::Shared));
        // What a killed connection never took leaves the count with it.
        drop(slow);
        assert_eq!(budget.total(), 500);
        drop(keeping_up);
        assert_eq!(budget.total(), 0);
    }
}
