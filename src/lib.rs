//! confab: self-hosted group chat for terminals, speaking IRC.
//!
//! Module map (three worlds that meet only through narrow types):
//!
//! - [`proto`]: the protocol, pure and I/O-free.
//!   - `message`: `Message` parse/encode (tags, source, params, limits).
//!   - `codec`: byte stream to lines, with the line limits (`LineLimits`:
//!     from a client 512-byte bodies and 4094 bytes of tag data, from a
//!     server 8191 bytes of tags).
//!   - `nick`: username and room-name rules, rfc1459 case mapping.
//!   - `caps`: IRCv3 capabilities offered and their negotiation.
//!   - `status`: how ACTIVE / BUSY / INACTIVE ride on `AWAY`.
//!   - `sanitize`: stripping terminal escapes and control characters.
//!   - `numeric`: reply codes.
//! - [`memcopy`]: `memcpy` and `memmove` for the static x86_64 Linux
//!   build, replacing musl's, which was a fifth of the tracker's CPU
//!   under load (compiled and tested everywhere, exported only there).
//! - [`prompt`]: questions on the terminal before the chat (hidden
//!   passwords, Ctrl+C handled, the terminal always restored).
//! - [`private`]: folders 0700 and files 0600 for what only the tracker's
//!   user may read, and the warning when existing ones are more open.
//! - [`settings`]: the tracker's settings: defaults, TOML file, flags.
//! - [`store`]: the embedded SQLite store (accounts, history, read markers,
//!   registered rooms, messages held for offline accounts) and the thread
//!   that owns it (`StoreHandle`), so nothing else waits on its disk.
//!   - `schema`: the migrations, versioned in `PRAGMA user_version`.
//!   - `history`: appending (messages and room events), the
//!     `CHATHISTORY` pages and `TARGETS`, retention's purge; `accounts`:
//!     accounts (and deleting one with its data), memberships, read
//!     markers, registered rooms; `comeback`: what a login needs in one
//!     read (rooms, markers, unread lines).
//! - [`tls`]: the crypto provider, certificate fingerprints, the tracker's
//!   self-signed certificate and TLS settings (resumption by stateless
//!   tickets, no sessions kept in memory).
//! - [`discovery`]: what a tracker announces on the LAN (mDNS / DNS-SD
//!   service type, the TXT record written and read back), without I/O;
//!   the tracker's `announce` and the client's `discover` meet only here.
//! - [`tracker`]: the server.
//!   - `mod`: `Config` and `run(config, listener, shutdown)`: accept loop,
//!     TLS handshakes, shutdown sequence.
//!   - `shared`: what connection tasks and the hub share (ids, requests,
//!     the handle to a connection's outbox, the send budget); neither
//!     imports the other.
//!   - `commands`: the command table (`421`/`451`/`461`, activity, `HELP`).
//!   - `replies`: every numeric and `FAIL` reply, defined once.
//!   - `policy`: who may do what in a room, one named function each; the
//!     `--p2p` policy for direct sessions.
//!   - `conn`: one task per connection: registration state machine, PING,
//!     flood control, OPER's password check, its outbox (bounded in bytes,
//!     and all outboxes together by a shared `SendBudget`) drained into one
//!     write.
//!   - `write_side`: who writes a plain-TCP member's socket, the hub
//!     (directly, while the task has nothing queued) or the task.
//!   - `hub`: the one owner of users, rooms and statuses, on its own thread;
//!     records to the transcript before delivering.
//!     - `mod`: the delivery machinery (batches, linger, commit, take-back);
//!       `linger`: how long it waits after a busy batch, from its CPU use.
//!     - `chat`: `Chat`, the chat logic without I/O, on a `Clock` it is
//!       given; `state`: users, rooms, roles, modes, bans;
//!       `messages`, `rooms`, `moderation`, `queries`, `users`, `server`:
//!       the handlers by role; `p2p`: direct sessions (DCC offers and
//!       answers, their record and the console's snapshot); `accounts`:
//!       REGISTER, ACCOUNT, registered names; `history`: keeping
//!       messages and room events, CHATHISTORY (TARGETS too); `comeback`: a login's summary and
//!       unread lines, read markers (MARKREAD), direct messages held for
//!       an account that is away; `rooms_keep`: registered rooms
//!       (founder by account, kept in the store, loaded at start) and
//!       the store jobs nobody waits for; `retention`: `--history-days`
//!       purges; `durable`: what a message's chat.log line carries for
//!       the store (msgid, source, accounts); `console`: the console's
//!       snapshots and actions, and what it needs recorded (bounded);
//!       `packed`: records of who left (WHOWAS, the console's), packed a
//!       chunk of rows to an allocation so they pin no freed pages;
//!       `tests`, `tests_p2p`, `tests_console`, `tests_rooms_keep`,
//!       `tests_durable`, `tests_comeback`: in-process tests of `Chat`;
//!       `tests_hub`: of the hub's batches, delivered to real sockets.
//!   - `console`: the operator's console: the command table, parser
//!     (did you mean), tables, `Executor` (asks the hub); `editor`
//!     (rustyline: history, completion, diagnostics above the prompt),
//!     `diagnostics` (the tracing writer: stderr or the consoles, never
//!     blocking), `local` (the terminal's console, the terminal restored),
//!     `socket` (`console.sock`, its line protocol), `attach`
//!     (`tracker console`).
//!   - `opers`: tracker operators from the config, and OPER's check.
//!   - `accounts`: SASL PLAIN's check and the account jobs (hashing, the
//!     store) the hub asks for and never waits on.
//!   - `announce`: the announcement on the LAN (mdns-sd), its member count
//!     kept current (rate-limited), withdrawn on shutdown.
//!   - `transcript`: `chat.log`, when it reaches the disk (`LogSync`),
//!     rotation (`LogRotate`, inside the commit) and the lock that keeps
//!     it to one tracker (`LogLock`).
//!   - `chain`: `chat.log.chain`, the hash chain written with each commit
//!     (records, their format, the writer).
//!   - `repair`: at start, before the hub numbers anything, refills the
//!     store from `chat.log` (the commit point) with the messages a crash
//!     kept from it.
//!   - `review`: `tracker log`, reading a log folder without writing.
//!     - `format`: the line format, one parser per event (`EVENTS`),
//!       and a message line's tags (`MessageTags`).
//!     - `filter`: `--room`, `--user`, `--dm`, `--since`, `--until`,
//!       `--grep`, `--event`.
//!     - `stats`: `--stats`; `verify`: `--verify` against the chain.
//!   - `password`: the Argon2id password gate (its own low-priority
//!     checking threads, the right password remembered for a minute as an
//!     HMAC) and the allowance of wrong passwords per address and
//!     tracker-wide (`GuessBudget`), taken before hashing.
//!   - `memory`: giving memory back when quiet: the checks' Argon2 work
//!     areas mapped on their own, the allocator's free pages returned once
//!     members have left (`LeaveWatch`), after the threads emptied their
//!     allocator caches (glibc's tcache; on the static musl build, each
//!     thread's mimalloc heap, set up in `set_up_allocator`), the store's
//!     page cache dropped first when all have.
//!   - `open_files`: the open-file limit raised for `--max-connections`.
//!   - `yielding`: the runtime's workers run as `SCHED_BATCH` while the
//!     hub's thread is busy, so they stop preempting it (`Governor`).
//! - [`client`]: the client.
//!   - `connection`: TLS with fingerprint pinning, lines to messages.
//!   - `known`: the file of trusted tracker fingerprints.
//!   - `discover`: `client` with no address and `--list`: browse the LAN,
//!     list (for people or JSON), ask which tracker to join.
//!   - `state`: the application state, updated by server messages and user
//!     input without I/O; produces events and outgoing messages.
//!   - `history`: coming back: `chathistory` batches (the replay at login,
//!     pages asked with PgUp), read markers and when to send ours
//!     (throttled, time an argument), no I/O; `state` owns one.
//!   - `input`: parsing what the user types into commands.
//!   - `plain`: the line-mode renderer (formatting only).
//!   - `session`: login (trust, password, username), the plain-mode loop
//!     and what both chat loops share (keep-alive, sending, leaving).
//!   - `p2p`: direct sessions' state (offers, answers, fallback), no I/O.
//!   - `direct`: direct sessions' links: listen or connect, TLS with
//!     fingerprints checked, lines both ways.
//!   - `tui`: the full-screen UI (ratatui + crossterm): its chat loop.
//!     - `view`: what is shown, as data: windows, scrollback, unread and
//!       mention marks, the separator after what was read, scroll
//!       position, roster; updated by events and keys, no I/O.
//!     - `editor`: the input line: editing, history, Tab completion.
//!     - `keys`: the key table: what each key does and what `/help` and
//!       the README say about it, from one list.
//!     - `draw`: draws a view (drawing only).
//!     - `terminal`: raw mode and the alternate screen, always restored.
//!   - `monitor`: `client --monitor`, many trackers at once.
//!     - `servers`: the servers list, its passwords file,
//!       `--password-file TRACKER=PATH` (parsing only).
//!     - `model`: the state without I/O: an `App` per tracker, link
//!       states, rooms to join again, the JSON records; fed (tracker,
//!       message or link news, now).
//!     - `link`: one task per tracker: its connection, keep-alive, and
//!       logging in again after a `backoff` (exponential, capped,
//!       jittered; time is an argument).
//!     - `view`, `draw`: the merged timeline and a window per tracker and
//!       room, on the client's windows, input line and keys.

/// The static Linux build's allocator (Cargo.toml says why). Every binary
/// and test linking this crate for musl uses it; glibc and macOS builds
/// keep the system's.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod client;
pub mod discovery;
#[cfg(target_arch = "x86_64")]
pub mod memcopy;
pub mod private;
pub mod prompt;
pub mod proto;
pub mod settings;
pub mod store;
pub mod tls;
pub mod tracker;

/// The version shown by `--version`: the package version and the git
/// revision it was built from (`unknown` outside a git checkout).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CONFAB_GIT_REV"), ")");

/// Handles the packaging flags both binaries have (`--completions SHELL`,
/// `--man`): prints the script or the man page for `cmd` and returns the
/// exit code, or `None` when neither flag was given.
pub fn print_completions_or_man(
    mut cmd: clap::Command,
    completions: Option<clap_complete::Shell>,
    man: bool,
) -> Option<std::process::ExitCode> {
    let name = cmd.get_name().to_string();
    if let Some(shell) = completions {
        clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
        return Some(std::process::ExitCode::SUCCESS);
    }
    if man {
        return Some(
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{name}: {e}");
                    std::process::ExitCode::FAILURE
                }
            },
        );
    }
    None
}

/// confab's folder for per-user files: `$XDG_CONFIG_HOME/confab`, else
/// `~/.config/confab` (`None` without a home folder).
pub fn config_dir() -> Option<std::path::PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config")
}

/// confab's folder for per-user data (the tracker's certificate and key):
/// `$XDG_DATA_HOME/confab`, else `~/.local/share/confab` (`None` without a
/// home folder).
pub fn data_dir() -> Option<std::path::PathBuf> {
    xdg_dir("XDG_DATA_HOME", ".local/share")
}

/// `$var/confab` if `var` is set, else `~/<under_home>/confab`.
fn xdg_dir(var: &str, under_home: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| std::path::PathBuf::from(h).join(under_home))
        })?;
    Some(base.join("confab"))
}
