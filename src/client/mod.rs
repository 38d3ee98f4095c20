//! The confab client: connection, state, the full-screen UI and the plain
//! line mode.

pub mod connection;
pub mod discover;
pub mod input;
pub mod known;
pub mod plain;
pub mod session;
pub mod state;
pub mod tui;
