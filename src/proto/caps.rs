//! IRCv3 capabilities the tracker offers and their negotiation.

/// Capabilities a connection has enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub server_time: bool,
    pub message_tags: bool,
    pub echo_message: bool,
    pub away_notify: bool,
    pub multi_prefix: bool,
    /// SASL (`AUTHENTICATE`), offered when the tracker has accounts.
    pub sasl: bool,
    /// `draft/account-registration` (`REGISTER`), likewise.
    pub account_registration: bool,
    /// `batch`: history pages come wrapped in a `chathistory` batch.
    pub batch: bool,
    /// `draft/chathistory`: the client reads history (`CHATHISTORY`).
    pub chathistory: bool,
    /// `draft/read-marker`: the client hears where its account has read
    /// each room and conversation up to (`MARKREAD`).
    pub read_marker: bool,
    /// `draft/event-playback`: history pages hold a room's events (JOIN,
    /// PART, QUIT, KICK, NICK, TOPIC, MODE) between its messages.
    pub event_playback: bool,
}

/// What to answer a `CAP` subcommand.
#[derive(Debug, PartialEq, Eq)]
pub enum CapAnswer {
    /// `CAP <nick> <verb> :<list>`.
    Reply(&'static str, String),
    /// `CAP END`: nothing to say; registration may go on.
    End,
    /// An unknown subcommand: `410`.
    Invalid,
}

/// Sent by the tracker before its `CAP LS` reply, to a connection not yet
/// registered, when it needs a password (`PASS`): a client learns it
/// before asking anyone for one. Servers already greet unregistered
/// connections with `NOTICE * :*** ...` lines, so other IRC clients show
/// it or ignore it.
pub const PASSWORD_NOTICE: &str = "*** This tracker needs a password (PASS) to log in";

/// Advertised in `CAP LS`. Only what the tracker fully implements.
pub const SUPPORTED: &[&str] = &[
    "away-notify",
    "echo-message",
    "message-tags",
    "multi-prefix",
    "server-time",
];

/// Advertised too when the tracker has its store (accounts and history).
/// SASL offers only PLAIN (over TLS by default); `REGISTER` works once the
/// connection has registered, after the server password; `CHATHISTORY`
/// pages come in a `batch`, with the rooms' events for
/// `draft/event-playback`.
pub const ACCOUNT_CAPS: &[&str] = &[
    "batch",
    "draft/account-registration",
    "draft/chathistory",
    "draft/event-playback",
    "draft/read-marker",
    "sasl",
];

/// What `CAP LS` lists: [`SUPPORTED`], and [`ACCOUNT_CAPS`] when `accounts`.
pub fn offered(accounts: bool) -> Vec<&'static str> {
    let mut all: Vec<&str> = SUPPORTED.to_vec();
    if accounts {
        all.extend_from_slice(ACCOUNT_CAPS);
    }
    all.sort_unstable();
    all
}

impl Caps {
    fn flag(&mut self, name: &str, accounts: bool) -> Option<&mut bool> {
        match name {
            "sasl" if accounts => Some(&mut self.sasl),
            "draft/account-registration" if accounts => Some(&mut self.account_registration),
            "batch" if accounts => Some(&mut self.batch),
            "draft/chathistory" if accounts => Some(&mut self.chathistory),
            "draft/read-marker" if accounts => Some(&mut self.read_marker),
            "draft/event-playback" if accounts => Some(&mut self.event_playback),
            "server-time" => Some(&mut self.server_time),
            "message-tags" => Some(&mut self.message_tags),
            "echo-message" => Some(&mut self.echo_message),
            "away-notify" => Some(&mut self.away_notify),
            "multi-prefix" => Some(&mut self.multi_prefix),
            _ => None,
        }
    }

    /// Applies a `CAP REQ` list atomically: all or nothing (IRCv3 says a
    /// request with any unknown cap is NAKed whole). Returns whether it was
    /// acknowledged.
    pub fn request(&mut self, list: &str, accounts: bool) -> bool {
        let mut next = *self;
        for item in list.split_whitespace() {
            let (name, on) = match item.strip_prefix('-') {
                Some(n) => (n, false),
                None => (item, true),
            };
            match next.flag(name, accounts) {
                Some(f) => *f = on,
                None => return false,
            }
        }
        *self = next;
        true
    }

    pub fn enabled(&self) -> Vec<&'static str> {
        let mut copy = *self;
        offered(true)
            .into_iter()
            .filter(|n| copy.flag(n, true).is_some_and(|f| *f))
            .collect()
    }

    /// The answer to `CAP <sub> [arg]`, the same before and after
    /// registration (the caller addresses it). `accounts`: the tracker
    /// keeps accounts, so the account caps are offered.
    pub fn answer(&mut self, sub: &str, arg: &str, accounts: bool) -> CapAnswer {
        match sub {
            "LS" => CapAnswer::Reply("LS", offered(accounts).join(" ")),
            "LIST" => CapAnswer::Reply("LIST", self.enabled().join(" ")),
            "REQ" => {
                let verdict = if self.request(arg, accounts) {
                    "ACK"
                } else {
                    "NAK"
                };
                // A real request is short; only garbage needs cutting.
                CapAnswer::Reply(verdict, super::sanitize::clip(arg, 400).to_string())
            }
            "END" => CapAnswer::End,
            _ => CapAnswer::Invalid,
        }
    }

    /// Index 0..4 of the wire variant this connection needs for tagged messages.
    pub fn tag_variant(&self) -> usize {
        usize::from(self.server_time) | (usize::from(self.message_tags) << 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_all_or_nothing() {
        let mut c = Caps::default();
        assert!(c.request("server-time echo-message", false));
        assert!(c.server_time && c.echo_message);
        assert!(
            !c.request("away-notify sasl", false),
            "no accounts: no sasl"
        );
        assert!(!c.away_notify);
        assert!(c.request("-server-time", false));
        assert!(!c.server_time);
        assert_eq!(c.enabled(), vec!["echo-message"]);
        assert!(c.request("sasl draft/account-registration", true));
        assert_eq!(
            c.enabled(),
            vec!["draft/account-registration", "echo-message", "sasl"]
        );
        assert_eq!(
            offered(true).join(" "),
            "away-notify batch draft/account-registration draft/chathistory draft/event-playback draft/read-marker echo-message message-tags multi-prefix sasl server-time"
        );
    }
}
