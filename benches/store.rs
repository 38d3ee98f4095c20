//! The store's costs (criterion), not part of `cargo test`:
//!
//! ```sh
//! cargo bench --bench store
//! ```
//!
//! - `store/append_batch_of_100`: storing one hub batch of 100 room
//!   messages (one transaction), on disk in a temporary folder, WAL mode,
//!   as the store's thread does.
//! - `store/chathistory_*`: one 100-message page from a store holding a
//!   million messages (40 rooms of 25,000, written in the hub's order):
//!   `latest` (what a client asks on joining), `before_msgid` (paging back
//!   from the middle of a room, PgUp), `around_msgid`, `after_timestamp`.
//! - `store/chathistory_messages_past_a_join_storm`: the latest 100
//!   messages of a room whose history is 99 joins for each message (50,000
//!   lines), for a reader without `draft/event-playback`.
//!
//! Filling the million-message store takes about a minute; under
//! `cargo test --benches` (CI's smoke run) it holds 20,000 instead.

use std::hint::black_box;

use confab::store::{HistoryQuery, Lines, NewMessage, Selector, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ROOMS: u32 = 40;
const TEXT: &str =
    "LG 12 3456 1234567890 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn message(n: u64) -> NewMessage {
    let room = n % u64::from(ROOMS);
    NewMessage {
        seq: (n / u64::from(ROOMS)) as i64 + 1,
        msgid: format!("b{n:016x}"),
        // 20 messages a millisecond, a busy tracker.
        at_ms: 1_790_000_000_000 + (n / 20) as i64,
        target: format!("#room{room}"),
        command: "PRIVMSG".into(),
        source: format!("user{}!user@192.168.1.{}", n % 97, n % 250),
        sender_account: None,
        to_param: format!("#Room{room}"),
        text: TEXT.into(),
        client_tags: String::new(),
        direct: None,
        hold_for: None,
    }
}

fn store(c: &mut Criterion) {
    let measuring = std::env::args().any(|a| a == "--bench");
    let total: u64 = if measuring { 1_000_000 } else { 20_000 };
    let dir = tempfile::tempdir().expect("temporary folder");
    let (mut store, _) = Store::open(&dir.path().join("store.db")).expect("open the store");
    let mut n = 0;
    while n < total {
        let batch: Vec<NewMessage> = (n..n + 1000).map(message).collect();
        store.append(&batch).expect("fill");
        n += 1000;
    }

    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(100));
    let mut next = total;
    g.bench_function("append_batch_of_100", |b| {
        b.iter(|| {
            let batch: Vec<NewMessage> = (next..next + 100).map(message).collect();
            next += 100;
            store.append(&batch).expect("append")
        })
    });
    // A reference in the middle of room 7's history.
    let middle = total / 2 / u64::from(ROOMS) * u64::from(ROOMS) + 7;
    let mid_id = Selector::MsgId(message(middle).msgid);
    let mid_ts = Selector::Timestamp(message(middle).at_ms);
    g.throughput(Throughput::Elements(1));
    let pages = [
        ("chathistory_latest", HistoryQuery::Latest(None)),
        (
            "chathistory_before_msgid",
            HistoryQuery::Before(mid_id.clone()),
        ),
        ("chathistory_around_msgid", HistoryQuery::Around(mid_id)),
        ("chathistory_after_timestamp", HistoryQuery::After(mid_ts)),
    ];
    for (name, query) in pages {
        let page = store.history("#room7", &query, 100, 0).expect("page");
        assert_eq!(page.len(), 100, "{name}: a full page");
        g.bench_function(name, |b| {
            b.iter(|| {
                store
                    .history(black_box("#room7"), &query, 100, 0)
                    .expect("page")
            })
        });
    }
    // A join storm: 99 JOINs for each message.
    let storm: Vec<NewMessage> = (0..50_000u64)
        .map(|n| NewMessage {
            seq: n as i64 + 1,
            msgid: format!("s{n:016x}"),
            target: "#storm".into(),
            to_param: "#Storm".into(),
            ..match n % 100 {
                99 => message(n),
                _ => NewMessage {
                    command: "JOIN".into(),
                    text: "#Storm".into(),
                    ..message(n)
                },
            }
        })
        .collect();
    for chunk in storm.chunks(1000) {
        store.append(chunk).expect("storm");
    }
    let latest = HistoryQuery::Latest(None);
    assert_eq!(
        store
            .history_of("#storm", &latest, 100, 0, Lines::Messages)
            .expect("page")
            .len(),
        100
    );
    g.bench_function("chathistory_messages_past_a_join_storm", |b| {
        b.iter(|| {
            store
                .history_of(black_box("#storm"), &latest, 100, 0, Lines::Messages)
                .expect("page")
        })
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
