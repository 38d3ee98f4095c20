//! Login (trust, password, username) and the plain-mode loop.

use std::io::Write;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connection::{ConnectError, Connection, Incoming};
use super::direct::DirectLinks;
use super::known::{Known, KnownTrackers};
use super::plain::PlainRenderer;
use super::state::{App, Event, WANTED_CAPS, closing_reason, nick_refusal};
use crate::prompt::PromptError;
use crate::proto::Message;
use crate::proto::numeric::*;
use crate::tls::Fingerprint;

/// Most password attempts before giving up.
const PASSWORD_TRIES: usize = 3;
/// Silence after which the client checks the tracker is still there.
const PING_AFTER: Duration = Duration::from_secs(60);
/// How long to wait for the tracker to confirm a QUIT.
const QUIT_WAIT: Duration = Duration::from_secs(2);
/// How long piped input's last commands may wait in silence for their
/// answers before the client leaves anyway. Silence, not in all: a file
/// of lines piped in goes out at the tracker's flood-control pace (a few
/// lines a second past a burst), and each echo shows it is still coming.
pub const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// How long the first connection waits for the tracker to say whether it
/// needs a password.
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// The plain mode shows one's own line as `(sending…)` once the tracker
/// has not confirmed it for this long; in the normal case the echo comes
/// first and the line is printed once.
pub const PLAIN_PENDING_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

pub struct Options {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub user: Option<String>,
    /// From `--password-file` or `CONFAB_PASSWORD`; `None` means ask.
    pub password: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    pub accept_new: bool,
    pub known: KnownTrackers,
    /// `--account`: log in to it with SASL PLAIN.
    pub account: Option<String>,
    /// Its password (`--account-password-file`); `None` means ask.
    pub account_password: Option<zeroize::Zeroizing<String>>,
}

impl Options {
    pub fn tracker(&self) -> String {
        super::known::key(&self.host, self.port)
    }
}

/// Asks the person at the keyboard: [`crate::prompt::ask`] in the binary,
/// scripted answers in tests.
pub trait Prompter {
    /// Whether a person can be asked at all.
    fn interactive(&self) -> bool;
    fn line(&mut self, prompt: &str) -> Result<String, PromptError>;
    fn secret(&mut self, prompt: &str) -> Result<String, PromptError>;
    /// Tells the person something during login (a tracker's notice, why a
    /// name was refused). The monitor's reconnections, behind a full
    /// screen, keep it to themselves.
    fn say(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{0}")]
    Usage(String),
    #[error(
        "\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @  WARNING: THE TRACKER'S FINGERPRINT HAS CHANGED!        @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         Someone may be intercepting your connection, or the tracker made a new certificate.\n\
         tracker:  {tracker}\n expected: {expected}\n received: {received}\n\
         Refusing to connect. If the tracker really made a new certificate (ask its operator,\n\
         and compare the fingerprint it printed), forget the old one with\n\
         \n    {forget}\n\n\
         then connect again: you will be asked to trust the new fingerprint."
    )]
    FingerprintChanged {
        tracker: String,
        expected: Fingerprint,
        received: Fingerprint,
        /// The command that forgets the old fingerprint.
        forget: String,
    },
    #[error(
        "the tracker's fingerprint {received} does not match --fingerprint {expected}; refusing to connect"
    )]
    FingerprintMismatch {
        expected: Fingerprint,
        received: Fingerprint,
    },
    #[error(
        "unknown tracker fingerprint {0}; not trusted (use --accept-new or --fingerprint to trust it without asking)"
    )]
    Untrusted(Fingerprint),
    #[error(
        "the tracker's certificate changed between two connections (was {expected}, now {received}); refusing to continue"
    )]
    FingerprintSwapped {
        expected: Fingerprint,
        received: Fingerprint,
    },
    #[error(
        "\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @  WARNING: NOT THE TRACKER THAT WAS ANNOUNCED!           @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         {name} was announced on the local network with the fingerprint\n    {announced}\n\
         but {tracker} presented\n    {received}\n\
         Someone on the network may be announcing a tracker that is not theirs. Refusing to connect.\n\
         Ask the tracker's operator for its address and fingerprint, and connect with\n\
         \n    client ADDRESS --fingerprint SHA256:..."
    )]
    AnnouncedFingerprintMismatch {
        name: String,
        tracker: String,
        announced: Fingerprint,
        received: Fingerprint,
    },
    /// No tracker answered on the local network (the text says what to do).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Browse(#[from] super::discover::BrowseError),
    #[error("wrong password")]
    WrongPassword,
    #[error("cannot log in to the account: {0}")]
    AccountRefused(String),
    #[error("the tracker needs a password: give it with --password-file PATH or CONFAB_PASSWORD")]
    PasswordNeeded,
    #[error("cancelled")]
    Cancelled,
    /// In the user's words: `That username is taken: alice`.
    #[error("{0}")]
    NickRefused(String),
    #[error("the tracker closed the connection: {0}")]
    Closed(String),
    #[error("connection to the tracker lost: {0}")]
    Lost(String),
    #[error("terminal error: {0}")]
    Terminal(std::io::Error),
    #[error("cannot use the known trackers file {file}: {source}")]
    KnownFile {
        file: String,
        source: std::io::Error,
    },
}

impl ClientError {
    /// 1: network trouble; 2: usage; 3: trust or authentication refused;
    /// 4: no tracker found on the local network;
    /// 130: Ctrl+C (or Ctrl+D) at a question, as a shell reports SIGINT.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Cancelled => 130,
            ClientError::Usage(_) | ClientError::NickRefused(_) => 2,
            ClientError::FingerprintChanged { .. }
            | ClientError::FingerprintMismatch { .. }
            | ClientError::FingerprintSwapped { .. }
            | ClientError::AnnouncedFingerprintMismatch { .. }
            | ClientError::Untrusted(_)
            | ClientError::WrongPassword
            | ClientError::AccountRefused(_)
            | ClientError::PasswordNeeded => 3,
            ClientError::NotFound(_) => 4,
            _ => 1,
        }
    }
}

/// A logged-in connection, ready for the chat loop.
pub struct LoggedIn {
    pub conn: Connection,
    pub app: App,
    /// Events from the login exchange not shown yet (the welcome).
    pub pending: Vec<Event>,
    /// The address direct sessions' offers name instead of the one the
    /// tracker connection uses (`--p2p-address`).
    pub p2p_address: Option<std::net::IpAddr>,
}

impl LoggedIn {
    /// The links of direct sessions: they listen where the tracker
    /// connection leaves this machine.
    pub fn direct_links(&mut self) -> DirectLinks {
        let ip = self
            .conn
            .local_addr()
            .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip());
        let links = DirectLinks::new(ip, self.p2p_address);
        self.app.sessions.fingerprint = links.fingerprint();
        links
    }
}

enum Attempt {
    // Boxed: a login happens once, and the enum stays small either way.
    Ok(Box<LoggedIn>),
    WrongPassword(Connection),
    /// Taken or invalid, with the tracker's reason.
    NickRefused(Connection, String),
}

/// What the tracker chosen from the local network's announcements
/// claimed to be (`client::discover`).
pub struct Announced {
    pub name: String,
    /// `None`: announced without TLS.
    pub fingerprint: Option<Fingerprint>,
}

pub async fn login(opts: &mut Options, prompt: &mut dyn Prompter) -> Result<LoggedIn, ClientError> {
    login_announced(opts, prompt, None).await
}

/// [`login`] to a tracker found by its announcement: the certificate the
/// connection presents must be the one announced (else nothing is asked
/// or sent), and is then trusted, or not, as any tracker's.
pub async fn login_announced(
    opts: &mut Options,
    prompt: &mut dyn Prompter,
    announced: Option<&Announced>,
) -> Result<LoggedIn, ClientError> {
    let mut password = opts.password.clone();
    // Nobody to ask and no password given: try without one (an open
    // tracker), and say what is missing if the tracker wants one.
    let guessed_none = password.is_none() && !prompt.interactive();
    if guessed_none {
        password = Some(String::new());
    }
    // Logged in to an account, the name is the account's unless given.
    let mut nick = opts.user.clone().or_else(|| opts.account.clone());
    if let Some(account) = &opts.account
        && opts.account_password.is_none()
    {
        let question = format!(
            "Password for the account {}: ",
            crate::proto::sanitize::for_display(account)
        );
        let answer = asked(
            prompt.secret(&question),
            "no terminal to ask for the account's password: use --account-password-file or CONFAB_ACCOUNT_PASSWORD",
        )?;
        opts.account_password = Some(zeroize::Zeroizing::new(answer));
    }
    // A name the tracker would refuse is refused here, as typed: on the
    // wire a space cannot travel where IRC echoes the name back, so the
    // tracker's answer would show a different name.
    if let Some(n) = &nick
        && let Err(e) = crate::proto::nick::validate_nick(n)
    {
        let why = format!("That username is not allowed: {n:?}: {e}");
        if !prompt.interactive() {
            return Err(ClientError::NickRefused(why));
        }
        nick = Some(ask_nick(prompt, Some(&why))?);
    }
    let mut trusted: Option<Fingerprint> = None;
    let mut wrong_passwords = 0;
    // The tracker said it needs no password, so none was asked: a refusal
    // then means it does after all (a tracker without PASSWORD_NOTICE).
    let mut assumed_open = false;
    loop {
        let (mut conn, fp) = Connection::open(&opts.host, opts.port, opts.tls).await?;
        if let Some(fp) = fp {
            match trusted {
                None => {
                    if let Some(Announced {
                        name,
                        fingerprint: Some(said),
                    }) = announced
                        && *said != fp
                    {
                        return Err(ClientError::AnnouncedFingerprintMismatch {
                            name: name.clone(),
                            tracker: opts.tracker(),
                            announced: *said,
                            received: fp,
                        });
                    }
                    check_trust(opts, &fp, prompt)?;
                    trusted = Some(fp);
                }
                Some(expected) if expected != fp => {
                    return Err(ClientError::FingerprintSwapped {
                        expected,
                        received: fp,
                    });
                }
                Some(_) => {}
            }
        }
        if password.is_none() && prompt.interactive() && !needs_password(&mut conn).await? {
            password = Some(String::new());
            assumed_open = true;
        }
        if password.is_none() || nick.is_none() {
            // A person can take longer to answer than the tracker gives a
            // connection to log in, so nobody is asked while one is open:
            // ask, then connect again.
            conn.close().await;
            if password.is_none() {
                password = Some(ask_password(prompt)?);
            }
            if nick.is_none() {
                nick = Some(ask_nick(prompt, None)?);
            }
            continue;
        }
        let pw = password.clone().unwrap_or_default();
        let name = nick.clone().unwrap_or_default();
        match register(conn, &pw, &name, opts, prompt).await? {
            Attempt::Ok(done) => return Ok(*done),
            Attempt::WrongPassword(mut conn) => {
                conn.close().await;
                if guessed_none {
                    return Err(ClientError::PasswordNeeded);
                }
                if std::mem::take(&mut assumed_open) {
                    password = Some(ask_password(prompt)?);
                    continue;
                }
                wrong_passwords += 1;
                if opts.password.is_some()
                    || wrong_passwords == PASSWORD_TRIES
                    || !prompt.interactive()
                {
                    return Err(ClientError::WrongPassword);
                }
                prompt.say(&format!(
                    "Wrong password, try again ({} left).",
                    PASSWORD_TRIES - wrong_passwords
                ));
                password = Some(ask_password(prompt)?);
            }
            Attempt::NickRefused(mut conn, why) => {
                conn.close().await;
                if !prompt.interactive() {
                    return Err(ClientError::NickRefused(why));
                }
                nick = Some(ask_nick(prompt, Some(&why))?);
            }
        }
    }
}

/// Turns a failed question into the error the user sees.
fn asked(result: Result<String, PromptError>, no_terminal: &str) -> Result<String, ClientError> {
    result.map_err(|e| match e {
        PromptError::NoTerminal => ClientError::Usage(no_terminal.to_string()),
        PromptError::Interrupted | PromptError::Eof => ClientError::Cancelled,
        PromptError::Io(e) => ClientError::Usage(format!("cannot read the terminal: {e}")),
    })
}

/// Asks the tracker, on the connection opened to check trust, whether it
/// needs a password, so nobody is asked for one a tracker does not have.
///
/// The signal is [`crate::proto::caps::PASSWORD_NOTICE`], a `NOTICE *`
/// our tracker sends before its `CAP LS` reply when it has a password:
/// servers already greet unregistered connections with such notices, so
/// any IRC client ignores or shows it harmlessly. The other way, trying to
/// register without `PASS` and waiting for `464`, would count as a failed
/// login against the address's lockout, and on an open tracker would
/// register a member only to leave again (which ends a tracker that stops
/// when its last member leaves). When the answer does not come (not our
/// tracker, or too slow), the password is asked as before.
async fn needs_password(conn: &mut Connection) -> Result<bool, ClientError> {
    let lost = |e: std::io::Error| ClientError::Lost(e.to_string());
    conn.send(&Message::new("CAP").param("LS").param("302"))
        .await
        .map_err(lost)?;
    let answer = tokio::time::timeout(PROBE_WAIT, async {
        let mut told = false;
        loop {
            match conn.recv().await {
                Ok(Some(Incoming::Message(m))) => match m.command.as_str() {
                    "NOTICE" if m.param_at(1) == Some(crate::proto::caps::PASSWORD_NOTICE) => {
                        told = true
                    }
                    // `CAP * LS * :...` continues on another line.
                    "CAP" if m.param_at(1) == Some("LS") && m.param_at(2) != Some("*") => {
                        return Some(told);
                    }
                    _ => {}
                },
                Ok(Some(Incoming::Garbage)) => {}
                _ => return None,
            }
        }
    })
    .await;
    Ok(answer.ok().flatten().unwrap_or(true))
}

fn ask_password(prompt: &mut dyn Prompter) -> Result<String, ClientError> {
    asked(
        prompt.secret("The tracker needs a password. Password: "),
        "no terminal to ask for the password: use --password-file or CONFAB_PASSWORD",
    )
}

fn ask_nick(prompt: &mut dyn Prompter, why: Option<&str>) -> Result<String, ClientError> {
    if let Some(why) = why {
        prompt.say(why);
    }
    let no_terminal = why.map_or("no terminal to ask for a username: use --user NAME", |w| w);
    loop {
        let n = asked(prompt.line("Username: "), no_terminal)?;
        let n = n.trim().to_string();
        match crate::proto::nick::validate_nick(&n) {
            Ok(()) => return Ok(n),
            Err(e) => prompt.say(&format!("That username is not allowed: {n:?}: {e}")),
        }
    }
}

fn check_trust(
    opts: &Options,
    fp: &Fingerprint,
    prompt: &mut dyn Prompter,
) -> Result<(), ClientError> {
    let tracker = opts.tracker();
    let file_err = |source| ClientError::KnownFile {
        file: opts.known.path().display().to_string(),
        source,
    };
    if let Some(expected) = opts.fingerprint {
        if expected != *fp {
            return Err(ClientError::FingerprintMismatch {
                expected,
                received: *fp,
            });
        }
        if opts.known.check(&tracker, fp).map_err(file_err)? == Known::Unknown {
            opts.known.remember(&tracker, fp).map_err(file_err)?;
        }
        return Ok(());
    }
    match opts.known.check(&tracker, fp).map_err(file_err)? {
        Known::Match => Ok(()),
        Known::Changed(expected) => {
            // The file is named only when it is not the default one, so
            // the command works as shown.
            let file = match super::known::default_path() {
                Some(default) if default == opts.known.path() => String::new(),
                _ => format!(" --known-trackers '{}'", opts.known.path().display()),
            };
            Err(ClientError::FingerprintChanged {
                forget: format!("client --forget {tracker}{file}"),
                tracker,
                expected,
                received: *fp,
            })
        }
        Known::Unknown => {
            let trust = if opts.accept_new {
                prompt.say(&format!(
                    "Trusting new tracker {tracker} with fingerprint {fp}"
                ));
                true
            } else {
                prompt.say(&format!(
                    "The authenticity of tracker {tracker} can't be established."
                ));
                prompt.say(&format!("Its fingerprint is {fp}"));
                prompt.say("Compare it with the one the tracker printed when it started.");
                match prompt.line("Trust it and continue (yes/no)? ") {
                    Ok(answer) => {
                        matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "y")
                    }
                    Err(PromptError::Interrupted | PromptError::Eof) => {
                        return Err(ClientError::Cancelled);
                    }
                    Err(_) => return Err(ClientError::Untrusted(*fp)),
                }
            };
            if !trust {
                return Err(ClientError::Untrusted(*fp));
            }
            opts.known.remember(&tracker, fp).map_err(file_err)?;
            Ok(())
        }
    }
}

async fn register(
    mut conn: Connection,
    password: &str,
    nick: &str,
    opts: &Options,
    prompt: &mut dyn Prompter,
) -> Result<Attempt, ClientError> {
    // A plain connection to a TLS tracker is closed at the first line.
    let hint = if opts.tls {
        ""
    } else {
        " (is the tracker using TLS? then leave out --no-tls)"
    };
    let lost = |e: std::io::Error| ClientError::Lost(format!("{e}{hint}"));
    let current = nick.to_string();
    conn.send(&Message::new("CAP").param("LS").param("302"))
        .await
        .map_err(lost)?;
    if !password.is_empty() {
        conn.send(&Message::new("PASS").param(password))
            .await
            .map_err(lost)?;
    }
    conn.send(&Message::new("NICK").param(current.clone()))
        .await
        .map_err(lost)?;
    conn.send(
        &Message::new("USER")
            .param(current.clone())
            .param("0")
            .param("*")
            .param(current),
    )
    .await
    .map_err(lost)?;
    let mut offered: Vec<String> = Vec::new();
    let mut acked: Vec<String> = Vec::new();
    let mut bad_password = false;
    loop {
        let msg = match conn.recv().await.map_err(lost)? {
            None if bad_password => return Ok(Attempt::WrongPassword(conn)),
            None => return Err(ClientError::Lost(format!("closed during login{hint}"))),
            Some(Incoming::Garbage) => continue,
            Some(Incoming::Message(m)) => m,
        };
        match msg.command.as_str() {
            "PING" => conn
                .send(&Message::new("PONG").param(msg.param_at(0).unwrap_or("")))
                .await
                .map_err(lost)?,
            "CAP" => match msg.param_at(1).unwrap_or("") {
                "LS" => {
                    // `CAP * LS * :...` continues on another line (302).
                    let more = msg.params.len() > 3 && msg.param_at(2) == Some("*");
                    offered.extend(
                        msg.params
                            .last()
                            .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
                            .unwrap_or_default(),
                    );
                    if !more {
                        let has = |c: &str| offered.iter().any(|o| o.split('=').next() == Some(c));
                        let mut want: Vec<&str> =
                            WANTED_CAPS.iter().copied().filter(|c| has(c)).collect();
                        if opts.account.is_some() {
                            if !has("sasl") {
                                return Err(ClientError::AccountRefused(
                                    "this tracker keeps no accounts (it offers no SASL); leave out --account".into(),
                                ));
                            }
                            want.push("sasl");
                        }
                        if want.is_empty() {
                            conn.send(&Message::new("CAP").param("END"))
                                .await
                                .map_err(lost)?;
                        } else {
                            conn.send(&Message::new("CAP").param("REQ").param(want.join(" ")))
                                .await
                                .map_err(lost)?;
                        }
                    }
                }
                "ACK" => {
                    acked.extend(
                        msg.params
                            .last()
                            .map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
                            .unwrap_or_default(),
                    );
                    // With an account, CAP END waits for the SASL login.
                    let next = if opts.account.is_some() && acked.iter().any(|c| c == "sasl") {
                        Message::new("AUTHENTICATE").param("PLAIN")
                    } else {
                        Message::new("CAP").param("END")
                    };
                    conn.send(&next).await.map_err(lost)?;
                }
                "NAK" => conn
                    .send(&Message::new("CAP").param("END"))
                    .await
                    .map_err(lost)?,
                _ => {}
            },
            "AUTHENTICATE" if msg.param_at(0) == Some("+") => {
                let account = opts.account.as_deref().unwrap_or_default();
                let password = opts.account_password.as_deref().map_or("", String::as_str);
                for chunk in crate::proto::sasl::encode_plain(account, password) {
                    conn.send(&Message::new("AUTHENTICATE").param(chunk))
                        .await
                        .map_err(lost)?;
                }
            }
            RPL_SASLSUCCESS => conn
                .send(&Message::new("CAP").param("END"))
                .await
                .map_err(lost)?,
            ERR_SASLFAIL | ERR_SASLTOOLONG | ERR_SASLABORTED => {
                let why = msg.params.last().map_or("", String::as_str);
                let why = why
                    .strip_prefix("SASL authentication failed: ")
                    .unwrap_or(why);
                return Err(ClientError::AccountRefused(
                    crate::proto::sanitize::for_display(why),
                ));
            }
            ERR_PASSWDMISMATCH => bad_password = true,
            // Before the welcome only the tracker speaks: why a login is
            // slow (waiting for its password check) must not look like a hang.
            "NOTICE" => prompt.say(&crate::proto::sanitize::for_display(
                msg.params.last().map_or("", String::as_str),
            )),
            ERR_NICKNAMEINUSE | ERR_ERRONEUSNICKNAME => {
                // Named as we sent it: the reply's copy may differ.
                let reason = msg.params.last().cloned().unwrap_or_default();
                let why = nick_refusal(&msg.command, nick, &reason);
                return Ok(Attempt::NickRefused(conn, why));
            }
            "ERROR" if bad_password => return Ok(Attempt::WrongPassword(conn)),
            "ERROR" => {
                return Err(ClientError::Closed(closing_reason(
                    msg.param_at(0).unwrap_or(""),
                )));
            }
            RPL_WELCOME => {
                let me = msg.param_at(0).unwrap_or("").to_string();
                let mut app = App::new(&me, &opts.tracker());
                app.set_caps(&acked);
                // The welcome text itself is shown by the chat loop.
                let pending = app.on_message(&msg, jiff::Timestamp::now()).events;
                return Ok(Attempt::Ok(Box::new(LoggedIn {
                    conn,
                    app,
                    pending,
                    p2p_address: None,
                })));
            }
            _ => {}
        }
    }
}

/// The terminal's echo off while the plain mode reads a password
/// (`/oper <name>`), restored when dropped. Nothing when stdin is not a
/// terminal (a script types nothing anyone could see).
struct EchoOff(Option<rustix::termios::Termios>);

impl EchoOff {
    fn new() -> Self {
        use rustix::termios::{self, LocalModes, OptionalActions};
        let stdin = rustix::stdio::stdin();
        if !termios::isatty(stdin) {
            return EchoOff(None);
        }
        let Ok(saved) = termios::tcgetattr(stdin) else {
            return EchoOff(None);
        };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        if termios::tcsetattr(stdin, OptionalActions::Now, &quiet).is_err() {
            return EchoOff(None);
        }
        EchoOff(Some(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// How the chat loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The user left (/exit, /quit, Ctrl+C, end of input).
    Left,
    /// The tracker closed the link (shutdown, ping timeout, ...).
    ClosedByTracker(String),
}

/// Line mode: prints events to `out`, reads lines from `input`. With
/// `drain` (input from a pipe or a file), the end of the input or an
/// `/exit` first waits (up to [`DRAIN_WAIT`]) for the answers to what was
/// sent, so `printf '/users\n' | client ...` prints the list.
pub async fn run_plain(
    mut session: LoggedIn,
    mut input: mpsc::UnboundedReceiver<String>,
    out: &mut dyn Write,
    renderer: &PlainRenderer,
    drain: bool,
) -> Result<Outcome, ClientError> {
    let print = |out: &mut dyn Write, events: &[Event]| {
        for e in events {
            // Own lines are printed when the tracker echoes them, or as
            // `(sending…)` when that takes long (see `overdue`).
            if matches!(e, Event::Sending { .. }) {
                continue;
            }
            for line in renderer.render(e) {
                let _ = writeln!(out, "{line}");
            }
        }
        let _ = out.flush();
    };
    let show_overdue = |out: &mut dyn Write, events: &[Event]| {
        for e in events {
            for line in renderer.render(e) {
                let _ = writeln!(out, "{line}");
            }
        }
        let _ = out.flush();
    };
    let pending = std::mem::take(&mut session.pending);
    print(out, &pending);
    let mut links = session.direct_links();
    let LoggedIn { conn, app, .. } = &mut session;
    let result = async {
        let mut alive = Keepalive::new();
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let quit_reason: String;
        let mut wait_for_answers = false;
        let mut _echo_off: Option<EchoOff> = None;
        loop {
            let overdue_at = app
                .next_overdue(PLAIN_PENDING_AFTER)
                .map(|at| {
                    let left = at.duration_since(jiff::Timestamp::now());
                    Instant::now() + Duration::try_from(left).unwrap_or_default()
                });
            tokio::select! {
                incoming = conn.recv() => {
                    let Some(msg) = received(incoming)? else { continue };
                    alive.heard();
                    let up = app.on_message(&msg, jiff::Timestamp::now());
                    print(out, &up.events);
                    send_all(conn, &up.send).await?;
                    links.apply_all(up.direct);
                    if let Some(reason) = closed(&up.events) {
                        conn.close().await;
                        return Ok(Outcome::ClosedByTracker(reason));
                    }
                }
                event = links.next() => {
                    let up = app.on_direct(event, jiff::Timestamp::now());
                    print(out, &up.events);
                    send_all(conn, &up.send).await?;
                    links.apply_all(up.direct);
                }
                line = input.recv() => {
                    let Some(line) = line else {
                        quit_reason = "Leaving".into();
                        wait_for_answers = drain;
                        break;
                    };
                    let up = app.on_input(&line, jiff::Timestamp::now());
                    // A password answered: echo back on. Asked: echo off
                    // until the answer comes.
                    _echo_off = app.asking_secret().then(EchoOff::new);
                    print(out, &up.events);
                    send_all(conn, &up.send).await?;
                    links.apply_all(up.direct);
                    if let Some(reason) = up.quit {
                        quit_reason = reason;
                        wait_for_answers = drain;
                        break;
                    }
                }
                _ = &mut ctrl_c => {
                    quit_reason = "Leaving".into();
                    break;
                }
                _ = tokio::time::sleep_until(overdue_at.unwrap_or_else(|| alive.deadline())), if overdue_at.is_some() => {
                    show_overdue(out, &app.overdue(jiff::Timestamp::now(), PLAIN_PENDING_AFTER));
                }
                _ = tokio::time::sleep_until(alive.deadline()) => {
                    if let Some(ping) = alive.due()? {
                        send_all(conn, &[ping]).await?;
                    }
                }
            }
        }
        if wait_for_answers
            && let Some(reason) = wait_for_answers_to_sent(conn, app, out, &print).await?
        {
            return Ok(Outcome::ClosedByTracker(reason));
        }
        // Answers to what was typed just before leaving still get shown.
        for msg in leave(conn, &quit_reason).await {
            let up = app.on_message(&msg, jiff::Timestamp::now());
            let shown: Vec<Event> = up
                .events
                .into_iter()
                .filter(|e| !matches!(e, Event::Closed { .. }))
                .collect();
            print(out, &shown);
        }
        Ok(Outcome::Left)
    }
    .await;
    // Whatever the tracker never confirmed is said, however it ended.
    if let Some(unsent) = app.take_unsent(jiff::Timestamp::now()) {
        print(out, &[unsent]);
    }
    if let Ok(Outcome::Left) = result {
        let _ = writeln!(out, "*** you left the tracker");
        let _ = out.flush();
    }
    result
}

/// Before leaving with piped input: waits until the tracker has answered
/// everything sent, including what the answers made the client ask in
/// turn (a `/users` list waits for away reasons), or until it has been
/// silent for [`DRAIN_WAIT`].
/// Each round ends with a sync barrier ([`App::sync_request`]); an event,
/// not a sleep. Returns the reason if the tracker closed the link.
async fn wait_for_answers_to_sent(
    conn: &mut Connection,
    app: &mut App,
    out: &mut dyn Write,
    print: &dyn Fn(&mut dyn Write, &[Event]),
) -> Result<Option<String>, ClientError> {
    let barrier = app.sync_request();
    send_all(conn, &[barrier]).await?;
    while !app.synced() {
        let incoming = match tokio::time::timeout(DRAIN_WAIT, conn.recv()).await {
            Ok(incoming) => incoming,
            Err(_) => break,
        };
        let Some(msg) = received(incoming)? else {
            continue;
        };
        let up = app.on_message(&msg, jiff::Timestamp::now());
        print(out, &up.events);
        send_all(conn, &up.send).await?;
        if let Some(reason) = closed(&up.events) {
            conn.close().await;
            return Ok(Some(reason));
        }
        // A follow-up question (not a keep-alive answer): wait for it too.
        if up.send.iter().any(|m| m.command != "PONG") {
            let barrier = app.sync_request();
            send_all(conn, &[barrier]).await?;
        }
    }
    Ok(None)
}

/// What one read from the tracker gave: a message, nothing worth
/// handling (an unreadable line), or the end of the link as an error.
pub fn received(
    incoming: std::io::Result<Option<Incoming>>,
) -> Result<Option<Message>, ClientError> {
    match incoming {
        Ok(Some(Incoming::Message(m))) => Ok(Some(m)),
        Ok(Some(Incoming::Garbage)) => Ok(None),
        Ok(None) => Err(ClientError::Lost(
            "the tracker closed the connection without a reason".into(),
        )),
        Err(e) => Err(ClientError::Lost(e.to_string())),
    }
}

pub async fn send_all(conn: &mut Connection, msgs: &[Message]) -> Result<(), ClientError> {
    for m in msgs {
        conn.send(m)
            .await
            .map_err(|e| ClientError::Lost(e.to_string()))?;
    }
    Ok(())
}

/// The tracker's reason when `events` say it closed the link.
pub fn closed(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::Closed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// The keep-alive: a PING after [`PING_AFTER`] of silence from the
/// tracker, and the link given up when as long again passes unanswered.
pub struct Keepalive {
    last_rx: Instant,
    ping_sent: Option<Instant>,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self::new()
    }
}

impl Keepalive {
    pub fn new() -> Self {
        Keepalive {
            last_rx: Instant::now(),
            ping_sent: None,
        }
    }

    /// Anything arrived from the tracker.
    pub fn heard(&mut self) {
        self.last_rx = Instant::now();
        self.ping_sent = None;
    }

    /// When [`Self::due`] must be called next.
    pub fn deadline(&self) -> Instant {
        match self.ping_sent {
            Some(t) => t + PING_AFTER,
            None => self.last_rx + PING_AFTER,
        }
    }

    /// When the PING in flight was sent, if one is.
    pub fn waiting_since(&self) -> Option<Instant> {
        self.ping_sent
    }

    /// At the deadline: the PING to send, or the link is lost.
    pub fn due(&mut self) -> Result<Option<Message>, ClientError> {
        if self.ping_sent.is_some() {
            return Err(ClientError::Lost(format!(
                "no answer from the tracker for {} seconds",
                (PING_AFTER * 2).as_secs()
            )));
        }
        self.ping_sent = Some(Instant::now());
        Ok(Some(Message::new("PING").param("confab")))
    }
}

/// Sends QUIT and waits (briefly) for the tracker to confirm with ERROR, so
/// everyone else has seen us leave by the time we exit. Returns what arrived
/// meanwhile.
pub async fn leave(conn: &mut Connection, reason: &str) -> Vec<Message> {
    let mut received = Vec::new();
    if conn
        .send(&Message::new("QUIT").param(reason))
        .await
        .is_err()
    {
        return received;
    }
    let _ = tokio::time::timeout(QUIT_WAIT, async {
        loop {
            match conn.recv().await {
                Ok(Some(Incoming::Message(m))) if m.command == "ERROR" => return,
                Ok(Some(Incoming::Message(m))) => received.push(m),
                Ok(Some(Incoming::Garbage)) => continue,
                _ => return,
            }
        }
    })
    .await;
    conn.close().await;
    received
}
