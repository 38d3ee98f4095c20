//! `tracker`: runs a confab tracker. All logic lives in `confab::tracker`.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser};
use confab::prompt::PromptError;
use confab::settings::{Layer, Settings};
use confab::tracker::password::PasswordGate;
use confab::tracker::transcript::{LogRotate, LogSync};
use confab::tracker::{self, Config, Stopped};

/// Run a confab tracker: the chat server everyone's `client` connects to.
///
/// Settings come from built-in defaults, then the configuration file
/// (--config, or ~/.config/confab/tracker.toml if it exists), then these
/// flags. Every flag is also a key of the file (--log-dir is log-dir).
///
/// The server password comes from --password-file, else the
/// CONFAB_PASSWORD environment variable, else the terminal (asked twice);
/// --no-password runs an open tracker.
#[derive(Parser, Debug)]
#[command(name = "tracker", version = confab::VERSION, about)]
struct Args {
    /// Port to listen on (same as --port).
    #[arg(value_name = "PORT")]
    port_arg: Option<u16>,
    /// Port to listen on; 0 picks a free one [default: 6697, or 6667 with --no-tls]
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on [default: 0.0.0.0]
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Folder for chat.log [default: logs]
    #[arg(long, value_name = "DIR", global = true)]
    log_dir: Option<PathBuf>,
    /// Folder for the TLS certificate and key and the store (accounts) [default: $STATE_DIRECTORY under systemd, else $XDG_DATA_HOME/confab or ~/.local/share/confab]
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Seconds without activity before a user becomes INACTIVE, at least 1 [default: 300]
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Seconds of silence before the tracker PINGs a client, and again before dropping it, at least 1 [default: 90]
    #[arg(long, value_name = "SECS")]
    ping_interval: Option<u64>,
    /// Seconds a new connection has to log in, at least 1 [default: 30]
    #[arg(long, value_name = "SECS")]
    register_timeout: Option<u64>,
    /// Keep running after the last member leaves
    #[arg(long)]
    stay: bool,
    /// Without --stay: seconds to wait after the last member leaves for someone to join before stopping; 0 stops at once [default: 60]
    #[arg(long, value_name = "SECS")]
    exit_grace: Option<f64>,
    /// Lines per second a client may send, sustained (flood control); 0 turns it off [default: 4]
    #[arg(long, value_name = "LINES")]
    flood_rate: Option<f64>,
    /// Lines a client may send at once before flood control holds it back [default: 20]
    #[arg(long, value_name = "LINES")]
    flood_burst: Option<u32>,
    /// Bytes that may wait for a slow client before it is disconnected, at least 1 MiB [default: 2097152]
    #[arg(long, value_name = "BYTES")]
    sendq: Option<usize>,
    /// Bytes that may wait for all clients together; past it, those furthest behind are disconnected, at least 16 MiB [default: 268435456]
    #[arg(long, value_name = "BYTES")]
    sendq_total: Option<usize>,
    /// Most open connections in all, at least 1 [default: 2000]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Most open connections from one address, at least 1 [default: 50]
    #[arg(long, value_name = "N")]
    max_per_address: Option<usize>,
    /// When chat.log reaches the disk: write (before delivery; survives a tracker crash), periodic (also flushed to disk within 100 ms), fsync (flushed to disk before delivery) [default: write]
    #[arg(long, value_name = "POLICY")]
    log_sync: Option<LogSync>,
    /// Direct sessions between clients (DCC): allow (offers relayed; what is said is not recorded, opening and closing are), relay-only (sessions go through the tracker as recorded DMs), off [default: allow]
    #[arg(long, value_name = "POLICY")]
    p2p: Option<confab::tracker::policy::P2pPolicy>,
    /// Rename chat.log aside and start a new one: never, daily (at the first line of a new UTC day), size:BYTES (before a batch would pass BYTES; K, M, G allowed); names in the README [default: never]
    #[arg(long, value_name = "POLICY")]
    log_rotate: Option<LogRotate>,
    /// Read the server password from this file (first line). Without it (and without --no-password) the tracker takes the CONFAB_PASSWORD environment variable, else asks on the terminal
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// Run without a password: anyone who can reach the tracker may join
    #[arg(long)]
    no_password: bool,
    /// Plain TCP instead of TLS: traffic and the password travel unencrypted
    #[arg(long)]
    no_tls: bool,
    /// The tracker's name, shown as the source of its messages and as the network's name [default: confab]
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Do not announce the tracker on the local network (mDNS: name, port, TLS and password on or off, fingerprint, member count), so clients need its address
    #[arg(long)]
    no_announce: bool,
    /// Unread lines an account gets per room or conversation when it logs in (older ones are a page back; messages held for it while away are always all sent) [default: 200]
    #[arg(long, value_name = "N")]
    replay_max: Option<usize>,
    /// Days of history the store keeps (CHATHISTORY, replay); older messages are deleted at start and then hourly, and each purge is recorded in chat.log. 0 keeps everything [default: 0]
    #[arg(long, value_name = "DAYS")]
    history_days: Option<u32>,
    /// Configuration file (TOML) [default: ~/.config/confab/tracker.toml, if it exists]
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Print the settings in effect (as a configuration file) and exit
    #[arg(long)]
    print_config: bool,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) and exit
    #[arg(long, value_name = "SHELL", hide = true)]
    completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit
    #[arg(long, hide = true)]
    man: bool,
    /// Benchmarks only: no store (no accounts, no history kept), to
    /// measure what keeping history costs (`bench/compare.py --history-cost`)
    #[arg(long, hide = true)]
    no_store: bool,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Print the Argon2id hash of a password (asked twice, hidden; or the
    /// first line of standard input when it is not a terminal), for an
    /// `[[oper]]` table's `password-hash` in the configuration file
    HashPassword,
    /// Copy the store (accounts, history) to PATH while the tracker runs:
    /// a consistent snapshot, to keep or to restore by putting it back as
    /// store.db in the data folder while the tracker is stopped
    Backup {
        /// Where to write the copy (must not exist)
        path: PathBuf,
    },
    /// Attach to the console of a tracker running on this host as this
    /// user (through console.sock in its data folder): the same commands
    /// as on the tracker's terminal (type help). Ctrl+D or exit detaches
    /// and leaves it running; stop stops it. Without a terminal, reads
    /// commands from standard input, one a line
    Console {
        /// The console socket [default: console.sock in the data folder,
        /// from --data-dir or the configuration]
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Print chat.log, filtered; or count it (--stats), or check it
    /// (--verify)
    ///
    /// Rotated files are included, oldest first. The log folder is the
    /// configuration's (as when starting the tracker: --config, --log-dir)
    /// unless PATH is given. Exit codes: 0, 1 (cannot read, or --verify:
    /// not intact), 2 (usage), 3 (--verify: intact up to an unchained tail)
    Log(Box<LogArgs>),
}

#[derive(clap::Args, Debug)]
struct LogArgs {
    /// A log folder or one log file [default: the configuration's log-dir]
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Only what happened in this room (repeat for several)
    #[arg(long, value_name = "ROOM")]
    room: Vec<String>,
    /// Only what this person said and did, following a rename until that name leaves (repeat for several)
    #[arg(long, value_name = "NAME")]
    user: Vec<String>,
    /// Only the direct messages between two people, both ways
    #[arg(long, value_name = "A,B")]
    dm: Vec<String>,
    /// From this time on: RFC 3339, a date (2026-12-02), a local time (2026-12-02 10:00), or a time ago (30m, 2h, 3d, 1w)
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Before this time (a date: up to the end of that day)
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Only lines containing TEXT, in any case
    #[arg(long, value_name = "TEXT")]
    grep: Option<String>,
    /// Only these events, comma-separated (join,msg,dm,...; the list is in the README)
    #[arg(long, value_name = "EVENTS")]
    event: Vec<String>,
    /// Times in UTC as written, instead of local time
    #[arg(long)]
    utc: bool,
    /// One JSON object a line (field names in the README)
    #[arg(long)]
    json: bool,
    /// Then keep printing the lines a running tracker writes (Ctrl+C ends)
    #[arg(long, conflicts_with = "stats")]
    follow: bool,
    /// Messages per user and per room, first and last seen, busiest hours
    #[arg(long)]
    stats: bool,
    /// Check the log against chat.log.chain: "intact", or the first line changed, removed or inserted
    #[arg(long, conflicts_with_all = ["room", "user", "dm", "since", "until", "grep", "event", "json", "follow", "stats"])]
    verify: bool,
    /// With --verify: a chain head the tracker printed when it stopped, which the chain must have passed through
    #[arg(long, value_name = "HASH", requires = "verify")]
    expect: Option<String>,
}

impl Args {
    /// What the command line sets, as a settings layer.
    fn layer(&self) -> Layer {
        let on = |b: bool| b.then_some(true);
        Layer {
            port: self.port.or(self.port_arg),
            bind: self.bind,
            log_dir: self.log_dir.clone(),
            data_dir: self.data_dir.clone(),
            idle_timeout: self.idle_timeout,
            ping_interval: self.ping_interval,
            register_timeout: self.register_timeout,
            stay: on(self.stay),
            exit_grace: self.exit_grace,
            password_file: self.password_file.clone(),
            no_password: on(self.no_password),
            no_tls: on(self.no_tls),
            flood_rate: self.flood_rate,
            flood_burst: self.flood_burst,
            sendq: self.sendq,
            sendq_total: self.sendq_total,
            max_connections: self.max_connections,
            max_per_address: self.max_per_address,
            log_sync: self.log_sync,
            p2p: self.p2p,
            log_rotate: self.log_rotate,
            server_name: self.server_name.clone(),
            no_announce: on(self.no_announce),
            replay_max: self.replay_max,
            history_days: self.history_days,
            oper: None,
        }
    }

    /// Defaults, then the configuration file, then the flags.
    fn settings(&self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => Some(Layer::read(path).map_err(|e| UsageError(e.to_string()))?),
            None => match confab::settings::default_config_path().filter(|p| p.exists()) {
                Some(path) => Some(Layer::read(&path).map_err(|e| UsageError(e.to_string()))?),
                None => None,
            },
        };
        let mut settings = Settings::default();
        if let Some(file) = &file {
            settings = settings.apply(file);
        }
        let settings = settings.apply(&self.layer());
        settings.validate().map_err(|e| UsageError(e.to_string()))?;
        Ok(settings)
    }
}

/// Prints a line on stdout, ignoring errors: a closed stdout (a pipe whose
/// reader went away) must not stop the tracker.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "confab=info".into());
    let diagnostics = tracing_subscriber::fmt()
        // stderr, or above the console's prompt while it is open.
        .with_writer(confab::tracker::console::diagnostics::Diagnostics)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    // Under systemd (stderr goes to the journal, which stamps each line
    // itself) a second timestamp is noise.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        diagnostics.without_time().init();
    } else {
        diagnostics.init();
    }
    let args = Args::parse();
    if let Some(code) =
        confab::print_completions_or_man(Args::command(), args.completions, args.man)
    {
        return code;
    }
    if let Some(Sub::HashPassword) = args.command {
        return match hash_password() {
            Ok(hash) => {
                say!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tracker: {e:#}");
                ExitCode::from(if e.is::<Cancelled>() { 130 } else { 2 })
            }
        };
    }
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tracker: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(Sub::Console { socket }) = &args.command {
        let path = socket
            .clone()
            .unwrap_or_else(|| confab::tracker::console::socket::path_in(&settings.data_dir));
        return match confab::tracker::console::attach::attach(&path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tracker console: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Sub::Log(log)) = &args.command {
        return review_log(log, &settings);
    }
    if args.print_config {
        print!("{}", settings.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Some(Sub::Backup { path }) = &args.command {
        let store = settings.data_dir.join(confab::store::FILE_NAME);
        let copied = confab::store::Store::open_existing(&store).and_then(|s| s.backup_to(path));
        return match copied {
            Ok(()) => {
                say!("copied {} to {}", store.display(), path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tracker: cannot back up {}: {e}", store.display());
                ExitCode::from(1)
            }
        };
    }
    match start(settings, args.no_store) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tracker: {e:#}");
            if e.is::<Cancelled>() {
                return ExitCode::from(130);
            }
            ExitCode::from(e.downcast_ref::<UsageError>().map_or(1, |_| 2))
        }
    }
}

/// Ctrl+C or Ctrl+D at the password question (exit code 130, as for SIGINT).
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
struct Cancelled;

/// Errors in how the tracker was started (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// `tracker hash-password`: the hash of a password for an `[[oper]]` table.
fn hash_password() -> anyhow::Result<String> {
    let mut password = if std::io::stdin().is_terminal() {
        ask_twice("Operator password: ")?
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        bail!(UsageError("the password cannot be empty".into()));
    }
    let hash = confab::tracker::opers::hash_password(&password)?;
    zeroize::Zeroize::zeroize(&mut password);
    Ok(hash)
}

/// Asks for a password twice on the terminal, hidden, until both agree.
fn ask_twice(question: &str) -> anyhow::Result<String> {
    let ask = |question: &str| match confab::prompt::ask(question, true) {
        Ok(answer) => Ok(answer),
        Err(PromptError::Interrupted | PromptError::Eof) => Err(anyhow::Error::new(Cancelled)),
        Err(e) => Err(anyhow::Error::new(e)),
    };
    for _ in 0..3 {
        let first = ask(question)?;
        if first.is_empty() {
            eprintln!("The password cannot be empty.");
            continue;
        }
        let mut second = ask("Repeat password: ")?;
        let same = first == second;
        zeroize::Zeroize::zeroize(&mut second);
        if !same {
            let mut first = first;
            zeroize::Zeroize::zeroize(&mut first);
            eprintln!("The passwords differ; try again.");
            continue;
        }
        return Ok(first);
    }
    bail!(UsageError("no password set".into()))
}

fn read_password(args: &Settings) -> anyhow::Result<Option<String>> {
    if args.no_password {
        return Ok(None);
    }
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let pw = text.lines().next().unwrap_or("").to_string();
        if pw.is_empty() {
            bail!(UsageError(format!(
                "{} holds an empty password",
                path.display()
            )));
        }
        return Ok(Some(pw));
    }
    if let Ok(pw) = std::env::var("CONFAB_PASSWORD") {
        // SAFETY: still single-threaded (before the runtime starts). Keeps
        // the password out of what child processes would inherit; the
        // kernel's copy in /proc/<pid>/environ cannot be wiped (see
        // SECURITY.md).
        unsafe { std::env::remove_var("CONFAB_PASSWORD") };
        if pw.is_empty() {
            bail!(UsageError("CONFAB_PASSWORD is empty".into()));
        }
        return Ok(Some(pw));
    }
    if !std::io::stdin().is_terminal() {
        bail!(UsageError(
            "no terminal to ask for the server password: use --password-file PATH, CONFAB_PASSWORD, or --no-password".into()
        ));
    }
    ask_twice("Server password: ").map(Some)
}

fn start(args: Settings, no_store: bool) -> anyhow::Result<ExitCode> {
    confab::tracker::memory::set_up_allocator();
    // A second tracker on the same chat.log stops before any question, but
    // a tracker that cannot get a password leaves no files behind.
    let acquire = || confab::tracker::transcript::LogLock::acquire(&args.log_dir);
    let will_ask = !args.no_password
        && args.password_file.is_none()
        && std::env::var_os("CONFAB_PASSWORD").is_none()
        && std::io::stdin().is_terminal();
    let early_lock = if will_ask { Some(acquire()?) } else { None };
    let password = read_password(&args)?;
    let mut log_lock = match early_lock {
        Some(lock) => lock,
        None => acquire()?,
    };
    // Its threads are known to `yielding`, which makes them yield to the
    // hub while the hub is busy.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(confab::tracker::yielding::register_current_thread)
        .on_thread_stop(confab::tracker::yielding::deregister_current_thread)
        .on_thread_park(confab::tracker::memory::empty_cache_if_asked)
        .build()?;
    runtime.block_on(async move {
        // Installs the SIGINT handler now, before the console can raise
        // one: without it, a Ctrl+C at the prompt in the first instant
        // would end the process with the terminal still raw.
        #[cfg(unix)]
        let _sigint_handled =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        let mut config = Config::new(args.log_dir.clone());
        config.idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
        config.ping_interval = Duration::from_secs(args.ping_interval.max(1));
        config.register_timeout = Duration::from_secs(args.register_timeout.max(1));
        config.stay = args.stay;
        // validate() checked it.
        config.exit_grace = args
            .exit_grace_duration()
            .unwrap_or(tracker::DEFAULT_EXIT_GRACE);
        config.flood = confab::tracker::conn::FloodPolicy::new(args.flood_rate, args.flood_burst);
        // One hub batch can queue ~0.5 MiB for a reader at once; a smaller
        // queue would drop readers that are keeping up.
        config.sendq = args.sendq.max(1 << 20);
        config.sendq_total = args.sendq_total.max(16 << 20);
        config.max_connections = args.max_connections.max(1);
        config.max_per_address = args.max_per_address.max(1);
        #[cfg(unix)]
        match confab::tracker::open_files::raise_for(config.max_connections) {
            Ok(files) => files.message().into_iter().for_each(|m| eprintln!("{m}")),
            Err(e) => eprintln!("WARNING: {e}"),
        }
        config.log_sync = args.log_sync;
        config.p2p = args.p2p;
        config.log_rotate = args.log_rotate;
        config.replay_max = args.replay_max;
        config.history_days = args.history_days;
        config.server_name = args.server_name.clone();
        config.opers = args
            .oper
            .iter()
            .map(|o| confab::tracker::opers::OperBlock {
                name: o.name.clone(),
                hash: o.password_hash.clone(),
            })
            .collect();
        match password {
            Some(pw) => config.password = Some(PasswordGate::new(pw)?),
            None => eprintln!("WARNING: no password: anyone who can reach this tracker may join."),
        }
        let mut fingerprint = None;
        if args.no_tls {
            eprintln!("WARNING: TLS is off (--no-tls): messages and the password cross the network in clear text.");
        } else {
            // Versions before the per-user folder kept the identity in
            // ./data: one found there is carried over, so a returning user's
            // pinned fingerprint still matches.
            let legacy = (args.data_dir == confab::settings::default_data_dir())
                .then(|| PathBuf::from(confab::settings::LEGACY_DATA_DIR));
            let identity =
                confab::tls::load_adopt_or_create_identity(&args.data_dir, legacy.as_deref())?;
            let data_dir = args.data_dir.display();
            if let Some(from) = &identity.copied_from {
                eprintln!(
                    "copied the TLS certificate and key from {} to {data_dir} (same fingerprint); the tracker now uses {data_dir} wherever it is started, and {} can be removed",
                    from.display(),
                    from.display()
                );
            }
            if let Some((other, fp)) = &identity.ignored_legacy {
                eprintln!(
                    "note: {} holds another TLS certificate ({fp}), not used: this tracker's is in {data_dir}; to use that one, start with --data-dir {}",
                    other.display(),
                    other.display()
                );
            }
            if identity.created {
                eprintln!("created a new TLS certificate in {data_dir}");
            }
            fingerprint = Some(identity.fingerprint);
            config.tls = Some(confab::tls::server_config(&identity)?);
        }
        // The store: accounts now, history next. Opened before listening,
        // so a store that cannot be opened (corrupt, from a newer confab)
        // stops the tracker with the reason instead of running without
        // accounts.
        confab::private::create_dir(&args.data_dir)
            .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
        let store_path = args.data_dir.join(confab::store::FILE_NAME);
        let (store, was) = confab::store::Store::open(&store_path).with_context(|| {
            format!(
                "cannot open the store {} (restore a backup made with `tracker backup`, or move it away to start afresh)",
                store_path.display()
            )
        })?;
        if was == 0 {
            eprintln!("created the store {}", store_path.display());
        } else if was < confab::store::schema::VERSION {
            eprintln!(
                "upgraded the store {} from schema {was} to {}",
                store_path.display(),
                confab::store::schema::VERSION
            );
        }
        let (store, _store_thread) = confab::store::StoreHandle::spawn(store)?;
        // Kept to wait, at a clean stop, for what the hub handed the store
        // last (messages, registered rooms' changes) before exiting.
        let store_at_exit = store.clone();
        config.store = (!no_store).then_some(store);
        let port = args.port_or_default();
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.bind, port))
            .await
            .with_context(|| format!("cannot listen on {}:{port}", args.bind))?;
        let local = listener.local_addr()?;
        // Who holds the log, for a second tracker's refusal, before anyone
        // is told where this one listens.
        log_lock
            .record_owner(local)
            .with_context(|| format!("cannot write {}", log_lock.path().display()))?;
        config.log_lock = Some(log_lock);
        say!("listening on {local}");
        match fingerprint {
            Some(fp) => say!("fingerprint {fp}"),
            None => say!("fingerprint none (plain TCP)"),
        }
        say!("chat log {}", args.log_dir.join("chat.log").display());
        say!("data dir {}", args.data_dir.display());
        for hint in join_hints(local, args.no_tls) {
            say!("clients join with: {hint}");
        }
        say!("{}", exit_rule(args.stay, config.exit_grace));
        if args.history_days > 0 {
            say!(
                "history kept for {} day(s): older messages purged at start and hourly (--history-days)",
                args.history_days
            );
        }
        config.console = tracker::ConsoleSetup {
            terminal: std::io::stdin().is_terminal(),
            socket: match confab::private::create_dir(&args.data_dir) {
                Ok(()) => Some(confab::tracker::console::socket::path_in(&args.data_dir)),
                Err(e) => {
                    eprintln!("no console socket: cannot create {}: {e}", args.data_dir.display());
                    None
                }
            },
        };
        if args.no_announce {
            say!("not announced on the local network (--no-announce)");
        } else {
            let announcement = confab::discovery::Announcement {
                tls: !args.no_tls,
                password: config.password.is_some(),
                fingerprint,
                members: 0,
                version: confab::VERSION.to_string(),
            };
            match confab::tracker::announce::Announcer::start(&args.server_name, local, announcement) {
                Ok(announcer) => {
                    config.announcer = Some(announcer);
                    let when = if confab::tracker::announce::addresses_now(local.ip()).is_empty() {
                        " once a network interface is up (none but loopback now)"
                    } else {
                        ""
                    };
                    say!(
                        "announced on the local network as {} (mDNS){when}; --no-announce turns it off",
                        args.server_name
                    );
                }
                Err(e) => eprintln!("WARNING: {e}; clients need the address to join"),
            }
        }
        let shutdown = async {
            let reason = shutdown_signal().await;
            // A second signal means "now": skip the graceful path.
            tokio::spawn(async {
                shutdown_signal().await;
                confab::tracker::console::local::restore_terminal();
                eprintln!("second signal: exiting immediately");
                std::process::exit(130);
            });
            reason
        };
        let stopped = tracker::run(config, listener, shutdown).await;
        // The store runs its queue in order: this returns once everything
        // handed to it before is done.
        if let Err(e) = store_at_exit.call(|_| ()).await {
            eprintln!("the store stopped before finishing its work: {e}");
        }
        confab::tracker::console::local::restore_terminal();
        let stopped = stopped?;
        match stopped {
            Stopped::Requested => eprintln!("tracker stopped"),
            Stopped::LastMemberLeft => eprintln!("the last member left; tracker stopped"),
        }
        // What the log's owner keeps to show later that it was not edited.
        if let Ok(Some(head)) = confab::tracker::chain::last_head(&args.log_dir) {
            eprintln!(
                "chat.log chain head {head} (keep it: `tracker log --verify --expect {head}` shows the log is unchanged up to here)"
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// What the operator is told at start about when the tracker stops by itself.
fn exit_rule(stay: bool, grace: Duration) -> String {
    if stay {
        "stays running when everyone has left (--stay); stop it with Ctrl+C".into()
    } else if grace.is_zero() {
        "stops as soon as the last member leaves; --stay keeps it running".into()
    } else {
        format!(
            "stops {} after the last member leaves unless someone joins (--exit-grace); --stay keeps it running",
            tracker::seconds(grace)
        )
    }
}

async fn shutdown_signal() -> String {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "stopped by the operator (SIGINT)".into();
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "stopped by the operator (SIGINT)".into(),
            _ = term.recv() => "stopped by the operator (SIGTERM)".into(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "stopped by the operator (Ctrl+C)".into()
    }
}

/// The commands people on other machines type to join: one per address this
/// host can be reached at (all non-loopback interface addresses when bound
/// to the wildcard), so the operator can read one out instead of looking it
/// up. The port is left out when it is the client's default.
fn join_hints(local: SocketAddr, no_tls: bool) -> Vec<String> {
    let default_port = if no_tls { 6667 } else { 6697 };
    let tls = if no_tls { " --no-tls" } else { "" };
    let command = |ip: std::net::IpAddr| {
        let host = match ip {
            std::net::IpAddr::V6(v6) if local.port() != default_port => format!("[{v6}]"),
            ip => ip.to_string(),
        };
        if local.port() == default_port {
            format!("client{tls} {host}")
        } else {
            format!("client{tls} {host} {}", local.port())
        }
    };
    if !local.ip().is_unspecified() {
        return vec![command(local.ip())];
    }
    let mut addrs: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|iface| iface.ip())
        .filter(|ip| !ip.is_loopback() && (local.is_ipv6() || ip.is_ipv4()))
        // Link-local IPv6 needs a zone the user would have to add by hand.
        .filter(|ip| !matches!(ip, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .collect();
    addrs.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    addrs.dedup();
    if addrs.is_empty() {
        return vec![format!(
            "client{tls} <this machine's address> {}",
            local.port()
        )];
    }
    addrs.into_iter().map(command).collect()
}

/// `tracker log`: prints, follows, counts or verifies chat.log.
fn review_log(a: &LogArgs, settings: &Settings) -> ExitCode {
    use confab::tracker::review::{self, ReviewError, Source, Style, filter};
    let path = a.path.clone().unwrap_or_else(|| settings.log_dir.clone());
    if a.verify {
        let expect = match a.expect.as_deref().map(str::parse).transpose() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("tracker: --expect {e}");
                return ExitCode::from(2);
            }
        };
        let dir = if path.is_file() {
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
        } else {
            path
        };
        return match review::verify::verify(&dir, expect) {
            Ok(v) => {
                for line in v.describe() {
                    say!("{line}");
                }
                match (v.intact(), v.unchained.is_some()) {
                    (false, _) => ExitCode::from(1),
                    (true, true) => ExitCode::from(3),
                    (true, false) => ExitCode::SUCCESS,
                }
            }
            Err(e) => {
                eprintln!("tracker: cannot verify {}: {e}", dir.display());
                ExitCode::from(1)
            }
        };
    }
    let source = match Source::find(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tracker: {e}");
            return ExitCode::from(1);
        }
    };
    let tz = jiff::tz::TimeZone::system();
    let args = filter::FilterArgs {
        rooms: a.room.clone(),
        users: a.user.clone(),
        dms: a.dm.clone(),
        since: a.since.clone(),
        until: a.until.clone(),
        grep: a.grep.clone(),
        events: a.event.clone(),
    };
    let filter = match filter::Filter::new(&args, jiff::Timestamp::now(), &tz) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tracker: {e}");
            return ExitCode::from(2);
        }
    };
    let style = Style {
        json: a.json,
        utc: a.utc,
        tz,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let tell = |summary: &review::Summary| {
        for line in summary.describe() {
            eprintln!("{line}");
        }
    };
    let result = if a.stats {
        review::stats(&source, &filter, &style, &mut out).map(|s| tell(&s))
    } else {
        let never = || false;
        let follow = a
            .follow
            .then_some((Duration::from_millis(100), &never as &dyn Fn() -> bool));
        review::print(&source, &filter, &style, follow, &mut out, &mut |s| {
            tell(s);
            if a.follow {
                eprintln!("following {} (Ctrl+C ends)", source.live.display());
            }
        })
        .map(|_| ())
    };
    let result = result.and_then(|()| std::io::Write::flush(&mut out).map_err(ReviewError::Output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `tracker log | head`: the reader has what it wanted.
        Err(ReviewError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tracker: {e}");
            ExitCode::from(1)
        }
    }
}
