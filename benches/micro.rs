//! Micro-benchmarks (criterion), not part of `cargo test`:
//!
//! ```sh
//! cargo bench --bench micro                 # all
//! cargo bench --bench micro -- hub/         # only the hub fan-out
//! ```
//!
//! - `proto/parse_*`, `proto/encode_*`: one IRC line, as the tracker reads
//!   what clients send and writes what it relays.
//! - `proto/codec_100_lines`: splitting a 100-line read buffer into frames.
//! - `hub/fanout_100_members/*`: the real hub (on its own thread, as in the
//!   tracker, with `chat.log` in a temporary folder) relaying a PRIVMSG to
//!   a room of 100 members: its 99 deliveries land in the members' outboxes.
//!   `1_message` is one message end to end (includes waking the hub
//!   thread); `100_messages` sends 100 before waiting, as a busy room does,
//!   so the hub batches them (one `chat.log` write per batch).
//! - `transcript/commit/*`: `Transcript::commit` of a batch of 1 or 100
//!   `msg` lines of 128-byte messages (what the hub does once per batch:
//!   the `chat.log` write and, since the hash chain, its record), in a
//!   fresh temporary folder every 2000 commits.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use confab::proto::caps::Caps;
use confab::proto::{LineCodec, Message};
use confab::tracker::hub::{Hub, HubConfig};
use confab::tracker::shared::{
    ConnControl, ConnHandle, HubRequest, RegisterOutcome, Registration, SendBudget,
};
use confab::tracker::transcript::{LogSync, Transcript};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Decoder;

const TEXT: &str = "LG 12 3456 1234567890 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn proto(c: &mut Criterion) {
    let from_client = format!("PRIVMSG #general :{TEXT}");
    let relayed = format!(":alice!alice@192.168.1.31 PRIVMSG #general :{TEXT}");
    let tagged = format!(
        "@time=2026-11-22T00:46:35.615Z;+draft/reply=abc :alice!alice@192.168.1.31 PRIVMSG #general :{TEXT}"
    );
    let mut g = c.benchmark_group("proto");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_privmsg_from_client", |b| {
        b.iter(|| Message::parse(black_box(&from_client)))
    });
    g.bench_function("parse_privmsg_with_source", |b| {
        b.iter(|| Message::parse(black_box(&relayed)))
    });
    g.bench_function("parse_privmsg_with_tags", |b| {
        b.iter(|| Message::parse(black_box(&tagged)))
    });
    let msg = Message::parse(&relayed).expect("parses");
    g.bench_function("encode_privmsg", |b| b.iter(|| black_box(&msg).to_line()));
    let tagged_msg = Message::parse(&tagged).expect("parses");
    g.bench_function("encode_privmsg_with_tags", |b| {
        b.iter(|| black_box(&tagged_msg).to_line())
    });
    let mut lines = String::new();
    for _ in 0..100 {
        lines += &from_client;
        lines += "\r\n";
    }
    g.throughput(Throughput::Elements(100));
    g.bench_function("codec_100_lines", |b| {
        b.iter(|| {
            let mut codec = LineCodec::new();
            let mut buf = BytesMut::from(lines.as_bytes());
            let mut n = 0;
            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                black_box(frame);
                n += 1;
            }
            assert_eq!(n, 100);
        })
    });
    g.finish();
}

/// A hub on its own thread with `members` registered users.
struct HubRig {
    inbox: mpsc::Sender<HubRequest>,
    outboxes: Vec<mpsc::UnboundedReceiver<bytes::Bytes>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl HubRig {
    fn new(members: usize) -> HubRig {
        let dir = tempfile::tempdir().expect("temp dir");
        let transcript = Transcript::open(dir.path(), LogSync::Write).expect("chat.log");
        // Benchmarks never read back the byte count: no send-queue limits.
        let budget = Arc::new(SendBudget::new(usize::MAX / 2));
        let config = HubConfig {
            server_name: "bench".into(),
            idle_timeout: Duration::from_secs(3600),
            log_path_shown: "chat.log".into(),
            started: jiff::Timestamp::now(),
            send_budget: budget.clone(),
            members: tokio::sync::watch::channel(0).0,
            p2p: confab::tracker::policy::P2pPolicy::Allow,
        };
        let hub = Hub::new(config, transcript);
        let (inbox, rx) = mpsc::channel(4096);
        let thread = std::thread::spawn(move || hub.run(rx, "bench".into()));
        let mut outboxes = Vec::new();
        for i in 0..members {
            let (tx, out) = mpsc::unbounded_channel();
            let control = Arc::new(ConnControl::new(
                usize::MAX / 4,
                budget.clone(),
                &tokio_util::sync::CancellationToken::new(),
            ));
            let nick = format!("m{i}");
            let reg = Registration {
                conn: i as u64,
                nick: nick.clone(),
                user: nick,
                realname: "bench".into(),
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                caps: Caps::default(),
                account: None,
                handle: ConnHandle {
                    outbox: tx,
                    control,
                },
            };
            let (reply, answer) = oneshot::channel();
            inbox
                .blocking_send(HubRequest::Register(Box::new(reg), reply))
                .expect("hub running");
            assert_eq!(answer.blocking_recv(), Ok(RegisterOutcome::Welcome));
            outboxes.push(out);
        }
        let mut rig = HubRig {
            inbox,
            outboxes,
            thread: Some(thread),
            _dir: dir,
        };
        rig.settle();
        rig
    }

    /// Empties every outbox (welcomes, JOINs) once the hub is idle.
    fn settle(&mut self) {
        std::thread::sleep(Duration::from_millis(200));
        for o in &mut self.outboxes {
            while o.try_recv().is_ok() {}
        }
    }

    /// Member 0 says `count` things in #general; waits until every other
    /// member has all of them.
    fn say(&mut self, msg: &Message, count: usize) {
        for _ in 0..count {
            self.inbox
                .blocking_send(HubRequest::Line {
                    conn: 0,
                    msg: msg.clone(),
                })
                .expect("hub running");
        }
        // The hub joins what one batch has for a member into one buffer,
        // so count lines, not items.
        for o in &mut self.outboxes[1..] {
            let mut lines = 0;
            while lines < count {
                let bytes = black_box(o.blocking_recv().expect("delivery"));
                lines += bytes.iter().filter(|&&b| b == b'\n').count();
            }
            assert_eq!(lines, count, "a member got more than was said");
        }
    }
}

impl Drop for HubRig {
    fn drop(&mut self) {
        let _ = self.inbox.blocking_send(HubRequest::Shutdown {
            reason: "bench done".into(),
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hub(c: &mut Criterion) {
    let mut rig = HubRig::new(100);
    let msg = Message::parse(&format!("PRIVMSG #general :{TEXT}")).expect("parses");
    let mut g = c.benchmark_group("hub/fanout_100_members");
    g.throughput(Throughput::Elements(99));
    g.bench_function("1_message", |b| b.iter(|| rig.say(&msg, 1)));
    g.throughput(Throughput::Elements(99 * 100));
    g.bench_function("100_messages", |b| b.iter(|| rig.say(&msg, 100)));
    g.finish();
}

fn transcript(c: &mut Criterion) {
    let detail = format!("#general <m0> {TEXT}");
    let mut g = c.benchmark_group("transcript/commit");
    for lines in [1u64, 100] {
        g.throughput(Throughput::Elements(lines));
        g.bench_function(format!("{lines}_lines"), |b| {
            b.iter_batched_ref(
                || {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let t = Transcript::open(dir.path(), LogSync::Write).expect("chat.log");
                    (dir, t)
                },
                |(_, t)| {
                    for _ in 0..lines {
                        t.record("2026-12-02T10:00:00.000Z", "msg", &detail);
                    }
                    t.commit().expect("commit");
                },
                BatchSize::NumIterations(2000),
            )
        });
    }
    g.finish();
}

criterion_group!(benches, proto, hub, transcript);
criterion_main!(benches);
