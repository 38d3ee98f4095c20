//! What a message's `chat.log` line carries so that the store can be
//! refilled from it: `chat.log` is the commit point, and a crash between a
//! batch's `chat.log` write and the store's transaction must lose nothing
//! from history (`tracker::repair` reads these back at the next start).
//!
//! The line already holds the room or the two people, the text and the
//! time; the tags add the `msgid` (the same one recipients saw), the full
//! source, and the accounts that decide a DM's history key.

use super::super::review::format::MessageTags;
use super::super::shared::ConnId;
use super::chat::{Chat, Outgoing};

impl Chat {
    /// The tags of the `chat.log` line for `out`, a message from `from` to a
    /// room (`to` is `None`) or to the person `to`, followed by a space.
    pub(super) fn log_tags(&self, from: ConnId, to: Option<ConnId>, out: &Outgoing) -> String {
        let to_account = to.and_then(|id| self.state.users.get(&id)?.account.clone());
        self.log_tags_to(from, to_account, out)
    }

    /// The same, naming the recipient's account (a DM held for an account
    /// that is not connected).
    pub(super) fn log_tags_to(
        &self,
        from: ConnId,
        to_account: Option<String>,
        out: &Outgoing,
    ) -> String {
        let tags = MessageTags {
            msgid: out.msgid.map(|n| self.msgids.format(n)),
            source: out.msg.source.clone(),
            account: self.state.users.get(&from).and_then(|u| u.account.clone()),
            to_account,
        };
        let mut text = tags.to_text();
        if !text.is_empty() {
            text.push(' ');
        }
        text
    }
}
