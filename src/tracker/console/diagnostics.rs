//! Where the tracker's diagnostics (tracing output) go: to stderr as
//! always, or, while the console on the terminal is open, above its prompt
//! (through the line editor, so a half-typed command is redrawn intact);
//! and to every attached console too.
//!
//! Whoever logs (the hub's thread, connection tasks) never waits for a
//! console: each event is handed to bounded queues with `try_send`, and a
//! console that cannot keep up loses diagnostic lines (counted and said),
//! never costs chat anything.

use std::io::Write;
use std::sync::Mutex;
use std::sync::mpsc::{SyncSender, TrySendError};

/// Diagnostic lines waiting for the terminal's console before more are
/// dropped.
pub const LOCAL_QUEUE: usize = 256;
/// The same for each attached console.
pub const ATTACHED_QUEUE: usize = 256;

struct Sinks {
    /// The terminal's console, while open.
    local: Option<SyncSender<String>>,
    /// Lines the terminal's console dropped since it last said so.
    local_dropped: u64,
    attached: Vec<(u64, tokio::sync::mpsc::Sender<String>)>,
    next_id: u64,
}

static SINKS: Mutex<Sinks> = Mutex::new(Sinks {
    local: None,
    local_dropped: 0,
    attached: Vec::new(),
    next_id: 0,
});

fn sinks() -> std::sync::MutexGuard<'static, Sinks> {
    SINKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends diagnostics to the terminal's console (`Some`) or back to stderr
/// (`None`).
pub fn set_local(queue: Option<SyncSender<String>>) {
    let mut s = sinks();
    s.local = queue;
    s.local_dropped = 0;
}

/// Whether the terminal's console is showing diagnostics now.
pub fn local_active() -> bool {
    sinks().local.is_some()
}

/// An attached console's share of the diagnostics; it stops when dropped.
pub struct Subscription {
    id: u64,
    pub lines: tokio::sync::mpsc::Receiver<String>,
}

pub fn subscribe() -> Subscription {
    let (tx, rx) = tokio::sync::mpsc::channel(ATTACHED_QUEUE);
    let mut s = sinks();
    s.next_id += 1;
    let id = s.next_id;
    s.attached.push((id, tx));
    Subscription { id, lines: rx }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        sinks().attached.retain(|(id, _)| *id != self.id);
    }
}

/// One formatted event: handed on whole when the formatter is done.
pub struct EventText(Vec<u8>);

impl Write for EventText {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventText {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            deliver(std::mem::take(&mut self.0));
        }
    }
}

fn deliver(bytes: Vec<u8>) {
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let to_stderr = {
        let mut s = sinks();
        for (_, tx) in &s.attached {
            // Full (a stuck console) or gone: that console misses the line.
            let _ = tx.try_send(text.clone());
        }
        match s.local.as_ref().map(|q| q.try_send(text.clone())) {
            None => true,
            Some(Ok(())) => false,
            Some(Err(TrySendError::Full(_))) => {
                s.local_dropped += 1;
                false
            }
            Some(Err(TrySendError::Disconnected(_))) => {
                s.local = None;
                true
            }
        }
    };
    if to_stderr {
        let _ = std::io::stderr().write_all(&bytes);
    }
}

/// Lines the terminal's console dropped since it last asked (and resets
/// the count): its printer says so once it catches up.
pub fn take_local_dropped() -> u64 {
    std::mem::take(&mut sinks().local_dropped)
}

/// The tracing writer: `tracing_subscriber::fmt().with_writer(Diagnostics)`.
pub struct Diagnostics;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Diagnostics {
    type Writer = EventText;
    fn make_writer(&'a self) -> EventText {
        EventText(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A console that reads nothing costs the logger nothing: lines past
    /// its queue are dropped and counted, at once; attached consoles get
    /// theirs (up to their own queue) meanwhile.
    #[test]
    fn a_full_console_queue_drops_lines_instead_of_waiting() {
        let (queue, local) = std::sync::mpsc::sync_channel(2);
        set_local(Some(queue));
        let mut attached = subscribe();
        let start = std::time::Instant::now();
        for i in 0..5 {
            let mut event = Diagnostics.make_writer_for_test();
            let _ = writeln!(event, "line {i}");
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(take_local_dropped(), 3);
        assert_eq!(take_local_dropped(), 0, "the count is reset once said");
        let got: Vec<String> = local.try_iter().collect();
        assert_eq!(got, ["line 0\n", "line 1\n"]);
        let mut seen = Vec::new();
        while let Ok(l) = attached.lines.try_recv() {
            seen.push(l);
        }
        assert_eq!(seen.len(), 5);
        // Closed: back to stderr, and the subscription is gone when dropped.
        drop(local);
        let _ = writeln!(Diagnostics.make_writer_for_test(), "to stderr");
        assert!(!local_active());
        drop(attached);
        assert!(sinks().attached.is_empty());
    }

    impl Diagnostics {
        fn make_writer_for_test(&self) -> EventText {
            tracing_subscriber::fmt::MakeWriter::make_writer(self)
        }
    }
}
