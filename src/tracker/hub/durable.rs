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
use crate::proto::nick::casefold;
use crate::store::dm_key;

impl Chat {
    /// The tags of the `chat.log` line for `out`, a message from `from` to a
    /// room (`to` is `None`) or to the person `to`, followed by a space.
    pub(super) fn log_tags(&self, from: ConnId, to: Option<ConnId>, out: &Outgoing) -> String {
        let to_account = to.and_then(|id| self.state.users.get(&id)?.account.clone());
        let key = match to {
            Some(to) => Some(dm_key(&self.identity(from), &self.identity(to))),
            None => out
                .msg
                .param_at(0)
                .filter(|t| t.starts_with('#'))
                .map(casefold),
        };
        self.log_tags_to(from, to_account, key.as_deref(), out)
    }

    /// The same, naming the recipient's account (a DM held for an account
    /// that is not connected).
    pub(super) fn log_tags_to(
        &self,
        from: ConnId,
        to_account: Option<String>,
        key: Option<&str>,
        out: &Outgoing,
    ) -> String {
        // The place the message is about to be kept at (`keep` follows the
        // line with nothing between), when history is kept.
        let seq = key
            .filter(|_| self.history.on)
            .map(|k| (self.history_seq(k) + 1).to_string());
        let tags = MessageTags {
            msgid: out.msgid.map(|n| self.msgids.format(n)),
            source: out.msg.source.clone(),
            account: self.state.users.get(&from).and_then(|u| u.account.clone()),
            to_account,
            seq,
        };
        let mut text = tags.to_text();
        if !text.is_empty() {
            text.push(' ');
        }
        text
    }
}
