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
    Users,
    Rooms,
    Join(String),
    Part(Option<String>),
    Nick(String),
    Help,
    Quit(Option<String>),
    /// `/quote <raw IRC line>`: for the curious.
    Raw(String),
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
        "users" | "who" | "names" => Command::Users,
        "rooms" | "list" => Command::Rooms,
        "join" => {
            let room = arg.ok_or(InputError::Usage("/join #room"))?;
            Command::Join(if room.starts_with('#') {
                room
            } else {
                format!("#{room}")
            })
        }
        "part" | "leave" => Command::Part(arg),
        "nick" => Command::Nick(arg.ok_or(InputError::Usage("/nick <new name>"))?),
        "help" | "h" | "?" => Command::Help,
        "exit" | "quit" | "q" => Command::Quit(arg),
        "quote" | "raw" => Command::Raw(arg.ok_or(InputError::Usage("/quote <IRC line>"))?),
        other => return Err(InputError::Unknown(other.to_string())),
    };
    Ok(Some(cmd))
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
    "away", "back", "exit", "help", "info", "join", "me", "msg", "nick", "part", "query", "quit",
    "quote", "rooms", "say", "status", "users", "whois",
];

pub fn help_lines() -> Vec<String> {
    [
        "Type a line to send it to the current room (#general unless you /join another).",
        "/msg <user> <text>   direct message (also: @user <text>)",
        "/me <action>         an action in the current room",
        "/status active|busy [what you are doing]   set your status (INACTIVE is set by the tracker after idling)",
        "/info <user>         address, status, idle time, rooms",
        "/users               who is in the current room, with their status",
        "/rooms               list rooms;  /join #room, /part [#room] to enter and leave",
        "/nick <name>         change your username",
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
        assert_eq!(parse("/users"), Ok(Some(Command::Users)));
        assert_eq!(
            parse("/join games"),
            Ok(Some(Command::Join("#games".into())))
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
