//! The IRC protocol as confab speaks it: pure data and functions, no I/O.

pub mod caps;
pub mod codec;
pub mod message;
pub mod nick;
pub mod numeric;
pub mod sanitize;
pub mod sasl;
pub mod status;

pub use codec::{Frame, LineCodec, LineLimits};
pub use message::{Message, ParseError};
