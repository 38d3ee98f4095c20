//! The command table: every command the tracker knows, once (as ergo's
//! `irc/commands.go`). From it come the `421` (unknown), `451` (not before
//! registration) and `461` (not enough parameters) replies, whether a
//! command counts as a person's activity (which ends INACTIVE), and the
//! text of `HELP`. The connection task consults it before registration, the
//! hub after; both through [`admit`], so the rules live in one place.
//!
//! Adding a command: a row here, a [`Cmd`] variant, and its handler in the
//! hub's `dispatch` (the compiler points at the match). See DEVELOPING.md.

use super::replies::{self, Numeric};
use crate::proto::Message;

/// Which handler runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Cap,
    Pass,
    Nick,
    User,
    Ping,
    Pong,
    Quit,
    Privmsg,
    Notice,
    Tagmsg,
    Join,
    Part,
    Topic,
    Names,
    List,
    Invite,
    Kick,
    Mode,
    Close,
    Who,
    Whois,
    Whowas,
    Away,
    Userhost,
    Ison,
    Oper,
    Kill,
    Authenticate,
    Chathistory,
    Markread,
    Register,
    Account,
    Motd,
    Lusers,
    Version,
    Time,
    Info,
    Help,
}

/// One row of the table.
#[derive(Debug)]
pub struct Command {
    pub name: &'static str,
    pub cmd: Cmd,
    /// Parameters below this get `461`.
    pub min_params: usize,
    /// Allowed before registration (others get `451`).
    pub before_registration: bool,
    /// A person did something: resets the idle time and ends INACTIVE.
    pub activity: bool,
    /// Shown in the `HELP` index, and first by `HELP <command>`.
    pub usage: &'static str,
    /// Further lines of `HELP <command>`.
    pub details: &'static [&'static str],
}

const fn row(
    name: &'static str,
    cmd: Cmd,
    min_params: usize,
    before_registration: bool,
    activity: bool,
    usage: &'static str,
    details: &'static [&'static str],
) -> Command {
    Command {
        name,
        cmd,
        min_params,
        before_registration,
        activity,
        usage,
        details,
    }
}

/// Every command, in the order `HELP` lists them.
pub const COMMANDS: &[Command] = &[
    row(
        "PRIVMSG",
        Cmd::Privmsg,
        0,
        false,
        true,
        "PRIVMSG <#room|user>[,...] :<text>  send to a room or a direct message",
        &[],
    ),
    row(
        "NOTICE",
        Cmd::Notice,
        0,
        false,
        true,
        "NOTICE <#room|user> :<text>  like PRIVMSG, never answered automatically",
        &[],
    ),
    row(
        "TAGMSG",
        Cmd::Tagmsg,
        1,
        false,
        false,
        "TAGMSG <#room|user>  client tags only (typing notices, reactions)",
        &[],
    ),
    row(
        "JOIN",
        Cmd::Join,
        1,
        false,
        true,
        "JOIN <#room>[,...] [key,...]  join a room, or create it (you become its founder ~ and operator @)",
        &[
            "JOIN 0 leaves every room you can leave.",
            "Created while logged in to an account, a room is registered: it, its topic, modes and bans outlive a restart, and whoever is logged in to that account is its founder on joining.",
        ],
    ),
    row(
        "PART",
        Cmd::Part,
        1,
        false,
        true,
        "PART <#room>[,...] [:reason]  leave a room (everyone stays in #general)",
        &[],
    ),
    row(
        "TOPIC",
        Cmd::Topic,
        1,
        false,
        true,
        "TOPIC <#room> [:text]  show or set a room's topic (+t: operators only)",
        &[],
    ),
    row(
        "NAMES",
        Cmd::Names,
        0,
        false,
        false,
        "NAMES [#room[,...]]  members of a room, with ~ founder, @ operator, + voice",
        &[],
    ),
    row(
        "LIST",
        Cmd::List,
        0,
        false,
        false,
        "LIST [#room[,...]]  rooms with member counts and topics",
        &[],
    ),
    row(
        "INVITE",
        Cmd::Invite,
        2,
        false,
        true,
        "INVITE <user> <#room>  invite someone (needed to enter a +i room; operators only there)",
        &[],
    ),
    row(
        "KICK",
        Cmd::Kick,
        2,
        false,
        true,
        "KICK <#room> <user>[,...] [:reason]  remove someone from a room (room operators)",
        &["The founder can be kicked only by a tracker operator."],
    ),
    row(
        "MODE",
        Cmd::Mode,
        1,
        false,
        true,
        "MODE <#room> [+|-modes [params]]  show or change a room's modes (room operators)",
        &[
            "+o/-o <user> operator, +v/-v <user> voice (may speak in +m),",
            "+i invite only, +k <key> key to enter, +l <n> member limit, +m moderated,",
            "+n no messages from outside, +t only operators set the topic, +s secret (not in LIST),",
            "+b <nick!user@host> ban (wildcards * ?), +b alone lists the bans.",
        ],
    ),
    row(
        "CLOSE",
        Cmd::Close,
        1,
        false,
        true,
        "CLOSE <#room> [:reason]  close a room: every member is told why and removed, the room is gone",
        &[
            "Only the room's founder (its creator, while connected) or a tracker operator may close it.",
            "A registered room's founder is whoever is logged in to its founder account, who may close it from outside too; closing it forgets it.",
            "#general cannot be closed. Other IRC clients: /quote CLOSE #room :reason",
        ],
    ),
    row(
        "WHO",
        Cmd::Who,
        0,
        false,
        false,
        "WHO <#room|user|*> [%fields]  who is there and who is away (H here, G gone; WHOX fields)",
        &[],
    ),
    row(
        "WHOIS",
        Cmd::Whois,
        0,
        false,
        false,
        "WHOIS <user>  address, status, idle time, sign-on time, rooms",
        &[],
    ),
    row(
        "WHOWAS",
        Cmd::Whowas,
        0,
        false,
        false,
        "WHOWAS <user> [count]  who used a name that is gone",
        &[],
    ),
    row(
        "AWAY",
        Cmd::Away,
        0,
        false,
        true,
        "AWAY [:text]  BUSY with a reason; AWAY alone makes you ACTIVE again",
        &[
            "Status: ACTIVE, BUSY (AWAY :text), INACTIVE (set by the tracker after idling).",
            "The text is kept as typed; one starting with \"Inactive:\" is the tracker's own and refused.",
        ],
    ),
    row(
        "NICK",
        Cmd::Nick,
        0,
        true,
        true,
        "NICK <name>  change your username",
        &[],
    ),
    row(
        "USERHOST",
        Cmd::Userhost,
        1,
        false,
        false,
        "USERHOST <user> [...]  addresses of up to 5 users",
        &[],
    ),
    row(
        "ISON",
        Cmd::Ison,
        1,
        false,
        false,
        "ISON <user> [...]  which of these users are online",
        &[],
    ),
    row(
        "OPER",
        Cmd::Oper,
        2,
        false,
        false,
        "OPER <name> <password>  become a tracker operator (operators are in the tracker's config)",
        &[],
    ),
    row(
        "AUTHENTICATE",
        Cmd::Authenticate,
        1,
        true,
        false,
        "AUTHENTICATE PLAIN  log in to an account while connecting (SASL; clients do it for you: confab's client --account NAME)",
        &[],
    ),
    row(
        "CHATHISTORY",
        Cmd::Chathistory,
        3,
        false,
        false,
        "CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN <#room|user> <reference>... <limit>  read history (IRCv3 chathistory)",
        &[
            "A reference is timestamp=<RFC 3339 time>, msgid=<id>, or * for LATEST; at most 100 lines a page.",
            "A room's history is yours from when you first joined it; its joins, parts, kicks and other events come with the draft/event-playback capability.",
            "CHATHISTORY TARGETS timestamp=<time> timestamp=<time> <limit>: your rooms and conversations with something for you between the two times.",
        ],
    ),
    row(
        "MARKREAD",
        Cmd::Markread,
        1,
        false,
        false,
        "MARKREAD <#room|user> [timestamp=<time>]  ask for or move your read marker (IRCv3 read-marker)",
        &["Kept for your account and shared by all its connections; it only moves forward."],
    ),
    row(
        "REGISTER",
        Cmd::Register,
        3,
        false,
        false,
        "REGISTER * * <password>  make your name an account (at least 8 characters): only you may use it, and history waits for you",
        &[
            "The account takes your current name; REGISTER <name> requires it to be that name.",
            "The second parameter is an e-mail address, which this tracker does not need (use *).",
        ],
    ),
    row(
        "ACCOUNT",
        Cmd::Account,
        1,
        false,
        false,
        "ACCOUNT PASSWORD <current> <new> | ACCOUNT DELETE <password> | ACCOUNT RESET <account> <new>  manage your account",
        &[
            "PASSWORD changes your account's password; DELETE removes the account and everything it kept.",
            "RESET sets another account's password: tracker operators only.",
        ],
    ),
    row(
        "KILL",
        Cmd::Kill,
        2,
        false,
        true,
        "KILL <user> :<reason>  disconnect a user (tracker operators)",
        &[],
    ),
    row(
        "MOTD",
        Cmd::Motd,
        0,
        false,
        false,
        "MOTD  the welcome message, with what this tracker records",
        &[],
    ),
    row(
        "LUSERS",
        Cmd::Lusers,
        0,
        false,
        false,
        "LUSERS  how many users and rooms there are",
        &[],
    ),
    row(
        "VERSION",
        Cmd::Version,
        0,
        false,
        false,
        "VERSION  the tracker's version and what it supports",
        &[],
    ),
    row(
        "TIME",
        Cmd::Time,
        0,
        false,
        false,
        "TIME  the tracker's clock",
        &[],
    ),
    row(
        "INFO",
        Cmd::Info,
        0,
        false,
        false,
        "INFO  about this tracker",
        &[],
    ),
    row(
        "HELP",
        Cmd::Help,
        0,
        false,
        false,
        "HELP [command]  this list, or one command",
        &[],
    ),
    row(
        "QUIT",
        Cmd::Quit,
        0,
        true,
        false,
        "QUIT [:reason]  leave the tracker",
        &[],
    ),
    row(
        "CAP",
        Cmd::Cap,
        1,
        true,
        false,
        "CAP LS|REQ|LIST|END  IRCv3 capability negotiation",
        &[],
    ),
    row(
        "PASS",
        Cmd::Pass,
        1,
        true,
        false,
        "PASS <password>  the server password, before NICK and USER",
        &[],
    ),
    row(
        "USER",
        Cmd::User,
        4,
        true,
        false,
        "USER <user> 0 * :<real name>  registration",
        &[],
    ),
    row(
        "PING",
        Cmd::Ping,
        0,
        true,
        false,
        "PING <token>  the tracker answers PONG",
        &[],
    ),
    row(
        "PONG",
        Cmd::Pong,
        0,
        true,
        false,
        "PONG <token>  answer to the tracker's PING",
        &[],
    ),
];

/// Other names clients use for a command.
const ALIASES: &[(&str, &str)] = &[("HELPOP", "HELP")];

/// The row for a command name (already upper-case, as parsing leaves it).
pub fn find(name: &str) -> Option<&'static Command> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, real)| real);
    COMMANDS.iter().find(|c| c.name == name)
}

/// Whether `msg` may run now: the command's row, or the one reply that
/// refuses it (`421`, `451` or `461`).
pub fn admit(msg: &Message, registered: bool) -> Result<&'static Command, Numeric> {
    let Some(command) = find(&msg.command) else {
        return Err(if registered {
            replies::unknown_command(&msg.command)
        } else {
            replies::not_registered(&msg.command)
        });
    };
    if !registered && !command.before_registration {
        return Err(replies::not_registered(command.name));
    }
    if msg.params.len() < command.min_params {
        return Err(replies::need_more_params(command.name));
    }
    Ok(command)
}

/// The lines of `HELP` for `topic` (empty or `INDEX`: every command), as
/// replies; an unknown topic gets `524`.
pub fn help(topic: &str) -> Vec<Numeric> {
    let key = topic.to_ascii_uppercase();
    if key.is_empty() || key == "INDEX" {
        let mut out = vec![replies::help_start(
            "index",
            "confab tracker commands (HELP <command> for details):",
        )];
        out.extend(
            COMMANDS
                .iter()
                .filter(|c| !c.before_registration || c.cmd == Cmd::Nick || c.cmd == Cmd::Quit)
                .map(|c| replies::help_text("index", c.usage)),
        );
        out.push(replies::help_text(
            "index",
            "Status: ACTIVE, BUSY (AWAY :text), INACTIVE (set by the tracker after idling)",
        ));
        out.push(replies::end_of_help("index"));
        return out;
    }
    match find(&key) {
        Some(c) => {
            let mut out = vec![replies::help_start(c.name, c.usage)];
            out.extend(c.details.iter().map(|d| replies::help_text(c.name, d)));
            out.push(replies::end_of_help(c.name));
            out
        }
        None => vec![replies::help_not_found(topic)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(line: &str) -> Message {
        Message::parse(line).expect("parses")
    }

    #[test]
    fn one_place_refuses_unknown_early_and_short_commands() {
        assert_eq!(
            admit(&msg("FROB x"), true).unwrap_err(),
            replies::unknown_command("FROB")
        );
        assert_eq!(
            admit(&msg("JOIN #a"), false).unwrap_err(),
            replies::not_registered("JOIN")
        );
        assert_eq!(
            admit(&msg("KICK #a"), true).unwrap_err(),
            replies::need_more_params("KICK")
        );
        assert_eq!(admit(&msg("helpop"), true).map(|c| c.cmd), Ok(Cmd::Help));
        assert_eq!(admit(&msg("NICK a"), false).map(|c| c.cmd), Ok(Cmd::Nick));
    }

    #[test]
    fn every_command_has_help_and_a_unique_name() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(c.usage.starts_with(c.name), "{} usage", c.name);
            assert!(
                COMMANDS[i + 1..]
                    .iter()
                    .all(|o| o.name != c.name && o.cmd != c.cmd),
                "{} twice",
                c.name
            );
            let lines = help(c.name);
            assert_eq!(lines.first().map(|n| n.code), Some("704"));
        }
        let index = help("");
        assert!(
            index
                .iter()
                .any(|n| n.params[1].starts_with("CLOSE <#room>"))
        );
        assert_eq!(help("nope")[0], replies::help_not_found("nope"));
    }
}
