//! Who may do what in a room: one named function per permission (as
//! sable's `policy/channel_policy.rs`). Handlers ask these and send the
//! refusal they return; no handler decides a permission by itself, so the
//! rules can be read, and tested, in one place.
//!
//! The rules:
//! - a room's founder (`~`, its creator while connected and in it) and its
//!   operators (`@`) moderate it; voiced members (`+`) may speak when it is
//!   moderated;
//! - tracker operators (after `OPER`) may do anything in any room, and are
//!   the only moderators of `#general`, which has no founder;
//! - only the founder or a tracker operator closes a room; `#general` is
//!   never closed;
//! - the founder can be kicked or de-opped only by a tracker operator;
//! - a room created by someone logged in to an account is registered: the
//!   founder rights belong to that account (whoever is logged in to it is
//!   the founder when they join, is never kept out, and may close it from
//!   outside); a room created without an account has a founder only while
//!   its creator stays in it.

use super::hub::state::{Roles, Room};
use super::replies::{self, Numeric};

/// Who is acting: their roles in the room (if a member) and whether they
/// are a tracker operator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor {
    pub roles: Option<Roles>,
    pub tracker_oper: bool,
    /// Logged in to the room's founder account (a registered room).
    pub founder_account: bool,
}

impl Actor {
    fn moderates(self, room: &Room) -> bool {
        self.tracker_oper || (!room.is_general() && self.roles.is_some_and(Roles::moderates))
    }
}

/// A refusal: a numeric, or a standard reply the handler builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Numeric(Numeric),
    /// `#general` cannot be closed.
    CloseGeneral,
}

impl From<Numeric> for Refusal {
    fn from(n: Numeric) -> Self {
        Refusal::Numeric(n)
    }
}

/// Who may moderate a room, in words, for refusals.
fn moderators(room: &Room) -> String {
    if room.is_general() {
        format!("Only tracker operators moderate {}", room.name)
    } else {
        format!(
            "You need to be an operator of {} (or a tracker operator)",
            room.name
        )
    }
}

/// Entering a room: bans, invite-only, key and limit, in that order.
/// An invitation lets one past `+i`, `+b`, `+k` and `+l`, as on most IRC
/// servers; tracker operators are never kept out.
pub fn can_join(
    room: &Room,
    actor: Actor,
    mask: &str,
    invited: bool,
    key: Option<&str>,
) -> Result<(), Numeric> {
    if actor.tracker_oper || invited || actor.founder_account {
        return Ok(());
    }
    if room.banned(mask) {
        return Err(replies::banned(&room.name));
    }
    if room.modes.invite_only {
        return Err(replies::invite_only(&room.name));
    }
    if let Some(k) = &room.modes.key
        && key != Some(k.as_str())
    {
        return Err(replies::bad_room_key(&room.name));
    }
    if let Some(limit) = room.modes.limit
        && room.members.len() >= limit
    {
        return Err(replies::room_is_full(&room.name));
    }
    Ok(())
}

/// Speaking in a room (PRIVMSG, NOTICE, TAGMSG).
pub fn can_send(room: &Room, actor: Actor, mask: &str) -> Result<(), Numeric> {
    if actor.tracker_oper {
        return Ok(());
    }
    let Some(roles) = actor.roles else {
        if room.modes.no_outside {
            return Err(replies::cannot_send(&room.name, "you are not in it"));
        }
        if room.modes.moderated {
            return Err(replies::cannot_send(&room.name, "it is moderated (+m)"));
        }
        return Ok(());
    };
    let speaks_anyway = roles.moderates() || roles.voice;
    if room.modes.moderated && !speaks_anyway {
        return Err(replies::cannot_send(
            &room.name,
            "it is moderated (+m); only operators and voiced members (+v) speak",
        ));
    }
    if room.banned(mask) && !speaks_anyway {
        return Err(replies::cannot_send(&room.name, "you are banned (+b)"));
    }
    Ok(())
}

/// Setting the topic (reading it is open to all who can see the room).
pub fn can_set_topic(room: &Room, actor: Actor) -> Result<(), Numeric> {
    if actor.tracker_oper {
        return Ok(());
    }
    if actor.roles.is_none() {
        return Err(replies::not_on_room(&room.name));
    }
    if (room.modes.topic_ops_only || room.is_general()) && !actor.moderates(room) {
        return Err(replies::chanop_needed(
            &room.name,
            &format!("{} to change the topic (+t)", moderators(room)),
        ));
    }
    Ok(())
}

/// Kicking `target` (who holds `target_roles` in the room).
pub fn can_kick(room: &Room, actor: Actor, target_roles: Roles) -> Result<(), Numeric> {
    if actor.tracker_oper {
        return Ok(());
    }
    if actor.roles.is_none() {
        return Err(replies::not_on_room(&room.name));
    }
    if !actor.moderates(room) {
        return Err(replies::chanop_needed(
            &room.name,
            &format!("{} to kick", moderators(room)),
        ));
    }
    if target_roles.founder && !actor.roles.is_some_and(|r| r.founder) {
        return Err(replies::chanop_needed(
            &room.name,
            "The room's founder can be kicked only by a tracker operator",
        ));
    }
    Ok(())
}

/// Inviting someone: members may, but only moderators in a `+i` room.
pub fn can_invite(room: &Room, actor: Actor) -> Result<(), Numeric> {
    if actor.tracker_oper {
        return Ok(());
    }
    if actor.roles.is_none() {
        return Err(replies::not_on_room(&room.name));
    }
    if room.modes.invite_only && !actor.moderates(room) {
        return Err(replies::chanop_needed(
            &room.name,
            &format!("{} to invite to an invite-only room", moderators(room)),
        ));
    }
    Ok(())
}

/// Changing a room's modes (`plus` and `mode`, the letter; `target_roles`
/// the roles of the member a `+o`/`+v` names).
pub fn can_set_mode(
    room: &Room,
    actor: Actor,
    plus: bool,
    mode: char,
    target_roles: Option<Roles>,
) -> Result<(), Numeric> {
    if actor.tracker_oper {
        return Ok(());
    }
    if !actor.moderates(room) {
        return Err(replies::chanop_needed(
            &room.name,
            &format!("{} to change its modes", moderators(room)),
        ));
    }
    if mode == 'o'
        && !plus
        && target_roles.is_some_and(|r| r.founder)
        && !actor.roles.is_some_and(|r| r.founder)
    {
        return Err(replies::chanop_needed(
            &room.name,
            "The founder's operator status is theirs to give up",
        ));
    }
    Ok(())
}

/// Closing a room: its founder or a tracker operator; never `#general`.
pub fn can_close(room: &Room, actor: Actor) -> Result<(), Refusal> {
    if room.is_general() {
        return Err(Refusal::CloseGeneral);
    }
    if actor.tracker_oper || actor.founder_account || actor.roles.is_some_and(|r| r.founder) {
        return Ok(());
    }
    if let Some(account) = &room.founder_account {
        return Err(replies::chanop_needed(
            &room.name,
            &format!(
                "Only its founder (whoever is logged in to the account {account}) or a tracker operator can close {}",
                room.name
            ),
        )
        .into());
    }
    let who = match &room.founder_nick {
        Some(n) if room.roles.values().any(|r| r.founder) => {
            format!(
                "Only {n}, who created {}, or a tracker operator can close it",
                room.name
            )
        }
        _ => format!(
            "Only a tracker operator can close {} (its creator has left)",
            room.name
        ),
    };
    Err(replies::chanop_needed(&room.name, &who).into())
}

/// Whether a room created now by someone logged in to `account` (if any)
/// is registered: kept across restarts, its founder rights the account's.
/// Only where accounts are kept (`accounts_kept`); a room created without
/// an account is gone when it empties, as on any IRC server.
pub fn registers_room(account: Option<&str>, accounts_kept: bool) -> bool {
    accounts_kept && account.is_some()
}

/// Whether someone logged in to `account` is the founder of `room`: the
/// registered room's founder account, compared as names are.
pub fn is_founder_account(room: &Room, account: Option<&str>) -> bool {
    match (&room.founder_account, account) {
        (Some(founder), Some(a)) => {
            crate::proto::nick::casefold(founder) == crate::proto::nick::casefold(a)
        }
        _ => false,
    }
}

/// Changing a user's modes is for the user themself.
pub fn can_set_user_mode(is_self: bool) -> Result<(), Numeric> {
    if is_self {
        Ok(())
    } else {
        Err(replies::users_dont_match())
    }
}

/// Setting another account's password (`ACCOUNT RESET`): tracker
/// operators, for the person who forgot theirs.
pub fn can_reset_account(actor_is_oper: bool) -> Result<(), Numeric> {
    can_kill(actor_is_oper)
}

/// Tracker-wide moderation (KILL).
pub fn can_kill(actor_is_oper: bool) -> Result<(), Numeric> {
    if actor_is_oper {
        Ok(())
    } else {
        Err(replies::no_privileges())
    }
}

/// What the operator allows of direct sessions (DCC CHAT and the like)
/// between two clients (`--p2p`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum P2pPolicy {
    /// Offers are relayed; the session's messages go straight between the
    /// two clients and are not recorded (its opening and closing are).
    #[default]
    Allow,
    /// Direct offers are refused; sessions go through the tracker as
    /// ordinary direct messages, recorded like any other.
    RelayOnly,
    /// No sessions at all: offers are refused.
    Off,
}

impl P2pPolicy {
    pub const NAMES: &[&str] = &["allow", "relay-only", "off"];
}

impl std::fmt::Display for P2pPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            P2pPolicy::Allow => "allow",
            P2pPolicy::RelayOnly => "relay-only",
            P2pPolicy::Off => "off",
        })
    }
}

impl std::str::FromStr for P2pPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(P2pPolicy::Allow),
            "relay-only" => Ok(P2pPolicy::RelayOnly),
            "off" => Ok(P2pPolicy::Off),
            other => Err(format!(
                "unknown p2p policy {other:?}; one of: {}",
                P2pPolicy::NAMES.join(", ")
            )),
        }
    }
}

/// Why a direct session (or a DCC offer of any kind) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectRefusal {
    /// `--p2p off`.
    Off,
    /// `--p2p relay-only`: a relayed session is still possible.
    RelayOnly,
}

/// Offering a direct connection to another user (a DCC offer: it carries
/// the sender's address, and what passes over it is never recorded).
pub fn can_offer_direct_session(policy: P2pPolicy) -> Result<(), DirectRefusal> {
    match policy {
        P2pPolicy::Allow => Ok(()),
        P2pPolicy::RelayOnly => Err(DirectRefusal::RelayOnly),
        P2pPolicy::Off => Err(DirectRefusal::Off),
    }
}

/// Opening a session that passes through the tracker (its messages are
/// ordinary, recorded direct messages): refused only when sessions are off.
pub fn can_relay_session(policy: P2pPolicy) -> Result<(), DirectRefusal> {
    match policy {
        P2pPolicy::Off => Err(DirectRefusal::Off),
        P2pPolicy::Allow | P2pPolicy::RelayOnly => Ok(()),
    }
}
