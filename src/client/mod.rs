//! The confab client: connection, state, and the plain line mode.

pub mod connection;
pub mod input;
pub mod known;
pub mod plain;
pub mod session;
pub mod state;
