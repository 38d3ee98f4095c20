//! The monitor: `client --monitor servers.txt` watches many trackers at
//! once, as one client logged in to each.
//!
//! - `servers`: the servers list, its passwords file, `--password-file
//!   TRACKER=PATH` (parsing only).
//! - `model`: the state without I/O: one [`App`](crate::client::state::App) per tracker, link states,
//!   the JSON records. Fed (tracker, message or link news, now).
//! - `link`: one task per tracker: its connection, keep-alive, and logging
//!   in again after a `backoff` (exponential, capped, jittered; time is an
//!   argument).
//! - `view`, `draw`: the full screen (a merged timeline, a window per
//!   tracker and room), on the one-tracker client's windows and keys.
//!
//! Login happens first, one tracker after another, on the normal screen:
//! trust, password and name are asked per tracker as the client asks them
//! (only what is not given). Then either the full screen or, with
//! `--json` or when standard output is not a terminal, one JSON object a
//! line on standard output.

pub mod backoff;
pub mod draw;
pub mod link;
pub mod model;
pub mod servers;
pub mod view;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::known::{self, KnownTrackers};
use super::plain::PlainRenderer;
use super::session::{self, ClientError, Options, Prompter};
use super::tui::terminal::{TerminalGone, TerminalGuard};
use crate::prompt::PromptError;
use crate::proto::Message;
use link::{FromLink, ToLink};
use model::{Monitor, Output, PostRequest, Record, TrackerId};
use servers::TrackerSpec;

/// The flags of the monitor (flattened into the client's).
#[derive(clap::Args, Debug, Default)]
pub struct MonitorArgs {
    /// Watch many trackers at once: a servers file (one `host[:port] [label]` a line, # comments; passwords in
    /// FILE.passwords) or a comma-separated list (HOST,HOST:PORT,...).
    #[arg(long, value_name = "FILE|HOST,HOST...")]
    pub monitor: Option<String>,
}

/// Everything the monitor needs, read from the flags and files.
pub struct MonitorConfig {
    pub specs: Vec<TrackerSpec>,
    /// By tracker index.
    pub passwords: HashMap<usize, String>,
    pub user: Option<String>,
    pub tls: bool,
    pub accept_new: bool,
    pub known: PathBuf,
    /// JSON lines instead of the full screen.
    pub json: bool,
    /// Where the servers list came from, for hints (`None` for a list).
    pub servers_file: Option<PathBuf>,
}

/// How the monitor ended.
#[derive(Debug, PartialEq, Eq)]
pub enum MonitorOutcome {
    Left,
    /// No tracker left to watch: each was refused (trust, password, name).
    NothingToWatch,
}

/// What `--monitor`'s argument and the password flags gave.
pub struct Loaded {
    pub specs: Vec<TrackerSpec>,
    /// By tracker index.
    pub passwords: HashMap<usize, String>,
    /// The servers file, when it was one.
    pub servers_file: Option<PathBuf>,
}

/// Reads `--monitor`'s argument (a file, or a list with commas), the
/// passwords file beside a servers file and the `--password-file
/// TRACKER=PATH` flags.
pub fn load(
    arg: &str,
    password_files: &[PathBuf],
    default_port: u16,
) -> Result<Loaded, ClientError> {
    let usage = |e: servers::ServersError| ClientError::Usage(e.to_string());
    let path = Path::new(arg);
    let (specs, file) = if arg.contains(',') {
        (servers::parse_list(arg, default_port).map_err(usage)?, None)
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClientError::Usage(format!(
                "cannot read the servers file {arg}: {e} (trackers on the command line are separated by commas: --monitor host1,host2, or --monitor host1, for one)"
            ))
        })?;
        (
            servers::parse_servers(&text, default_port, arg).map_err(usage)?,
            Some(path.to_path_buf()),
        )
    };
    let mut passwords = HashMap::new();
    if let Some(file) = &file {
        let companion = servers::passwords_path(file);
        match std::fs::read_to_string(&companion) {
            Ok(text) => {
                if let Some(warning) = crate::private::open_to_others(&companion) {
                    eprintln!("WARNING: {warning}");
                }
                let name = companion.display().to_string();
                passwords = servers::parse_passwords(&text, &specs, &name).map_err(usage)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ClientError::Usage(format!(
                    "cannot read {}: {e}",
                    companion.display()
                )));
            }
        }
    }
    for arg in password_files {
        let arg = arg.to_string_lossy();
        let (idx, path) = servers::split_password_file(&arg, &specs).map_err(usage)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())))?;
        passwords.insert(idx, text.lines().next().unwrap_or("").to_string());
    }
    Ok(Loaded {
        specs,
        passwords,
        servers_file: file,
    })
}

/// Asks on behalf of one tracker: every question and message names it,
/// and the password typed is kept for logging in again later.
struct ForTracker<'a> {
    inner: &'a mut dyn Prompter,
    label: String,
    password: Option<String>,
}

impl Prompter for ForTracker<'_> {
    fn interactive(&self) -> bool {
        self.inner.interactive()
    }
    fn line(&mut self, prompt: &str) -> Result<String, PromptError> {
        self.inner.line(&format!("[{}] {prompt}", self.label))
    }
    fn secret(&mut self, prompt: &str) -> Result<String, PromptError> {
        let answer = self.inner.secret(&format!("[{}] {prompt}", self.label))?;
        self.password = Some(answer.clone());
        Ok(answer)
    }
    fn say(&mut self, text: &str) {
        self.inner.say(&format!("[{}] {text}", self.label));
    }
}

/// Why a tracker is not watched, in the monitor's terms (its flags differ
/// from the one-tracker client's).
pub fn explain(e: &ClientError, spec: &TrackerSpec, servers_file: Option<&Path>) -> String {
    let address = spec.address();
    let label = &spec.label;
    let passwords = match servers_file {
        Some(f) => format!(
            "put `{label} PASSWORD` in {} (mode 0600) or give --password-file {label}=PATH",
            servers::passwords_path(f).display()
        ),
        None => format!("give --password-file {label}=PATH"),
    };
    match e {
        ClientError::Untrusted(fp) => format!(
            "unknown fingerprint {fp}; not trusted. Compare it with the one the tracker printed when it started; \
             to trust it, start the monitor at a terminal (it asks), or connect once with `client {address}`, \
             or use --accept-new"
        ),
        ClientError::FingerprintChanged {
            expected,
            received,
            forget,
            ..
        } => format!(
            "THE TRACKER'S FINGERPRINT HAS CHANGED (expected {expected}, received {received}): someone may be \
             intercepting the connection, or the tracker made a new certificate; refusing. If it did, forget \
             the old one with `{forget}`"
        ),
        ClientError::PasswordNeeded => format!("the tracker needs a password: {passwords}"),
        ClientError::WrongPassword => format!("wrong password: {passwords}"),
        other => other.to_string().trim().to_string(),
    }
}

/// Logs in to every tracker (asking what is needed, tracker by tracker),
/// then watches them all until the person leaves.
pub async fn run(
    config: MonitorConfig,
    prompt: &mut dyn Prompter,
) -> Result<MonitorOutcome, ClientError> {
    // The links log in again through the client's login, which is not
    // `Send` (it takes a `dyn Prompter`): they run on this thread.
    tokio::task::LocalSet::new()
        .run_until(watch(config, prompt))
        .await
}

async fn watch(
    config: MonitorConfig,
    prompt: &mut dyn Prompter,
) -> Result<MonitorOutcome, ClientError> {
    let MonitorConfig {
        specs,
        mut passwords,
        mut user,
        tls,
        accept_new,
        known,
        json,
        servers_file,
    } = config;
    if user.is_none() && !prompt.interactive() {
        return Err(ClientError::Usage(
            "no terminal to ask for a username: use --user NAME".into(),
        ));
    }
    let (to_loop, from_links) = mpsc::unbounded_channel();
    let mut monitor = Monitor::new(specs.clone());
    let mut links = Vec::new();
    let mut tasks = Vec::new();
    let mut refused = Vec::new();
    let mut ready = Vec::new();
    for (id, spec) in specs.iter().enumerate() {
        let mut opts = Options {
            host: spec.host.clone(),
            port: spec.port,
            tls,
            user: user.clone(),
            password: passwords.remove(&id),
            fingerprint: None,
            accept_new,
            known: KnownTrackers::new(known.clone()),
            account: None,
            account_password: None,
        };
        let mut asker = ForTracker {
            inner: &mut *prompt,
            label: spec.label.clone(),
            password: None,
        };
        let first = match session::login(&mut opts, &mut asker).await {
            Ok(s) => {
                // The name that worked (asked, or changed after a refusal)
                // is the one for the trackers still to come.
                user.get_or_insert_with(|| s.app.me.clone());
                opts.user = Some(s.app.me.clone());
                opts.password = asker
                    .password
                    .take()
                    .or(opts.password)
                    .or(Some(String::new()));
                Ok(s)
            }
            Err(ClientError::Cancelled) => return Err(ClientError::Cancelled),
            Err(e) if link::worth_retrying(&e) => {
                let why = link::reason(&e);
                eprintln!("[{}] {why}; trying again in the background", spec.label);
                Err(why)
            }
            Err(e) => {
                let why = explain(&e, spec, servers_file.as_deref());
                eprintln!("[{}] not watched: {why}", spec.label);
                refused.push((id, why));
                continue;
            }
        };
        let setup = link::Setup {
            id,
            spec: spec.clone(),
            servers_file: servers_file.clone(),
            opts,
        };
        ready.push((setup, first));
    }
    // The links start once every login is done: one for a tracker not
    // reachable yet then takes the name asked at a later one.
    for (mut setup, first) in ready {
        if setup.opts.user.is_none() {
            setup.opts.user = user.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let id = setup.id;
        tasks.push(tokio::task::spawn_local(link::run(
            setup,
            first,
            to_loop.clone(),
            rx,
        )));
        links.push((id, tx));
    }
    drop(to_loop);
    if links.is_empty() {
        return Ok(MonitorOutcome::NothingToWatch);
    }
    let mut setup = Output::default();
    for (id, why) in refused {
        setup.reports.extend(
            monitor
                .on_link(
                    id,
                    model::LinkNews::GaveUp { reason: why },
                    Timestamp::now(),
                )
                .reports,
        );
    }
    let links = Links(links);
    let result = if json {
        json_loop(&mut monitor, setup, from_links, &links).await
    } else {
        full_screen(&mut monitor, setup, from_links, &links, tls).await
    };
    let quit = match &result {
        Ok((_, reason)) => reason.clone(),
        Err(_) => "Leaving".to_string(),
    };
    for (_, tx) in &links.0 {
        let _ = tx.send(ToLink::Quit(quit.clone()));
    }
    // Each link says goodbye at once; a tracker that does not answer is
    // not waited for past the leave's own limit.
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        futures_util::future::join_all(tasks),
    )
    .await;
    result.map(|(outcome, _)| outcome)
}

/// The links by tracker.
struct Links(Vec<(TrackerId, mpsc::UnboundedSender<ToLink>)>);

impl Links {
    fn send(&self, send: Vec<(TrackerId, Message)>) {
        for (id, m) in send {
            if let Some((_, tx)) = self.0.iter().find(|(i, _)| *i == id) {
                let _ = tx.send(ToLink::Send(m));
            }
        }
    }
}

/// Hands what a link said to the model.
fn feed(monitor: &mut Monitor, id: TrackerId, what: FromLink, now: Timestamp) -> Output {
    match what {
        FromLink::Message(m) => monitor.on_message(id, &m, now),
        FromLink::Connected { app, pending } => monitor.on_connected(id, *app, pending, now),
        FromLink::News(news) => monitor.on_link(id, news, now),
    }
}

/// Writes the JSON lines of `out`; false when standard output is gone.
fn print_records(
    monitor: &Monitor,
    out: &Output,
    words: &PlainRenderer,
    stdout: &mut dyn Write,
) -> bool {
    for r in &out.reports {
        if let Some(record) = monitor.record(r, words) {
            let Ok(line) = serde_json::to_string(&record) else {
                continue;
            };
            if writeln!(stdout, "{line}").is_err() {
                return false;
            }
        }
    }
    stdout.flush().is_ok()
}

type Ended = Result<(MonitorOutcome, String), ClientError>;

/// `--json`: one object a line on standard output; lines on standard
/// input post (`{"tracker":"lab","room":"#general","text":"hi"}`).
async fn json_loop(
    monitor: &mut Monitor,
    setup: Output,
    mut from_links: mpsc::UnboundedReceiver<(TrackerId, FromLink)>,
    links: &Links,
) -> Ended {
    let words = PlainRenderer::new(TimeZone::UTC);
    let mut stdout = io::stdout();
    if !print_records(monitor, &setup, &words, &mut stdout) {
        return Ok((MonitorOutcome::Left, "Leaving".into()));
    }
    let (tx, mut lines) = mpsc::unbounded_channel();
    // A blocking read of stdin cannot be cancelled: a thread, which dies
    // with the process.
    std::thread::spawn(move || {
        for line in io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ClientError::Terminal)?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let mut out = tokio::select! {
            got = from_links.recv() => match got {
                Some((id, what)) => feed(monitor, id, what, Timestamp::now()),
                None => return Ok((MonitorOutcome::Left, "Leaving".into())),
            },
            line = lines.recv(), if stdin_open => match line {
                // The end of standard input ends nothing: a bot started
                // with </dev/null still watches.
                None => { stdin_open = false; continue }
                Some(line) if line.trim().is_empty() => continue,
                Some(line) => match post_line(monitor, &line) {
                    Ok(out) => out,
                    Err(refusal) => {
                        let written = serde_json::to_string(&refusal)
                            .map(|l| writeln!(stdout, "{l}").and_then(|()| stdout.flush()));
                        if matches!(written, Ok(Err(_))) {
                            return Ok((MonitorOutcome::Left, "Leaving".into()));
                        }
                        continue;
                    }
                },
            },
            _ = &mut ctrl_c => return Ok((MonitorOutcome::Left, "Leaving".into())),
            _ = sigterm.recv() => return Ok((MonitorOutcome::Left, "Leaving".into())),
        };
        links.send(std::mem::take(&mut out.send));
        if !print_records(monitor, &out, &words, &mut stdout) {
            return Ok((MonitorOutcome::Left, "Leaving".into()));
        }
        if monitor.all_given_up() {
            return Ok((MonitorOutcome::NothingToWatch, "Leaving".into()));
        }
    }
}

/// A bot's line: a post, or the error record that says what was wrong
/// with it.
fn post_line(monitor: &mut Monitor, line: &str) -> Result<Output, Box<Record>> {
    let now = Timestamp::now();
    let refusal = |tracker: &str, text: String| {
        Box::new(Record {
            tracker: tracker.to_string(),
            room: None,
            sender: None,
            text,
            time: model::json_time(now),
            kind: "error".into(),
        })
    };
    match serde_json::from_str::<PostRequest>(line) {
        Ok(req) => monitor
            .post_request(&req, now)
            .ok_or_else(|| refusal(&req.tracker, format!("no tracker named {:?}", req.tracker))),
        Err(e) => Err(refusal(
            "",
            format!(
                "cannot read that line ({e}); a post is {{\"tracker\":\"LABEL\",\"room\":\"#room\",\"text\":\"...\"}}"
            ),
        )),
    }
}

fn term_err(e: io::Error) -> ClientError {
    ClientError::Terminal(e)
}

/// The full screen: the terminal is restored before this returns (and on
/// a panic), then what was never sent is said on the normal screen.
async fn full_screen(
    monitor: &mut Monitor,
    setup: Output,
    mut from_links: mpsc::UnboundedReceiver<(TrackerId, FromLink)>,
    links: &Links,
    tls: bool,
) -> Ended {
    let guard = TerminalGuard::enter().map_err(term_err)?;
    let result = match Terminal::new(CrosstermBackend::new(io::stdout())) {
        Ok(mut term) => screen_loop(monitor, setup, &mut from_links, links, tls, &mut term).await,
        Err(e) => Err(term_err(e)),
    };
    drop(guard);
    // What the trackers never confirmed is said on the normal screen.
    for id in 0..monitor.len() {
        let label = monitor.label(id).to_string();
        if let Some(app) = monitor.app_mut(id)
            && let Some(super::state::Event::Unsent { lines, .. }) =
                app.take_unsent(Timestamp::now())
        {
            for (window, text) in lines {
                let place = super::plain::place(&window);
                let _ = writeln!(io::stderr(), "client: not sent: {label} {place} {text}");
            }
        }
    }
    if let Ok((MonitorOutcome::Left, _)) = result {
        let _ = writeln!(io::stdout(), "*** you left the trackers");
    }
    result
}

async fn screen_loop(
    monitor: &mut Monitor,
    setup: Output,
    from_links: &mut mpsc::UnboundedReceiver<(TrackerId, FromLink)>,
    links: &Links,
    tls: bool,
    term: &mut Terminal<CrosstermBackend<io::Stdout>>,
) -> Ended {
    let mut view = view::MonitorView::new(monitor, tls, TimeZone::system());
    let size = term.size().map_err(term_err)?;
    view.resize(size.width, size.height);
    view.apply(&setup.reports);
    view.sync(monitor);
    let mut keys = EventStream::new();
    let tty = TerminalGone::watch();
    let mut sigterm = signal(SignalKind::terminate()).map_err(term_err)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(term_err)?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut dirty = true;
    let mut since_frame = 0;
    let left = |reason: String| Ok((MonitorOutcome::Left, reason));
    loop {
        tokio::select! {
            biased;
            ev = keys.next() => {
                let now = Timestamp::now();
                match ev {
                    Some(Ok(TermEvent::Key(k))) => match view.on_key(k, now) {
                        view::Action::None => {}
                        view::Action::Repaint => term.clear().map_err(term_err)?,
                        view::Action::Quit(reason) => return left(reason),
                        view::Action::Send(id, window, lines) => {
                            for line in lines {
                                let out = monitor.post(id, &window, line, now);
                                view.apply(&out.reports);
                                links.send(out.send);
                                if let Some(reason) = out.quit {
                                    return left(reason);
                                }
                            }
                            view.sync(monitor);
                        }
                    },
                    Some(Ok(TermEvent::Paste(text))) => view.on_paste(&text, now),
                    Some(Ok(TermEvent::Mouse(m))) => {
                        if !view.on_mouse(m) {
                            continue;
                        }
                    }
                    Some(Ok(TermEvent::Resize(w, h))) => view.resize(w, h),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(term_err(e)),
                    None => return left("Leaving".into()),
                }
                dirty = true;
            }
            got = from_links.recv() => {
                let Some((id, what)) = got else {
                    return left("Leaving".into());
                };
                let out = feed(monitor, id, what, Timestamp::now());
                view.apply(&out.reports);
                view.sync(monitor);
                links.send(out.send);
                dirty = true;
                since_frame += 1;
            }
            _ = &mut ctrl_c => return left("Leaving".into()),
            _ = sigterm.recv() => return left("Leaving".into()),
            _ = sighup.recv() => return left("Leaving".into()),
            // Closed without a SIGHUP (a killed tmux server, a revoked pty).
            _ = tty.gone() => return left("Leaving".into()),
            _ = std::future::ready(()), if dirty => {
                term.draw(|f| draw::draw(f, &view)).map_err(term_err)?;
                dirty = false;
                since_frame = 0;
            }
        }
        if since_frame >= 256 {
            term.draw(|f| draw::draw(f, &view)).map_err(term_err)?;
            dirty = false;
            since_frame = 0;
        }
    }
}

/// The default known-trackers file, or why there is none.
pub fn known_path(given: Option<PathBuf>) -> Result<PathBuf, ClientError> {
    given.or_else(known::default_path).ok_or_else(|| {
        ClientError::Usage(
            "cannot find a home folder for known_trackers; use --known-trackers PATH".into(),
        )
    })
}
