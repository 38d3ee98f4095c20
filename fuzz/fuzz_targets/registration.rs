//! The real per-connection task, `confab::tracker::conn::serve`, fed the fuzz
//! input as what a client sends, over `tokio::io::duplex`, with a small fake
//! hub on the other end of `ConnContext.hub`.
//!
//! Input layout: byte 0 picks the scenario (below), the rest is sent as is.
//!   bit 0     close our write side after sending (EOF) / stay silent
//!   bit 1     flood control on (2 lines/s, burst 5) / off
//!   bits 2-3  how the bytes go out: 0 at once, 1 in 1..16-byte pieces,
//!             2 one LF-terminated line per virtual second, 3 as 1
//!   bit 4     a 64-byte duplex (writes block often) / 64 KiB
//!
//! Time is tokio's paused clock: the registration timeout, PING cycle and
//! flood control run in virtual time, so an exec takes microseconds.
//!
//! Checks:
//! - no panic (in the task, the fake hub, or here);
//! - the task ends within a bounded virtual time: with nothing more from
//!   the client it must time out registration, or PING and then time out;
//! - everything it writes is whole CRLF lines that `Message::parse` accepts,
//!   and an `ERROR` line, if any, is the last one and the only one;
//! - when the client stays connected (bit 0 clear), the tracker is the one
//!   that ends the connection, so the last line must be that `ERROR`;
//! - every tag value it writes is free of control characters, escape
//!   sequences, bidi controls and line separators (the task cleans a
//!   client's tags before the hub relays them), and no tag section is over
//!   8191 bytes;
//! - no line is longer than 512 bytes with CRLF, tags apart (the body limit that our
//!   own `LineCodec` enforces); CONFAB_FUZZ_STRICT=0 turns this one off.
//!
//! The fake hub answers `Register` with `NickInUse` for nicks starting with
//! `taken`, `ShuttingDown` for `down...`, else `Welcome` plus a 001 line;
//! on `Line` it echoes PRIVMSG (text cut to 100 bytes, as its own lines
//! are not under test), kills the connection on `KILL`, cancels the
//! global shutdown token on `DIE`; on `BadLine` it sends a FAIL; on `Leave`
//! it sends ERROR and drops the handle, as the real hub does.
//!
//! `password` is `None`: `PasswordGate::new` always uses Argon2's default
//! cost (~19 MiB, tens of ms per verify), which would cut the exec rate by
//! three orders of magnitude.
#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab::proto::Message;
use confab::proto::message::MAX_TAG_BYTES;
use confab::proto::sanitize;
use confab::tracker::conn::{ConnContext, FloodPolicy, serve};
use confab::tracker::shared::{ConnHandle, HubRequest, RegisterOutcome};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SERVER: &str = "fuzz.tracker";
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);
const PING_INTERVAL: Duration = Duration::from_secs(20);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    // A fresh runtime per exec, so that a reproducer replays exactly (the
    // paused clock starts at the same place). Only the timer is enabled:
    // duplex pipes need no I/O driver.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let out = rt.block_on(session(mode, input.to_vec()));
    if debug() {
        eprintln!(
            "--- mode {mode:#04x}, tracker wrote:\n{}",
            String::from_utf8_lossy(&out)
        );
    }
    let eof = mode & 1 != 0;
    check_output(&out, !eof);
});

/// CONFAB_FUZZ_DEBUG=1 prints what the tracker wrote (for reading seeds).
fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("CONFAB_FUZZ_DEBUG").is_some_and(|v| v == "1"))
}

/// The 512-byte check, on unless CONFAB_FUZZ_STRICT=0.
fn strict() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("CONFAB_FUZZ_STRICT").is_none_or(|v| v != "0"))
}

async fn session(mode: u8, input: Vec<u8>) -> Vec<u8> {
    let eof = mode & 1 != 0;
    let flood = if mode & 2 != 0 {
        FloodPolicy::new(2.0, 5)
    } else {
        FloodPolicy::OFF
    };
    let pacing = (mode >> 2) & 3;
    let duplex = if mode & 16 != 0 { 64 } else { 64 * 1024 };

    let (client, server) = tokio::io::duplex(duplex);
    let (hub_tx, hub_rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    // Only what the checks depend on is set; the rest is the tracker's
    // defaults, so a field added to ConnContext needs no change here.
    let ctx = Arc::new(ConnContext {
        server_name: SERVER.into(),
        ping_interval: PING_INTERVAL,
        register_timeout: REGISTER_TIMEOUT,
        flood,
        sendq: 16 * 1024,
        ..ConnContext::new(hub_tx, shutdown.clone())
    });
    let hub = tokio::spawn(fake_hub(hub_rx, shutdown));
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();

    let (mut rd, mut wr) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        out
    });
    // How long the client itself takes to send everything (virtual time).
    let lines = input.iter().filter(|&&b| b == b'\n').count() as u64;
    let sending = if pacing == 2 {
        Duration::from_secs(lines + 1)
    } else {
        Duration::ZERO
    };
    let writer = tokio::spawn(async move {
        match pacing {
            0 => {
                let _ = wr.write_all(&input).await;
            }
            2 => {
                for line in input.split_inclusive(|&b| b == b'\n') {
                    if wr.write_all(line).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            _ => {
                let mut rest = &input[..];
                let mut i = 0usize;
                while !rest.is_empty() {
                    let n = (1 + (i * 7 + rest[0] as usize) % 16).min(rest.len());
                    i += 1;
                    if wr.write_all(&rest[..n]).await.is_err() {
                        break;
                    }
                    rest = &rest[n..];
                    tokio::task::yield_now().await;
                }
            }
        }
        if eof {
            let _ = wr.shutdown().await;
        } else {
            // Stay connected and silent; keep the write half alive.
            std::future::pending::<()>().await;
        }
    });

    // Registration timeout, or PING then ping timeout, after the last line,
    // plus the write and goodbye timeouts: 5 + 2 * 20 + 30 + 0.5 s.
    let bound = sending + REGISTER_TIMEOUT + PING_INTERVAL * 2 + Duration::from_secs(40);
    let served = tokio::time::timeout(bound, serve(server, peer, 1, ctx)).await;
    assert!(
        served.is_ok(),
        "connection task still running after {bound:?} of virtual time (mode {mode:#04x})"
    );
    writer.abort();
    let _ = writer.await;
    let out = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("client side saw no EOF after the task ended")
        .expect("reader task");
    // The task dropped its ConnContext, so the hub's inbox is closed.
    tokio::time::timeout(Duration::from_secs(5), hub)
        .await
        .expect("fake hub did not finish")
        .expect("fake hub panicked");
    out
}

fn check_output(out: &[u8], stayed_open: bool) {
    if out.is_empty() {
        assert!(
            !stayed_open,
            "connection ended without a word to a silent client"
        );
        return;
    }
    let text = std::str::from_utf8(out).unwrap_or_else(|e| {
        panic!(
            "tracker wrote non-UTF-8 ({e}): {:?}",
            String::from_utf8_lossy(out)
        )
    });
    let body = text
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("output does not end with CRLF: {:?}", tail(text)));
    let lines: Vec<&str> = body.split("\r\n").collect();
    let mut error_at = None;
    for (i, line) in lines.iter().enumerate() {
        let m = Message::parse(line)
            .unwrap_or_else(|e| panic!("tracker wrote an unparsable line ({e}): {line:?}"));
        let body = match line.strip_prefix('@') {
            Some(_) => {
                let at = line.find(' ').unwrap_or(line.len());
                assert!(at < MAX_TAG_BYTES, "tag section of {} bytes", at + 1);
                &line[at + 1..]
            }
            None => line,
        };
        for (k, v) in &m.tags {
            if let Some(v) = v {
                assert_eq!(
                    &sanitize::for_tag(v),
                    v,
                    "tag {k} relayed unclean: {line:?}"
                );
            }
        }
        if strict() {
            assert!(
                body.len() + 2 <= 512,
                "tracker wrote a {}-byte line: {line:?}",
                body.len() + 2
            );
        }
        if m.command == "ERROR" {
            assert!(error_at.is_none(), "two ERROR lines: {lines:?}");
            error_at = Some(i);
        }
    }
    if let Some(i) = error_at {
        assert_eq!(i + 1, lines.len(), "lines after ERROR: {:?}", &lines[i..]);
    }
    // A client that stays connected and reads everything is only ever
    // dropped by the tracker (registration or ping timeout, QUIT, kill,
    // shutdown, excess flood), and every such goodbye ends with ERROR.
    if stayed_open {
        assert!(
            error_at.is_some(),
            "connection to a silent client ended without ERROR last; last line: {:?}",
            lines.last()
        );
    }
}

fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(200);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

async fn fake_hub(mut inbox: mpsc::Receiver<HubRequest>, shutdown: CancellationToken) {
    let mut conns: HashMap<u64, (String, ConnHandle)> = HashMap::new();
    while let Some(req) = inbox.recv().await {
        match req {
            HubRequest::Register(reg, reply) => {
                let lower = reg.nick.to_ascii_lowercase();
                if lower.starts_with("taken") {
                    let _ = reply.send(RegisterOutcome::NickInUse);
                } else if lower.starts_with("down") {
                    let _ = reply.send(RegisterOutcome::ShuttingDown);
                } else {
                    let welcome = Message::new("001")
                        .with_source(SERVER)
                        .param(reg.nick.clone())
                        .param(format!("Welcome, {}", reg.nick));
                    deliver(&reg.handle, welcome);
                    let _ = reply.send(RegisterOutcome::Welcome);
                    conns.insert(reg.conn, (reg.nick.clone(), reg.handle));
                }
            }
            HubRequest::Line { conn, msg } => {
                let Some((nick, handle)) = conns.get(&conn) else {
                    panic!("Line from a connection that never registered: {msg:?}");
                };
                match msg.command.as_str() {
                    "PRIVMSG" => {
                        let mut echo = msg.clone();
                        echo.source = Some(format!("{nick}!u@192.0.2.7"));
                        for p in &mut echo.params {
                            *p = clip(p, 100);
                        }
                        deliver(handle, echo);
                    }
                    // Registered PINGs are the hub's to answer, in order.
                    "PING" => deliver(
                        handle,
                        Message::new("PONG")
                            .with_source(SERVER)
                            .param(SERVER)
                            .param(clip(msg.param_at(0).unwrap_or(""), 100)),
                    ),
                    "KILL" => handle.control.kill("Killed (fuzz hub)"),
                    "DIE" => shutdown.cancel(),
                    _ => {}
                }
            }
            HubRequest::BadLine { conn, error } => {
                let Some((_, handle)) = conns.get(&conn) else {
                    panic!("BadLine from a connection that never registered: {error:?}");
                };
                deliver(
                    handle,
                    Message::new("FAIL")
                        .with_source(SERVER)
                        .param("*")
                        .param("BAD")
                        .param(format!("{error:?}")),
                );
            }
            HubRequest::Leave { conn, reason } => {
                if let Some((_, handle)) = conns.remove(&conn) {
                    deliver(&handle, Message::new("ERROR").param(clip(&reason, 100)));
                }
            }
            HubRequest::OperResult { conn, .. } => {
                assert!(
                    conns.contains_key(&conn),
                    "OPER checked for a connection that never registered"
                );
            }
            // Answers to work the hub asked for: this fake hub asks for none.
            HubRequest::AccountDone(_)
            | HubRequest::HistoryPage(_)
            | HubRequest::LoginView { .. }
            | HubRequest::HistoryTargets(_)
            | HubRequest::HistoryNotKept { .. }
            | HubRequest::HistoryPurged { .. } => {
                panic!("an answer to work this hub never asked for")
            }
            HubRequest::Drained { .. }
            | HubRequest::Tick
            | HubRequest::EmptyAllocatorCache(_)
            | HubRequest::Console { .. }
            | HubRequest::Shutdown { .. } => {}
        }
    }
}

/// As the real hub delivers: account the bytes, kill on a full send queue.
fn deliver(handle: &ConnHandle, msg: Message) {
    let bytes = Bytes::from(msg.to_line());
    if handle.control.reserve(bytes.len(), 1).is_err() {
        handle.control.kill("SendQ exceeded");
        return;
    }
    let _ = handle.outbox.send(bytes);
}
