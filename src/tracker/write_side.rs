//! The hub's direct writes to a plain-TCP member that has nothing queued.
//!
//! Handing each batch's bytes to a member's task costs a channel push, a
//! wake-up of the runtime's worker, a turn of the task's `select!` and then
//! the `write()` itself; in B9 (25-member rooms, each message to 24 sockets)
//! and B2 (one message at a time) that hand-off was about half the
//! tracker's CPU per delivery. While a member's task has nothing to write,
//! the hub writes the member's socket itself with one non-blocking `send`.
//! Whatever the socket does not take (a full buffer: a slow reader) goes to
//! the task's outbox as before, and from then on the task writes everything
//! until it has written it all out and hands the socket back.
//!
//! Who writes is decided under one mutex per connection, held by the hub
//! for a non-blocking `send` and by the task only to change hands, never
//! across an await or a blocking call: bytes reach the socket in the order
//! they were handed over, and a line cut by a partial `send` is finished
//! before any other line starts. TLS connections have no `DirectSocket`:
//! their record layer is the task's alone.

use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{Mutex, MutexGuard};

/// Who writes the connection's socket now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The task has nothing to write: the hub sends directly.
    Hub,
    /// The task writes; the hub queues in the outbox. `cut_line`: the hub's
    /// last `send` ended inside a line, whose rest is the first item it
    /// queued after (the task must send that before a line of its own).
    Task { cut_line: bool },
    /// The task is ending (or ended): the hub never touches the socket
    /// again, so the task may close it.
    Closed,
}

/// Errors after which nothing written reaches the peer again.
fn peer_is_gone(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionReset | BrokenPipe | ConnectionAborted | NotConnected | TimedOut
    )
}

/// The socket of a plain-TCP connection, shared by its task and the hub.
pub struct DirectSocket {
    /// Open for as long as the writer is not `Closed`: the task sets
    /// `Closed` under the lock before it drops its stream.
    fd: RawFd,
    writer: Mutex<Writer>,
    /// Why the hub's write found the socket broken, if it did. The error
    /// is the socket's to report once: after the hub met a reset, the
    /// task's read sees only an end, and this says what it was.
    broken: std::sync::OnceLock<std::io::ErrorKind>,
}

/// What the hub's attempt to write directly did.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// All of it is on the socket.
    All,
    /// The task writes: queue the bytes from `from` on in its outbox,
    /// under the same lock (the writer says whether `from` cuts a line).
    Queue { from: usize },
    /// The socket is broken (reset, or closed by the peer and written to):
    /// nothing more can reach the peer, so nothing is queued. The task,
    /// now the writer, finds the same error on its next read and leaves.
    Broken,
}

impl DirectSocket {
    /// `fd` must stay open until [`DirectSocket::close`] has returned. The
    /// task starts as the writer (its registration replies go first).
    pub fn new(fd: RawFd) -> DirectSocket {
        DirectSocket {
            fd,
            writer: Mutex::new(Writer::Task { cut_line: false }),
            broken: std::sync::OnceLock::new(),
        }
    }

    /// What the hub's write found, when it found the socket broken.
    pub fn broken(&self) -> Option<std::io::ErrorKind> {
        self.broken.get().copied()
    }

    // A poisoned lock means a panic while holding it, which only a bug
    // causes; the state it guards is a plain enum and stays meaningful.
    pub fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hub, holding the lock: writes `bytes` directly if the hub is the
    /// writer, and makes the task the writer when the socket did not take
    /// all of them. Keep the guard until what is left is queued.
    pub fn send(&self, writer: &mut Writer, bytes: &[u8]) -> Sent {
        if *writer != Writer::Hub {
            return Sent::Queue { from: 0 };
        }
        // SAFETY: the fd is open while the writer is not `Closed` (checked
        // above under the lock the task takes to close it); ManuallyDrop
        // keeps this borrowed view from closing it. std's `write` on a
        // socket is a `send` (MSG_NOSIGNAL on Linux), non-blocking here
        // because tokio set O_NONBLOCK when it registered the socket.
        let socket = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(self.fd) });
        let mut sent = 0;
        while sent < bytes.len() {
            match (&*socket).write(&bytes[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Full: the task writes the rest when the socket drains.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Broken for good: when a crowd drops at once, the hub
                // finds their sockets reset here before their tasks have
                // run, and telling it saves queueing every later line to
                // each. The task's read fails the same way, so it leaves.
                Err(e) if peer_is_gone(e.kind()) => {
                    let _ = self.broken.set(e.kind());
                    *writer = Writer::Task { cut_line: false };
                    return Sent::Broken;
                }
                // Anything else (out of buffers, say) may pass: the task
                // writes what is left and finds out.
                Err(_) => break,
            }
        }
        if sent == bytes.len() {
            return Sent::All;
        }
        *writer = Writer::Task {
            cut_line: sent > 0 && bytes[sent - 1] != b'\n',
        };
        Sent::Queue { from: sent }
    }

    /// The task, with nothing left to write and its outbox empty (checked
    /// by `outbox_empty` under the lock, since the hub queues under it):
    /// the hub writes from now on. Returns whether it does.
    pub fn hand_to_hub(&self, outbox_empty: impl FnOnce() -> bool) -> bool {
        let mut writer = self.lock();
        match *writer {
            Writer::Closed => false,
            Writer::Hub => true,
            Writer::Task { .. } => {
                if outbox_empty() {
                    *writer = Writer::Hub;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// The task is about to write something of its own: from now on it is
    /// the writer. Returns whether the outbox starts with the rest of a
    /// line the hub cut (the task must write that first).
    pub fn take_back(&self) -> bool {
        let mut writer = self.lock();
        let cut = matches!(*writer, Writer::Task { cut_line: true });
        if *writer != Writer::Closed {
            *writer = Writer::Task { cut_line: false };
        }
        cut
    }

    /// The task ends: the hub never writes again, and the socket may be
    /// closed. Returns whether the outbox starts with the rest of a cut line.
    pub fn close(&self) -> bool {
        let mut writer = self.lock();
        let cut = matches!(*writer, Writer::Task { cut_line: true });
        *writer = Writer::Closed;
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    #[test]
    fn the_hub_writes_only_while_it_is_the_writer_and_a_cut_line_is_reported() {
        let (server, mut client) = pair();
        let direct = DirectSocket::new(server.as_raw_fd());
        // The task writes first (registration).
        assert_eq!(
            direct.send(&mut direct.lock(), b"early\r\n"),
            Sent::Queue { from: 0 }
        );
        assert!(direct.hand_to_hub(|| true));
        assert_eq!(
            direct.send(&mut direct.lock(), b"one\r\ntwo\r\n"),
            Sent::All
        );
        let mut got = [0u8; 10];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one\r\ntwo\r\n");

        // A reader that stops reading: the socket takes part of a big
        // write, the rest is queued, and the task becomes the writer.
        let line = {
            let mut l = vec![b'x'; 999];
            l.push(b'\n');
            l
        };
        let mut from = None;
        let mut total = 0;
        for _ in 0..100_000 {
            match direct.send(&mut direct.lock(), &line) {
                Sent::All => total += line.len(),
                Sent::Queue { from: n } => {
                    from = Some(n);
                    total += n;
                    break;
                }
                Sent::Broken => panic!("a socket nobody reads is not broken"),
            }
        }
        let from = from.expect("a socket nobody reads fills up");
        assert!(total > 0);
        let writer = *direct.lock();
        assert_eq!(
            writer,
            Writer::Task {
                cut_line: from > 0 && from < line.len()
            }
        );
        // Now the hub queues everything, whole.
        assert_eq!(
            direct.send(&mut direct.lock(), b"z\n"),
            Sent::Queue { from: 0 }
        );
        // The task will not hand back while its outbox holds anything.
        assert!(!direct.hand_to_hub(|| false));
        assert_eq!(direct.take_back(), from > 0 && from < line.len());
        assert!(!direct.take_back(), "taking back forgets the cut line");
        // Closed: never handed back, never written.
        assert!(!direct.close());
        assert!(!direct.hand_to_hub(|| true));
        assert_eq!(
            direct.send(&mut direct.lock(), b"late\n"),
            Sent::Queue { from: 0 }
        );
        drop(server);
    }

    /// The peer reset the connection (closed with lines unread): the
    /// hub hears it from its own write, and the task becomes the writer.
    #[test]
    fn a_reset_socket_is_reported_broken() {
        let (server, client) = pair();
        let direct = DirectSocket::new(server.as_raw_fd());
        assert!(direct.hand_to_hub(|| true));
        assert_eq!(direct.send(&mut direct.lock(), b"unread\r\n"), Sent::All);
        socket2::SockRef::from(&client)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(client);
        // Waits for the reset to arrive, as the task's read would.
        server.set_nonblocking(false).unwrap();
        let mut buf = [0u8; 16];
        let read = (&server).read(&mut buf);
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        assert_eq!(direct.broken(), None);
        assert_eq!(direct.send(&mut direct.lock(), b"late\r\n"), Sent::Broken);
        assert_eq!(*direct.lock(), Writer::Task { cut_line: false });
        // The read took the reset; the write, after it, a broken pipe.
        assert_eq!(direct.broken(), Some(std::io::ErrorKind::BrokenPipe));
        assert!(!direct.close());
    }

    #[test]
    fn a_line_cut_by_a_full_socket_is_reported_until_the_task_takes_it() {
        let (server, _client) = pair();
        let direct = DirectSocket::new(server.as_raw_fd());
        assert!(direct.hand_to_hub(|| true));
        // One write far bigger than any socket buffer, no newline before
        // its end: the cut is inside the line.
        let mut big = vec![b'y'; 64 * 1024 * 1024];
        if let Some(last) = big.last_mut() {
            *last = b'\n';
        }
        let Sent::Queue { from } = direct.send(&mut direct.lock(), &big) else {
            panic!("64 MiB fit in a socket nobody reads");
        };
        assert!(from > 0 && from < big.len());
        assert!(direct.close(), "the close reports the cut line");
    }
}
