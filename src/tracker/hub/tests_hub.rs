//! The hub as a whole, in-process: batches handled as `run` handles them,
//! delivered to real sockets on 127.0.0.1 the hub writes itself.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::proto::Message;
use crate::proto::caps::Caps;
use crate::tracker::shared::{
    ConnControl, ConnHandle, ConnId, HubRequest, RegisterOutcome, Registration, SendBudget,
};
use crate::tracker::transcript::{LogSync, Transcript};

/// One member: the tracker's end of its socket, the client's end, and
/// what the hub queued for its task.
struct Member {
    id: ConnId,
    client: BufReader<TcpStream>,
    /// The tracker's end, kept open as the task keeps it.
    server: TcpStream,
    outbox: mpsc::UnboundedReceiver<Bytes>,
}

impl Member {
    /// The next line the client reads (waits for it, up to 10 s).
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.client.read_line(&mut line).expect("read");
        line.trim_end().to_string()
    }
}

fn hub() -> (Hub, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let transcript = Transcript::open(dir.path(), LogSync::Write).expect("transcript");
    let config = super::tests::config(crate::tracker::policy::P2pPolicy::Allow);
    (Hub::new(config, transcript), dir)
}

/// Registers `nick` over a real socket pair and hands its socket to the
/// hub, as its task does once the welcome is written.
fn join(hub: &mut Hub, listener: &TcpListener, id: ConnId, nick: &str) -> Member {
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (server, _) = listener.accept().expect("accept");
    server.set_nonblocking(true).expect("nonblocking");
    let control = Arc::new(
        ConnControl::new(
            1 << 20,
            Arc::new(SendBudget::new(1 << 30)),
            &CancellationToken::new(),
        )
        .with_socket(server.as_raw_fd()),
    );
    let (tx, mut outbox) = mpsc::unbounded_channel();
    let (reply, outcome) = oneshot::channel();
    let reg = Registration {
        conn: id,
        nick: nick.into(),
        user: nick.into(),
        realname: nick.into(),
        ip: "127.0.0.1".parse().expect("ip"),
        caps: Caps::default(),
        account: None,
        handle: ConnHandle {
            outbox: tx,
            control: control.clone(),
        },
    };
    hub.handle_batch(&mut vec![HubRequest::Register(Box::new(reg), reply)]);
    assert_eq!(outcome.blocking_recv(), Ok(RegisterOutcome::Welcome));
    // The welcome went to the task; this test's "task" drops it.
    while outbox.try_recv().is_ok() {}
    let direct = control.direct.as_ref().expect("plain TCP");
    assert!(direct.hand_to_hub(|| true));
    Member {
        id,
        client: BufReader::new(client),
        server,
        outbox,
    }
}

fn line(conn: ConnId, text: &str) -> HubRequest {
    HubRequest::Line {
        conn,
        msg: Message::parse(text).expect("a line"),
    }
}

/// A crowd dropping at once: the hub finds a socket reset by its own
/// write before the member's task has said so, queues nothing for it,
/// and makes nothing more for it until its leave, which the others still
/// hear.
#[test]
fn a_socket_the_hub_finds_reset_is_sent_nothing_more() {
    let (mut hub, _dir) = hub();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut alice = join(&mut hub, &listener, 1, "alice");
    let bob = join(&mut hub, &listener, 2, "bob");
    let mut carol = join(&mut hub, &listener, 3, "carol");
    // Alice hears the others come (her own welcome went to her task).
    assert_eq!(alice.line(), ":bob!bob@127.0.0.1 JOIN #general");
    assert_eq!(alice.line(), ":carol!carol@127.0.0.1 JOIN #general");
    // Bob's client goes with lines unread: its close resets the socket.
    let (bob, _bob_server, mut bob_outbox) = reset(bob);

    hub.handle_batch(&mut vec![line(1, "PRIVMSG #general :one")]);
    assert!(hub.chat.gone.contains(&bob), "found by the hub's write");
    hub.handle_batch(&mut vec![line(1, "PRIVMSG #general :two")]);
    assert!(
        bob_outbox.try_recv().is_err(),
        "nothing queued for a reset socket"
    );
    assert_eq!(carol.line(), ":alice!alice@127.0.0.1 PRIVMSG #general :one");
    assert_eq!(carol.line(), ":alice!alice@127.0.0.1 PRIVMSG #general :two");

    hub.handle_batch(&mut vec![HubRequest::Leave {
        conn: bob,
        reason: "Connection reset by peer".into(),
    }]);
    assert!(hub.chat.gone.is_empty(), "a handled leave is forgotten");
    let quit = ":bob!bob@127.0.0.1 QUIT :Connection reset by peer";
    assert_eq!(alice.line(), quit);
    assert_eq!(carol.line(), quit);
    // Their own goodbye is still addressed to them, as to any leaver.
    let goodbye = bob_outbox.try_recv().expect("the goodbye");
    assert_eq!(
        &goodbye[..],
        b"ERROR :Closing link: 127.0.0.1 (Connection reset by peer)\r\n"
    );
    assert!(bob_outbox.try_recv().is_err());
    // Nothing else reached alice or carol.
    hub.handle_batch(&mut vec![line(3, "PRIVMSG #general :three")]);
    assert_eq!(
        alice.line(),
        ":carol!carol@127.0.0.1 PRIVMSG #general :three"
    );
    let mut rest = [0u8; 1];
    carol
        .client
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    assert!(carol.client.read(&mut rest).is_err(), "carol got no echo");
}

/// Closes the client's end with lines unread, so the tracker's end is reset,
/// and waits until the reset has arrived there (as the task's read would).
fn reset(member: Member) -> (ConnId, TcpStream, mpsc::UnboundedReceiver<Bytes>) {
    let Member {
        id,
        client,
        server,
        outbox,
    } = member;
    let client = client.into_inner();
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    let mut unread = [0u8; 1];
    assert_eq!(client.peek(&mut unread).expect("peek"), 1);
    drop(client);
    server.set_nonblocking(false).expect("blocking");
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut probe = [0u8; 1];
    let reset = server.peek(&mut probe);
    assert!(reset.is_err(), "{reset:?}");
    server.set_nonblocking(true).expect("nonblocking");
    (id, server, outbox)
}

/// A crowd dropping at once, their leaves in one batch, only the first
/// two noted by their tasks: what the first leaves made is delivered
/// before the rest are handled (cut low here), which finds the others'
/// sockets reset. Those who stayed hear every QUIT once, in order; nothing
/// is queued for the crowd but each one's own goodbye; `chat.log` has
/// each leave.
#[test]
fn a_crowd_dropped_in_one_batch_is_delivered_in_order_and_queued_nothing() {
    let (mut hub, dir) = hub();
    hub.deliver_early_from = 4;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut alice = join(&mut hub, &listener, 1, "alice");
    let mut crowd = Vec::new();
    for i in 0..6 {
        crowd.push(join(&mut hub, &listener, 10 + i, &format!("m{i}")));
    }
    let mut carol = join(&mut hub, &listener, 2, "carol");
    for i in 0..6 {
        assert_eq!(alice.line(), format!(":m{i}!m{i}@127.0.0.1 JOIN #general"));
    }
    assert_eq!(alice.line(), ":carol!carol@127.0.0.1 JOIN #general");
    let crowd: Vec<_> = crowd.into_iter().map(reset).collect();
    hub.departures.note(crowd[0].0);
    hub.departures.note(crowd[1].0);
    let leaves = crowd
        .iter()
        .map(|(id, ..)| HubRequest::Leave {
            conn: *id,
            reason: "Connection reset by peer".into(),
        })
        .collect();
    hub.handle_batch(&mut { leaves });
    assert!(hub.chat.gone.is_empty(), "every leave handled");
    for member in [&mut alice, &mut carol] {
        for i in 0..6 {
            assert_eq!(
                member.line(),
                format!(":m{i}!m{i}@127.0.0.1 QUIT :Connection reset by peer")
            );
        }
    }
    // Nothing but each one's own goodbye, and that only where the hub
    // already knew the socket was reset when it was made: m2 to m5, found
    // by the delivery after m0's leave (so their task writes, and it is
    // queued). m0 and m1's went with that delivery and the last, whose
    // write found their sockets reset and dropped it. Had the batch been
    // delivered whole, m2 to m5 would have had it dropped too.
    let queued: Vec<Vec<String>> = crowd
        .into_iter()
        .map(|(_, _, mut outbox)| {
            let mut queued = Vec::new();
            while let Ok(b) = outbox.try_recv() {
                queued.push(String::from_utf8_lossy(&b).trim_end().to_string());
            }
            queued
        })
        .collect();
    let goodbye = "ERROR :Closing link: 127.0.0.1 (Connection reset by peer)";
    assert_eq!(queued[..2], [Vec::<String>::new(), Vec::new()]);
    for q in &queued[2..] {
        assert_eq!(q, &[goodbye]);
    }
    hub.handle_batch(&mut vec![line(2, "PRIVMSG #general :still two")]);
    assert_eq!(
        alice.line(),
        ":carol!carol@127.0.0.1 PRIVMSG #general :still two"
    );
    let log = std::fs::read_to_string(dir.path().join("chat.log")).expect("chat.log");
    let leaves: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(" leave "))
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(
        leaves,
        (0..6)
            .map(|i| format!("m{i} (Connection reset by peer)"))
            .collect::<Vec<_>>()
    );
}

/// The delivery list the hub keeps from batch to batch grows with a crowd
/// (each message to everyone); once the crowd has left it is no bigger
/// than those still here need (after 10,000 logins it held 1.25 MiB).
#[test]
fn the_kept_delivery_list_shrinks_once_a_crowd_left() {
    let (mut hub, _dir) = hub();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let _members: Vec<Member> = (1..=20u64)
        .map(|id| join(&mut hub, &listener, id, &format!("m{id}")))
        .collect();
    let said = (1..=20u64)
        .map(|id| line(id, &format!("PRIVMSG #general :hello from {id}")))
        .collect();
    hub.handle_batch(&mut { said });
    let kept = hub.chat.out.pending.capacity();
    assert!(kept >= 20 * 19, "kept for the next batch: {kept}");
    let leaves = (2..=20u64)
        .map(|conn| HubRequest::Leave {
            conn,
            reason: "Quit: bye".into(),
        })
        .collect();
    hub.handle_batch(&mut { leaves });
    assert_eq!(hub.chat.state.users.len(), 1);
    let kept = hub.chat.out.pending.capacity();
    assert!(kept <= 1, "one member left, the list kept: {kept}");
}
