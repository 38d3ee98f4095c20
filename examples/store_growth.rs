//! How much disk the store takes per message, and what retention does to
//! it: writes messages through the store's API as the tracker's store
//! thread does (in the hub's order, 1,000 a transaction, 40 rooms), then
//! purges the older half and writes as many again.
//!
//! ```sh
//! cargo run --example store_growth            # a million messages of 128 bytes
//! cargo run --example store_growth -- 200000  # fewer
//! ```
//!
//! Prints the size of `store.db` (its write-ahead log folded in) after
//! each step. Sizes do not depend on the build (SQLite is optimised in dev
//! builds too); the rate printed does. The numbers are in BENCHMARKS.md ("The store's size").

use confab::store::{NewMessage, Store};

const ROOMS: u64 = 40;
const TEXT_BYTES: usize = 128;
const PER_TRANSACTION: u64 = 1_000;

fn message(n: u64, text: &str) -> NewMessage {
    let room = n % ROOMS;
    NewMessage {
        seq: (n / ROOMS) as i64 + 1,
        // The hub's msgid: a 32-hex-digit prefix per run, then a counter.
        msgid: format!("5c0f9e2b7d41a8c3e6b2f0d91a7c4e58-{:x}", n + 1),
        // 20 messages a second.
        at_ms: 1_790_000_000_000 + (n * 50) as i64,
        target: format!("#room{room}"),
        command: "PRIVMSG".into(),
        source: format!(
            "student{:02}!student{:02}@192.168.1.{}",
            n % 97,
            n % 97,
            n % 250
        ),
        sender_account: n.is_multiple_of(2).then(|| format!("student{:02}", n % 97)),
        to_param: format!("#room{room}"),
        text: text.into(),
        client_tags: String::new(),
        direct: None,
        hold_for: None,
    }
}

fn size(path: &std::path::Path) -> u64 {
    let wal = path.with_extension("db-wal");
    let len = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    len(path) + len(&wal)
}

fn write(store: &mut Store, from: u64, count: u64, text: &str) {
    let mut n = from;
    while n < from + count {
        let end = (n + PER_TRANSACTION).min(from + count);
        let batch: Vec<NewMessage> = (n..end).map(|i| message(i, text)).collect();
        if let Err(e) = store.append(&batch) {
            eprintln!("store_growth: cannot append: {e}");
            std::process::exit(1);
        }
        n = end;
    }
}

fn main() {
    let count: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1_000_000,
        Some(Ok(n)) if n >= 2 => n,
        Some(_) => {
            eprintln!("usage: store_growth [MESSAGES, at least 2]");
            std::process::exit(2);
        }
    };
    let text: String = "x".repeat(TEXT_BYTES);
    let dir = tempfile::tempdir().unwrap_or_else(|e| {
        eprintln!("store_growth: no temporary folder: {e}");
        std::process::exit(1);
    });
    let path = dir.path().join(confab::store::FILE_NAME);
    let mut store = match Store::open(&path) {
        Ok((s, _)) => s,
        Err(e) => {
            eprintln!("store_growth: {e}");
            std::process::exit(1);
        }
    };
    let report = |store: &Store, what: &str, messages: u64| {
        if let Err(e) = store.checkpoint() {
            eprintln!("store_growth: checkpoint: {e}");
        }
        let bytes = size(&path);
        println!(
            "{what:<44} {messages:>9} messages  {:>7.1} MB  {:>5.0} bytes/message",
            bytes as f64 / 1e6,
            bytes as f64 / messages.max(1) as f64
        );
    };
    report(&store, "empty store", 0);
    let started = std::time::Instant::now();
    write(&mut store, 0, count, &text);
    let took = started.elapsed();
    report(
        &store,
        &format!("{count} messages of {TEXT_BYTES} bytes"),
        count,
    );
    println!(
        "  written in {:.1} s ({:.0} messages/s)",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    );
    let half = count / 2;
    let cut = message(half, &text).at_ms;
    let purge = |store: &mut Store, before_ms: i64| {
        let started = std::time::Instant::now();
        match store.purge_before(before_ms) {
            Ok(n) => (n as u64, started.elapsed()),
            Err(e) => {
                eprintln!("store_growth: purge: {e}");
                std::process::exit(1);
            }
        }
    };
    let (removed, took) = purge(&mut store, cut);
    println!(
        "  purged {removed} in {:.1} s ({:.0} messages/s, {} per transaction)",
        took.as_secs_f64(),
        removed as f64 / took.as_secs_f64(),
        confab::store::PURGE_CHUNK
    );
    let (_, idle) = purge(&mut store, cut);
    println!(
        "  an hourly purge with nothing older: {:.1} ms",
        idle.as_secs_f64() * 1000.0
    );
    report(
        &store,
        &format!("after purging the older {removed}"),
        count - removed,
    );
    write(&mut store, count, half, &text);
    report(
        &store,
        &format!("then {half} more (freed pages reused)"),
        count - removed + half,
    );
}
