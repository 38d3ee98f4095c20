//! End-to-end tests: real `tracker` and `client` binaries over real sockets
//! on 127.0.0.1. One test binary (one link) with modules.

mod abuse;
mod accounts;
mod chat;
mod classroom_client;
mod config;
mod console;
mod history;
// Network namespaces are Linux's.
#[cfg(target_os = "linux")]
mod discovery;
mod harness;
mod hostile;
mod irssi;
mod limits;
mod login;
mod monitor;
mod ops;
mod p2p;
mod protocol;
mod review;
mod rooms;
mod rooms_client;
mod terminal;
mod tmux;
mod tui;
mod wire;
