//! End-to-end tests: real `tracker` and `client` binaries over real sockets
//! on 127.0.0.1. One test binary (one link) with modules.

mod abuse;
mod chat;
mod config;
mod harness;
mod irssi;
mod login;
mod protocol;
mod terminal;
mod tmux;
mod tui;
