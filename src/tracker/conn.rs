//! One task per connection: registration, then relaying lines to the hub and
//! the hub's output to the socket.
//!
//! The task waits on the socket, its outbox, its kill switch, global shutdown
//! and its timers in one `select!`, so there is exactly one place where the
//! connection can end and the socket is owned by one task (no split halves,
//! no lock around a TLS stream). The one exception: while a plain-TCP
//! task has nothing to write, the hub writes its socket directly
//! (`write_side`), and hands the task what the socket did not take.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::accounts::AccountGate;
use super::commands::{self, Cmd};
use super::opers::OperGate;
use super::password::{GuessBudget, PasswordGate, WaitCause};
use super::replies::{self, Numeric};
use super::shared::{
    BadLine, ConnControl, ConnHandle, ConnId, Departures, HubRequest, RegisterOutcome,
    Registration, SendBudget,
};
use crate::proto::caps::{CapAnswer, Caps};
use crate::proto::message::MAX_CLIENT_TAG_DATA;
use crate::proto::nick::validate_nick;
use crate::proto::sanitize;
use crate::proto::sasl::{PlainResponse, SaslError};
use crate::proto::{Frame, LineCodec, Message, ParseError};

/// A write that makes no progress for this long means the peer is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// First read buffer of a connection (it grows for longer input).
const READ_BUF: usize = 2048;
/// Stop taking from the outbox once this much waits to be written.
const WRITE_CHUNK: usize = 256 * 1024;
/// A write buffer grown past this is let go once written out even while
/// more is queued (the NAMES burst at login alone grows it to tens of KiB
/// in a big room).
const KEEP_WBUF: usize = 4096;
/// How long shutdown waits for the goodbye to be written.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(500);

/// What every connection task shares.
pub struct ConnContext {
    pub hub: mpsc::Sender<HubRequest>,
    pub password: Option<Arc<PasswordGate>>,
    /// Tracker operators from the config (`OPER`); `None`: there are none.
    pub opers: Option<Arc<OperGate>>,
    /// Accounts (SASL); `None`: the tracker keeps none (no store).
    pub accounts: Option<Arc<AccountGate>>,
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
    /// Where a connection whose peer is gone says so before it leaves.
    pub departures: Arc<Departures>,
}

impl ConnContext {
    /// A context with the tracker's default settings (those of
    /// [`Config::new`](super::Config::new)) and no password, for tests and
    /// the fuzz targets: they set what they care about and take the rest
    /// with `..ConnContext::new(hub, shutdown)`, so a field added here
    /// needs no change there.
    pub fn new(hub: mpsc::Sender<HubRequest>, shutdown: CancellationToken) -> ConnContext {
        let defaults = super::Config::new(std::path::PathBuf::new());
        ConnContext {
            hub,
            password: None,
            opers: None,
            accounts: None,
            guesses: Arc::new(GuessBudget::new(
                defaults.guess_limits,
                std::time::Instant::now(),
            )),
            shutdown,
            server_name: defaults.server_name,
            ping_interval: defaults.ping_interval,
            register_timeout: defaults.register_timeout,
            flood: defaults.flood,
            sendq: defaults.sendq,
            send_budget: Arc::new(SendBudget::new(defaults.sendq_total)),
            departures: Arc::default(),
        }
    }
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
    /// A SASL PLAIN exchange under way (`AUTHENTICATE PLAIN` sent).
    sasl: Option<PlainResponse>,
    /// The account logged in to, as registered.
    account: Option<String>,
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
    /// The task handed its plain-TCP socket to the hub (`write_side`) and
    /// has taken nothing from its outbox since: the hub may be writing it.
    hub_writes: bool,
}

/// A plain-TCP connection: the hub writes its socket directly while its
/// task has nothing to write (`write_side`).
pub async fn serve_tcp(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    id: ConnId,
    ctx: Arc<ConnContext>,
) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    serve_with(socket, Some(fd), peer, id, ctx).await
}

/// A connection whose stream only its task writes (TLS, tests).
pub async fn serve<S>(stream: S, peer: SocketAddr, id: ConnId, ctx: Arc<ConnContext>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    serve_with(stream, None, peer, id, ctx).await
}

/// `fd`: the stream's socket, which the hub may write while the task has
/// nothing to (it must be `stream`'s own, open until the task ends).
async fn serve_with<S>(
    stream: S,
    fd: Option<std::os::fd::RawFd>,
    peer: SocketAddr,
    id: ConnId,
    ctx: Arc<ConnContext>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let mut control = ConnControl::new(ctx.sendq, ctx.send_budget.clone(), &ctx.shutdown);
    if let Some(fd) = fd {
        control = control.with_socket(fd);
    }
    let control = Arc::new(control);
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
        hub_writes: false,
    };
    let end = conn.run().await;
    // Before the stream is closed (dropped with `conn`): the hub must not
    // write to its descriptor, which the system may give to another socket.
    if let Some(direct) = &conn.control.direct {
        direct.close();
    }
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

impl<S> Drop for Conn<S> {
    /// Also when the task panics: the hub must never write the socket's
    /// descriptor once it is closed (the system may give it to another).
    fn drop(&mut self) {
        if let Some(direct) = &self.control.direct {
            direct.close();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn registered(&self) -> bool {
        !matches!(self.phase, Phase::Registering(_))
    }

    fn push(&mut self, msg: Message) {
        self.take_writer();
        self.wbuf.extend_from_slice(msg.to_line().as_bytes());
    }

    /// The task writes next: it takes the socket back from the hub, and
    /// the rest of a line the hub's `send` cut (its outbox's first item)
    /// goes out before the task's own lines.
    fn take_writer(&mut self) {
        if !self.hub_writes {
            return;
        }
        self.hub_writes = false;
        let cut = self.control.direct.as_ref().is_some_and(|d| d.take_back());
        if cut {
            let _ = self.take_queued();
        }
    }

    /// Moves the outbox's first item, if any, to the end of `wbuf`.
    fn take_queued(&mut self) -> Result<(), mpsc::error::TryRecvError> {
        let bytes = self.outbox_rx.try_recv()?;
        self.control.release(bytes.len());
        self.wbuf.extend_from_slice(&bytes);
        Ok(())
    }

    /// Written out and nothing queued: the hub may write the socket
    /// itself from now on (plain TCP only; see `write_side`).
    fn hand_writer_to_hub(&mut self) {
        if self.hub_writes || !self.registered() || !self.wbuf.is_empty() {
            return;
        }
        let Some(direct) = &self.control.direct else {
            return;
        };
        let outbox = &self.outbox_rx;
        self.hub_writes = direct.hand_to_hub(|| outbox.is_empty());
    }

    /// Whom a reply before registration is addressed to: the nick given
    /// so far, or `*`.
    fn reply_target(&self) -> String {
        match &self.phase {
            Phase::Registering(p) => p.nick.clone().unwrap_or_else(|| "*".into()),
            _ => "*".into(),
        }
    }

    /// A numeric sent before registration.
    fn push_numeric(&mut self, n: Numeric) {
        let m = n.to_message(&self.ctx.server_name, &self.reply_target());
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

    /// The peer is gone (closed, reset, not answering): nothing more is
    /// worth sending it, and the hub may stop at once (`Departures`).
    async fn lost(&mut self, reason: String) {
        if matches!(self.phase, Phase::Registered) {
            self.ctx.departures.note(self.id);
        }
        self.leave(reason).await;
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

    /// The tracker shuts down: whatever the hub queued for us still goes
    /// out first, then the goodbye.
    fn say_shutdown(&mut self) -> End {
        // The goodbye is the task's to write: the hub writes no more (a
        // line it cut is the outbox's first item, written first below).
        if let Some(direct) = &self.control.direct {
            direct.close();
        }
        let closed = loop {
            if let Err(e) = self.take_queued() {
                break e == mpsc::error::TryRecvError::Disconnected;
            }
        };
        // After a QUIT the hub closes the outbox once its goodbye (ERROR)
        // is in it; a second ERROR must not follow.
        if !(closed && matches!(self.phase, Phase::Leaving)) {
            self.push_error("tracker shutting down");
        }
        End::Goodbye
    }

    /// The hub killed us: drop what is queued, but finish the line a
    /// cut-off write may have started, so ERROR starts a line.
    fn say_killed(&mut self) -> End {
        let reason = self.control.reason();
        // The hub writes no more. A line its `send` cut (only while it was
        // the writer: else the rest was taken into `wbuf`) is finished.
        let cut = self.control.direct.as_ref().is_some_and(|d| d.close()) && self.hub_writes;
        if cut {
            let _ = self.take_queued();
        }
        let keep = self
            .wbuf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        self.wbuf.truncate(keep);
        self.push_error(&reason);
        End::Goodbye
    }

    async fn run(&mut self) -> End {
        let register_deadline = self.register_deadline;
        let control = self.control.clone();
        // Made once and kept across turns (a future made in the `select!`
        // would register a waiter and a timer, and drop them, on every
        // turn). The stop future can be polled again after it completed.
        let stopped = control.stopped();
        tokio::pin!(stopped);
        let timer = tokio::time::sleep_until(self.next_deadline(register_deadline));
        tokio::pin!(timer);
        loop {
            // Deadlines only move later while nothing is due (each line
            // read moves the ping later): the timer stays where it is and
            // may fire early, when `on_timer` finds nothing due and it is
            // set again here. Set only when it fired or must fire sooner.
            let next = self.next_deadline(register_deadline);
            if timer.is_elapsed() || next < timer.deadline() {
                timer.as_mut().reset(next);
            }
            tokio::select! {
                biased;
                _ = &mut stopped => {
                    return if self.ctx.shutdown.is_cancelled() {
                        self.say_shutdown()
                    } else {
                        self.say_killed()
                    };
                }
                first = self.outbox_rx.recv(), if self.registered() => {
                    let Some(first) = first else {
                        // The hub let go of us (QUIT done): close.
                        return End::Goodbye;
                    };
                    // Queued: the hub made the task the writer.
                    self.hub_writes = false;
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
                            // The hub's write may have met a reset first,
                            // taking the socket's error: say what it was.
                            let reason = self
                                .control
                                .direct
                                .as_ref()
                                .and_then(|d| d.broken())
                                .map_or("Connection closed", lost_connection_reason);
                            self.lost(reason.into()).await;
                            return End::Closed;
                        }
                        Some(Err(e)) => {
                            tracing::info!(peer = %self.peer, "read error: {e}");
                            self.lost(lost_connection_reason(e.kind()).into()).await;
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
                _ = &mut timer => {
                    if let Some(end) = self.on_timer(register_deadline).await {
                        return end;
                    }
                }
                _ = tokio::time::sleep_until(self.held.front().map_or(next, |h| h.0)), if !self.held.is_empty() => {
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
                _ = &mut stopped => {}
                written = self.write_out() => {
                    if let Err(e) = written {
                        tracing::info!(peer = %self.peer, "write error: {e}");
                        self.lost(lost_connection_reason(e.kind()).into()).await;
                        return End::Closed;
                    }
                    // A connection with nothing more queued keeps no
                    // buffer: idle members each holding up to 4 KiB that
                    // their last burst (the crowd's JOINs) grew it to cost
                    // 0.5 to 0.8 KiB a member in B4. A busy one keeps a
                    // small one.
                    if self.outbox_rx.is_empty() || self.wbuf.capacity() > KEEP_WBUF {
                        self.wbuf = BytesMut::new();
                    }
                    self.hand_writer_to_hub();
                    // All written out: the next part of a long reply may
                    // come (the hub asked to hear of it).
                    if self.outbox_rx.is_empty() && self.control.take_drain_request() {
                        let _ = self.ctx.hub.send(HubRequest::Drained { conn: self.id }).await;
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
                // The silence allowed (a ping interval, then as long for
                // the answer), not the time measured: the same on a busy
                // host as on a quiet one.
                let secs = (self.ctx.ping_interval * 2).as_secs();
                let reason = format!("Ping timeout: {secs} seconds");
                self.lost(reason.clone()).await;
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
                Ok(m) => Held::Line(cleaned(m)),
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
        // Keep-alives and leaving are this task's own business, before and
        // after registration alike.
        match msg.command.as_str() {
            // Registered, a PING goes through the hub like any command, so
            // its PONG comes after the replies to everything sent before it:
            // clients use PING as a barrier ("answers to all I sent are in").
            "PING" if self.registered() => {}
            "PING" => {
                // Echoed whole unless absurdly long (the reply must fit
                // in 512 bytes).
                let token = sanitize::for_relay(sanitize::clip(msg.param_at(0).unwrap_or(""), 400));
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
                    Some(r) => format!("Quit: {}", sanitize::for_display(sanitize::clip(r, 300))),
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
            // The hub checks the line against the command table: it knows
            // the nick its replies are addressed to.
            Phase::Registered => {
                if msg.command == "OPER" && msg.params.len() >= 2 {
                    // Boxed, as registration is below.
                    return Box::pin(self.oper(msg)).await;
                }
                let _ = self
                    .ctx
                    .hub
                    .send(HubRequest::Line { conn: self.id, msg })
                    .await;
                None
            }
            Phase::Leaving => None,
            // Boxed: a password check's state (and the welcome's) would
            // otherwise be part of every connection's task for as long as
            // it lives, though it is needed for a moment at the start.
            Phase::Registering(_) => Box::pin(self.registration_line(msg)).await,
        }
    }

    /// `OPER name password`: the hash is checked here, off the hub's
    /// thread (as the server password is), and the hub told the outcome.
    async fn oper(&mut self, msg: Message) -> Option<End> {
        let granted = match &self.ctx.opers {
            Some(opers) => {
                opers
                    .check(&msg.params[0], &msg.params[1], self.peer.ip())
                    .await
            }
            None => None,
        };
        let _ = self
            .ctx
            .hub
            .send(HubRequest::OperResult {
                conn: self.id,
                granted,
            })
            .await;
        None
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
        let target = self.reply_target();
        self.push(replies::bad_line(&self.ctx.server_name, &target, &error));
        None
    }

    async fn registration_line(&mut self, msg: Message) -> Option<End> {
        let command = match commands::admit(&msg, false) {
            Ok(c) => c,
            Err(n) => {
                self.push_numeric(n);
                return None;
            }
        };
        let Phase::Registering(pending) = &mut self.phase else {
            return None;
        };
        match command.cmd {
            Cmd::Cap => {
                let sub = msg.param_at(0).unwrap_or("").to_ascii_uppercase();
                let server = self.ctx.server_name.clone();
                let nick = pending.nick.clone().unwrap_or_else(|| "*".into());
                // Registration waits for CAP END once negotiation began.
                if matches!(sub.as_str(), "LS" | "REQ") {
                    pending.negotiating = true;
                }
                // Whether a password is needed, before the client asks its
                // user for one (see PASSWORD_NOTICE).
                if sub == "LS" && self.ctx.password.is_some() {
                    self.push(
                        Message::new("NOTICE")
                            .with_source(server.clone())
                            .param("*")
                            .param(crate::proto::caps::PASSWORD_NOTICE),
                    );
                }
                let accounts = self.ctx.accounts.is_some();
                match self
                    .caps
                    .answer(&sub, msg.param_at(1).unwrap_or(""), accounts)
                {
                    CapAnswer::Reply(verb, list) => self.push(
                        Message::new("CAP")
                            .with_source(server)
                            .param(nick)
                            .param(verb)
                            .param(list),
                    ),
                    CapAnswer::End => {
                        if let Phase::Registering(p) = &mut self.phase {
                            p.negotiating = false;
                        }
                        return self.try_register().await;
                    }
                    CapAnswer::Invalid => self.push_numeric(replies::invalid_cap_command(&sub)),
                }
                None
            }
            Cmd::Pass => {
                // Some clients (irssi 1.4 among them) send `PASS two words`
                // without the `:` that would make it one parameter, so a
                // password with spaces arrives split; rejoin it rather than
                // refuse a password the user typed correctly.
                pending.pass = Some(msg.params.join(" "));
                None
            }
            Cmd::Nick => {
                let Some(nick) = msg.param_at(0).filter(|n| !n.is_empty()) else {
                    self.push_numeric(replies::no_nickname_given());
                    return None;
                };
                if let Err(e) = validate_nick(nick) {
                    self.push_numeric(replies::erroneous_nickname(nick, &e.to_string()));
                    return None;
                }
                pending.nick = Some(nick.to_string());
                self.try_register().await
            }
            Cmd::User => {
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
            Cmd::Authenticate => self.authenticate(msg.params[0].clone()).await,
            // PING, PONG and QUIT were answered in `dispatch`; every other
            // command was refused by the table.
            _ => None,
        }
    }

    /// One `AUTHENTICATE` line of a SASL PLAIN login (before registration;
    /// the hub answers it afterwards). The server password, when there is
    /// one, is checked first: an account's password is never checked for
    /// someone who could not log in to the tracker at all.
    async fn authenticate(&mut self, payload: String) -> Option<End> {
        let Phase::Registering(pending) = &mut self.phase else {
            return None;
        };
        let Some(gate) = self.ctx.accounts.clone().filter(|_| self.caps.sasl) else {
            self.push_numeric(replies::sasl_fail(
                "request the sasl capability first (CAP REQ :sasl); this tracker offers it only when it keeps accounts",
            ));
            return None;
        };
        if pending.account.is_some() {
            self.push_numeric(replies::sasl_already());
            return None;
        }
        if payload == "*" {
            pending.sasl = None;
            self.push_numeric(replies::sasl_aborted());
            return None;
        }
        let Some(response) = pending.sasl.as_mut() else {
            if payload.eq_ignore_ascii_case("PLAIN") {
                pending.sasl = Some(PlainResponse::default());
                self.push(Message::new("AUTHENTICATE").param("+"));
            } else {
                self.push_numeric(replies::sasl_mechs("PLAIN"));
                self.push_numeric(replies::sasl_fail("only PLAIN is offered"));
            }
            return None;
        };
        let credentials = match response.push(&payload) {
            Ok(None) => return None,
            Ok(Some(c)) => c,
            Err(e) => {
                pending.sasl = None;
                match e {
                    SaslError::TooLong => self.push_numeric(replies::sasl_too_long()),
                    e => self.push_numeric(replies::sasl_fail(&e.to_string())),
                }
                return None;
            }
        };
        pending.sasl = None;
        if !pending.password_ok
            && let Some(server_gate) = self.ctx.password.clone()
        {
            let Some(given) = pending.pass.take() else {
                self.push_numeric(replies::sasl_fail(
                    "send the server password (PASS) before logging in to an account",
                ));
                return None;
            };
            match self
                .check_password(&server_gate, zeroize::Zeroizing::new(given))
                .await
            {
                Ok(true) => {
                    if let Phase::Registering(p) = &mut self.phase {
                        p.password_ok = true;
                    }
                }
                Ok(false) => {
                    tracing::info!(peer = %self.peer, "wrong server password");
                    self.push_numeric(replies::password_mismatch());
                    self.push_error("Bad password");
                    return Some(End::Goodbye);
                }
                Err(end) => return Some(end),
            }
        }
        match gate
            .login(&credentials.account, credentials.password, self.peer.ip())
            .await
        {
            Ok(account) => {
                let mask = match &self.phase {
                    Phase::Registering(p) => format!(
                        "{}!{}@{}",
                        p.nick.as_deref().unwrap_or("*"),
                        p.user.as_ref().map_or("*", |u| u.0.as_str()),
                        super::shared::irc_host(self.peer.ip())
                    ),
                    _ => "*".into(),
                };
                self.push_numeric(replies::logged_in(&mask, &account));
                self.push_numeric(replies::sasl_success());
                if let Phase::Registering(p) = &mut self.phase {
                    p.account = Some(account);
                }
            }
            Err(why) => self.push_numeric(replies::sasl_fail(&why.to_string())),
        }
        None
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
                        self.push_numeric(replies::password_mismatch());
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
            account: pending.account.clone(),
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
                self.push_numeric(replies::nickname_in_use(&nick));
                None
            }
            Ok(RegisterOutcome::NickReserved) => {
                if let Phase::Registering(p) = &mut self.phase {
                    p.nick = None;
                }
                self.push_numeric(replies::nick_reserved(&nick));
                None
            }
            Ok(RegisterOutcome::ShuttingDown) | Err(_) => {
                self.push_error("tracker shutting down");
                Some(End::Goodbye)
            }
        }
    }
}

/// What everyone is shown, and `chat.log` records, when a connection was
/// lost: plain words, since the error's own text is a library's (rustls
/// names its docs URL); the diagnostics get that.
fn lost_connection_reason(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind::*;
    match kind {
        // Closed without TLS's goodbye (close_notify), or mid-write.
        UnexpectedEof | ConnectionAborted | BrokenPipe | NotConnected => "Connection closed",
        ConnectionReset => "Connection reset",
        TimedOut => "Connection timed out",
        // A TLS record or alert that makes no sense, and anything else.
        _ => "Connection error",
    }
}

/// What of a parsed line no one may be handed as it came: the values of
/// its tags, which the hub relays to other clients (IRCv3 client-only
/// tags), lose every control character, escape sequence, bidi control and
/// line separator ([`sanitize::for_tag`]); and `CAP` arguments, which
/// are echoed in `CAP NAK`/`ACK` and are only ever capability names, are
/// cleaned for display. Tags are cleaned rather than the line refused: the
/// message they ride on still gets through, as its text does after
/// `for_relay`. Cleaning never lengthens a tag section, so one accepted
/// within [`MAX_CLIENT_TAG_DATA`] is relayed within it.
fn cleaned(mut msg: Message) -> Message {
    for (_, value) in &mut msg.tags {
        if let Some(v) = value.as_deref() {
            let clean = sanitize::for_tag(v);
            *value = (!clean.is_empty()).then_some(clean);
        }
    }
    if msg.command == "CAP" {
        for p in &mut msg.params {
            *p = sanitize::for_display(p);
        }
    }
    debug_assert!(msg.tag_data_len() <= MAX_CLIENT_TAG_DATA);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_cap_arguments_are_cleaned_before_the_hub() {
        let line = "@+x=\x1b[31mred\x1b[0m;+y=a\u{2028}b\u{202e};+z=\x07;time=\x1b[1m PRIVMSG #g :\x1b[2Jhi";
        let m = cleaned(Message::parse(line).unwrap());
        assert_eq!(
            m.tags,
            vec![
                ("+x".to_string(), Some("red".to_string())),
                ("+y".to_string(), Some("a b".to_string())),
                ("+z".to_string(), None),
                ("time".to_string(), None),
            ]
        );
        // The text is the hub's to clean (it keeps IRC formatting).
        assert_eq!(m.params, vec!["#g", "\x1b[2Jhi"]);
        let cap = cleaned(Message::parse("CAP REQ :echo-message \x1b]0;x\x07\u{2029}").unwrap());
        assert_eq!(cap.params, vec!["REQ", "echo-message  "]);
    }
}
