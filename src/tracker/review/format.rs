//! The format of a `chat.log` line, in one place: every event the tracker
//! records, the shape of its details, and one parser per event.
//!
//! A line is `<RFC 3339 UTC timestamp, ms> <event> <details>`. The table
//! [`EVENTS`] is the list the README's chat.log table documents (a test
//! holds them together, and another checks that every `record("...")` in
//! the hub names an event listed here).
//!
//! A message line (a room message or a DM) also carries, between its
//! event's name and its details, what the store needs to keep it
//! ([`MessageTags`]: `@msgid=...;source=...`), so the store can be refilled
//! from `chat.log` after a crash. Lines written before confab logged them
//! have none and still parse.

use serde::Serialize;

use crate::proto::nick::casefold;

/// An event kind of `chat.log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Start,
    Restart,
    Repair,
    Stop,
    Create,
    Join,
    Part,
    Invite,
    Kick,
    Mode,
    Close,
    Kill,
    Announce,
    Oper,
    Account,
    HistoryPurge,
    Leave,
    Attach,
    Detach,
    Nick,
    Msg,
    Action,
    Notice,
    Dm,
    DmAction,
    DmNotice,
    Status,
    Topic,
    SessionOffer,
    SessionAccept,
    SessionDecline,
    SessionRelay,
    SessionClose,
}

/// One event kind: its name in the file, the shape of its details (as the
/// README shows it) and its parser.
pub struct EventSpec {
    pub event: Event,
    pub name: &'static str,
    pub details: &'static str,
    parse: fn(&str) -> Option<Fields>,
}

/// Every event the tracker writes, in the README's order.
pub const EVENTS: &[EventSpec] = &[
    spec(
        Event::Start,
        "start",
        "tracker listening on <addr:port> (...)",
        text,
    ),
    spec(
        Event::Restart,
        "restart",
        "previous run ended without a stop line (...)",
        text,
    ),
    spec(
        Event::Repair,
        "repair",
        "history: <n> messages refilled from chat.log into the store[; ...]",
        text,
    ),
    spec(Event::Stop, "stop", "<reason>", text),
    spec(Event::Create, "create", "<room> <nick>", room_user),
    spec(Event::Join, "join", "<room> <nick> (<ip>)", join),
    spec(
        Event::Part,
        "part",
        "<room> <nick> (<reason>)",
        room_user_reason,
    ),
    spec(
        Event::Invite,
        "invite",
        "<room> <nick> -> <invited nick>",
        invite,
    ),
    spec(
        Event::Kick,
        "kick",
        "<room> <nick> -> <kicked nick> (<reason>)",
        kick,
    ),
    spec(
        Event::Mode,
        "mode",
        "<room> <nick> <changes> [<parameters>]",
        mode,
    ),
    spec(
        Event::Close,
        "close",
        "<room> <nick> (<reason>)",
        room_user_reason,
    ),
    spec(
        Event::Kill,
        "kill",
        "<operator nick> -> <nick> (<reason>)",
        kill,
    ),
    spec(
        Event::Announce,
        "announce",
        "<tracker name>: <text>",
        announce,
    ),
    spec(Event::Oper, "oper", "<nick> as <operator name>", oper),
    spec(
        Event::Account,
        "account",
        "<account> registered|changed its password|deleted, <account>'s password reset by <nick>",
        account,
    ),
    spec(
        Event::HistoryPurge,
        "history-purge",
        "<count> message(s) older than <time> (history-days <N>)",
        history_purge,
    ),
    spec(Event::Leave, "leave", "<nick> (<reason>)", leave),
    spec(
        Event::Attach,
        "attach",
        "<nick> <connections> (<ip>)",
        attach,
    ),
    spec(
        Event::Detach,
        "detach",
        "<nick> <connections> (<reason>)",
        detach,
    ),
    spec(Event::Nick, "nick", "<old> -> <new>", nick),
    spec(Event::Msg, "msg", "<room> <<nick>> <text>", msg),
    spec(Event::Action, "action", "<room> * <nick> <text>", action),
    spec(Event::Notice, "notice", "<room> -<nick>- <text>", notice),
    spec(Event::Dm, "dm", "<from> -> <to>: <text>", dm),
    spec(
        Event::DmAction,
        "dm-action",
        "<from> -> <to>: * <from> <text>",
        dm_action,
    ),
    spec(Event::DmNotice, "dm-notice", "<from> -> <to>: <text>", dm),
    spec(
        Event::Status,
        "status",
        "<nick> ACTIVE|BUSY|INACTIVE (<away text>)",
        status,
    ),
    spec(Event::Topic, "topic", "<room> <nick>: <topic>", topic),
    spec(
        Event::SessionOffer,
        "session-offer",
        "<from> -> <to> (direct, TLS|direct, plain)",
        session,
    ),
    spec(
        Event::SessionAccept,
        "session-accept",
        "<from> -> <to>",
        session,
    ),
    spec(
        Event::SessionDecline,
        "session-decline",
        "<from> -> <to> (by <nick>)",
        session,
    ),
    spec(
        Event::SessionRelay,
        "session-relay",
        "<from> -> <to> (by <nick>: ...)",
        session,
    ),
    spec(
        Event::SessionClose,
        "session-close",
        "<from> -> <to> (<how>)",
        session,
    ),
];

const fn spec(
    event: Event,
    name: &'static str,
    details: &'static str,
    parse: fn(&str) -> Option<Fields>,
) -> EventSpec {
    EventSpec {
        event,
        name,
        details,
        parse,
    }
}

impl Event {
    pub fn spec(self) -> &'static EventSpec {
        // EVENTS lists every variant (a test checks it).
        EVENTS
            .iter()
            .find(|s| s.event == self)
            .unwrap_or(&EVENTS[0])
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn from_name(name: &str) -> Option<Event> {
        EVENTS.iter().find(|s| s.name == name).map(|s| s.event)
    }

    /// Something said in a room.
    pub fn is_room_message(self) -> bool {
        matches!(self, Event::Msg | Event::Action | Event::Notice)
    }

    /// Something said to one person.
    pub fn is_dm(self) -> bool {
        matches!(self, Event::Dm | Event::DmAction | Event::DmNotice)
    }

    /// The names `--event` accepts.
    pub fn names() -> String {
        EVENTS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
    }
}

/// What a line's details say, by role. Field names are those of
/// `tracker log --json` (documented in the README).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fields {
    /// The room it happened in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Who did it: the sender, the one who joined, kicked, renamed...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whom it was done to or said to: the kicked, invited or killed
    /// user, a DM's recipient, the new name of a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What was said (messages, DMs), the topic, the mode changes, the
    /// away text, the tracker's words for start, restart and stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The reason given for a part, kick, close, kill or leave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The address someone joined from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// ACTIVE, BUSY or INACTIVE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The operator block a user became tracker operator as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oper: Option<String>,
}

/// What a message line carries for the store, in IRCv3 tag syntax between
/// the event's name and the details: `@msgid=<msgid>;source=<nick!user@host>`
/// then `;account=<account>` when the sender is logged in to one and, for a
/// DM, `;to-account=<account>` for a recipient who is. Everything else the
/// store keeps (the room or the two people, the text, the time) is in the
/// line already.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageTags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_account: Option<String>,
    /// Its place in its room's or conversation's history, as the hub gave
    /// it (room events take places too and are not in these lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
}

impl MessageTags {
    const KEYS: [&'static str; 5] = ["msgid", "source", "account", "to-account", "seq"];

    fn slots(&self) -> [&Option<String>; 5] {
        [
            &self.msgid,
            &self.source,
            &self.account,
            &self.to_account,
            &self.seq,
        ]
    }

    /// The tags as the line carries them (`@msgid=...;source=...`), or
    /// nothing when there are none.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (key, value) in Self::KEYS.iter().zip(self.slots()) {
            let Some(value) = value else { continue };
            out.push(if out.is_empty() { '@' } else { ';' });
            out.push_str(key);
            out.push('=');
            crate::proto::message::escape_tag_value(value, &mut out);
        }
        out
    }

    /// Reads the tag word without its `@`. Unknown keys (a later
    /// confab's) are passed over.
    pub fn parse(word: &str) -> MessageTags {
        let mut tags = MessageTags::default();
        for item in word.split(';') {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let value = crate::proto::message::unescape_tag_value(value);
            let slot = match key {
                "msgid" => &mut tags.msgid,
                "source" => &mut tags.source,
                "account" => &mut tags.account,
                "to-account" => &mut tags.to_account,
                "seq" => &mut tags.seq,
                _ => continue,
            };
            *slot = (!value.is_empty()).then_some(value);
        }
        tags
    }

    pub fn is_empty(&self) -> bool {
        self.slots().iter().all(|s| s.is_none())
    }
}

/// One parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub time: jiff::Timestamp,
    /// The timestamp as written.
    pub stamp: String,
    /// The event's name as written (also for kinds this version does not
    /// know, which have `kind: None`).
    pub event: String,
    pub kind: Option<Event>,
    /// A message line's tags (empty for other lines, and for message lines
    /// written before confab logged them).
    pub tags: MessageTags,
    /// Everything after the event's name (and a message line's tags).
    pub detail: String,
    /// `None` when the details do not have the event's shape (a line cut
    /// short, or edited).
    pub fields: Option<Fields>,
}

impl Entry {
    pub fn fields(&self) -> &Fields {
        static NONE: Fields = Fields {
            room: None,
            user: None,
            target: None,
            text: None,
            reason: None,
            ip: None,
            status: None,
            oper: None,
        };
        self.fields.as_ref().unwrap_or(&NONE)
    }

    /// Whether `name` is the one who did it (case-insensitively, as IRC
    /// compares names).
    pub fn by(&self, name: &str) -> bool {
        same_name(self.fields().user.as_deref(), name)
    }
}

pub fn same_name(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| casefold(a) == casefold(b))
}

/// Parses a `chat.log` line (without its newline). `None`: it does not
/// start with a timestamp and an event name.
pub fn parse_line(line: &str) -> Option<Entry> {
    let (stamp, rest) = line.split_once(' ')?;
    let time: jiff::Timestamp = stamp.parse().ok()?;
    let (event, detail) = rest.split_once(' ').unwrap_or((rest, ""));
    if event.is_empty() {
        return None;
    }
    let kind = Event::from_name(event);
    let (tags, detail) = match detail.strip_prefix('@') {
        Some(tagged) if kind.is_some_and(|k| k.is_room_message() || k.is_dm()) => {
            let (word, rest) = tagged.split_once(' ').unwrap_or((tagged, ""));
            (MessageTags::parse(word), rest)
        }
        _ => (MessageTags::default(), detail),
    };
    let fields = match kind {
        Some(k) => (k.spec().parse)(detail),
        None => Some(Fields::default()),
    };
    Some(Entry {
        time,
        stamp: stamp.to_string(),
        event: event.to_string(),
        kind,
        tags,
        detail: detail.to_string(),
        fields,
    })
}

/// The first word and the rest.
fn word(s: &str) -> Option<(&str, &str)> {
    let (w, rest) = s.split_once(' ').unwrap_or((s, ""));
    (!w.is_empty()).then_some((w, rest))
}

/// `(inside)` → `inside`.
fn paren(s: &str) -> Option<&str> {
    s.strip_prefix('(')?.strip_suffix(')')
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn text(d: &str) -> Option<Fields> {
    Some(Fields {
        text: nonempty(d),
        ..Fields::default()
    })
}

fn room_user(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, rest) = word(rest)?;
    rest.is_empty().then(|| Fields {
        room: some(room),
        user: some(user),
        ..Fields::default()
    })
}

fn join(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, rest) = word(rest)?;
    Some(Fields {
        room: some(room),
        user: some(user),
        ip: some(paren(rest)?),
        ..Fields::default()
    })
}

/// `<room> <nick>` with an optional ` (<reason>)`.
fn room_user_reason(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, rest) = word(rest)?;
    let reason = match rest {
        "" => None,
        r => nonempty(paren(r)?),
    };
    Some(Fields {
        room: some(room),
        user: some(user),
        reason,
        ..Fields::default()
    })
}

/// `<a> -> <b>` and what follows.
fn arrow(d: &str) -> Option<(&str, &str, &str)> {
    let (a, rest) = word(d)?;
    let rest = rest.strip_prefix("-> ")?;
    let (b, rest) = word(rest)?;
    Some((a, b, rest))
}

fn invite(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, target, rest) = arrow(rest)?;
    rest.is_empty().then(|| Fields {
        room: some(room),
        user: some(user),
        target: some(target),
        ..Fields::default()
    })
}

fn kick(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, target, rest) = arrow(rest)?;
    Some(Fields {
        room: some(room),
        user: some(user),
        target: some(target),
        reason: nonempty(paren(rest)?),
        ..Fields::default()
    })
}

fn mode(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, changes) = word(rest)?;
    Some(Fields {
        room: some(room),
        user: some(user),
        text: nonempty(changes),
        ..Fields::default()
    })
}

fn kill(d: &str) -> Option<Fields> {
    let (user, target, rest) = arrow(d)?;
    Some(Fields {
        user: some(user),
        target: some(target),
        reason: nonempty(paren(rest)?),
        ..Fields::default()
    })
}

/// `<tracker name>: <text>`: the console's notice to everyone.
fn announce(d: &str) -> Option<Fields> {
    let (by, text) = d.split_once(": ")?;
    Some(Fields {
        user: nonempty(by),
        text: some(text),
        ..Fields::default()
    })
}

/// `<account> registered`, `<account> changed its password`, `<account>
/// deleted`, or `<account>'s password reset by <nick>` (the operator did
/// it; the account is the target).
fn account(d: &str) -> Option<Fields> {
    if let Some((account, by)) = d.split_once("'s password reset by ") {
        return Some(Fields {
            user: nonempty(by),
            target: nonempty(account),
            text: some("password reset"),
            ..Fields::default()
        });
    }
    let (account, what) = word(d)?;
    Some(Fields {
        user: some(account),
        text: nonempty(what),
        ..Fields::default()
    })
}

/// `<count> message(s) older than <time> (history-days <N>)`: retention
/// deleted that much history from the store (`chat.log` keeps it).
fn history_purge(d: &str) -> Option<Fields> {
    let (count, rest) = word(d)?;
    count.parse::<u64>().ok()?;
    let (before, rest) = word(rest.strip_prefix("message(s) older than ")?)?;
    before.parse::<jiff::Timestamp>().ok()?;
    paren(rest)?
        .strip_prefix("history-days ")?
        .parse::<u32>()
        .ok()?;
    Some(Fields {
        text: some(d),
        ..Fields::default()
    })
}

/// `<from> -> <to>` and, for most, `(<details>)`: a direct session's
/// course (never its content).
fn session(d: &str) -> Option<Fields> {
    let (user, target, rest) = arrow(d)?;
    let text = match rest {
        "" => None,
        r => nonempty(paren(r)?),
    };
    Some(Fields {
        user: some(user),
        target: some(target),
        text,
        ..Fields::default()
    })
}

fn oper(d: &str) -> Option<Fields> {
    let (user, rest) = word(d)?;
    if rest == "gave up operator rights" {
        return Some(Fields {
            user: some(user),
            text: some(rest),
            ..Fields::default()
        });
    }
    Some(Fields {
        user: some(user),
        oper: nonempty(rest.strip_prefix("as ")?),
        ..Fields::default()
    })
}

fn leave(d: &str) -> Option<Fields> {
    let (user, rest) = word(d)?;
    Some(Fields {
        user: some(user),
        reason: nonempty(paren(rest)?),
        ..Fields::default()
    })
}

/// `<nick> <connections> (<ip>)`: another connection of a user.
fn attach(d: &str) -> Option<Fields> {
    let (user, rest) = word(d)?;
    let (n, rest) = word(rest)?;
    n.parse::<u32>().ok()?;
    Some(Fields {
        user: some(user),
        ip: some(paren(rest)?),
        ..Fields::default()
    })
}

/// `<nick> <connections> (<reason>)`: one of a user's connections left,
/// the user stays.
fn detach(d: &str) -> Option<Fields> {
    let (user, rest) = word(d)?;
    let (n, rest) = word(rest)?;
    n.parse::<u32>().ok()?;
    Some(Fields {
        user: some(user),
        reason: nonempty(paren(rest)?),
        ..Fields::default()
    })
}

fn nick(d: &str) -> Option<Fields> {
    let (old, new, rest) = arrow(d)?;
    rest.is_empty().then(|| Fields {
        user: some(old),
        target: some(new),
        ..Fields::default()
    })
}

fn msg(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, said) = rest.strip_prefix('<')?.split_once("> ")?;
    said_in(room, user, said)
}

fn action(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, said) = word(rest.strip_prefix("* ")?)?;
    said_in(room, user, said)
}

fn notice(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, said) = rest.strip_prefix('-')?.split_once("- ")?;
    said_in(room, user, said)
}

fn said_in(room: &str, user: &str, said: &str) -> Option<Fields> {
    (!user.is_empty() && !user.contains(' ')).then(|| Fields {
        room: some(room),
        user: some(user),
        text: some(said),
        ..Fields::default()
    })
}

fn dm(d: &str) -> Option<Fields> {
    let (from, rest) = word(d)?;
    let rest = rest.strip_prefix("-> ")?;
    let (to, said) = rest.split_once(": ")?;
    (!to.is_empty() && !to.contains(' ')).then(|| Fields {
        user: some(from),
        target: some(to),
        text: some(said),
        ..Fields::default()
    })
}

fn dm_action(d: &str) -> Option<Fields> {
    let mut f = dm(d)?;
    let said = f.text.as_deref()?.strip_prefix("* ")?;
    let (_from, said) = word(said)?;
    f.text = some(said);
    Some(f)
}

fn status(d: &str) -> Option<Fields> {
    let (user, rest) = word(d)?;
    let (status, rest) = word(rest)?;
    if !matches!(status, "ACTIVE" | "BUSY" | "INACTIVE") {
        return None;
    }
    let text = match rest {
        "" => None,
        r => some(paren(r)?),
    };
    Some(Fields {
        user: some(user),
        status: some(status),
        text,
        ..Fields::default()
    })
}

fn topic(d: &str) -> Option<Fields> {
    let (room, rest) = word(d)?;
    let (user, topic) = rest.split_once(": ")?;
    (!user.is_empty() && !user.contains(' ')).then(|| Fields {
        room: some(room),
        user: some(user),
        text: some(topic),
        ..Fields::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Fields {
        let e = parse_line(line).unwrap_or_else(|| panic!("not a line: {line}"));
        e.fields
            .unwrap_or_else(|| panic!("details not parsed: {line}"))
    }

    fn f(pairs: &[(&str, &str)]) -> Fields {
        let mut out = Fields::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "room" => out.room = v,
                "user" => out.user = v,
                "target" => out.target = v,
                "text" => out.text = v,
                "reason" => out.reason = v,
                "ip" => out.ip = v,
                "status" => out.status = v,
                "oper" => out.oper = v,
                _ => panic!("{k}"),
            }
        }
        out
    }

    /// One line per event, as the hub writes them, and what each says.
    #[test]
    fn every_event_parses_into_its_fields() {
        let t = "2026-12-02T10:00:00.000Z";
        let cases: &[(&str, Fields)] = &[
            (
                "start tracker listening on 0.0.0.0:6697 (TLS, password required)",
                f(&[(
                    "text",
                    "tracker listening on 0.0.0.0:6697 (TLS, password required)",
                )]),
            ),
            (
                "restart previous run ended without a stop line (crash or kill); appending",
                f(&[(
                    "text",
                    "previous run ended without a stop line (crash or kill); appending",
                )]),
            ),
            (
                "repair history: 2 messages refilled from chat.log into the store",
                f(&[(
                    "text",
                    "history: 2 messages refilled from chat.log into the store",
                )]),
            ),
            ("stop last member left", f(&[("text", "last member left")])),
            (
                "create #lab alice",
                f(&[("room", "#lab"), ("user", "alice")]),
            ),
            (
                "join #lab bob (192.168.1.40)",
                f(&[("room", "#lab"), ("user", "bob"), ("ip", "192.168.1.40")]),
            ),
            ("part #lab bob", f(&[("room", "#lab"), ("user", "bob")])),
            (
                "part #lab bob (time for (lunch))",
                f(&[
                    ("room", "#lab"),
                    ("user", "bob"),
                    ("reason", "time for (lunch)"),
                ]),
            ),
            (
                "invite #lab alice -> carol",
                f(&[("room", "#lab"), ("user", "alice"), ("target", "carol")]),
            ),
            (
                "kick #lab alice -> eve (spam)",
                f(&[
                    ("room", "#lab"),
                    ("user", "alice"),
                    ("target", "eve"),
                    ("reason", "spam"),
                ]),
            ),
            (
                "mode #lab fay +ov otto vic",
                f(&[("room", "#lab"), ("user", "fay"), ("text", "+ov otto vic")]),
            ),
            (
                "close #lab alice ()",
                f(&[("room", "#lab"), ("user", "alice")]),
            ),
            (
                "close #lab alice (done)",
                f(&[("room", "#lab"), ("user", "alice"), ("reason", "done")]),
            ),
            (
                "kill root -> eve (flooding)",
                f(&[("user", "root"), ("target", "eve"), ("reason", "flooding")]),
            ),
            (
                "oper root as admin",
                f(&[("user", "root"), ("oper", "admin")]),
            ),
            (
                "oper root gave up operator rights",
                f(&[("user", "root"), ("text", "gave up operator rights")]),
            ),
            (
                "leave bob (Quit: Leaving)",
                f(&[("user", "bob"), ("reason", "Quit: Leaving")]),
            ),
            (
                "attach bob 2 (127.0.0.1)",
                f(&[("user", "bob"), ("ip", "127.0.0.1")]),
            ),
            (
                "detach bob 1 (Quit: on the train)",
                f(&[("user", "bob"), ("reason", "Quit: on the train")]),
            ),
            (
                "nick bob -> bobby",
                f(&[("user", "bob"), ("target", "bobby")]),
            ),
            (
                "msg #general <alice> hi <bob>: a > b",
                f(&[
                    ("room", "#general"),
                    ("user", "alice"),
                    ("text", "hi <bob>: a > b"),
                ]),
            ),
            (
                "action #general * alice waves",
                f(&[("room", "#general"), ("user", "alice"), ("text", "waves")]),
            ),
            (
                "notice #general -alice- heads up - now",
                f(&[
                    ("room", "#general"),
                    ("user", "alice"),
                    ("text", "heads up - now"),
                ]),
            ),
            (
                "dm alice -> bob: psst: here",
                f(&[("user", "alice"), ("target", "bob"), ("text", "psst: here")]),
            ),
            (
                "dm-action alice -> bob: * alice winks",
                f(&[("user", "alice"), ("target", "bob"), ("text", "winks")]),
            ),
            (
                "dm-notice alice -> bob: fyi",
                f(&[("user", "alice"), ("target", "bob"), ("text", "fyi")]),
            ),
            (
                "status alice ACTIVE",
                f(&[("user", "alice"), ("status", "ACTIVE")]),
            ),
            (
                "status bob INACTIVE (Inactive: idle for 5 min)",
                f(&[
                    ("user", "bob"),
                    ("status", "INACTIVE"),
                    ("text", "Inactive: idle for 5 min"),
                ]),
            ),
            (
                "topic #lab alice: fractions: part 2",
                f(&[
                    ("room", "#lab"),
                    ("user", "alice"),
                    ("text", "fractions: part 2"),
                ]),
            ),
            (
                "announce confab: class ends at 12: pack up",
                f(&[("user", "confab"), ("text", "class ends at 12: pack up")]),
            ),
            (
                "account bob registered",
                f(&[("user", "bob"), ("text", "registered")]),
            ),
            (
                "account bob's password reset by teach",
                f(&[
                    ("user", "teach"),
                    ("target", "bob"),
                    ("text", "password reset"),
                ]),
            ),
            (
                "history-purge 1200 message(s) older than 2026-11-02T10:00:00.000Z (history-days 30)",
                f(&[(
                    "text",
                    "1200 message(s) older than 2026-11-02T10:00:00.000Z (history-days 30)",
                )]),
            ),
            (
                "session-offer alice -> bob (direct, TLS)",
                f(&[
                    ("user", "alice"),
                    ("target", "bob"),
                    ("text", "direct, TLS"),
                ]),
            ),
            (
                "session-accept alice -> bob",
                f(&[("user", "alice"), ("target", "bob")]),
            ),
            (
                "session-decline alice -> bob (by bob)",
                f(&[("user", "alice"), ("target", "bob"), ("text", "by bob")]),
            ),
            (
                "session-relay alice -> bob (by bob: through the tracker, recorded)",
                f(&[
                    ("user", "alice"),
                    ("target", "bob"),
                    ("text", "by bob: through the tracker, recorded"),
                ]),
            ),
            (
                "session-close alice -> bob (bob left the tracker)",
                f(&[
                    ("user", "alice"),
                    ("target", "bob"),
                    ("text", "bob left the tracker"),
                ]),
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (rest, want) in cases {
            let line = format!("{t} {rest}");
            assert_eq!(fields(&line), *want, "{line}");
            let e = parse_line(&line).unwrap();
            seen.insert(e.kind.unwrap());
            assert_eq!(e.stamp, t);
            assert_eq!(format!("{} {} {}", e.stamp, e.event, e.detail), line);
        }
        assert_eq!(seen.len(), EVENTS.len(), "a case for every event");
        for s in EVENTS {
            assert_eq!(Event::from_name(s.name), Some(s.event));
            assert_eq!(s.event.name(), s.name);
        }
    }

    #[test]
    fn cut_edited_and_foreign_lines() {
        // Cut in the middle of a name: the kind is known, the details not.
        let e = parse_line("2026-12-02T10:00:00.000Z msg #general <ali").unwrap();
        assert_eq!(e.kind, Some(Event::Msg));
        assert_eq!(e.fields, None);
        assert!(
            parse_line("2026-12-02T10:00:00.000Z join #lab bob (1.2.")
                .unwrap()
                .fields
                .is_none()
        );
        assert!(
            parse_line("2026-12-02T10:00:00.000Z status bob AWAY")
                .unwrap()
                .fields
                .is_none()
        );
        for cut in [
            "history-purge 12 message(s) older than 2026-11-02T10:00",
            "history-purge many message(s) older than 2026-11-02T10:00:00.000Z (history-days 3)",
            "history-purge 12 message(s) older than 2026-11-02T10:00:00.000Z (history-days)",
        ] {
            let e = parse_line(&format!("2026-12-02T10:00:00.000Z {cut}")).unwrap();
            assert_eq!(
                (e.kind, e.fields),
                (Some(Event::HistoryPurge), None),
                "{cut}"
            );
        }
        // Cut inside the timestamp, or not a chat.log line at all.
        assert_eq!(parse_line("2026-12-02T10:0"), None);
        assert_eq!(parse_line("hello world"), None);
        assert_eq!(parse_line(""), None);
        // A kind a later tracker may add is kept, with its details.
        let e = parse_line("2026-12-02T10:00:00.000Z broadcast class ends at 12").unwrap();
        assert_eq!((e.kind, e.event.as_str()), (None, "broadcast"));
        assert_eq!(e.detail, "class ends at 12");
        // Names compare as IRC compares them.
        let e = parse_line("2026-12-02T10:00:00.000Z msg #general <Alice[1]> hi").unwrap();
        assert!(e.by("alice{1}"));
        assert!(!e.by("alice"));
    }

    /// Every event the hub records is one this module parses: a new
    /// `record("...")` without a row in `EVENTS` fails here.
    #[test]
    fn the_hub_records_only_events_listed_here() {
        let sources = [
            include_str!("../hub/mod.rs"),
            include_str!("../hub/chat.rs"),
            include_str!("../hub/messages.rs"),
            include_str!("../hub/rooms.rs"),
            include_str!("../hub/moderation.rs"),
            include_str!("../hub/queries.rs"),
            include_str!("../hub/users.rs"),
            include_str!("../hub/server.rs"),
            include_str!("../hub/accounts.rs"),
            include_str!("../hub/rooms_keep.rs"),
            include_str!("../hub/retention.rs"),
        ];
        let mut names = Vec::new();
        for src in sources {
            for (i, _) in src.match_indices("record(") {
                let after = src[i + 7..].trim_start();
                if let Some(rest) = after.strip_prefix('"') {
                    names.push(rest.split('"').next().unwrap_or("").to_string());
                }
            }
            // Events chosen in a match: `("dm-notice", format!(...))`.
            for (i, _) in src.match_indices("format!(") {
                let Some(before) = src[..i].trim_end().strip_suffix("\",") else {
                    continue;
                };
                let Some((head, name)) = before.rsplit_once('"') else {
                    continue;
                };
                if head.trim_end().ends_with('(')
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                {
                    names.push(name.to_string());
                }
            }
        }
        for kind in ["msg", "dm-action", "stop", "join", "history-purge"] {
            assert!(
                names.iter().any(|n| n == kind),
                "{kind} not found: {names:?}"
            );
        }
        for name in names {
            assert!(
                Event::from_name(&name).is_some(),
                "the hub records {name:?}, which EVENTS does not describe"
            );
        }
    }

    /// The README's chat.log table lists exactly these events, in order.
    #[test]
    fn the_readme_documents_every_event() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## chat.log")
            .nth(1)
            .expect("README has a chat.log section");
        let documented: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with("| event |"))
            .skip(2)
            .take_while(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        let listed: Vec<&str> = EVENTS.iter().map(|s| s.name).collect();
        assert_eq!(documented, listed);
    }
}
