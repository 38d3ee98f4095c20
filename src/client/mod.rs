//! The confab client: connection, state, the full-screen UI and the plain
//! line mode.

pub mod connection;
pub mod direct;
pub mod discover;
pub mod history;
pub mod input;
pub mod known;
pub mod monitor;
pub mod p2p;
pub mod plain;
pub mod session;
pub mod state;
pub mod tui;
