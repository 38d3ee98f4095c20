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
//!     flood control, its outbox (bounded in bytes) drained into one write.
//!   - `hub`: the one owner of users, rooms and statuses, on its own thread;
//!     records to the transcript before delivering.
//!   - `transcript`: `chat.log`.
//!   - `password`: the Argon2id password gate and the per-address lockout
//!     after wrong passwords.
//! - [`client`]: the client.
//!   - `connection`: TLS with fingerprint pinning, lines to messages.
//!   - `known`: the file of trusted tracker fingerprints.
//!   - `state`: the application state, updated by server messages and user
//!     input without I/O; produces events and outgoing messages.
//!   - `input`: parsing what the user types into commands.
//!   - `plain`: the line-mode renderer (formatting only).
//!   - `session`: login (trust, password, username) and the plain-mode loop.

pub mod client;
pub mod prompt;
pub mod proto;
pub mod settings;
pub mod tls;
pub mod tracker;

/// The version shown by `--version`: the package version and the git
/// revision it was built from (`unknown` outside a git checkout).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CONFAB_GIT_REV"), ")");
