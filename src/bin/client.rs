//! `client`: joins a confab tracker. All logic lives in `confab::client`.

use std::io::{BufRead, IsTerminal};

use confab::prompt::PromptError;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use confab::client::known::{self, KnownTrackers};
use confab::client::plain::PlainRenderer;
use confab::client::session::{self, ClientError, Options, Outcome, Prompter};
use confab::tls::Fingerprint;

/// Join a confab tracker and chat.
#[derive(Parser, Debug)]
#[command(
    name = "client",
    version = confab::VERSION,
    about,
    after_help = "The tracker's password: --password-file PATH, else the CONFAB_PASSWORD environment variable, \
else the client asks for it (only when the tracker needs one).\n\
To leave: type exit (or /exit), or Ctrl+C on an empty input; /help in the chat lists commands and keys."
)]
struct Args {
    /// The tracker: HOST, HOST:PORT or [IPv6]:PORT. Without it, the client looks for trackers announced on the local network and asks which to join.
    tracker: Option<String>,
    /// Port, when not given with the host. Default 6697 (6667 with --no-tls).
    port: Option<u16>,
    /// Username to log in with.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Read the tracker's password from this file (first line). Without it: CONFAB_PASSWORD, else the client asks.
    /// With --monitor: TRACKER=PATH, once per tracker (TRACKER: its label or host:port).
    #[arg(long, value_name = "PATH")]
    password_file: Vec<PathBuf>,
    /// Log in to this account (made with /register); the username defaults to it.
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// Read the account's password from this file (first line). Without it: CONFAB_ACCOUNT_PASSWORD, else the client asks (hidden).
    #[arg(long, value_name = "PATH", requires = "account")]
    account_password_file: Option<PathBuf>,
    /// Trust exactly this certificate fingerprint (SHA256:...) without asking.
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<String>,
    /// Trust a tracker seen for the first time without asking (a changed one is still refused).
    #[arg(long)]
    accept_new: bool,
    /// Forget a known tracker's fingerprint (all its ports without :PORT), after it made a new certificate, and exit.
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with = "tracker")]
    forget: Option<String>,
    /// File of trusted tracker fingerprints.
    #[arg(long, value_name = "PATH", env = "CONFAB_KNOWN_TRACKERS")]
    known_trackers: Option<PathBuf>,
    /// Connect without TLS (for trackers started with --no-tls): traffic is readable by others.
    #[arg(long)]
    no_tls: bool,
    /// The address direct sessions' offers (/session) give the other person, instead of the one this machine reaches the tracker from (behind NAT: the public address whose port is forwarded here).
    #[arg(long, value_name = "IP")]
    p2p_address: Option<std::net::IpAddr>,
    /// Line mode: one line per event, typed lines are sent (the default when stdin or stdout is not a terminal).
    #[arg(long)]
    plain: bool,
    /// List the trackers announced on the local network and exit (exit code 0 when some were found, 4 when none).
    #[arg(long, conflicts_with = "tracker")]
    list: bool,
    /// JSON lines. With --list: one object per tracker (name, address, port, addresses, tls, password, fingerprint,
    /// members, version). With --monitor: every event of every tracker (also when standard output is not a terminal);
    /// a line `{"tracker":..,"room":..,"text":..}` on standard input posts.
    #[arg(long)]
    json: bool,
    /// Seconds to listen for trackers' announcements (without a tracker's address, or with --list).
    #[arg(long, value_name = "SECS", default_value_t = confab::client::discover::DEFAULT_BROWSE.as_secs_f64())]
    browse_time: f64,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) and exit
    #[arg(long, value_name = "SHELL", hide = true)]
    completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit
    #[arg(long, hide = true)]
    man: bool,
    #[command(flatten)]
    monitor: confab::client::monitor::MonitorArgs,
}

struct Terminal {
    interactive: bool,
}

impl Prompter for Terminal {
    fn interactive(&self) -> bool {
        self.interactive
    }

    fn line(&mut self, prompt: &str) -> Result<String, PromptError> {
        if !self.interactive {
            return Err(PromptError::NoTerminal);
        }
        confab::prompt::ask(prompt, false)
    }

    fn secret(&mut self, prompt: &str) -> Result<String, PromptError> {
        if !self.interactive {
            return Err(PromptError::NoTerminal);
        }
        confab::prompt::ask(prompt, true)
    }
}

/// Splits `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
fn split_host(tracker: &str, port: Option<u16>) -> Result<(String, Option<u16>), String> {
    let bad = || format!("cannot read the port in {tracker:?}");
    if let Some(rest) = tracker.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let p = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| bad())?),
            None => port,
        };
        return Ok((host.to_string(), p));
    }
    match tracker.matches(':').count() {
        1 => {
            let (host, p) = tracker.split_once(':').ok_or_else(bad)?;
            Ok((host.to_string(), Some(p.parse().map_err(|_| bad())?)))
        }
        _ => Ok((tracker.to_string(), port)),
    }
}

fn options(args: &Args) -> Result<Options, ClientError> {
    let tracker = args.tracker.as_deref().unwrap_or_default();
    let (host, port) = split_host(tracker, args.port).map_err(ClientError::Usage)?;
    if args.password_file.len() > 1 {
        return Err(ClientError::Usage(
            "--password-file is given once (several only with --monitor, as TRACKER=PATH)".into(),
        ));
    }
    let password = match args.password_file.first() {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        None => std::env::var("CONFAB_PASSWORD").ok(),
    };
    let account_password = match &args.account_password_file {
        Some(path) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        )),
        None => std::env::var("CONFAB_ACCOUNT_PASSWORD")
            .ok()
            .filter(|_| args.account.is_some())
            .map(zeroize::Zeroizing::new),
    };
    let fingerprint = match &args.fingerprint {
        Some(f) => Some(Fingerprint::parse(f).map_err(|e| ClientError::Usage(e.to_string()))?),
        None => None,
    };
    let known_path = args
        .known_trackers
        .clone()
        .or_else(known::default_path)
        .ok_or_else(|| {
            ClientError::Usage(
                "cannot find a home folder for known_trackers; use --known-trackers PATH".into(),
            )
        })?;
    Ok(Options {
        host,
        port: port.unwrap_or(if args.no_tls { 6667 } else { 6697 }),
        tls: !args.no_tls,
        user: args.user.clone(),
        password,
        fingerprint,
        accept_new: args.accept_new,
        known: KnownTrackers::new(known_path),
        account: args.account.clone(),
        account_password,
    })
}

/// `client` with no address: looks for trackers on the local network, asks
/// which to join, and points `opts` at it.
async fn discover(
    opts: &mut Options,
    terminal: &mut Terminal,
    wait: std::time::Duration,
) -> Result<session::Announced, ClientError> {
    use confab::client::discover;
    eprintln!(
        "No address given: looking for trackers on the local network ({} s)...",
        wait.as_secs_f64()
    );
    let heard = discover::browse(wait).await?;
    for (name, why) in &heard.ignored {
        eprintln!("Ignored an announcement of {name:?}: {why}");
    }
    if heard.found.is_empty() {
        return Err(ClientError::NotFound(discover::none_found(wait)));
    }
    let Some(i) = discover::ask_which(&heard.found, terminal)? else {
        return Err(ClientError::Cancelled);
    };
    let chosen = &heard.found[i];
    opts.host = chosen.address().to_string();
    opts.port = chosen.port;
    opts.tls = chosen.tls;
    Ok(session::Announced {
        name: chosen.name.clone(),
        fingerprint: chosen.fingerprint,
    })
}

/// `client --list [--json]`: prints the trackers announced on the local
/// network; exit 0 when some were found, 4 when none.
async fn list(wait: std::time::Duration, json: bool) -> ExitCode {
    use confab::client::discover;
    let heard = match discover::browse(wait).await {
        Ok(heard) => heard,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, why) in &heard.ignored {
        eprintln!("client: ignored an announcement of {name:?}: {why}");
    }
    if heard.found.is_empty() {
        eprintln!("{}", discover::none_found(wait));
        return ExitCode::from(ClientError::NotFound(String::new()).exit_code());
    }
    let text = if json {
        discover::render_json(&heard.found)
    } else {
        discover::render_list(&heard.found)
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `--forget HOST[:PORT]`: removes the tracker from the known-trackers file.
fn forget(args: &Args, tracker: &str) -> ExitCode {
    let known = match args.known_trackers.clone().or_else(known::default_path) {
        Some(path) => KnownTrackers::new(path),
        None => {
            eprintln!(
                "client: cannot find a home folder for known_trackers; use --known-trackers PATH"
            );
            return ExitCode::from(2);
        }
    };
    let (host, port) = match split_host(tracker, None) {
        Ok(hp) => hp,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::from(2);
        }
    };
    let file = known.path().display().to_string();
    match known.forget(&host, port) {
        Ok(removed) if removed.is_empty() => {
            eprintln!(
                "client: {tracker} is not among the known trackers in {file}; nothing to forget"
            );
            ExitCode::FAILURE
        }
        Ok(removed) => {
            for name in removed {
                println!(
                    "Forgot {name} (from {file}). The next connection shows its fingerprint and asks whether to trust it."
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("client: cannot update {file}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(code) =
        confab::print_completions_or_man(Args::command(), args.completions, args.man)
    {
        return code;
    }
    if let Some(tracker) = &args.forget {
        return forget(&args, tracker);
    }
    if let Some(list) = &args.monitor.monitor {
        return monitor(&args, list);
    }
    if args.json && !args.list {
        eprintln!("client: --json goes with --list or --monitor");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let browse_time = match std::time::Duration::try_from_secs_f64(args.browse_time) {
        Ok(t) if !t.is_zero() => t,
        _ => {
            eprintln!("client: --browse-time must be a positive number of seconds");
            return ExitCode::from(2);
        }
    };
    if args.list {
        return runtime.block_on(list(browse_time, args.json));
    }
    let interactive = std::io::stdin().is_terminal();
    // Pipes and scripts get lines; a person at a terminal gets the window.
    let full_screen = interactive && std::io::stdout().is_terminal() && !args.plain;
    let result = runtime.block_on(async {
        let mut opts = options(&args)?;
        let mut terminal = Terminal { interactive };
        let announced = match args.tracker {
            Some(_) => None,
            None => Some(discover(&mut opts, &mut terminal, browse_time).await?),
        };
        if !opts.tls {
            match &announced {
                Some(a) => eprintln!("WARNING: {} is announced without TLS: your password and messages can be read on the network.", a.name),
                None => eprintln!("WARNING: TLS is off (--no-tls): your password and messages can be read on the network."),
            }
        }
        let mut session =
            session::login_announced(&mut opts, &mut terminal, announced.as_ref()).await?;
        session.p2p_address = args.p2p_address;
        if full_screen {
            return confab::client::tui::run(session, opts.tls).await;
        }
        // Typed lines come from a plain thread: a blocking read of stdin
        // cannot be cancelled, and a thread dies with the process.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = std::io::stdout();
        // Input from a pipe or a file waits for the answers to what it
        // sent before leaving; a person at a terminal reads them anyway.
        let drain = !interactive;
        session::run_plain(session, rx, &mut stdout, &PlainRenderer::default(), drain).await
    });
    match result {
        Ok(Outcome::Left) => ExitCode::SUCCESS,
        Ok(Outcome::ClosedByTracker(reason)) => {
            eprintln!("client: disconnected by the tracker: {reason}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--monitor FILE|LIST`: watches many trackers (`confab::client::monitor`).
fn monitor(args: &Args, list: &str) -> ExitCode {
    use confab::client::monitor::{self, MonitorConfig, MonitorOutcome};
    let fail = |e: ClientError| {
        eprintln!("client: {e}");
        ExitCode::from(e.exit_code())
    };
    if args.tracker.is_some() || args.fingerprint.is_some() {
        return fail(ClientError::Usage(
            "--monitor takes its trackers from its list and their trust from the known-trackers file \
             (or --accept-new): no TRACKER or --fingerprint with it"
                .into(),
        ));
    }
    let default_port = if args.no_tls { 6667 } else { 6697 };
    let loaded = match monitor::load(list, &args.password_file, default_port) {
        Ok(loaded) => loaded,
        Err(e) => return fail(e),
    };
    let known = match monitor::known_path(args.known_trackers.clone()) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let interactive = std::io::stdin().is_terminal();
    // A pipe gets JSON lines; a person at a terminal the full screen.
    let json = args.json || !std::io::stdout().is_terminal() || !interactive;
    let config = MonitorConfig {
        specs: loaded.specs,
        passwords: loaded.passwords,
        user: args.user.clone(),
        tls: !args.no_tls,
        accept_new: args.accept_new,
        known,
        json,
        servers_file: loaded.servers_file,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.no_tls {
        eprintln!(
            "WARNING: TLS is off (--no-tls): your passwords and messages can be read on the network."
        );
    }
    let mut terminal = Terminal { interactive };
    match runtime.block_on(monitor::run(config, &mut terminal)) {
        Ok(MonitorOutcome::Left) => ExitCode::SUCCESS,
        Ok(MonitorOutcome::NothingToWatch) => {
            eprintln!("client: no tracker left to watch (each refused above)");
            ExitCode::from(3)
        }
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn host_forms() {
        assert_eq!(split_host("10.0.0.5", None), Ok(("10.0.0.5".into(), None)));
        assert_eq!(
            split_host("10.0.0.5", Some(7000)),
            Ok(("10.0.0.5".into(), Some(7000)))
        );
        assert_eq!(
            split_host("example.org:7000", None),
            Ok(("example.org".into(), Some(7000)))
        );
        assert_eq!(
            split_host("[::1]:7000", None),
            Ok(("::1".into(), Some(7000)))
        );
        assert_eq!(split_host("::1", Some(7)), Ok(("::1".into(), Some(7))));
        assert!(split_host("h:x", None).is_err());
    }
}
