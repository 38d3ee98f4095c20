//! confab: self-hosted group chat for terminals, speaking IRC.
//!
//! Module map (three worlds that meet only through narrow types):
//!
//! - [`proto`]: the protocol, pure and I/O-free.
//!   - `message`: `Message` parse/encode (tags, source, params, limits).
//!   - `codec`: byte stream to lines, with the 512/8191-byte limits.
//!   - `nick`: username and room-name rules, rfc1459 case mapping.
//!   - `caps`: IRCv3 capabilities offered and their negotiation.
//!   - `status`: how ACTIVE / BUSY / INACTIVE ride on `AWAY`.
//!   - `sanitize`: stripping terminal escapes and control characters.
//!   - `numeric`: reply codes.
//! - [`prompt`]: questions on the terminal before the chat (hidden
//!   passwords, Ctrl+C handled, the terminal always restored).
//! - [`settings`]: the tracker's settings: defaults, TOML file, flags.
//! - [`tls`]: the crypto provider, certificate fingerprints, the tracker's
//!   self-signed certificate.
//! - [`tracker`]: the server.
//!   - `mod`: `Config` and `run(config, listener, shutdown)`: accept loop,
//!     TLS handshakes, shutdown sequence.
//!   - `conn`: one task per connection: registration state machine, PING,
//!     flood control, its outbox (bounded in bytes, and all outboxes
//!     together by a shared `SendBudget`) drained into one write.
//!   - `hub`: the one owner of users, rooms and statuses, on its own thread;
//!     records to the transcript before delivering.
//!   - `transcript`: `chat.log`, and when it reaches the disk (`LogSync`).
//!   - `password`: the Argon2id password gate (its own low-priority
//!     checking threads) and the allowance of wrong passwords per address
//!     and tracker-wide (`GuessBudget`), taken before hashing.
//! - [`client`]: the client.
//!   - `connection`: TLS with fingerprint pinning, lines to messages.
//!   - `known`: the file of trusted tracker fingerprints.
//!   - `state`: the application state, updated by server messages and user
//!     input without I/O; produces events and outgoing messages.
//!   - `input`: parsing what the user types into commands.
//!   - `plain`: the line-mode renderer (formatting only).
//!   - `session`: login (trust, password, username), the plain-mode loop
//!     and what both chat loops share (keep-alive, sending, leaving).
//!   - `tui`: the full-screen UI (ratatui + crossterm): its chat loop.
//!     - `view`: what is shown, as data: windows, scrollback, unread and
//!       mention marks, scroll position, roster; updated by events and
//!       keys, no I/O.
//!     - `editor`: the input line: editing, history, Tab completion.
//!     - `draw`: draws a view (drawing only).
//!     - `terminal`: raw mode and the alternate screen, always restored.

pub mod client;
pub mod prompt;
pub mod proto;
pub mod settings;
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
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("confab"))
}
