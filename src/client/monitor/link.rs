//! One task per tracker: owns the connection, hands every message to the
//! monitor's loop, sends what the loop gives it, keeps the link alive, and
//! when the tracker goes away logs in again after a backoff, with the
//! password and name that worked, without asking anyone (the screen is
//! taken by then).

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backoff::{Backoff, jitter};
use super::model::{LinkNews, TrackerId};
use super::servers::TrackerSpec;
use crate::client::connection::{ConnectError, Connection};
use crate::client::session::{self, ClientError, Keepalive, LoggedIn, Options, Prompter};
use crate::client::state::{App, Event, closing_reason};
use crate::prompt::PromptError;
use crate::proto::Message;

/// What a link tells the monitor's loop.
pub enum FromLink {
    Message(Message),
    /// Logged in (again): the chat state of the new session.
    Connected {
        app: Box<App>,
        pending: Vec<Event>,
    },
    News(LinkNews),
}

/// What the monitor's loop tells a link.
#[derive(Debug)]
pub enum ToLink {
    Send(Message),
    /// Leave the tracker (QUIT with this reason) and end.
    Quit(String),
}

/// How many names with `_` added a reconnection tries when its name is
/// taken (our own old connection, not timed out yet, holds it).
const OTHER_NAMES: usize = 3;

/// Asks nobody: a reconnection behind the full screen.
struct Nobody;

impl Prompter for Nobody {
    fn interactive(&self) -> bool {
        false
    }
    fn line(&mut self, _: &str) -> Result<String, PromptError> {
        Err(PromptError::NoTerminal)
    }
    fn secret(&mut self, _: &str) -> Result<String, PromptError> {
        Err(PromptError::NoTerminal)
    }
    fn say(&mut self, _: &str) {}
}

/// Whether trying again could help: the network or the tracker's state
/// can change; a refused certificate or password cannot.
pub fn worth_retrying(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Connect(_) | ClientError::Lost(_) | ClientError::Closed(_)
    )
}

/// The reason in a lost link's words, without "connection lost" twice,
/// on one line (a connect error's hints for a person follow on others).
pub fn reason(e: &ClientError) -> String {
    match e {
        ClientError::Lost(why) => why.clone(),
        // The address is in the line already.
        ClientError::Connect(ConnectError::Connect { source, .. }) => source.to_string(),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Logs in again without asking: a taken name gets `_` added.
async fn login_again(opts: &mut Options) -> Result<LoggedIn, ClientError> {
    let mut tries = 0;
    loop {
        match session::login(opts, &mut Nobody).await {
            Err(ClientError::NickRefused(why))
                if tries < OTHER_NAMES && why.starts_with("That username is taken") =>
            {
                tries += 1;
                if let Some(name) = &mut opts.user {
                    name.push('_');
                }
            }
            other => return other,
        }
    }
}

enum Ended {
    Quit(String),
    Lost(String),
    /// A tracker operator removed us (KILL): coming back at once would
    /// undo what they did.
    Killed(String),
}

/// Whether the tracker's closing reason is a tracker operator's KILL
/// (`Killed by alice (spam)`).
fn killed(reason: &str) -> bool {
    reason == "Killed" || reason.starts_with("Killed by ")
}

/// Runs a tracker's link until the loop says to quit. `first` is the
/// session logged in at start, or why that failed (then the link starts
/// by waiting).
/// Which tracker a link is for and how it logs in again.
pub struct Setup {
    pub id: TrackerId,
    pub spec: TrackerSpec,
    /// For the hints of a refusal.
    pub servers_file: Option<PathBuf>,
    /// With the password and name that worked (when one did).
    pub opts: Options,
}

pub async fn run(
    setup: Setup,
    first: Result<LoggedIn, String>,
    to_loop: mpsc::UnboundedSender<(TrackerId, FromLink)>,
    mut inbox: mpsc::UnboundedReceiver<ToLink>,
) {
    let Setup {
        id,
        spec,
        servers_file,
        mut opts,
    } = setup;
    let tell = |what: FromLink| to_loop.send((id, what)).is_ok();
    let mut backoff = Backoff::new();
    let mut session = match first {
        Ok(s) => Some(s),
        Err(why) => {
            let retry_in = backoff.next_delay(Instant::now(), jitter());
            tell(FromLink::News(LinkNews::RetryFailed {
                reason: why,
                retry_in,
            }));
            if !wait(retry_in, &mut inbox).await {
                return;
            }
            None
        }
    };
    loop {
        let s = match session.take() {
            Some(s) => s,
            None => match login_again(&mut opts).await {
                Ok(s) => s,
                Err(e) if worth_retrying(&e) => {
                    let retry_in = backoff.next_delay(Instant::now(), jitter());
                    tell(FromLink::News(LinkNews::RetryFailed {
                        reason: reason(&e),
                        retry_in,
                    }));
                    if !wait(retry_in, &mut inbox).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tell(FromLink::News(LinkNews::GaveUp {
                        reason: super::explain(&e, &spec, servers_file.as_deref()),
                    }));
                    // Nothing more to do but wait to be told to end.
                    while let Some(ToLink::Send(_)) = inbox.recv().await {}
                    return;
                }
            },
        };
        backoff.connected(Instant::now());
        // Direct sessions are not offered from the monitor.
        let LoggedIn {
            mut conn,
            app,
            pending,
            p2p_address: _,
        } = s;
        if !tell(FromLink::Connected {
            app: Box::new(app),
            pending,
        }) {
            return;
        }
        match pump(&mut conn, &mut inbox, &tell).await {
            Ended::Quit(why) => {
                for msg in session::leave(&mut conn, &why).await {
                    tell(FromLink::Message(msg));
                }
                return;
            }
            Ended::Killed(why) => {
                conn.close().await;
                tell(FromLink::News(LinkNews::GaveUp {
                    reason: format!(
                        "removed by a tracker operator ({why}); start the monitor again to come back"
                    ),
                }));
                while let Some(ToLink::Send(_)) = inbox.recv().await {}
                return;
            }
            Ended::Lost(why) => {
                conn.close().await;
                let retry_in = backoff.next_delay(Instant::now(), jitter());
                tell(FromLink::News(LinkNews::Lost {
                    reason: why,
                    retry_in,
                }));
                if !wait(retry_in, &mut inbox).await {
                    return;
                }
            }
        }
    }
}

/// Waits `delay` before the next try; false when told to quit meanwhile.
/// Lines sent meanwhile are dropped: the model refuses to send to a
/// tracker that is down, so only a race brings any.
async fn wait(delay: Duration, inbox: &mut mpsc::UnboundedReceiver<ToLink>) -> bool {
    let until = Instant::now() + delay;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return true,
            cmd = inbox.recv() => match cmd {
                Some(ToLink::Send(_)) => {}
                Some(ToLink::Quit(_)) | None => return false,
            },
        }
    }
}

/// Moves messages both ways until the link ends or the loop says quit.
async fn pump(
    conn: &mut Connection,
    inbox: &mut mpsc::UnboundedReceiver<ToLink>,
    tell: &impl Fn(FromLink) -> bool,
) -> Ended {
    let mut alive = Keepalive::new();
    // The tracker's ERROR says why it closes; the end of the stream follows.
    let mut closing: Option<String> = None;
    loop {
        tokio::select! {
            incoming = conn.recv() => match session::received(incoming) {
                Ok(Some(msg)) => {
                    alive.heard();
                    if msg.command == "ERROR" {
                        closing = Some(closing_reason(msg.param_at(0).unwrap_or("")));
                    }
                    if !tell(FromLink::Message(msg)) {
                        return Ended::Quit("Leaving".into());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    return match closing {
                        Some(why) if killed(&why) => Ended::Killed(why),
                        Some(why) => Ended::Lost(why),
                        None => Ended::Lost(reason(&e)),
                    };
                }
            },
            cmd = inbox.recv() => match cmd {
                Some(ToLink::Send(m)) => {
                    if let Err(e) = conn.send(&m).await {
                        return Ended::Lost(e.to_string());
                    }
                }
                Some(ToLink::Quit(why)) => return Ended::Quit(why),
                None => return Ended::Quit("Leaving".into()),
            },
            _ = tokio::time::sleep_until(alive.deadline()) => match alive.due() {
                Ok(Some(ping)) => {
                    if let Err(e) = conn.send(&ping).await {
                        return Ended::Lost(e.to_string());
                    }
                }
                Ok(None) => {}
                Err(e) => return Ended::Lost(reason(&e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_tried_again() {
        assert!(killed("Killed by alice (spam)"));
        assert!(killed("Killed"));
        assert!(!killed("tracker shutting down"));
        assert!(!killed("Killedby"));
        assert!(worth_retrying(&ClientError::Lost("reset".into())));
        assert!(worth_retrying(&ClientError::Closed("full".into())));
        assert!(!worth_retrying(&ClientError::WrongPassword));
        assert!(!worth_retrying(&ClientError::Untrusted(
            crate::tls::Fingerprint([0; 32])
        )));
        let refused = ClientError::Connect(ConnectError::Connect {
            addr: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        });
        assert!(worth_retrying(&refused));
        assert_eq!(reason(&refused), "connection refused");
    }
}
