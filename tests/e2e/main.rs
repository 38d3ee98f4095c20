//! End-to-end tests: real `tracker` and `client` binaries over real sockets
//! on 127.0.0.1. One test binary (one link) with modules.

mod abuse;
mod accounts;
mod chat;
mod classroom_client;
mod client_history;
mod comeback;
mod config;
mod console;
mod history;
// Network namespaces are Linux's.
#[cfg(target_os = "linux")]
mod discovery;
mod durable;
mod harness;
mod hostile;
mod irssi;
mod limits;
mod login;
mod monitor;
mod ops;
mod p2p;
mod playback;
mod protocol;
mod review;
mod rooms;
mod rooms_client;
mod rooms_keep;
mod terminal;
mod tmux;
mod tty_gone;
mod tui;
mod wire;
