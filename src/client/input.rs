//! What the user types: plain text for the current room, or a command.

use thiserror::Error;

/// Longest chunk of text sent in one PRIVMSG: leaves room for the source
/// prefix the tracker adds so the relayed line stays under 512 bytes.
pub const CHUNK_BYTES: usize = 400;

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Say(String),
    Me(String),
    Msg {
        to: String,
        text: String,
    },
    Status {
        busy: bool,
        text: Option<String>,
    },
    Info(String),
    /// `/users`, `/who [#room]`: a room's members (the current room
    /// without a name).
    Users(Option<String>),
    Rooms,
    Join {
        room: String,
        key: Option<String>,
    },
    Part {
        room: Option<String>,
        reason: Option<String>,
    },
    /// `/topic [#room] [text]`: show the topic, or set it.
    Topic {
        room: Option<String>,
        text: Option<String>,
    },
    Invite {
        nick: String,
        room: Option<String>,
    },
    Kick {
        room: Option<String>,
        nick: String,
        reason: Option<String>,
    },
    /// `/mode [#room] [+/-modes [args]]`; no changes shows the modes.
    Mode {
        room: Option<String>,
        changes: Vec<String>,
    },
    /// `/close #room [reason]`: ask the tracker to close the room for
    /// everyone (its founder or a tracker operator only). The full-screen
    /// client takes a bare `/close` itself, to close the window.
    CloseRoom {
        room: Option<String>,
        reason: Option<String>,
    },
    /// `/oper <name> [password]`; without the password it is asked.
    Oper {
        name: String,
        password: Option<String>,
    },
    /// `/register [password]`: make the current name an account; without
    /// the password it is asked.
    Register(Option<String>),
    Kill {
        nick: String,
        reason: String,
    },
    Nick(String),
    /// `/session ...`: direct sessions.
    Session(super::p2p::SessionCommand),
    Help,
    Quit(Option<String>),
    /// `/quote <raw IRC line>`: for the curious.
    Raw(String),
}

impl From<super::p2p::SessionCommand> for Command {
    fn from(c: super::p2p::SessionCommand) -> Self {
        Command::Session(c)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InputError {
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("unknown command /{0}; type /help for the list")]
    Unknown(String),
}

/// `Ok(None)` for an empty line.
pub fn parse(line: &str) -> Result<Option<Command>, InputError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    // People leave a shell by typing `exit`; a chat that sent the word to
    // the whole class instead would be the surprise. `/say exit` sends it.
    if is_exit_word(line) {
        return Ok(Some(Command::Quit(None)));
    }
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Some(Command::Say(format!("/{rest}"))));
    }
    // `=nick text`: the direct session with nick (irssi's `=nick`); a
    // line like `=) ok` is text.
    if let Some(rest) = line.strip_prefix('=')
        && let Some((to, text)) = rest.split_once(' ')
        && crate::proto::nick::validate_nick(to).is_ok()
        && !text.trim().is_empty()
    {
        return Ok(Some(Command::Msg {
            to: format!("={to}"),
            text: text.to_string(),
        }));
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (to, text) = rest.split_once(' ').unwrap_or((rest, ""));
        if to.is_empty() || text.trim().is_empty() {
            return Err(InputError::Usage("@user <message>"));
        }
        return Ok(Some(Command::Msg {
            to: to.to_string(),
            text: text.to_string(),
        }));
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Some(Command::Say(line.to_string())));
    };
    let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let args = args.trim();
    let arg = (!args.is_empty()).then(|| args.to_string());
    let cmd = match name.to_ascii_lowercase().as_str() {
        "session" | "dcc" => {
            use super::p2p::SessionCommand as S;
            let usage = "/session <user> | /session plain <user> | /session accept|decline [user] | /session close [user]";
            let w = words(args);
            let who = |i: usize| w.get(i).map(|s| s.to_string());
            match w.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                None | Some("list") if w.len() <= 1 => S::List,
                Some("plain") if w.len() == 2 => S::Offer {
                    nick: w[1].to_string(),
                    plain: true,
                },
                Some("accept") if w.len() <= 2 => S::Accept(who(1)),
                Some("decline") | Some("reject") if w.len() <= 2 => S::Decline(who(1)),
                Some("close") if w.len() <= 2 => S::Close(who(1)),
                Some(_) if w.len() == 1 => S::Offer {
                    nick: w[0].to_string(),
                    plain: false,
                },
                _ => return Err(InputError::Usage(usage)),
            }
            .into()
        }
        "msg" | "m" | "query" => {
            let (to, text) = args
                .split_once(' ')
                .ok_or(InputError::Usage("/msg <user> <message>"))?;
            if text.trim().is_empty() {
                return Err(InputError::Usage("/msg <user> <message>"));
            }
            Command::Msg {
                to: to.to_string(),
                text: text.to_string(),
            }
        }
        "say" => Command::Say(
            // The text as typed after `/say `, inner spaces kept.
            rest.split_once(' ')
                .map(|(_, t)| t.to_string())
                .filter(|t| !t.trim().is_empty())
                .ok_or(InputError::Usage("/say <text>"))?,
        ),
        "me" => Command::Me(arg.ok_or(InputError::Usage("/me <action>"))?),
        "status" | "away" | "back" => {
            let (word, text) = args.split_once(' ').unwrap_or((args, ""));
            let text = (!text.trim().is_empty()).then(|| text.trim().to_string());
            match (name, word.to_ascii_lowercase().as_str()) {
                ("back", _) | (_, "active") => Command::Status {
                    busy: false,
                    text: None,
                },
                ("away", "") => Command::Status {
                    busy: true,
                    text: None,
                },
                ("away", _) => Command::Status {
                    busy: true,
                    text: arg,
                },
                (_, "busy") => Command::Status { busy: true, text },
                _ => {
                    return Err(InputError::Usage(
                        "/status active | /status busy [what you are doing]",
                    ));
                }
            }
        }
        "info" | "whois" => Command::Info(arg.ok_or(InputError::Usage("/info <user>"))?),
        "users" | "who" | "names" => match words(args).as_slice() {
            [] => Command::Users(None),
            [room] => Command::Users(Some(room_name(room))),
            _ => return Err(InputError::Usage("/who [#room]")),
        },
        "rooms" | "list" => Command::Rooms,
        "join" => match words(args).as_slice() {
            [room] => Command::Join {
                room: room_name(room),
                key: None,
            },
            [room, key] => Command::Join {
                room: room_name(room),
                key: Some(key.to_string()),
            },
            _ => return Err(InputError::Usage("/join #room [key]")),
        },
        "part" | "leave" => {
            let (room, rest) = leading_room(args);
            Command::Part { room, reason: rest }
        }
        "topic" => {
            let (room, text) = leading_room(args);
            Command::Topic { room, text }
        }
        "invite" => match words(args).as_slice() {
            [nick] => Command::Invite {
                nick: nick.to_string(),
                room: None,
            },
            [nick, room] => Command::Invite {
                nick: nick.to_string(),
                room: Some(room_name(room)),
            },
            _ => return Err(InputError::Usage("/invite <user> [#room]")),
        },
        "kick" => {
            let (room, rest) = leading_room(args);
            let rest = rest.unwrap_or_default();
            let (nick, reason) = rest.split_once(' ').unwrap_or((&rest, ""));
            if nick.is_empty() {
                return Err(InputError::Usage("/kick [#room] <user> [reason]"));
            }
            Command::Kick {
                room,
                nick: nick.to_string(),
                reason: (!reason.trim().is_empty()).then(|| reason.trim().to_string()),
            }
        }
        "mode" => {
            let (room, rest) = leading_room(args);
            let changes = rest.as_deref().map(words).unwrap_or_default();
            if changes.first().is_some_and(|c| !c.starts_with(['+', '-'])) {
                return Err(InputError::Usage("/mode [#room] [+/-modes [arguments]]"));
            }
            Command::Mode {
                room,
                changes: changes.into_iter().map(str::to_string).collect(),
            }
        }
        "ban" | "unban" => {
            let usage = if name.eq_ignore_ascii_case("ban") {
                "/ban <user or mask>"
            } else {
                "/unban <user or mask>"
            };
            let (room, rest) = leading_room(args);
            let [mask] = rest.as_deref().map(words).unwrap_or_default()[..] else {
                return Err(InputError::Usage(usage));
            };
            let sign = if name.eq_ignore_ascii_case("ban") {
                "+b"
            } else {
                "-b"
            };
            Command::Mode {
                room,
                changes: vec![sign.to_string(), ban_mask(mask)],
            }
        }
        "close" => {
            let (room, reason) = leading_room(args);
            if room.is_none() {
                return Err(InputError::Usage(
                    "/close #room [reason] (closes the room for everyone: its founder or a tracker operator only)",
                ));
            }
            Command::CloseRoom { room, reason }
        }
        "oper" => match words(args).as_slice() {
            [name] => Command::Oper {
                name: name.to_string(),
                password: None,
            },
            [name, ..] => Command::Oper {
                name: name.to_string(),
                password: Some(args[name.len()..].trim().to_string()),
            },
            [] => return Err(InputError::Usage("/oper <name> (the password is asked)")),
        },
        "register" => Command::Register(arg),
        "kill" => {
            let (nick, reason) = args.split_once(' ').unwrap_or((args, ""));
            if nick.is_empty() || reason.trim().is_empty() {
                return Err(InputError::Usage("/kill <user> <reason>"));
            }
            Command::Kill {
                nick: nick.to_string(),
                reason: reason.trim().to_string(),
            }
        }
        "nick" => Command::Nick(arg.ok_or(InputError::Usage("/nick <new name>"))?),
        "help" | "h" | "?" => Command::Help,
        "exit" | "quit" | "q" => Command::Quit(arg),
        "quote" | "raw" => Command::Raw(arg.ok_or(InputError::Usage("/quote <IRC line>"))?),
        other => return Err(InputError::Unknown(other.to_string())),
    };
    Ok(Some(cmd))
}

fn words(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

/// `#lab` as typed, `lab` made `#lab`.
fn room_name(word: &str) -> String {
    if word.starts_with('#') {
        word.to_string()
    } else {
        format!("#{word}")
    }
}

/// A room named first (`#lab ...`), and the rest.
fn leading_room(args: &str) -> (Option<String>, Option<String>) {
    let (first, rest) = args.split_once(' ').unwrap_or((args, ""));
    let rest = rest.trim();
    if first.starts_with('#') {
        (
            Some(first.to_string()),
            (!rest.is_empty()).then(|| rest.to_string()),
        )
    } else {
        (None, (!args.is_empty()).then(|| args.to_string()))
    }
}

/// A ban mask: a user's name alone bans that name (`eve` is `eve!*@*`).
fn ban_mask(word: &str) -> String {
    if word.contains(['!', '@', '*', '?']) {
        word.to_string()
    } else {
        format!("{word}!*@*")
    }
}

/// Whether a typed line is one of the words that leave (`exit`, `quit`)
/// on its own: what people type to leave a shell or a REPL.
pub fn is_exit_word(line: &str) -> bool {
    EXIT_WORDS
        .iter()
        .any(|w| line.trim().eq_ignore_ascii_case(w))
}

/// Typed alone on a line, these leave (see [`is_exit_word`]).
pub const EXIT_WORDS: &[&str] = &["exit", "quit"];

/// Command names, for completion (aliases included, without the slash).
pub const COMMANDS: &[&str] = &[
    "away", "back", "ban", "close", "exit", "help", "info", "invite", "join", "kick", "kill", "me",
    "mode", "msg", "nick", "oper", "part", "query", "quit", "quote", "register", "rooms", "say",
    "session", "status", "topic", "unban", "users", "who", "whois",
];

pub fn help_lines() -> Vec<String> {
    [
        "Type a line to send it to the current room (#general unless you /join another).",
        "/msg <user> <text>   direct message (also: @user <text>)",
        "/me <action>         an action in the current room",
        "/status active|busy [what you are doing]   set your status (INACTIVE is set by the tracker after idling)",
        "/info <user>         address, status, idle time, rooms",
        "/users, /who [#room] who is in a room: roles (~ founder, @ operator, + voice) and statuses",
        "/rooms               every room you can see, with its member count and topic",
        "/join #room [key]    enter a room (a new name creates it, with you as its founder)",
        "/part [#room] [reason]   leave a room (the current one without a name)",
        "/topic [text]        show the current room's topic, or set it",
        "/invite <user> [#room]   invite someone (into an invite-only room too)",
        "/kick [#room] <user> [reason]   remove someone from a room (its operators)",
        "/mode [#room] [+/-modes [args]]   show or change a room's modes: +i +k key +l n +m +n +t +s, +o/+v user",
        "/ban <user|mask>, /unban <user|mask>   ban from the current room (+b), lift it (-b)",
        "/close #room [reason]   close a room for everyone (its founder or a tracker operator)",
        "/oper <name>         become a tracker operator (the password is asked, never shown)",
        "/kill <user> <reason>   disconnect a user (tracker operators)",
        "/register            make your name an account (the password is asked): only you may use it; log in with client --account NAME",
        "/nick <name>         change your username",
        "/session <user>      offer a direct, encrypted session (not through the tracker); /session plain <user> without encryption (for other IRC clients)",
        "/session accept|decline [user], /session close [user]   answer an offer, end a session; =user <text> says something in it",
        "/help                this list",
        "exit or quit         (alone on a line) leave; also /exit or /quit [reason]",
        "/say <text>          send text as it is, even `exit` or a line starting with '/'",
        "//text sends a line starting with '/'",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Splits text into chunks of at most [`CHUNK_BYTES`], at spaces when it can
/// and never inside a character: a long message arrives whole, in order.
pub fn split_message(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > CHUNK_BYTES {
        let mut cut = CHUNK_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(' ').filter(|&i| i > CHUNK_BYTES / 2) {
            cut = space;
        }
        out.push(rest[..cut].to_string());
        rest = rest[cut..].strip_prefix(' ').unwrap_or(&rest[cut..]);
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("hello"), Ok(Some(Command::Say("hello".into()))));
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(parse("//etc"), Ok(Some(Command::Say("/etc".into()))));
        assert_eq!(
            parse("/msg bob hi there"),
            Ok(Some(Command::Msg {
                to: "bob".into(),
                text: "hi there".into()
            }))
        );
        assert_eq!(
            parse("@bob hi"),
            Ok(Some(Command::Msg {
                to: "bob".into(),
                text: "hi".into()
            }))
        );
        assert_eq!(parse("@bob"), Err(InputError::Usage("@user <message>")));
        assert_eq!(
            parse("/status busy"),
            Ok(Some(Command::Status {
                busy: true,
                text: None
            }))
        );
        assert_eq!(
            parse("/status busy in class"),
            Ok(Some(Command::Status {
                busy: true,
                text: Some("in class".into())
            }))
        );
        assert_eq!(
            parse("/status ACTIVE"),
            Ok(Some(Command::Status {
                busy: false,
                text: None
            }))
        );
        assert!(matches!(
            parse("/status inactive"),
            Err(InputError::Usage(_))
        ));
        assert_eq!(
            parse("/info alice"),
            Ok(Some(Command::Info("alice".into())))
        );
        assert_eq!(parse("/users"), Ok(Some(Command::Users(None))));
        assert_eq!(
            parse("/join games"),
            Ok(Some(Command::Join {
                room: "#games".into(),
                key: None
            }))
        );
        assert_eq!(parse("/exit"), Ok(Some(Command::Quit(None))));
        assert_eq!(
            parse("/quit see you"),
            Ok(Some(Command::Quit(Some("see you".into()))))
        );
        assert_eq!(parse("/frob"), Err(InputError::Unknown("frob".into())));
        // The words people leave a shell with, alone on a line.
        assert_eq!(parse("exit"), Ok(Some(Command::Quit(None))));
        assert_eq!(parse(" Quit "), Ok(Some(Command::Quit(None))));
        assert_eq!(parse("exit now"), Ok(Some(Command::Say("exit now".into()))));
        assert_eq!(parse("/say exit"), Ok(Some(Command::Say("exit".into()))));
        assert_eq!(
            parse("/say /join  #x"),
            Ok(Some(Command::Say("/join  #x".into())))
        );
        assert_eq!(parse("/say "), Err(InputError::Usage("/say <text>")));
    }

    /// `/help` and Tab completion come from the same list: every command
    /// help names completes, and every completion is a command.
    #[test]
    fn help_and_completion_agree() {
        for name in COMMANDS {
            assert!(
                !matches!(parse(&format!("/{name}")), Err(InputError::Unknown(_))),
                "/{name} completes but is not a command"
            );
        }
        for line in help_lines() {
            let commands = line
                .split([' ', ','])
                .filter(|w| w.starts_with('/') && !w.starts_with("//"));
            for word in commands {
                let name = word.trim_start_matches('/');
                assert!(
                    name.is_empty() || COMMANDS.contains(&name),
                    "/help names /{name}, which Tab does not complete"
                );
            }
        }
        for name in [
            "who", "topic", "invite", "kick", "mode", "ban", "unban", "close", "oper", "kill",
        ] {
            assert!(COMMANDS.contains(&name), "{name}");
        }
    }

    #[test]
    fn room_commands_parse() {
        assert_eq!(
            parse("/part #lab see you all"),
            Ok(Some(Command::Part {
                room: Some("#lab".into()),
                reason: Some("see you all".into())
            }))
        );
        assert_eq!(
            parse("/part bye"),
            Ok(Some(Command::Part {
                room: None,
                reason: Some("bye".into())
            }))
        );
        assert_eq!(
            parse("/kick #lab otto be nice"),
            Ok(Some(Command::Kick {
                room: Some("#lab".into()),
                nick: "otto".into(),
                reason: Some("be nice".into())
            }))
        );
        assert!(matches!(parse("/kick #lab"), Err(InputError::Usage(_))));
        assert!(matches!(parse("/mode otto"), Err(InputError::Usage(_))));
        assert!(matches!(parse("/kill vic"), Err(InputError::Usage(_))));
        assert!(matches!(parse("/oper"), Err(InputError::Usage(_))));
        assert_eq!(parse("/register"), Ok(Some(Command::Register(None))));
        assert_eq!(
            parse("/register river stone 42"),
            Ok(Some(Command::Register(Some("river stone 42".into()))))
        );
        assert_eq!(
            parse("/oper teacher chalk dust"),
            Ok(Some(Command::Oper {
                name: "teacher".into(),
                password: Some("chalk dust".into())
            }))
        );
        assert_eq!(
            parse("/ban #lab eve"),
            Ok(Some(Command::Mode {
                room: Some("#lab".into()),
                changes: vec!["+b".into(), "eve!*@*".into()]
            }))
        );
        assert_eq!(
            parse("/who lab"),
            Ok(Some(Command::Users(Some("#lab".into()))))
        );
    }

    #[test]
    fn splits_long_text_without_losing_any() {
        assert_eq!(split_message("short"), vec!["short"]);
        let words = "word ".repeat(300);
        let chunks = split_message(words.trim());
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
        assert_eq!(chunks.join(" "), words.trim());
        let wide = "漢".repeat(500);
        let chunks = split_message(&wide);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
        assert_eq!(chunks.concat(), wide);
    }
}
